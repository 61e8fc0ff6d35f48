"""Tests for adam_optax: parity with Optax and the paper, a drop-in for Optax
(names, signatures, state types, compiled programs), complex params, Python
scalar / None leaves and empty pytrees, bias correction switched off,
composition with Optax/Flax, behaviour under JAX transformations, convergence
and bad input.

Long trajectories run as one jitted `lax.scan` so the 1,000-step comparisons
cost one compilation each.
"""

import doctest
import functools
import inspect
import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax.training import train_state

import adam_optax

STEPS = 1000
INT32_MAX = 2**31 - 1

# A complex value cast to a real dtype loses its imaginary part with only a
# warning; here it fails the test instead.
pytestmark = pytest.mark.filterwarnings(
    'error::numpy.exceptions.ComplexWarning')


# ----------------------------------------------------------------------------
# Shared helpers.


def _params(seed=0, dtype=jnp.float32):
  """A nested dict/tuple pytree with matrix, vector, 3-D and scalar leaves."""
  k1, k2, k3, k4 = jax.random.split(jax.random.PRNGKey(seed), 4)
  return {
      'dense': {'w': jax.random.normal(k1, (3, 4), dtype),
                'b': jax.random.normal(k2, (4,), dtype)},
      'conv': (jax.random.normal(k3, (2, 3, 2), dtype),
               jax.random.normal(k4, (), dtype)),
  }


def _grads(params, steps, seed=1, scale=1.0):
  """Random gradients like `params`, stacked along a leading `steps` axis."""
  leaves, treedef = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.PRNGKey(seed), len(leaves))
  return treedef.unflatten([
      scale * jax.random.normal(k, (steps,) + x.shape, x.dtype)
      for k, x in zip(keys, leaves)
  ])


def _run(tx, params, grads, state_fn=lambda state: state):
  """Applies `tx` for each gradient in the stack, in one jitted scan.

  Args:
    tx: the transformation; `update` gets the params (AdamW needs them).
    params: initial params.
    grads: gradients stacked on a leading axis, one slice per step.
    state_fn: applied to the state after every step (e.g. to round it).

  Returns:
    ((final params, final state), params after every step).
  """

  @jax.jit
  def run(params, grads):
    """The whole trajectory."""

    def step(carry, g):
      """One optimizer step; also emits the new params."""
      params, state = carry
      updates, state = tx.update(g, state, params)
      params = optax.apply_updates(params, updates)
      return (params, state_fn(state)), params

    return jax.lax.scan(step, (params, tx.init(params)), grads)

  return run(params, grads)


def _assert_trees_close(actual, expected, rtol, atol=0.0):
  """Same tree structure (state classes included), leaves allclose in float64.

  rtol=0 and atol=0 ask for bit-identical leaves.
  """
  assert jax.tree.structure(actual) == jax.tree.structure(expected)
  actual, expected = jax.tree.leaves(actual), jax.tree.leaves(expected)
  assert len(actual) == len(expected)
  for a, e in zip(actual, expected):
    assert jnp.shape(a) == jnp.shape(e)
    wide = np.complex128 if np.iscomplexobj(a) or np.iscomplexobj(e) else (
        np.float64)
    np.testing.assert_allclose(np.asarray(a, wide), np.asarray(e, wide),
                               rtol=rtol, atol=atol)


def _paper_adam(theta, grads, lr, b1=0.9, b2=0.999, eps=1e-8):
  """Algorithm 1 of Kingma & Ba (2015) in NumPy float64; params per step."""
  m = np.zeros_like(theta)
  v = np.zeros_like(theta)
  trajectory = []
  for t, g in enumerate(grads, start=1):
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    m_hat = m / (1 - b1**t)
    v_hat = v / (1 - b2**t)
    theta = theta - lr * m_hat / (np.sqrt(v_hat) + eps)
    trajectory.append(theta)
  return np.stack(trajectory)


def _paper_adamax(theta, grads, lr, b1=0.9, b2=0.999, eps=1e-8):
  """Algorithm 2 (Adamax) in NumPy float64, eps inside the max; per step.

  For complex params (complex128) |g| is the modulus and u stays real.
  """
  m = np.zeros_like(theta)
  u = np.zeros(theta.shape)
  trajectory = []
  for t, g in enumerate(grads, start=1):
    m = b1 * m + (1 - b1) * g
    u = np.maximum(b2 * u, np.abs(g) + eps)
    theta = theta - (lr / (1 - b1**t)) * m / u
    trajectory.append(theta)
  return np.stack(trajectory)


def _pytorch_amsgrad(theta, grads, lr, b1=0.9, b2=0.999, eps=1e-8):
  """PyTorch's Adam(amsgrad=True) rule in NumPy float64; params per step.

  It keeps the maximum of the raw v_t and divides it by the current
  sqrt(1 - b2^t), unlike Optax (and us), which keep the maximum of the
  bias-corrected v_t.
  """
  m = np.zeros_like(theta)
  v = np.zeros_like(theta)
  v_max = np.zeros_like(theta)
  trajectory = []
  for t, g in enumerate(grads, start=1):
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    v_max = np.maximum(v_max, v)
    denom = np.sqrt(v_max) / np.sqrt(1 - b2**t) + eps
    theta = theta - (lr / (1 - b1**t)) * m / denom
    trajectory.append(theta)
  return np.stack(trajectory)


def _jitted_step(tx, traces=None):
  """A jitted (params, state, grads) -> (params, state) step for `tx`.

  Args:
    tx: the transformation.
    traces: if given, a list that gets one entry per trace (compilation).
  """

  @jax.jit
  def step(params, state, grads):
    """Update and apply."""
    if traces is not None:
      traces.append(None)
    updates, state = tx.update(grads, state, params)
    return optax.apply_updates(params, updates), state

  return step


# ----------------------------------------------------------------------------
# Parity with Optax: 1,000 jitted steps on a random nested pytree.

SCHEDULE = optax.warmup_cosine_decay_schedule(0.0, 1e-2, 100, STEPS)


def _decay_matrices(params):
  """The usual AdamW mask: decay weight matrices, not biases or scalars."""
  return jax.tree.map(lambda x: x.ndim > 1, params)


_MASK_TREE = {'dense': {'w': True, 'b': False}, 'conv': (True, False)}

# name -> (ours, Optax's), called with the same arguments.
_OPTIMIZERS = {
    'adam': (adam_optax.adam, optax.adam),
    'adamw': (functools.partial(adam_optax.adamw, weight_decay=0.1),
              functools.partial(optax.adamw, weight_decay=0.1)),
    'adamw_mask_tree': (
        functools.partial(adam_optax.adamw, weight_decay=0.1, mask=_MASK_TREE),
        functools.partial(optax.adamw, weight_decay=0.1, mask=_MASK_TREE)),
    'adamw_mask_callable': (
        functools.partial(adam_optax.adamw, weight_decay=0.1,
                          mask=_decay_matrices),
        functools.partial(optax.adamw, weight_decay=0.1,
                          mask=_decay_matrices)),
    'nadam': (adam_optax.nadam, optax.nadam),
    'nadamw': (functools.partial(adam_optax.nadamw, weight_decay=0.1),
               functools.partial(optax.nadamw, weight_decay=0.1)),
    'amsgrad': (adam_optax.amsgrad, optax.amsgrad),
    'amsgrad_uncorrected': (
        functools.partial(adam_optax.amsgrad, bias_correction_mu=False,
                          bias_correction_nu=False),
        functools.partial(optax.amsgrad, bias_correction_mu=False,
                          bias_correction_nu=False)),
    'adamax': (adam_optax.adamax, optax.adamax),
    'adamaxw': (functools.partial(adam_optax.adamaxw, weight_decay=0.1),
                functools.partial(optax.adamaxw, weight_decay=0.1)),
}

# Hyperparameter sets; the learning rate is 1e-2 unless given.
_HYPERPARAMS = {
    'defaults': {},
    'b1_b2_eps': {'b1': 0.5, 'b2': 0.95, 'eps': 1e-3},
    'b1_zero_eps_root': {'b1': 0.0, 'b2': 0.9, 'eps': 0.0, 'eps_root': 1e-6},
    'mu_float32': {'mu_dtype': jnp.float32},
    'mu_bfloat16': {'mu_dtype': jnp.bfloat16},
    'schedule': {'learning_rate': SCHEDULE},
}


# Which hyperparameter sets each optimizer runs with: all of them for Adam;
# for the others, those that reach code of their own (NAdam's and AMSGrad's
# use of mu, the schedule scaling AdamW's decay, the two kinds of mask).
_PARITY_CASES = {
    'adam': list(_HYPERPARAMS),
    'nadam': ['defaults', 'b1_zero_eps_root', 'mu_bfloat16'],
    'amsgrad': ['defaults', 'b1_b2_eps', 'mu_bfloat16'],
    'adamw': ['defaults', 'schedule'],
    'adamw_mask_tree': ['b1_b2_eps'],
    'adamw_mask_callable': ['mu_float32'],
    'adamax': ['defaults', 'b1_b2_eps', 'schedule'],
    'nadamw': ['defaults'],
    'amsgrad_uncorrected': ['defaults', 'b1_b2_eps'],
    'adamaxw': ['schedule'],
}


