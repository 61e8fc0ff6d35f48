"""A common battery for every optimizer in registry.OPTIMIZERS (Optax-style).

Like Optax's own `_src/alias_test.py`, each check is parametrized over
`sorted(registry.OPTIMIZERS)`, so an optimizer registered later is tested
without touching this file. Each optimizer is built as the registry builds it,
`factory(learning_rate, **options)`, on a small linear regression
(params {'w': (8, 64), 'b': (64,)}), and must:

1. jit: give the same state and updates under `jax.jit` (init and update) as
   eagerly, and fit the regression (the loss falls at every one of STEPS
   steps, by 10% or more in all). The jitted init is bitwise the eager one.
   The updates cannot be on XLA:CPU: a jitted fusion contracts a * b + c into
   one fused multiply-add, which rounds once where the eager ops round twice
   (even optax.sgd with momentum differs in the last bit), so their float
   leaves must agree to within ULPS units in the last place of the leaf's
   largest value (measured: at most 6), the integer leaves (step counts,
   8-bit codes) exactly.
2. optax.inject_hyperparams: with the learning rate (and b1/b2/momentum where
   it takes them) in the state, give the plain optimizer's updates; half the
   learning rate written into the state halves the update, another b1/b2/
   momentum changes it, and the jitted step is traced once. Integer options
   that fix shapes (the 8-bit optimizers' block_size, min_8bit_size) are
   static_args, as in adamjax/playground/trajectories.py.
3. optax.MultiSteps(every_k_schedule=2): the first mini-step leaves the params
   unchanged, the second equals one plain step with the mean gradient.
4. bfloat16 params and grads (eagerly): the updates come back in bfloat16,
   finite, and the regression is fitted as in 1.
5. A state sharded over 4 simulated devices, in one subprocess for every
   optimizer (this file run as a script, started with the module so that it
   runs beside the other tests): 'w' split along its first axis, the state
   initialised under jit with its arrays split likewise, two jitted updates
   (compiled once: the shardings survive an update) equal the one-device
   run here; the results come back as JSON on stdout.
6. Pytrees: the updates have the params' tree (None leaves included, as Optax
   handles them), the state survives a jax.tree.map round trip and keeps its
   tree, shapes and dtypes across an update (as a lax.scan carry must).

The 8-bit optimizers get block_size=64, min_8bit_size=256 (SMALL_SHAPES), so
that the (8, 64) leaf is quantised and the (64,) leaf keeps float32 moments.
"""

import functools
import inspect
import json
import numbers
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # Run as a script: the sharded worker.
  sys.path.insert(0, ROOT)

# pylint: disable=g-import-not-at-top,wrong-import-position
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from adamjax.optim import registry
# pylint: enable=g-import-not-at-top,wrong-import-position

NAMES = sorted(registry.OPTIMIZERS)

# Learning rates that decrease the regression loss at each of STEPS steps, by
# 10% or more in all; the rest get DEFAULT_LEARNING_RATE. Adadelta's first
# steps are tiny (its numerator starts at sqrt(eps)): at 1.0 it gains only 6%
# in STEPS steps, at 3.0 16%.
DEFAULT_LEARNING_RATE = 0.05
LEARNING_RATES = {'adadelta': 3.0, 'adagrad': 0.1, 'sgd': 0.02,
                  'momentum': 0.01, 'nesterov': 0.01}
# Options for factories that take them: small quantisation blocks, so that
# the 8-bit path runs on the (8, 64) leaf.
SMALL_SHAPES = {'block_size': 64, 'min_8bit_size': 256}
# Keyword arguments injected besides the learning rate, and the other value
# each is set to in the state to show it is live.
INJECTED = {'b1': 0.5, 'b2': 0.9, 'momentum': 0.5}

STEPS = 10
# jit vs eager: units in the last place of each leaf's largest magnitude.
ULPS = 16
# Results that differ only in float rounding (a different order of operations
# or constants rounded to float32 at another point).
TOLERANCE = {'rtol': 1e-5, 'atol': 1e-6}
NUM_DEVICES = 4
ROWS, COLS = 8, 64  # The 'w' leaf; ROWS is split over NUM_DEVICES.
BATCH = 32


# ----------------------------------------------------------------------------
# The problem: linear regression y = x @ w + b, data from NumPy (the sharded
# worker rebuilds the same arrays).