def _round_mu(state, dtype):
  """Rounds the first moment of a chain's first state to `dtype`'s precision.

  `lax.reduce_precision`, not `astype(dtype).astype(float32)`: XLA:GPU may
  drop such a round trip (xla_allow_excess_precision, on by default), which
  left the reference's moment unrounded on an H100.
  """
  inner = state[0]
  info = jnp.finfo(dtype)
  mu = jax.tree.map(lambda m: jax.lax.reduce_precision(
      m, exponent_bits=info.nexp, mantissa_bits=info.nmant), inner.mu)
  return (inner._replace(mu=mu),) + tuple(state[1:])


@pytest.mark.parametrize('opt, kwargs', [
    pytest.param(opt, _HYPERPARAMS[hp], id=f'{opt}-{hp}')
    for opt, hps in _PARITY_CASES.items() for hp in hps
])
def test_parity_with_optax(opt, kwargs):
  """1,000 steps give Optax's params and state bit for bit in float32.

  bfloat16 mu: Optax computes b1 * mu_{t-1} in bfloat16 (a Python float times a
  bf16 array stays bf16) where we upcast to float32 first, so the two are not
  comparable bit for bit. The reference there is Optax with a float32 mu that
  is rounded to bfloat16 after every step: float32 arithmetic, bf16 storage,
  which is what we claim to do; it agrees to rtol 1e-6.
  """
  ours, theirs = _OPTIMIZERS[opt]
  kwargs = {'learning_rate': 1e-2, **kwargs}
  ref_kwargs, state_fn, rtol = kwargs, lambda state: state, 0.0
  if kwargs.get('mu_dtype') == jnp.bfloat16:
    ref_kwargs = {**kwargs, 'mu_dtype': None}
    state_fn = functools.partial(_round_mu, dtype=jnp.bfloat16)
    rtol = 1e-6
  params = _params()
  grads = _grads(params, STEPS)

  (p_ours, s_ours), _ = _run(ours(**kwargs), params, grads)
  (p_ref, s_ref), _ = _run(theirs(**ref_kwargs), params, grads, state_fn)

  _assert_trees_close(p_ours, p_ref, rtol=rtol)
  _assert_trees_close(s_ours, s_ref, rtol=rtol)
  # The comparison is meaningful: the params moved.
  assert not np.allclose(p_ours['dense']['w'], params['dense']['w'])
  if 'mu_dtype' in kwargs:
    mu_dtypes = {x.dtype for x in jax.tree.leaves(s_ours[0].mu)}
    assert mu_dtypes == {jnp.dtype(kwargs['mu_dtype'])}


# ----------------------------------------------------------------------------
# Drop-in for Optax: names, signatures, state types, compiled programs.

# Optax's Adam family and ours, pairwise.
_SAME_NAMES = ['scale_by_adam', 'scale_by_amsgrad', 'scale_by_adamax', 'adam',
               'adamw', 'nadam', 'nadamw', 'amsgrad', 'adamax', 'adamaxw']


def _split_signature(fn):
  """`fn`'s positional [(name, default)] and keyword-only {name: default}."""
  params = inspect.signature(fn).parameters.values()
  positional = [(p.name, p.default) for p in params
                if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
  keyword_only = {p.name: p.default for p in params
                  if p.kind is inspect.Parameter.KEYWORD_ONLY}
  assert len(positional) + len(keyword_only) == len(params)  # No *args.
  return positional, keyword_only


# Our keyword-only options that Optax's function of the same name lacks.
_ADAM_EXTRAS = {'nu_dtype', 'amsgrad', 'bias_correction_mu',
                'bias_correction_nu'}
_EXTRAS = {
    'scale_by_adam': {'nu_dtype', 'bias_correction_mu', 'bias_correction_nu'},
    'scale_by_amsgrad': {'nu_dtype', 'nesterov'},
    'scale_by_adamax': set(),
    'adam': _ADAM_EXTRAS, 'adamw': _ADAM_EXTRAS,
    'nadam': _ADAM_EXTRAS, 'nadamw': _ADAM_EXTRAS,
    'amsgrad': {'nu_dtype'},
    'adamax': set(), 'adamaxw': set(),
}


@pytest.mark.parametrize('name', _SAME_NAMES)
def test_signature_matches_optax(name):
  """Optax's positional order and defaults; its keywords; extras keyword-only.

  optax.nadam and optax.nadamw are functools.partial(..., nesterov=True), whose
  signature shows nesterov as keyword-only with default True; ours too.
  """
  ours_positional, ours_keywords = _split_signature(getattr(adam_optax, name))
  theirs_positional, theirs_keywords = _split_signature(getattr(optax, name))

  assert ours_positional == theirs_positional
  assert theirs_keywords.items() <= ours_keywords.items()
  assert set(ours_keywords) - set(theirs_keywords) == _EXTRAS[name]
  assert name in adam_optax.__all__


@pytest.mark.parametrize('ours, theirs, base', [
    (adam_optax.nadam, optax.nadam, adam_optax.adam),
    (adam_optax.nadamw, optax.nadamw, adam_optax.adamw),
], ids=['nadam', 'nadamw'])
def test_nadam_is_a_partial_of_adam_as_in_optax(ours, theirs, base):
  """functools.partial(adam(w), nesterov=True) like Optax's, with its own doc.

  test_parity_with_optax checks that they also step as Optax's do.
  """
  assert isinstance(ours, functools.partial)
  assert ours.func is base
  assert (ours.args, ours.keywords) == (theirs.args, theirs.keywords)
  assert ours.__doc__ not in (base.__doc__, functools.partial.__doc__)
  assert 'Nesterov' in ours.__doc__ and 'Args:' in ours.__doc__


def test_every_optax_adam_family_name_is_covered():
  """Every public Optax name of the family has ours (and nothing is extra)."""
  family = {n for n in dir(optax) if re.fullmatch(
      r'(scale_by_)?(n?adamw?|amsgrad|adamaxw?)', n)}
  assert family == set(_SAME_NAMES)
  assert optax.nadam.keywords == optax.nadamw.keywords == {'nesterov': True}


@pytest.mark.parametrize('nadam, adam', [
    (adam_optax.nadam, adam_optax.adam),
    (functools.partial(adam_optax.nadamw, weight_decay=0.1),
     functools.partial(adam_optax.adamw, weight_decay=0.1)),
], ids=['nadam', 'nadamw'])
def test_nadam_nesterov_keyword(nadam, adam):
  """As with Optax's partials: nesterov=False is Adam, the default is not."""
  params = jnp.array([1.0, -2.0, 0.5])
  grads = jnp.array([[0.3, 0.1, -2.0], [0.2, -0.4, 1.0]])
  (p_plain, _), _ = _run(nadam(0.1, nesterov=False), params, grads)
  (p_adam, _), _ = _run(adam(0.1), params, grads)
  (p_nesterov, _), _ = _run(nadam(0.1), params, grads)
  (p_explicit, _), _ = _run(adam(0.1, nesterov=True), params, grads)
  np.testing.assert_array_equal(p_plain, p_adam)
  np.testing.assert_array_equal(p_nesterov, p_explicit)
  assert not np.allclose(p_nesterov, p_adam)


@pytest.mark.parametrize('tx, state_type', [
    (adam_optax.scale_by_adam(), optax.ScaleByAdamState),
    (adam_optax.scale_by_adam(nesterov=True), optax.ScaleByAdamState),
    (adam_optax.scale_by_amsgrad(), optax.ScaleByAmsgradState),
    (adam_optax.scale_by_amsgrad(nesterov=True), optax.ScaleByAmsgradState),
    (adam_optax.scale_by_adamax(), optax.ScaleByAdamState),
], ids=['adam', 'nadam', 'amsgrad', 'nadam_amsgrad', 'adamax'])
def test_state_is_optax_state(tx, state_type):
  """Our state is Optax's NamedTuple, before and after an update."""
  params = _params()
  state = tx.init(params)
  assert type(state) is state_type  # pylint: disable=unidiomatic-typecheck
  _, state = jax.jit(tx.update)(params, state)
  assert type(state) is state_type  # pylint: disable=unidiomatic-typecheck
  assert adam_optax.ScaleByAdamState is optax.ScaleByAdamState
  assert adam_optax.ScaleByAmsgradState is optax.ScaleByAmsgradState


def test_optax_tree_utils_get_and_set_our_state():
  """tree_get reads, tree_set writes our state inside a chain; both used on."""
  tx = adam_optax.adamw(1e-2, weight_decay=0.1)
  params = _params()
  grads = _grads(params, 3)
  step = _jitted_step(tx)
  g = lambda i: jax.tree.map(lambda x: x[i], grads)
  params, state = step(params, tx.init(params), g(0))

  assert int(optax.tree_utils.tree_get(state, 'count')) == 1
  mu = optax.tree_utils.tree_get(state, 'mu')
  _assert_trees_close(mu, state[0].mu, rtol=0.0)
  # Restart the first moment and step count, as when resetting an optimizer.
  reset = optax.tree_utils.tree_set(state, mu=optax.tree.zeros_like(mu),
                                    count=jnp.zeros([], jnp.int32))
  assert type(reset[0]) is optax.ScaleByAdamState  # pylint: disable=unidiomatic-typecheck
  assert int(reset[0].count) == 0
  _assert_trees_close(reset[0].nu, state[0].nu, rtol=0.0)
  _, after_reset = step(params, reset, g(1))

  # Optax's adamw continues from the same (reset) state to the same result.
  ref_updates, ref_state = optax.adamw(1e-2, weight_decay=0.1).update(
      g(1), reset, params)
  _assert_trees_close(after_reset, ref_state, rtol=1e-6)
  assert int(optax.tree_utils.tree_get(after_reset, 'count')) == 1
  del ref_updates


@pytest.mark.parametrize('name', ['scale_by_adam', 'scale_by_amsgrad',
                                  'scale_by_adamax'])
def test_optax_continues_from_our_state_and_we_from_theirs(name):
  """Switching implementations mid-run changes nothing (same state types)."""
  ours, theirs = getattr(adam_optax, name)(), getattr(optax, name)()
  params = _params()
  grads = _grads(params, 4)
  g = lambda i: jax.tree.map(lambda x: x[i], grads)
  state = theirs.init(params)
  for i in range(4):
    # Alternate: ours on even steps, Optax's on odd, vs Optax's throughout.
    tx = ours if i % 2 == 0 else theirs
    updates, state = jax.jit(tx.update)(g(i), state)
  ref_state = theirs.init(params)
  for i in range(4):
    ref_updates, ref_state = jax.jit(theirs.update)(g(i), ref_state)
  _assert_trees_close(state, ref_state, rtol=0.0)
  _assert_trees_close(updates, ref_updates, rtol=0.0)


def _compiled_program(tx, params):
  """The optimized HLO of a jitted update + apply, without names/metadata."""
  grads = jax.tree.map(lambda x: jnp.full_like(x, 1e-3), params)

  def step(params, state, grads):
    """One step."""
    updates, state = tx.update(grads, state, params)
    return optax.apply_updates(params, updates), state

  text = jax.jit(step).lower(params, tx.init(params), grads).compile().as_text()
  lines = text.splitlines()
  first = next(i for i, line in enumerate(lines)
               if line.startswith(('%', 'ENTRY')))
  text = re.sub(r', metadata=\{[^}]*\}', '', '\n'.join(lines[first:]))
  return sorted(re.sub(r'%[\w.\-]+', '%', text).splitlines())


@pytest.mark.parametrize('x64', [False, True], ids=['float32', 'float64'])
@pytest.mark.parametrize('opt', ['adam', 'adamw', 'nadam', 'nadamw',
                                 'amsgrad', 'amsgrad_uncorrected', 'adamax',
                                 'adamaxw'])
def test_compiled_program_equals_optax(opt, x64):
  """Real params, default options: Optax's program, so its cost and bits."""
  ours, theirs = _OPTIMIZERS[opt]
  with jax.enable_x64(x64):
    dtype = jnp.float64 if x64 else jnp.float32
    params = {'w': jnp.ones((3, 4), dtype), 'b': jnp.ones(4, dtype)}
    assert (_compiled_program(ours(learning_rate=1e-3), params)
            == _compiled_program(theirs(learning_rate=1e-3), params))


def test_compiled_program_comparison_sees_a_difference():
  """The comparison above is not vacuous: a different eps changes it."""
  params = {'w': jnp.ones((3, 4))}
  assert (_compiled_program(adam_optax.adam(1e-3, eps=1e-6), params)
          != _compiled_program(optax.adam(1e-3), params))


# ----------------------------------------------------------------------------
# AMSGrad: Optax's rule, not PyTorch's.


def _large_then_small_grads():
  """Gradients where the running max matters: 3 large steps, then small."""
  signs = np.array([1.0, -1.0, 0.5])
  return np.concatenate([np.tile(10 * signs, (3, 1)),
                         np.tile(0.1 * signs, (47, 1))])


def test_amsgrad_follows_optax_not_pytorch():
  """Equal to optax.amsgrad; equal to PyTorch's rule at step 1 only.

  Run in float64 (x64) so that step sizes of 1e-2 compare to ~1e-12.
  """
  grads = _large_then_small_grads()
  theta0 = np.array([1.0, 2.0, -3.0])
  lr = 1e-2
  with jax.enable_x64(True):
    _, ours = _run(adam_optax.amsgrad(lr), jnp.asarray(theta0),
                   jnp.asarray(grads))
    _, theirs = _run(optax.amsgrad(lr), jnp.asarray(theta0),
                     jnp.asarray(grads))
  torch_rule = _pytorch_amsgrad(theta0, grads, lr)

  np.testing.assert_allclose(ours, theirs, rtol=1e-12)
  steps_ours = np.diff(np.concatenate([theta0[None], ours]), axis=0)
  steps_torch = np.diff(np.concatenate([theta0[None], torch_rule]), axis=0)
  np.testing.assert_allclose(steps_ours[0], steps_torch[0], rtol=1e-10)
  # Later the raw max over the growing 1 - b2^t shrinks PyTorch's denominator,
  # so its steps are far larger than ours (about 4x at step 50).
  assert np.all(np.abs(steps_torch[-1]) > 3 * np.abs(steps_ours[-1]))


@pytest.mark.parametrize('flags', [
    {}, {'bias_correction_mu': False, 'bias_correction_nu': False}],
                         ids=['corrected', 'uncorrected'])
def test_scale_by_amsgrad_equals_optax_bit_for_bit(flags):
  """Updates and state equal optax.scale_by_amsgrad's at every step."""
  ours = adam_optax.scale_by_amsgrad(b1=0.5, b2=0.9, **flags)
  theirs = optax.scale_by_amsgrad(b1=0.5, b2=0.9, **flags)
  params = _params()
  # Large, then small gradients: the running maximum holds from step 4 on.
  scale = jnp.where(jnp.arange(8) < 3, 10.0, 0.1)
  grads = jax.tree.map(lambda g: g * scale.reshape((8,) + (1,) * (g.ndim - 1)),
                       _grads(params, 8))
  ours_state, theirs_state = ours.init(params), theirs.init(params)
  for i in range(8):
    g = jax.tree.map(lambda x, i=i: x[i], grads)
    ours_updates, ours_state = jax.jit(ours.update)(g, ours_state)
    theirs_updates, theirs_state = jax.jit(theirs.update)(g, theirs_state)
    _assert_trees_close(ours_updates, theirs_updates, rtol=0.0)
    _assert_trees_close(ours_state, theirs_state, rtol=0.0)
  assert type(ours_state) is optax.ScaleByAmsgradState  # pylint: disable=unidiomatic-typecheck
  # The maximum was used: it is not the current (corrected) nu.
  nu_hat = ours_state.nu['dense']['w']
  if not flags:
    nu_hat = nu_hat / (1 - 0.9**8)
  assert not np.allclose(ours_state.nu_max['dense']['w'], nu_hat)


def test_scale_by_adam_has_no_amsgrad_flag():
  """AMSGrad is scale_by_amsgrad, with its own state type, not a flag."""
  assert 'amsgrad' not in inspect.signature(adam_optax.scale_by_adam).parameters
  with pytest.raises(TypeError, match="unexpected keyword argument 'amsgrad'"):
    adam_optax.scale_by_adam(amsgrad=True)  # pylint: disable=unexpected-keyword-arg


@pytest.mark.parametrize('ours, theirs', [
    (functools.partial(adam_optax.adam, amsgrad=True), optax.amsgrad),
    (functools.partial(adam_optax.adamw, amsgrad=True, weight_decay=0.1),
     lambda learning_rate: optax.chain(
         optax.scale_by_amsgrad(), optax.add_decayed_weights(0.1),
         optax.scale_by_learning_rate(learning_rate))),
    # Optax has no NAdam with AMSGrad; _numpy_adam checks its arithmetic.
    (functools.partial(adam_optax.nadam, amsgrad=True),
     lambda learning_rate: optax.chain(
         adam_optax.scale_by_amsgrad(nesterov=True),
         optax.scale_by_learning_rate(learning_rate))),
], ids=['adam', 'adamw', 'nadam'])
def test_amsgrad_switch_picks_scale_by_amsgrad(ours, theirs):
  """amsgrad=True chains scale_by_amsgrad: its state and updates, bitwise."""
  params = _params()
  grads = _grads(params, 20)
  (p_ours, s_ours), _ = _run(ours(learning_rate=1e-2), params, grads)
  (p_ref, s_ref), _ = _run(theirs(learning_rate=1e-2), params, grads)
  assert type(s_ours[0]) is optax.ScaleByAmsgradState  # pylint: disable=unidiomatic-typecheck
  _assert_trees_close(p_ours, p_ref, rtol=0.0)
  _assert_trees_close(s_ours, s_ref, rtol=0.0)


def test_pytorch_amsgrad_reference_matches_torch():
  """The NumPy PyTorch-rule above is what torch.optim.Adam(amsgrad) does."""
  torch = pytest.importorskip('torch')
  grads = _large_then_small_grads()
  theta0 = np.array([1.0, 2.0, -3.0])
  theta = torch.tensor(theta0, dtype=torch.float64, requires_grad=True)
  opt = torch.optim.Adam([theta], lr=1e-2, amsgrad=True)
  trajectory = []
  for g in grads:
    theta.grad = torch.tensor(g, dtype=torch.float64)
    opt.step()
    trajectory.append(theta.detach().numpy().copy())
  np.testing.assert_allclose(np.stack(trajectory),
                             _pytorch_amsgrad(theta0, grads, 1e-2),
                             rtol=1e-10)


# ----------------------------------------------------------------------------
# Parity with the paper (Algorithms 1 and 2) in NumPy float64.


@pytest.mark.parametrize('x64, rtol, atol', [(True, 1e-12, 1e-14),
                                             (False, 1e-5, 2e-5)],
                         ids=['float64', 'float32'])
@pytest.mark.parametrize('hyperparams', [
    {'b1': 0.9, 'b2': 0.999, 'eps': 1e-8},
    {'b1': 0.5, 'b2': 0.9, 'eps': 1e-4},
], ids=['paper_defaults', 'other'])
@pytest.mark.parametrize('ours, paper', [
    (adam_optax.adam, _paper_adam),
    (adam_optax.adamax, _paper_adamax),
], ids=['adam', 'adamax'])
def test_parity_with_paper(ours, paper, hyperparams, x64, rtol, atol):
  """Our 1,000-step trajectory equals the paper's algorithm in NumPy.

  With x64 on, ours runs in float64 and agrees to ~1e-15. In float32 the
  rounding accumulated over 1,000 steps reaches ~5e-6 in absolute terms
  (params are of order 1), and params that cross zero make a pure relative
  tolerance meaningless, hence atol 2e-5.
  """
  rng = np.random.default_rng(0)
  theta0 = rng.normal(size=7)
  grads = rng.normal(size=(STEPS, 7))
  expected = paper(theta0, grads, 1e-2, **hyperparams)
  with jax.enable_x64(x64):
    _, trajectory = _run(ours(1e-2, **hyperparams), jnp.asarray(theta0),
                         jnp.asarray(grads))
    assert trajectory.dtype == (jnp.float64 if x64 else jnp.float32)
  np.testing.assert_allclose(trajectory, expected, rtol=rtol, atol=atol)


# ----------------------------------------------------------------------------
# Composition with Optax and Flax.


def test_chain_clip_then_adam():
  """clip_by_global_norm -> scale_by_adam -> lr equals Adam on clipped grads.

  In float64 (x64) so that the displacements, ~1e-3, compare to 1e-9.
  """
  rng = np.random.default_rng(0)
  theta0 = rng.normal(size=5)
  # Alternate norms above and below the threshold so clipping sometimes bites.
  grads = rng.normal(size=(20, 5)) * np.tile([3.0, 0.1], 10)[:, None]
  norms = np.linalg.norm(grads, axis=1, keepdims=True)
  clipped = grads * np.minimum(1.0, 1.0 / norms)
  tx = optax.chain(optax.clip_by_global_norm(1.0), adam_optax.scale_by_adam(),
                   optax.scale_by_learning_rate(1e-3))

  with jax.enable_x64(True):
    _, trajectory = _run(tx, jnp.asarray(theta0), jnp.asarray(grads))

  moved = np.asarray(trajectory) - theta0
  expected = _paper_adam(theta0, clipped, 1e-3) - theta0
  np.testing.assert_allclose(moved, expected, rtol=1e-9)
  unclipped = _paper_adam(theta0, grads, 1e-3) - theta0
  assert not np.allclose(moved, unclipped, rtol=1e-2)


def test_masked():
  """optax.masked: Adam on masked-in leaves, raw gradient on the others."""
  params = {'w': jnp.array([1.0, -2.0]), 'b': jnp.array([0.5])}
  grads = {'w': jnp.array([0.3, -4.0]), 'b': jnp.array([7.0])}
  tx = optax.masked(adam_optax.adam(0.1), {'w': True, 'b': False})
  state = tx.init(params)

  updates, state = tx.update(grads, state, params)

  adam = adam_optax.adam(0.1)
  w_only, _ = adam.update(grads['w'], adam.init(params['w']))
  np.testing.assert_allclose(updates['w'], w_only, rtol=1e-6)
  np.testing.assert_array_equal(updates['b'], grads['b'])
  assert isinstance(state.inner_state[0].mu['b'], optax.MaskedNode)


def test_multi_steps_equals_one_step_on_mean_gradient():
  """MultiSteps(k=4): 8 micro-steps equal 2 Adam steps on 4-step means."""
  k = 4
  params = _params()
  micro = _grads(params, 2 * k)
  tx = optax.MultiSteps(adam_optax.adam(0.1), every_k_schedule=k)

  _, trajectory = _run(tx, params, micro)

  means = jax.tree.map(lambda g: g.reshape((2, k) + g.shape[1:]).mean(1),
                       micro)
  (expected, _), _ = _run(adam_optax.adam(0.1), params, means)
  _assert_trees_close(jax.tree.map(lambda x: x[-1], trajectory), expected,
                      rtol=1e-6)
  # Nothing moves until the k-th micro-step.
  _assert_trees_close(jax.tree.map(lambda x: x[k - 2], trajectory), params,
                      rtol=0.0)


def test_apply_if_finite_skips_nan_gradient():
  """A NaN gradient leaves params and inner state unchanged, counts once."""
  tx = optax.apply_if_finite(adam_optax.adam(0.1), max_consecutive_errors=5)
  params = jnp.array([1.0, -2.0])
  step = _jitted_step(tx)
  params, state = step(params, tx.init(params), jnp.array([0.5, 0.5]))

  new_params, new_state = step(params, state, jnp.array([jnp.nan, 1.0]))

  np.testing.assert_array_equal(new_params, params)
  _assert_trees_close(new_state.inner_state, state.inner_state, rtol=0.0)
  assert int(new_state.notfinite_count) == int(state.notfinite_count) + 1 == 1
  assert int(new_state.total_notfinite) == 1
  assert not bool(new_state.last_finite)


def test_inject_hyperparams_changes_lr_without_recompiling():
  """The injected lr is readable, settable in the state, and not retraced."""
  tx = optax.inject_hyperparams(adam_optax.adam)(learning_rate=0.1)
  traces = []
  step = _jitted_step(tx, traces)
  params = _params()
  grads = _grads(params, 6)
  state = tx.init(params)
  assert float(state.hyperparams['learning_rate']) == pytest.approx(0.1)

  reference = adam_optax.adam(0.1)
  ref_params, ref_state = params, reference.init(params)
  for i in range(6):
    g = jax.tree.map(lambda x, i=i: x[i], grads)
    if i == 3:
      # Strongly typed float32 like the injected value: a weakly typed
      # jnp.asarray(0.01) would be a new input type and retrace the step.
      state = state._replace(hyperparams={
          **state.hyperparams, 'learning_rate': jnp.asarray(0.01, jnp.float32)})
      # A fresh optimizer at the new rate, continuing from the same moments.
      reference = adam_optax.adam(0.01)
    params, state = step(params, state, g)
    updates, ref_state = reference.update(g, ref_state)
    ref_params = optax.apply_updates(ref_params, updates)

  assert len(traces) == 1
  assert float(state.hyperparams['learning_rate']) == pytest.approx(0.01)
  # inject_hyperparams also makes b1, b2, eps float32 arrays, so 1 - b1 etc.
  # are rounded in float32 rather than folded from Python floats: ~1e-7
  # relative per step. Far below the ~0.3 that keeping lr = 0.1 would move.
  _assert_trees_close(params, ref_params, rtol=1e-5, atol=1e-5)
  _assert_trees_close(state.inner_state, ref_state, rtol=1e-5, atol=1e-5)


def test_inject_hyperparams_with_array_hyperparams_is_not_checked():
  """Array (possibly traced) hyperparameters pass through unchecked."""
  tx = optax.inject_hyperparams(adam_optax.adamw)(
      learning_rate=jnp.asarray(0.1), b1=jnp.asarray(0.9),
      weight_decay=jnp.asarray(0.5))
  params = jnp.array([1.0, -1.0])
  # A first step is -lr * (sign(g) + wd * params), up to the float32 rounding
  # of 1 - 0.999 (~1e-5 relative).
  updates, _ = tx.update(params, tx.init(params), params)
  np.testing.assert_allclose(updates, [-0.15, 0.15], rtol=1e-4)

  # A negative traced rate is not rejected: it simply ascends.
  def first_update(lr):
    """The first Adam update at rate `lr`."""
    tx = adam_optax.adam(lr)
    return tx.update(params, tx.init(params))[0]

  np.testing.assert_allclose(jax.jit(first_update)(-0.1), [0.1, -0.1],
                             rtol=1e-4)


def test_flax_train_state():
  """TrainState.apply_gradients with our adam matches optax.adam."""
  params = _params()
  grads = _grads(params, 5)
  states = [
      train_state.TrainState.create(apply_fn=lambda p, x: x, params=params,
                                    tx=tx)
      for tx in (adam_optax.adam(1e-3), optax.adam(1e-3))
  ]
  apply_gradients = jax.jit(lambda s, g: s.apply_gradients(grads=g))
  for i in range(5):
    g = jax.tree.map(lambda x, i=i: x[i], grads)
    states = [apply_gradients(s, g) for s in states]
  ours, theirs = states
  assert int(ours.step) == 5
  _assert_trees_close(ours.params, theirs.params, rtol=1e-6)
  assert not np.allclose(ours.params['dense']['w'], params['dense']['w'])


# ----------------------------------------------------------------------------
# JAX transformations and dtypes.


def test_jit_compiles_once():
  """A second call with new values reuses the compiled update."""
  tx = adam_optax.adamw(0.1, weight_decay=0.1)
  traces = []
  step = _jitted_step(tx, traces)
  params = _params()
  grads = _grads(params, 2)
  state = tx.init(params)
  for i in range(2):
    params, state = step(params, state, jax.tree.map(lambda x, i=i: x[i],
                                                     grads))
  assert len(traces) == 1
  assert int(state[0].count) == 2


@pytest.mark.parametrize('make_tx', [
    adam_optax.adam, adam_optax.amsgrad, adam_optax.adamax,
    functools.partial(adam_optax.adamw, weight_decay=0.1),
], ids=['adam', 'amsgrad', 'adamax', 'adamw'])
def test_vmap_over_independent_problems(make_tx):
  """vmap over a batch of problems equals solving each one on its own."""
  tx = make_tx(0.1)
  batch = jax.random.normal(jax.random.PRNGKey(0), (3, 4))
  grads = jax.random.normal(jax.random.PRNGKey(1), (5, 3, 4))
  vmapped = jax.jit(jax.vmap(_jitted_step(tx)))

  params, state = batch, jax.vmap(tx.init)(batch)
  for g in grads:
    params, state = vmapped(params, state, g)

  for i in range(3):
    (expected, _), _ = _run(tx, batch[i], grads[:, i])
    np.testing.assert_allclose(params[i], expected, rtol=1e-6)


def _structure_and_dtypes(tree):
  """The tree structure and the dtype of every leaf."""
  return jax.tree.structure(tree), [x.dtype for x in jax.tree.leaves(tree)]


@pytest.mark.parametrize('param_dtype, factory, kwargs', [
    (jnp.float32, adam_optax.scale_by_adam, {}),
    (jnp.bfloat16, adam_optax.scale_by_adam, {}),
    (jnp.bfloat16, adam_optax.scale_by_adam,
     {'mu_dtype': jnp.float32, 'nu_dtype': jnp.float32}),
    (jnp.bfloat16, adam_optax.scale_by_amsgrad, {'nu_dtype': jnp.float32}),
    (jnp.float32, adam_optax.scale_by_adam,
     {'mu_dtype': jnp.bfloat16, 'nesterov': True}),
], ids=['f32', 'bf16', 'bf16_f32_moments', 'bf16_amsgrad', 'f32_bf16_mu'])
def test_state_survives_cond_and_scan(param_dtype, factory, kwargs):
  """Through lax.cond and lax.scan the state keeps structure and dtypes."""
  tx = factory(**kwargs)
  params = _params(dtype=param_dtype)
  grads = _grads(params, 4)
  state0 = tx.init(params)

  def step(state, g):
    """Updates the state only where the step index is even (via cond)."""
    return jax.lax.cond(state.count % 2 == 0,
                        lambda s: tx.update(g, s)[1],
                        lambda s: s._replace(count=s.count + 1),
                        state), None

  state, _ = jax.jit(lambda s, g: jax.lax.scan(step, s, g))(state0, grads)

  assert _structure_and_dtypes(state) == _structure_and_dtypes(state0)
  assert int(state.count) == 4
  assert state.count.dtype == jnp.int32


def test_bfloat16_params_and_float32_nu():
  """bf16 params give bf16 updates; nu_dtype=float32 keeps nu in float32."""
  tx = adam_optax.adam(1e-3, nu_dtype=jnp.float32)
  params = _params(dtype=jnp.bfloat16)
  state = tx.init(params)
  grads = _grads(params, 3, scale=1e-3)
  update = jax.jit(tx.update)
  for i in range(3):
    updates, state = update(jax.tree.map(lambda x, i=i: x[i], grads), state)
  assert {x.dtype for x in jax.tree.leaves(updates)} == {jnp.dtype('bfloat16')}
  assert {x.dtype for x in jax.tree.leaves(state[0].mu)} == {
      jnp.dtype('bfloat16')}
  assert {x.dtype for x in jax.tree.leaves(state[0].nu)} == {
      jnp.dtype('float32')}


def test_bfloat16_arithmetic_runs_in_float32():
  """All-bf16 params and moments: the step is float32 math rounded to bf16.

  The reference is optax.scale_by_adam on the same values upcast to float32;
  Optax run on the bf16 values themselves computes in bf16 and differs.
  """
  tx = adam_optax.scale_by_adam()
  params = _params(dtype=jnp.bfloat16)
  g0, g1 = (jax.tree.map(lambda x, i=i: x[i], _grads(params, 2))
            for i in range(2))
  _, state = jax.jit(tx.update)(g0, tx.init(params))  # Nonzero moments.

  updates, new_state = jax.jit(tx.update)(g1, state)

  to_f32 = lambda tree: jax.tree.map(lambda x: x.astype(jnp.float32), tree)
  to_bf16 = lambda tree: jax.tree.map(lambda x: x.astype(jnp.bfloat16), tree)
  optax_adam = jax.jit(optax.scale_by_adam().update)
  ref_updates, ref_state = optax_adam(
      to_f32(g1), optax.ScaleByAdamState(state.count, to_f32(state.mu),
                                         to_f32(state.nu)))
  _assert_trees_close(updates, to_bf16(ref_updates), rtol=0.0)
  _assert_trees_close((new_state.mu, new_state.nu),
                      to_bf16((ref_state.mu, ref_state.nu)), rtol=0.0)
  bf16_updates, _ = optax_adam(
      g1, optax.ScaleByAdamState(state.count, state.mu, state.nu))
  assert not all(bool(jnp.array_equal(a, b)) for a, b in zip(
      jax.tree.leaves(updates), jax.tree.leaves(bf16_updates)))


def test_bias_correction_is_float32_with_bfloat16_moments():
  """The first all-bf16 step is ~ -lr * sign(g), not inf or nan."""
  # In bf16 the correction itself would be 0: 0.999 rounds to 1.
  assert float(1 - jnp.asarray(0.999, jnp.bfloat16)) == 0.0
  tx = adam_optax.adam(1e-3)
  params = jnp.array([1.0, -2.0, 3.0], jnp.bfloat16)
  updates, state = tx.update(2 * params, tx.init(params))
  assert updates.dtype == state[0].nu.dtype == jnp.bfloat16
  np.testing.assert_allclose(np.asarray(updates, np.float32),
                             -1e-3 * np.sign([1.0, -2.0, 3.0]), rtol=1e-2)


@pytest.mark.parametrize('tx', [
    adam_optax.scale_by_adam(), adam_optax.scale_by_adam(nesterov=True),
    adam_optax.scale_by_amsgrad(), adam_optax.scale_by_adamax(),
], ids=['adam', 'nadam', 'amsgrad', 'adamax'])
def test_count_is_int32_and_saturates(tx):
  """count starts as int32 0 and stays at the int32 maximum, not negative."""
  params = jnp.array([1.0, -2.0])
  state = tx.init(params)
  assert state.count.dtype == jnp.int32 and int(state.count) == 0
  state = state._replace(count=jnp.asarray(INT32_MAX, jnp.int32))

  updates, state = jax.jit(tx.update)(params, state)

  assert state.count.dtype == jnp.int32
  assert int(state.count) == INT32_MAX
  assert bool(jnp.all(jnp.isfinite(updates)))


# ----------------------------------------------------------------------------
# Complex parameters.


def _numpy_adam(theta, grads, lr, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0,
                *, nesterov=False, amsgrad=False, bias_correction_mu=True,
                bias_correction_nu=True, weight_decay=0.0):
  """The Adam family in NumPy (float64 or complex128), from the papers.

  Written independently of adam_optax: |g|^2 is np.abs(g)**2, and the
  variants are switched on by the flags: NAdam (Dozat 2016, as in Optax),
  AMSGrad over the (maybe corrected) v, decoupled weight decay, and each bias
  correction on or off (Kingma & Ba's section 6.4 ablation turns both off).

  Returns:
    The params after every step, stacked.
  """
  m = np.zeros_like(theta)
  v = np.zeros(theta.shape)
  v_max = np.zeros(theta.shape)
  trajectory = []
  for t, g in enumerate(grads, start=1):
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * np.abs(g)**2
    c1 = 1 - b1**t if bias_correction_mu else 1.0
    c1_next = 1 - b1**(t + 1) if bias_correction_mu else 1.0
    v_hat = v / (1 - b2**t) if bias_correction_nu else v
    if amsgrad:
      v_max = np.maximum(v_max, v_hat)
      v_hat = v_max
    if nesterov:
      m_hat = b1 * m / c1_next + (1 - b1) * g / c1
    else:
      m_hat = m / c1
    direction = m_hat / (np.sqrt(v_hat + eps_root) + eps)
    theta = theta - lr * (direction + weight_decay * theta)
    trajectory.append(theta)
  return np.stack(trajectory)


def _complex_normal(rng, shape):
  """Standard complex normal samples, complex128."""
  return rng.normal(size=shape) + 1j * rng.normal(size=shape)


# name -> (ours, the NumPy reference), called with the same arguments.
_COMPLEX_REFERENCES = {
    'adam': (adam_optax.adam, _numpy_adam),
    'adamw': (functools.partial(adam_optax.adamw, weight_decay=0.1),
              functools.partial(_numpy_adam, weight_decay=0.1)),
    'nadam': (adam_optax.nadam, functools.partial(_numpy_adam, nesterov=True)),
    'amsgrad': (adam_optax.amsgrad,
                functools.partial(_numpy_adam, amsgrad=True)),
    'adamax': (adam_optax.adamax, _paper_adamax),
}


@pytest.mark.parametrize('x64, rtol', [(True, 1e-11), (False, 2e-5)],
                         ids=['complex128', 'complex64'])
@pytest.mark.parametrize('opt', list(_COMPLEX_REFERENCES))
def test_complex_update_matches_numpy(opt, x64, rtol):
  """1,000 complex steps equal the NumPy reference; nu is real-valued.

  The gradients grow then shrink so that AMSGrad's maximum and Adamax's
  infinity norm both bite. In complex64 the accumulated rounding is ~1e-6 of
  the params' size, hence rtol 2e-5 on differences measured against it.
  """
  ours, reference = _COMPLEX_REFERENCES[opt]
  rng = np.random.default_rng(0)
  theta0 = _complex_normal(rng, 7)
  scale = np.where(np.arange(STEPS) < 100, 3.0, 0.3)[:, None]
  grads = scale * _complex_normal(rng, (STEPS, 7))
  expected = reference(theta0, grads, 1e-2)
  with jax.enable_x64(x64):
    dtype = jnp.complex128 if x64 else jnp.complex64
    tx = ours(1e-2)
    (_, state), trajectory = _run(tx, jnp.asarray(theta0, dtype),
                                  jnp.asarray(grads, dtype))
  assert trajectory.dtype == dtype
  assert state[0].mu.dtype == dtype
  assert state[0].nu.dtype == jnp.finfo(dtype).dtype  # float64 / float32
  if opt == 'amsgrad':
    assert state[0].nu_max.dtype == jnp.finfo(dtype).dtype
  # Relative to the params' overall size: elements that pass near zero would
  # make an element-wise rtol meaningless.
  error = np.max(np.abs(np.asarray(trajectory) - expected))
  assert error <= rtol * np.max(np.abs(expected))
  # Imaginary parts moved independently of the real parts.
  assert np.abs((np.asarray(trajectory)[-1] - theta0).imag).min() > 1e-3


def _complex_params(dtype=jnp.complex64, steps=None, seed=0):
  """A pytree shaped like _params() with complex normal leaves.

  Made with NumPy (no compilation per shape and dtype, as jax.random would
  need). With `steps`, each leaf gets a leading axis of that length (a
  gradient stack for _run).
  """
  rng = np.random.default_rng(seed)
  lead = () if steps is None else (steps,)
  leaf = lambda *shape: jnp.asarray(_complex_normal(rng, lead + shape), dtype)
  return {'dense': {'w': leaf(3, 4), 'b': leaf(4)},
          'conv': (leaf(2, 3, 2), leaf())}


# nadamw and adamaxw add nothing complex-specific to nadam and adamax + adamw.
_COMPLEX_OPTAX = ['adam', 'adamw', 'nadam', 'amsgrad', 'adamax']


@pytest.mark.parametrize('x64', [False, True], ids=['complex64', 'complex128'])
@pytest.mark.parametrize('opt', _COMPLEX_OPTAX)
def test_complex_parity_with_optax(opt, x64):
  """1,000 jitted complex steps give Optax's params and moments.

  Optax keeps nu (and nu_max, and Adamax's u) in a complex array whose
  imaginary part stays 0; we keep it in the real dtype. The two programs
  round differently where Optax does complex arithmetic on those zero
  imaginary parts, so they are not bit-identical (Adamax is). Measured after
  1,000 complex64 steps: params within 3.4e-7 and nu within 1.6e-6 of
  Optax's, relative to each leaf's largest element, while each nu is ~6e-6
  from the exact float64 value, Optax's as much as ours. Tolerances: 2e-6
  (params, mu) and 1e-5 (nu) in complex64, 1e-13 in complex128.
  """
  ours, theirs = _OPTIMIZERS[opt]
  with jax.enable_x64(x64):
    dtype = jnp.complex128 if x64 else jnp.complex64
    params = _complex_params(dtype)
    grads = _complex_params(dtype, steps=STEPS, seed=1)
    (p_ours, s_ours), _ = _run(ours(learning_rate=1e-2), params, grads)
    (p_ref, s_ref), _ = _run(theirs(learning_rate=1e-2), params, grads)

  def close(actual, expected, rtol):
    """Leaves close relative to each leaf's largest element."""
    if x64:
      rtol = 1e-13
    for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected)):
      assert a.shape == e.shape
      np.testing.assert_allclose(a, e, rtol=0,
                                 atol=rtol * float(np.max(np.abs(e))))

  close(p_ours, p_ref, 2e-6)
  close(s_ours[0].mu, s_ref[0].mu, 2e-6)
  for field in ('nu', 'nu_max') if 'amsgrad' in opt else ('nu',):
    ours_nu = getattr(s_ours[0], field)
    ref_nu = getattr(s_ref[0], field)
    assert {x.dtype for x in jax.tree.leaves(ours_nu)} == {
        jnp.finfo(dtype).dtype}
    assert all(not np.any(x.imag) for x in jax.tree.leaves(ref_nu))
    close(ours_nu, jax.tree.map(jnp.real, ref_nu), 1e-5)
  assert not np.allclose(p_ours['dense']['w'], params['dense']['w'])