def _data():
  """(x, y) of the regression, float32 NumPy arrays."""
  rng = np.random.default_rng(0)
  x = rng.standard_normal((BATCH, ROWS)).astype(np.float32)
  w = rng.standard_normal((ROWS, COLS)).astype(np.float32)
  b = rng.standard_normal(COLS).astype(np.float32)
  return x, x @ w + b


def _params(dtype=jnp.float32):
  """Small nonzero starting params (so that weight decay acts)."""
  rng = np.random.default_rng(1)
  return {'w': jnp.asarray(0.1 * rng.standard_normal((ROWS, COLS)), dtype),
          'b': jnp.asarray(0.1 * rng.standard_normal(COLS), dtype)}


def _random_grads(count):
  """`count` float32 gradient pytrees like _params(), about standard normal.

  On a grid of 1/64, so that sums, differences and halves of two are exact
  (MultiSteps' running mean and (g1 + g2) / 2 then agree to the bit).
  """
  rng = np.random.default_rng(2)
  def draw(shape):
    return jnp.asarray(np.round(64 * rng.standard_normal(shape)) / 64,
                       jnp.float32)
  return [{'w': draw((ROWS, COLS)), 'b': draw(COLS)} for _ in range(count)]


def _loss(params, x, y):
  """Squared error summed over outputs, mean over the batch, in float32."""
  pred = x @ params['w'].astype(jnp.float32) + params['b'].astype(jnp.float32)
  return jnp.mean(jnp.sum((pred - y)**2, axis=-1))


_loss_and_grad = jax.jit(jax.value_and_grad(_loss))


# ----------------------------------------------------------------------------
# The optimizers, built and jitted once per name.


def _learning_rate(name):
  """The learning rate this battery runs `name` with."""
  return LEARNING_RATES.get(name, DEFAULT_LEARNING_RATE)


def _signature(name):
  """The parameters of the registry factory `name`."""
  return inspect.signature(registry.OPTIMIZERS[name]).parameters


def _options(name):
  """The SMALL_SHAPES options that factory `name` takes."""
  return {k: v for k, v in SMALL_SHAPES.items() if k in _signature(name)}


def _static_args(name):
  """Keyword arguments with an integer default: they fix array shapes.

  As adamjax/playground/trajectories.py::_static_args: inject_hyperparams
  would otherwise trace them with the other numbers.
  """
  return tuple(k for k, p in _signature(name).items()
               if isinstance(p.default, int)
               and not isinstance(p.default, bool))


@functools.cache
def _optimizer(name):
  """registry.OPTIMIZERS[name] at its battery learning rate and options."""
  return registry.OPTIMIZERS[name](_learning_rate(name), **_options(name))


@functools.cache
def _jitted_update(name):
  """jax.jit of _optimizer(name).update (compiled once per dtype)."""
  return jax.jit(_optimizer(name).update)


def _injectable(name):
  """{hyperparameter: default} of the INJECTED ones `name` takes as numbers."""
  return {k: p.default for k, p in _signature(name).items()
          if k in INJECTED and isinstance(p.default, numbers.Real)
          and not isinstance(p.default, bool)}


def _run(update, state, params, grads_list):
  """Applies `update` for each gradient in turn: (params, state, updates)."""
  updates = None
  for grads in grads_list:
    updates, state = update(grads, state, params)
    params = optax.apply_updates(params, updates)
  return params, state, updates


def _fit(update, state, params):
  """STEPS steps on the regression: the losses before each and after all."""
  x, y = _data()
  losses = []
  for _ in range(STEPS):
    loss, grads = _loss_and_grad(params, x, y)
    losses.append(float(loss))
    assert (jax.tree.map(lambda a: a.dtype, grads)
            == jax.tree.map(lambda a: a.dtype, params))
    updates, state = update(grads, state, params)
    for path, leaf in jax.tree_util.tree_leaves_with_path(updates):
      assert np.all(np.isfinite(np.asarray(leaf, np.float32))), path
    params = optax.apply_updates(params, updates)
  losses.append(float(_loss_and_grad(params, x, y)[0]))
  return params, updates, losses


# Cautious optimizers zero the components whose sign disagrees with the
# gradient: an injected b1 (a float32 array, so 1 - b1 rounds differently from
# Python's) can flip the mask of a component whose update is near 0 (measured:
# one of 512, moving its param by 1e-6 after 3 steps).
MASKED_STEP_TOLERANCE = {name: {'rtol': 1e-5, 'atol': 1e-5}
                         for name in ('cautious_adam', 'cautious_adamw')}