def test_complex_second_moment_is_squared_modulus():
  """One step: nu = (1 - b2) |g|^2, real; the update is m_hat / sqrt(v_hat)."""
  g = jnp.array([3 + 4j, -1j, 2.0], jnp.complex64)
  tx = adam_optax.scale_by_adam(b1=0.5, b2=0.75, eps=0.0)
  updates, state = tx.update(g, tx.init(g))
  np.testing.assert_allclose(state.nu, 0.25 * np.array([25.0, 1.0, 4.0]),
                             rtol=1e-6)
  np.testing.assert_allclose(state.mu, 0.5 * np.asarray(g), rtol=1e-6)
  # Step 1: m_hat = g, v_hat = |g|^2, so the update is g / |g|.
  np.testing.assert_allclose(updates, np.asarray(g) / np.abs(g), rtol=1e-6)


def test_complex_minimisation():
  """|z - c|^2 with conjugated gradients (as in Optax's tests): z -> c."""
  c = jnp.array([1 + 2j, -3j, 0.5 - 0.5j], jnp.complex64)
  loss = lambda z: jnp.sum(jnp.abs(z - c)**2)
  tx = adam_optax.adam(0.1)

  def step(carry, _):
    """One step on the conjugated gradient."""
    z, state = carry
    updates, state = tx.update(jnp.conj(jax.grad(loss)(z)), state, z)
    return (optax.apply_updates(z, updates), state), None

  z0 = jnp.zeros(3, jnp.complex64)
  (z, _), _ = jax.jit(lambda z: jax.lax.scan(step, (z, tx.init(z)), None,
                                             length=500))(z0)
  np.testing.assert_allclose(z, c, atol=1e-4)


def test_complex_mu_dtype_with_real_params():
  """mu_dtype='complex64' (accepted, as in Optax) on real params: same steps.

  m_t stays real-valued in a complex array; the updates come back real, in
  the gradients' dtype, and equal those of a real mu.
  """
  params = _params()
  grads = jax.tree.map(lambda g: g[:20], _grads(params, STEPS))
  (p_complex, s_complex), _ = _run(
      adam_optax.adam(1e-2, mu_dtype='complex64'), params, grads)
  (p_real, s_real), _ = _run(adam_optax.adam(1e-2), params, grads)
  assert {x.dtype for x in jax.tree.leaves(s_complex[0].mu)} == {
      jnp.dtype('complex64')}
  assert {x.dtype for x in jax.tree.leaves(p_complex)} == {
      jnp.dtype('float32')}
  _assert_trees_close(p_complex, p_real, rtol=1e-6)
  _assert_trees_close(jax.tree.map(jnp.real, s_complex[0].mu), s_real[0].mu,
                      rtol=1e-6)


def test_inject_hyperparams_with_complex_params():
  """inject_hyperparams makes b1, b2, eps complex for complex params; fine.

  Five steps, so that b1 and b2 matter (at step 1 they cancel out).
  """
  params = _complex_params()
  grads = _complex_params(steps=5, seed=1)
  tx = optax.inject_hyperparams(adam_optax.adam)(learning_rate=0.1, b1=0.5,
                                                 b2=0.9)
  assert tx.init(params).hyperparams['b1'].dtype == jnp.complex64
  (p_injected, state), _ = _run(tx, params, grads)
  (expected, _), _ = _run(adam_optax.adam(0.1, b1=0.5, b2=0.9), params, grads)
  _assert_trees_close(p_injected, expected, rtol=1e-5)
  assert {x.dtype for x in jax.tree.leaves(state.inner_state[0].nu)} == {
      jnp.dtype('float32')}