# ADOPT's first step only measures the second moment: its update is zero.
FIRST_STEP_IS_ZERO = frozenset({'adopt'})


def _assert_fits(losses, name):
  """The loss fell at every step, and by at least 10% in all."""
  if name in FIRST_STEP_IS_ZERO:
    assert losses[1] == losses[0], losses
    losses = losses[1:]
  assert all(a > b for a, b in zip(losses, losses[1:])), losses
  assert losses[-1] < 0.9 * losses[0], losses


# ----------------------------------------------------------------------------
# Comparisons.


def _assert_within_ulps(got, want, ulps=ULPS):
  """Same tree; float leaves within `ulps` ulps of each leaf's scale."""
  assert jax.tree.structure(got) == jax.tree.structure(want)
  for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(want),
                          jax.tree.leaves(got)):
    a, b = np.asarray(a), np.asarray(b)
    where = jax.tree_util.keystr(path)
    assert a.dtype == b.dtype and a.shape == b.shape, where
    if not jnp.issubdtype(a.dtype, jnp.floating):
      np.testing.assert_array_equal(b, a, err_msg=where)
      continue
    scale = np.max(np.abs(a.astype(np.float32)), initial=0.0)
    np.testing.assert_allclose(
        b.astype(np.float32), a.astype(np.float32), rtol=0,
        atol=ulps * float(np.spacing(np.float32(scale))), err_msg=where)


def _assert_close(got, want, **tolerance):
  """Same tree; every leaf allclose (TOLERANCE unless given)."""
  tolerance = tolerance or TOLERANCE
  assert jax.tree.structure(got) == jax.tree.structure(want)
  for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(want),
                          jax.tree.leaves(got)):
    np.testing.assert_allclose(np.asarray(b, np.float32),
                               np.asarray(a, np.float32),
                               err_msg=jax.tree_util.keystr(path), **tolerance)


def _shapes_and_dtypes(tree):
  """The tree with each leaf replaced by (shape, dtype)."""
  return jax.tree.map(lambda x: (jnp.shape(x), jnp.result_type(x)), tree)


# ----------------------------------------------------------------------------
# 1. jit


@pytest.mark.parametrize('name', NAMES)
def test_jit_matches_eager_and_decreases_the_loss(name):
  """Jitted init/update equal the eager ones; STEPS jitted steps fit better."""
  tx, update = _optimizer(name), _jitted_update(name)
  params = _params()
  eager_state = tx.init(params)
  jitted_state = jax.jit(tx.init)(params)
  _assert_within_ulps(jitted_state, eager_state, ulps=0)  # Exactly.
  grads = _random_grads(3)
  _assert_within_ulps(_run(update, jitted_state, params, grads),
                      _run(tx.update, eager_state, params, grads))

  _assert_fits(_fit(update, jitted_state, params)[2], name)


# ----------------------------------------------------------------------------
# 2. optax.inject_hyperparams


@pytest.mark.parametrize('name', NAMES)
def test_inject_hyperparams_matches_and_retunes_without_retracing(name):
  """Injected = plain; new lr/b1/b2/momentum in the state act, one trace."""
  injectable = _injectable(name)
  factory = functools.partial(registry.OPTIMIZERS[name], **_options(name))
  injected = optax.inject_hyperparams(
      factory, static_args=_static_args(name))(
          learning_rate=_learning_rate(name), **injectable)
  traces = []

  @jax.jit
  def step(grads, state, params):
    traces.append(None)  # Runs once per trace.
    return injected.update(grads, state, params)

  params = _params()
  grads = _random_grads(3)
  state = injected.init(params)
  assert set(state.hyperparams) >= {'learning_rate', *injectable}
  _, state1, _ = _run(step, state, params, grads[:1])
  got_params, _, got_updates = _run(step, state, params, grads)
  want_params, _, want_updates = _run(
      _jitted_update(name), _optimizer(name).init(params), params, grads)
  _assert_close((got_params, got_updates), (want_params, want_updates),
                **MASKED_STEP_TOLERANCE.get(name, {}))

  def retuned(field, value):
    """state1 with hyperparameter `field` set to `value`."""
    hyperparams = dict(state1.hyperparams)
    old = hyperparams[field]
    hyperparams[field] = jnp.asarray(value, old.dtype)
    return state1._replace(hyperparams=hyperparams)

  base = step(grads[1], state1, params)
  lr = float(state1.hyperparams['learning_rate'])
  halved, _ = step(grads[1], retuned('learning_rate', lr / 2), params)
  _assert_close(halved, jax.tree.map(lambda u: u / 2, base[0]), rtol=1e-6,
                atol=0)
  for field in injectable:
    # The update or the new state (Lion's b2, and RAdam's b2 before its
    # rectification starts, act only on the moments).
    changed = step(grads[1], retuned(field, INJECTED[field]), params)
    assert not all(np.allclose(a, b, **TOLERANCE) for a, b in zip(
        jax.tree.leaves(changed), jax.tree.leaves(base))), field
  assert len(traces) == 1


# ----------------------------------------------------------------------------
# 3. optax.MultiSteps


@pytest.mark.parametrize('name', NAMES)
def test_multisteps_of_two_is_one_step_on_the_mean_gradient(name):
  """k=2: mini-step 1 changes nothing, mini-step 2 = plain step on (g1+g2)/2."""
  multi = optax.MultiSteps(_optimizer(name), every_k_schedule=2)
  update = jax.jit(multi.update)
  params = _params()
  g1, g2 = _random_grads(2)
  state = multi.init(params)
  updates, state = update(g1, state, params)
  after_one = optax.apply_updates(params, updates)
  for a, b in zip(jax.tree.leaves(after_one), jax.tree.leaves(params)):
    np.testing.assert_array_equal(a, b)
  updates, state = update(g2, state, after_one)
  mean = jax.tree.map(lambda a, b: (a + b) / 2, g1, g2)
  want, _ = _jitted_update(name)(mean, _optimizer(name).init(params), params)
  _assert_close(optax.apply_updates(after_one, updates),
                optax.apply_updates(params, want))


# ----------------------------------------------------------------------------
# 4. bfloat16


@pytest.mark.parametrize('name', NAMES)
def test_bfloat16_params_get_bfloat16_updates_and_fit(name):
  """bf16 params and grads: bf16 finite updates, and the loss goes down."""
  # Eagerly: the jit battery above covers compilation, and the eager ops'
  # executables are shared by all optimizers (a jitted bf16 update would be
  # one more compilation each).
  tx = _optimizer(name)
  params = _params(jnp.bfloat16)
  params, updates, losses = _fit(tx.update, tx.init(params), params)
  for tree in (params, updates):
    assert all(leaf.dtype == jnp.bfloat16 for leaf in jax.tree.leaves(tree))
  _assert_fits(losses, name)


# ----------------------------------------------------------------------------
# 5. A sharded state, on simulated devices in a subprocess.


def _shardings(mesh):
  """'w' split along its rows over the mesh's 'data' axis, 'b' replicated."""
  sharding = jax.sharding.NamedSharding
  spec = jax.sharding.PartitionSpec
  return {'w': sharding(mesh, spec('data')), 'b': sharding(mesh, spec())}


def _split_first_axis(leaf, mesh):
  """`leaf` split along 'data' on its first axis if the mesh divides it."""
  spec = jax.sharding.PartitionSpec
  shape = jnp.shape(leaf)
  if shape and shape[0] % mesh.size == 0:
    return jax.sharding.NamedSharding(mesh, spec('data'))
  return jax.sharding.NamedSharding(mesh, spec())


def _sharded_worker():
  """Runs every optimizer with sharded params and state; JSON-able results.

  Runs in the subprocess, on NUM_DEVICES simulated CPU devices. The state is
  initialised under jit with the params split (every state array whose first
  axis the mesh divides split likewise, ZeRO style: moments, 8-bit codes and
  scales; the rest replicated), and the jitted update keeps those shardings.
  """
  mesh = jax.sharding.Mesh(np.array(jax.devices()[:NUM_DEVICES]), ('data',))
  param_shardings = _shardings(mesh)
  params = jax.device_put(_params(), param_shardings)
  grads = [jax.device_put(g, param_shardings) for g in _random_grads(2)]
  results = {}
  for name in NAMES:
    tx = _optimizer(name)
    state_shardings = jax.tree.map(lambda leaf: _split_first_axis(leaf, mesh),
                                   jax.eval_shape(tx.init, params))
    state = jax.jit(tx.init, out_shardings=state_shardings)(params)
    update = jax.jit(tx.update,
                     out_shardings=(param_shardings, state_shardings))
    new_params, state, updates = _run(update, state, params, grads)
    results[name] = {
        'params': jax.tree.map(lambda a: np.asarray(a).tolist(), new_params),
        'updates': jax.tree.map(lambda a: np.asarray(a).tolist(), updates),
        'param_specs': jax.tree.map(lambda a: str(a.sharding.spec),
                                    new_params),
        'state_specs': sorted({str(leaf.sharding.spec)
                               for leaf in jax.tree.leaves(state)}),
        'compiles': update._cache_size(),  # pylint: disable=protected-access
    }
  return {'devices': jax.device_count(), 'results': results}