# ----------------------------------------------------------------------------
# Leaves Optax accepts: Python scalars, None, empty pytrees.

_EVERY_OPTIMIZER = {
    'adam': adam_optax.adam, 'adamw': adam_optax.adamw,
    'nadam': adam_optax.nadam, 'nadamw': adam_optax.nadamw,
    'amsgrad': adam_optax.amsgrad, 'adamax': adam_optax.adamax,
    'adamaxw': adam_optax.adamaxw,
}


@pytest.mark.parametrize('opt', list(_EVERY_OPTIMIZER))
def test_python_scalar_leaves(opt):
  """{'a': 1.0, 'b': 2}: jitted or not, float moments, Optax's float steps.

  The int leaf is treated as the float 2.0 would be. Optax instead keeps the
  int leaf's moments as ints (nu rounds to 0 after the first step; NAdam's
  first step is inf), so the reference is Optax on the params and gradients
  converted to float.
  """
  ours, theirs = _EVERY_OPTIMIZER[opt](0.1), getattr(optax, opt)(0.1)
  params = {'a': 1.0, 'b': 2}
  grads = [{'a': 0.5 * i - 1.0, 'b': i - 2} for i in range(4)]
  as_float = lambda tree: jax.tree.map(float, tree)
  state = ours.init(params)
  # Strongly typed float moments, so the state's type never changes.
  dtypes = {(x.dtype, x.weak_type) for x in jax.tree.leaves(state[0])[1:]}
  assert dtypes == {(jnp.dtype('float32'), False)}
  jitted = jax.jit(ours.update)
  ref_state = theirs.init(as_float(params))
  for g in grads:
    updates, new_state = ours.update(g, state, params)
    jit_updates, jit_state = jitted(g, state, params)
    _assert_trees_close((jit_updates, jit_state), (updates, new_state),
                        rtol=1e-6)
    assert (jax.tree.map(lambda x: x.dtype, new_state)
            == jax.tree.map(lambda x: x.dtype, state))
    ref_updates, ref_state = theirs.update(as_float(g), ref_state,
                                           as_float(params))
    _assert_trees_close(updates, ref_updates, rtol=1e-6)
    assert updates['a'].dtype == updates['b'].dtype == jnp.float32
    state = new_state
  assert int(state[0].count) == 4


@pytest.mark.parametrize('opt', list(_EVERY_OPTIMIZER))
def test_none_leaves_under_jit(opt):
  """None leaves stay None in updates and state; the rest is Optax's."""
  ours, theirs = _EVERY_OPTIMIZER[opt](0.1), getattr(optax, opt)(0.1)
  params = {'frozen': None, 'w': jnp.array([1.0, -2.0]), 'nested': (None,)}
  grads = {'frozen': None, 'w': jnp.array([0.3, 0.4]), 'nested': (None,)}
  state = jax.jit(ours.init)(params)
  assert state[0].mu['frozen'] is None and state[0].nu['nested'] == (None,)

  updates, new_state = jax.jit(ours.update)(grads, state, params)
  ref_updates, _ = jax.jit(theirs.update)(grads, theirs.init(params), params)

  assert updates['frozen'] is None and updates['nested'] == (None,)
  assert jax.tree.structure(new_state) == jax.tree.structure(state)
  np.testing.assert_array_equal(updates['w'], ref_updates['w'])


@pytest.mark.parametrize('params', [{}, (), [], {'a': {}, 'b': ()}],
                         ids=['dict', 'tuple', 'list', 'nested'])
@pytest.mark.parametrize('opt', list(_EVERY_OPTIMIZER))
def test_empty_pytrees_under_jit(opt, params):
  """An empty params pytree gives empty updates and a counting state."""
  tx = _EVERY_OPTIMIZER[opt](0.1)
  state = jax.jit(tx.init)(params)
  update = jax.jit(tx.update)
  for _ in range(2):
    updates, state = update(params, state, params)
  assert updates == params
  assert int(optax.tree_utils.tree_get(state, 'count')) == 2


# ----------------------------------------------------------------------------
# Bias correction switched off (Kingma & Ba section 6.4's ablation).

_FLAGS = [(True, True), (False, False), (True, False), (False, True)]

# name -> (ours, the NumPy reference's keyword arguments).
_BIAS_CORRECTION_CASES = {
    'adam': (adam_optax.adam, {}),
    'nadam': (adam_optax.nadam, {'nesterov': True}),
    'amsgrad': (adam_optax.amsgrad, {'amsgrad': True}),
    'nadam_amsgrad': (functools.partial(adam_optax.nadam, amsgrad=True),
                      {'nesterov': True, 'amsgrad': True}),
    'adamw': (functools.partial(adam_optax.adamw, weight_decay=0.1),
              {'weight_decay': 0.1}),
    'nadamw': (functools.partial(adam_optax.nadamw, weight_decay=0.1),
               {'weight_decay': 0.1, 'nesterov': True}),
}


@pytest.mark.parametrize('mu_on, nu_on', _FLAGS,
                         ids=lambda flag: 'on' if flag else 'off')