@pytest.fixture(scope='module', autouse=True)
def sharded_worker(request):
  """This file as a script on NUM_DEVICES devices, started with the module.

  It runs while the other tests of the module do (on another core, if there
  is one); None when no sharded test was selected.
  """
  if not any(item.name.startswith('test_sharded_')
             for item in request.session.items):
    yield None
    return
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  env['XLA_FLAGS'] = (
      env.get('XLA_FLAGS', '') +
      f' --xla_force_host_platform_device_count={NUM_DEVICES}').strip()
  process = subprocess.Popen(  # pylint: disable=consider-using-with
      [sys.executable, os.path.abspath(__file__)], env=env, cwd=ROOT,
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  yield process
  if process.poll() is None:  # Not waited for (e.g. a failed fixture).
    process.kill()
    process.communicate()


@pytest.fixture(scope='module')
def sharded_runs(sharded_worker):
  """The worker's results, {name: ...}."""
  stdout, stderr = sharded_worker.communicate(timeout=300)
  assert sharded_worker.returncode == 0, stderr[-5000:]
  output = json.loads(stdout.strip().splitlines()[-1])
  assert output['devices'] == NUM_DEVICES
  assert sorted(output['results']) == NAMES
  return output['results']


@pytest.mark.parametrize('name', NAMES)
def test_sharded_state_gives_the_one_device_result(name, sharded_runs):
  """Params split 4 ways, state init under jit: 2 steps as on one device."""
  got = sharded_runs[name]
  split = str(jax.sharding.PartitionSpec('data'))
  assert got['param_specs'] == {'w': split,
                                'b': str(jax.sharding.PartitionSpec())}
  if jax.tree.leaves(_optimizer(name).init(_params())):
    assert split in got['state_specs'], got['state_specs']
  assert got['compiles'] == 1  # The state's shardings survive the update.
  params = _params()
  want_params, _, want_updates = _run(
      _jitted_update(name), _optimizer(name).init(params), params,
      _random_grads(2))
  for key, want in (('updates', want_updates), ('params', want_params)):
    _assert_close(jax.tree.map(np.asarray, got[key],
                               is_leaf=lambda x: isinstance(x, list)), want)


# ----------------------------------------------------------------------------
# 6. Pytrees


@pytest.mark.parametrize('name', NAMES)
def test_pytree_structure_round_trips_and_none_leaves(name):
  """Updates have the params' tree; the state round-trips; None is kept."""
  tx = _optimizer(name)
  # A dict, a list and a None leaf (the leaves have _params()'s shapes, so
  # the eager ops reuse the executables of the tests above).
  params = {'dense': _params(), 'frozen': None, 'extra': [_params()['b']]}
  g1, g2 = _random_grads(2)
  grads = {'dense': g1, 'frozen': None, 'extra': [g2['b']]}
  state = tx.init(params)
  copy = jax.tree.map(lambda x: x, state)
  assert type(copy) is type(state)
  assert jax.tree.structure(copy) == jax.tree.structure(state)
  leaves, treedef = jax.tree.flatten(state)
  rebuilt = jax.tree.unflatten(treedef, leaves)
  assert jax.tree.structure(rebuilt) == jax.tree.structure(state)

  updates, new_state = tx.update(grads, state, params)
  assert jax.tree.structure(updates) == jax.tree.structure(params)
  assert updates['frozen'] is None
  assert _shapes_and_dtypes(updates) == _shapes_and_dtypes(params)
  # A lax.scan carry: the same tree, shapes and dtypes after the update.
  assert _shapes_and_dtypes(new_state) == _shapes_and_dtypes(state)
  again, _ = tx.update(grads, copy, params)
  _assert_within_ulps(again, updates, ulps=0)


if __name__ == '__main__':
  print(json.dumps(_sharded_worker()))