@pytest.mark.parametrize('opt', list(_BIAS_CORRECTION_CASES))
def test_bias_correction_flags_match_numpy(opt, mu_on, nu_on):
  """Each flag setting equals the NumPy reference over 1,000 float64 steps.

  b2 = 0.999 as in the paper: without the nu correction the early steps are
  ~30x too large, so a flag that is ignored fails by far.
  """
  ours, reference_kwargs = _BIAS_CORRECTION_CASES[opt]
  rng = np.random.default_rng(1)
  theta0 = rng.normal(size=7)
  grads = rng.normal(size=(STEPS, 7))
  flags = {'bias_correction_mu': mu_on, 'bias_correction_nu': nu_on}
  expected = _numpy_adam(theta0, grads, 1e-3, **reference_kwargs, **flags)
  with jax.enable_x64(True):
    _, trajectory = _run(ours(1e-3, **flags), jnp.asarray(theta0),
                         jnp.asarray(grads))
  np.testing.assert_allclose(trajectory, expected, rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize('complex_params', [False, True],
                         ids=['real', 'complex'])
def test_first_step_without_bias_correction(complex_params):
  """Step 1 uncorrected is (1 - b1) / sqrt(1 - b2) = 3.16 times the rate.

  With the correction it is the rate (m_hat = g, v_hat = |g|^2); this is the
  instability at b2 near 1 that the paper's section 6.4 measures.
  """
  g = jnp.array([0.3, -2.0, 5.0])
  if complex_params:
    g = g * jnp.exp(1j * jnp.array([0.1, 1.0, 2.0]))
  corrected = adam_optax.adam(1e-3, eps=0.0)
  uncorrected = adam_optax.adam(1e-3, eps=0.0, bias_correction_mu=False,
                                bias_correction_nu=False)
  step = lambda tx: tx.update(g, tx.init(g))[0]
  np.testing.assert_allclose(np.abs(step(corrected)), 1e-3, rtol=1e-4)
  np.testing.assert_allclose(np.abs(step(uncorrected)),
                             1e-3 * 0.1 / math.sqrt(1e-3), rtol=1e-4)


def test_uncorrected_b1_zero_equals_optax_rmsprop():
  """b1 = 0 without the nu correction is RMSProp, eps outside the root.

  An independent check against Optax: scale_by_rms(eps_in_sqrt=False,
  bias_correction=False) computes g / (sqrt(v_t) + eps).
  """
  params = _params()
  grads = _grads(params, 200)
  ours = adam_optax.scale_by_adam(b1=0.0, b2=0.99, eps=1e-6,
                                  bias_correction_nu=False)
  theirs = optax.scale_by_rms(decay=0.99, eps=1e-6, eps_in_sqrt=False,
                              bias_correction=False)
  ((p_ours, s_ours), _), ((p_ref, s_ref), _) = (
      _run(optax.chain(tx, optax.scale(-1e-2)), params, grads)
      for tx in (ours, theirs))
  _assert_trees_close(p_ours, p_ref, rtol=1e-6)
  _assert_trees_close(s_ours[0].nu, s_ref[0].nu, rtol=1e-6)


def test_inject_hyperparams_with_bias_correction_flags():
  """The flags are static under inject_hyperparams; b2 stays injectable."""
  tx = optax.inject_hyperparams(adam_optax.adam)(
      learning_rate=0.1, b2=0.9, bias_correction_nu=False)
  assert 'bias_correction_nu' not in tx.init(jnp.ones(2)).hyperparams
  params = jnp.array([1.0, -2.0])
  updates, _ = jax.jit(tx.update)(params, tx.init(params))
  # Step 1: m_hat = g, v = (1 - b2) g^2, so the step is lr / sqrt(0.1).
  np.testing.assert_allclose(np.abs(updates), 0.1 / math.sqrt(0.1),
                             rtol=1e-5)


# ----------------------------------------------------------------------------
# Convergence.


def _minimise(tx, loss, x0, steps):
  """Runs `steps` jitted steps of `tx` on `loss` from `x0`; the final x."""

  def step(carry, _):
    """One gradient step."""
    x, state = carry
    updates, state = tx.update(jax.grad(loss)(x), state, x)
    return (optax.apply_updates(x, updates), state), None

  run = jax.jit(lambda x: jax.lax.scan(step, (x, tx.init(x)), None,
                                       length=steps)[0][0])
  return run(x0)


@pytest.mark.parametrize('make_tx', [
    adam_optax.adam, adam_optax.nadam, adam_optax.amsgrad, adam_optax.adamax,
    functools.partial(adam_optax.adamw, weight_decay=0.0),
], ids=['adam', 'nadam', 'amsgrad', 'adamax', 'adamw'])
def test_minimises_parabola(make_tx):
  """lr 0.1, 500 steps: sum((x - c)^2) from 0 gets within 1e-5 of c."""
  c = jnp.array([1.0, -2.0, 3.0])
  x = _minimise(make_tx(0.1), lambda x: jnp.sum((x - c)**2), jnp.zeros(3), 500)
  np.testing.assert_allclose(x, c, atol=1e-5)


@pytest.mark.parametrize('make_tx', [adam_optax.adam, adam_optax.adamax],
                         ids=['adam', 'adamax'])
def test_minimises_rosenbrock(make_tx):
  """lr 0.02, 5,000 steps: from (-1.2, 1) to within 1e-4 of (1, 1)."""

  def rosenbrock(x):
    """The 2-D Rosenbrock function, minimum 0 at (1, 1)."""
    return (1 - x[0])**2 + 100 * (x[1] - x[0]**2)**2

  x = _minimise(make_tx(0.02), rosenbrock, jnp.array([-1.2, 1.0]), 5000)
  np.testing.assert_allclose(x, [1.0, 1.0], atol=1e-4)


# ----------------------------------------------------------------------------
# Bad input: ValueError at construction naming argument, value and range.

_UNIT = '[0, 1)'
_NON_NEGATIVE = '>= 0'
_FLOAT_DTYPES = 'None or a floating dtype'
_MU_DTYPES = 'None or a floating or complex dtype'
_FLAG = 'True or False'
_ALL_OPTIMIZERS = [adam_optax.adam, adam_optax.adamw, adam_optax.adamax,
                   adam_optax.adamaxw, adam_optax.nadam, adam_optax.nadamw,
                   adam_optax.amsgrad]


def _bad_input_cases():
  """(factory, kwargs, bad argument name, accepted range) cases."""
  cases = []
  for factory in (adam_optax.scale_by_adam, adam_optax.scale_by_amsgrad,
                  adam_optax.scale_by_adamax):
    for name, value, accepted in [
        ('b1', 1.0, _UNIT), ('b1', -0.1, _UNIT), ('b2', 1.0, _UNIT),
        ('b2', -0.1, _UNIT), ('b1', np.float32(1.5), _UNIT),
        ('b2', math.nan, _UNIT), ('eps', -1e-8, _NON_NEGATIVE)]:
      cases.append((factory, {name: value}, name, accepted))
  for factory in (adam_optax.scale_by_adam, adam_optax.scale_by_amsgrad):
    for name, value, accepted in [
        ('eps_root', -1e-8, _NON_NEGATIVE), ('mu_dtype', 'float33', _MU_DTYPES),
        ('mu_dtype', 'int32', _MU_DTYPES), ('nu_dtype', 'float33', _FLOAT_DTYPES),
        ('nu_dtype', jnp.int32, _FLOAT_DTYPES),
        # nu holds |g|^2, which is real.
        ('nu_dtype', 'complex64', _FLOAT_DTYPES),
        ('bias_correction_mu', 'False', _FLAG),
        ('bias_correction_nu', jnp.asarray(False), _FLAG)]:
      cases.append((factory, {name: value}, name, accepted))
  for factory in (adam_optax.scale_by_adam, adam_optax.scale_by_amsgrad):
    cases.append((factory, {'nesterov': 1}, 'nesterov', _FLAG))
  for factory in (adam_optax.adam, adam_optax.adamw, adam_optax.nadam,
                  adam_optax.nadamw):
    # 'False' is truthy: it must not quietly pick AMSGrad.
    cases.append((factory, {'learning_rate': 0.1, 'amsgrad': 'False'},
                  'amsgrad', _FLAG))
  for factory in _ALL_OPTIMIZERS:
    cases.append((factory, {'learning_rate': -0.1}, 'learning_rate',
                  _NON_NEGATIVE))
    cases.append((factory, {'learning_rate': 0.1, 'b2': 1.0}, 'b2', _UNIT))
  for factory in (adam_optax.adamw, adam_optax.nadamw, adam_optax.adamaxw):
    cases.append((factory, {'learning_rate': 0.1, 'weight_decay': -1.0},
                  'weight_decay', _NON_NEGATIVE))
  for factory in (adam_optax.adam, adam_optax.nadam, adam_optax.adamw,
                  adam_optax.nadamw, adam_optax.amsgrad):
    cases.append((factory, {'learning_rate': 0.1, 'bias_correction_nu': None},
                  'bias_correction_nu', _FLAG))
  return [pytest.param(f, kw, name, accepted,
                       id=f'{_public_name(f)}-{name}={kw[name]!r}')
          for f, kw, name, accepted in cases]


def _public_name(fn):
  """The name adam_optax exports `fn` under (nadam has no __name__)."""
  return next(name for name in adam_optax.__all__
              if getattr(adam_optax, name) is fn)


@pytest.mark.parametrize('factory, kwargs, name, accepted',
                         _bad_input_cases())
def test_bad_input_raises_value_error(factory, kwargs, name, accepted):
  """The message names the argument, its value and the accepted range."""
  pattern = re.escape(f'{name}={kwargs[name]!r}') + '.*' + re.escape(accepted)
  with pytest.raises(ValueError, match=pattern):
    factory(**kwargs)


@pytest.mark.parametrize('name, value, accepted', [
    ('b1', 1.0, 'in [0, 1)'), ('b1', np.float32(-0.5), 'in [0, 1)'),
    ('b2', math.nan, 'in [0, 1)'), ('eps', -1e-8, '>= 0'),
    ('eps_root', -1, '>= 0'), ('learning_rate', -0.1, '>= 0'),
    ('weight_decay', np.float64(-1.0), '>= 0'),
    ('nesterov', 'False', 'True or False'), ('amsgrad', 0, 'True or False'),
    ('bias_correction_mu', None, 'True or False'),
    ('bias_correction_nu', jnp.asarray(True), 'True or False'),
])
def test_check_hyperparameters_names_argument_value_and_range(name, value,
                                                              accepted):
  """The public check's message, word for word."""
  message = f'{name}={value!r} is invalid: it must be {accepted}.'
  with pytest.raises(ValueError, match=f'^{re.escape(message)}$'):
    # Among good values, the bad one is named.
    adam_optax.check_hyperparameters(**{'b1': 0.9, 'nesterov': True,
                                        name: value})


def test_check_hyperparameters_accepts_bounds_and_unchecked_values():
  """Bounds, NumPy values, arrays, tracers and schedules pass; names count."""
  adam_optax.check_hyperparameters(
      b1=0.0, b2=np.float32(0.999), eps=0, eps_root=0.0, learning_rate=0,
      weight_decay=np.int64(0), nesterov=np.bool_(True), amsgrad=False,
      bias_correction_mu=True, bias_correction_nu=False)
  # Arrays, tracers and schedules are not read (a host sync, or impossible).
  adam_optax.check_hyperparameters(b1=jnp.asarray(2.0), eps=jnp.asarray(-1.0),
                                   learning_rate=lambda step: -1.0)
  jax.jit(lambda b2: adam_optax.check_hyperparameters(b2=b2))(2.0)
  with pytest.raises(TypeError, match="no rule for 'beta1'"):
    adam_optax.check_hyperparameters(beta1=0.9)


def test_real_mu_dtype_for_complex_params_raises_at_init():
  """A real mu_dtype would drop m_t's imaginary part: init says so."""
  tx = adam_optax.adam(0.1, mu_dtype='float32')
  tx.init({'w': jnp.ones(2)})  # Real params: fine.
  with pytest.raises(ValueError, match=re.escape(
      "mu_dtype=dtype('float32') is invalid for a complex param of dtype "
      'complex64 and shape (2,)') + '.*complex dtype'):
    tx.init({'w': jnp.ones(2), 'z': jnp.ones(2, jnp.complex64)})


def test_complex_gradient_for_real_params_raises():
  """A complex gradient cannot update a real m_t without losing its imag."""
  tx = adam_optax.scale_by_adam()
  state = tx.init(jnp.ones(2))
  with pytest.raises(ValueError, match='complex gradient of dtype complex64'):
    tx.update(jnp.ones(2, jnp.complex64), state)


# ----------------------------------------------------------------------------
# Documentation.


def test_doctests():
  """The examples in adam_optax's docstrings run and print what they say."""
  results = doctest.testmod(adam_optax)
  assert results.attempted > 0
  assert results.failed == 0
