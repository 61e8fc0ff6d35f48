"""Adam and its family, written by hand as Optax gradient transformations.

The moment estimates, bias correction and update rule below follow Algorithm 1
of Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015
(https://arxiv.org/abs/1412.6980). Optax is used only for composition (chain,
learning-rate scaling, weight decay) and for its types, so every transformation
here drops into any Optax pipeline: ``optax.chain``, schedules,
``optax.inject_hyperparams``, ``optax.MultiSteps``, ``optax.masked``, clipping.
Each is a pure ``init``/``update`` pair over pytrees with the step count in the
state, so it can be jitted, vmapped, scanned and checkpointed.

A drop-in for Optax's Adam family. Each of ``scale_by_adam``,
``scale_by_amsgrad``, ``scale_by_adamax``, ``adam``, ``adamw``, ``nadam``,
``nadamw``, ``amsgrad``, ``adamax`` and ``adamaxw`` takes Optax's arguments in
Optax's positional order with Optax's defaults (``nadam`` and ``nadamw`` are,
as in Optax, ``adam`` and ``adamw`` with ``nesterov=True`` bound), and the
states are Optax's own ``optax.ScaleByAdamState`` and
``optax.ScaleByAmsgradState``, so ``isinstance`` checks and
``optax.tree_utils.tree_get``/``tree_set`` work unchanged. Params may be real
or complex (the second moment is |g|^2 = conj(g) g), Python scalars, or
contain ``None`` leaves. Where we differ from Optax on purpose:

* Stricter arguments: :func:`check_hyperparameters` and the dtype checks
  refuse bad values at construction, where Optax accepts them and fails late
  or silently (b1 = 1 or b2 = 1 gives NaN updates from the first step, a
  negative rate ascends, the string 'False' is a true flag).
* Complex params: ``nu`` (and ``nu_max``, Adamax's ``u``) is stored in the
  real dtype (float32 for complex64), where Optax stores a complex array whose
  imaginary part stays 0: half the memory, and values equal to Optax's up to
  rounding, not bit for bit. A real ``mu_dtype`` for a complex leaf raises at
  ``init`` (Optax silently drops the imaginary part of the momentum).
* Integer (or Python ``int``) leaves get float moments and updates, as a
  float leaf would; Optax keeps their moments as integers, so nu rounds to 0
  after the first step.
* The arithmetic runs in at least float32 (bf16/fp16 moments are upcast in
  registers; Optax computes in bf16) and updates come back in the gradient's
  dtype.
* Extra options, all keyword-only: ``nu_dtype``; ``bias_correction_mu`` /
  ``bias_correction_nu`` on ``scale_by_adam`` and the optimizers built on it
  (Optax has them on AMSGrad only, where ours take them positionally too);
  ``amsgrad`` on ``adam``, ``adamw``, ``nadam`` and ``nadamw``, which swaps in
  ``scale_by_amsgrad``; ``nesterov`` on ``scale_by_amsgrad``, so that swap
  keeps NAdam's momentum.

For real float32 and float64 params with the default options, one jitted
step compiles to the same program as Optax's, so the results are
bit-identical.
"""

import functools
import numbers
from typing import Any, Callable, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np
import optax

__all__ = [
    'ScaleByAdamState',
    'ScaleByAdemamixState',
    'ScaleByAmsgradState',
    'adam',
    'adamax',
    'adamaxw',
    'adamw',
    'ademamix',
    'adopt',
    'amsgrad',
    'cautious',
    'cautious_adam',
    'cautious_adamw',
    'check_hyperparameters',
    'check_updates_like',
    'nadam',
    'nadamw',
    'radam',
    'scale_by_adam',
    'scale_by_adamax',
    'scale_by_ademamix',
    'scale_by_adopt',
    'scale_by_amsgrad',
    'scale_by_radam',
]

ScalarOrSchedule = Union[float, jax.Array, optax.Schedule]
DType = Any
MaskOrFn = Optional[Union[Any, Callable[[optax.Params], Any]]]

# Optax's own state types, so code that checks isinstance(state,
# optax.ScaleByAdamState), or builds Optax state from ours, keeps working.
# Fields: count (int32 scalar, saturating at the int32 maximum), mu (first
# moment m_t), nu (second moment v_t; Adamax's infinity norm u_t) and, for
# AMSGrad, nu_max (the running maximum of the second moment used).
ScaleByAdamState = optax.ScaleByAdamState
ScaleByAmsgradState = optax.ScaleByAmsgradState
# AdEMAMix's: count, count_m2 (the slow momentum's own step), m1, m2, nu.
ScaleByAdemamixState = optax.contrib.ScaleByAdemamixState


# ----------------------------------------------------------------------------
# Argument checks, at construction.

# name -> (whether a concrete value is accepted, what is accepted).
_BELOW_ONE = (lambda value: 0.0 <= value < 1.0, 'in [0, 1)')
_NON_NEGATIVE = (lambda value: 0.0 <= value < float('inf'),
                 '>= 0')
_RANGES = {
    'b1': _BELOW_ONE,
    'b2': _BELOW_ONE,
    'b3': _BELOW_ONE,
    'alpha': _NON_NEGATIVE,
    'threshold': (lambda value: 4.0 <= value < float('inf'), '>= 4'),
    'eps': _NON_NEGATIVE,
    'eps_root': _NON_NEGATIVE,
    'learning_rate': _NON_NEGATIVE,
    'weight_decay': _NON_NEGATIVE,
}
# Those that may also be a schedule (a callable step -> value).
_SCHEDULABLE = ('learning_rate', 'weight_decay', 'b3', 'alpha')
_FLAGS = ('nesterov', 'amsgrad', 'bias_correction_mu', 'bias_correction_nu',
          'use_clipping')


def check_hyperparameters(**named_values: Any) -> None:
  """Raises ValueError unless every hyperparameter given is acceptable.

  Each keyword is checked by the rule of its name:

  * ``b1``, ``b2``: in [0, 1). At 1 a moment never forgets and its bias
    correction divides by 0.
  * ``eps``, ``eps_root``, ``learning_rate``, ``weight_decay``: finite and
    >= 0 (an infinite rate or decay turns every parameter into inf or NaN).
  * ``nesterov``, ``amsgrad``, ``bias_correction_mu``,
    ``bias_correction_nu``: a Python or NumPy bool. Flags choose the program
    that is traced, so they must be static, and a truthy non-bool such as the
    string 'False' would silently mean True.

  Only concrete Python/NumPy numbers are range-checked: a jax or NumPy array,
  a tracer (``optax.inject_hyperparams``, ``vmap`` over rates) or, for
  ``learning_rate`` and ``weight_decay``, a schedule passes through, since
  reading it would force a host sync or fail. Anything else (a string,
  None, a list, a bool) is refused with a TypeError: it would otherwise fail
  deep inside the first traced update.

  Args:
    **named_values: hyperparameters by name, e.g. ``b1=0.9, eps=1e-8``.

  Raises:
    ValueError: naming the first bad argument, its value and what is
      accepted.
    TypeError: for a value that is not a number (naming the argument and
      what is accepted), or a name without a rule (a programming error).

  Example:
    >>> import adam_optax
    >>> adam_optax.check_hyperparameters(b1=0.9, eps=1e-8, nesterov=False)
    >>> adam_optax.check_hyperparameters(b2=1.0)
    Traceback (most recent call last):
    ...
    ValueError: b2=1.0 is invalid: it must be in [0, 1).
  """
  for name, value in named_values.items():
    if name in _FLAGS:
      if not isinstance(value, (bool, np.bool_)):
        raise ValueError(
            f'{name}={value!r} is invalid: it must be True or False.')
    elif name in _RANGES:
      accepts, accepted = _RANGES[name]
      # numbers.Real covers np.float32 and np.int64, which are not Python
      # floats or ints; jax arrays (so tracers) and schedules are not in it.
      concrete = (isinstance(value, numbers.Real)
                  and not isinstance(value, (bool, np.bool_)))
      if not concrete and not (
          isinstance(value, (jax.Array, np.ndarray))
          or (name in _SCHEDULABLE and callable(value))):
        kinds = ('a number, an array or a schedule' if name in _SCHEDULABLE
                 else 'a number or an array')
        raise TypeError(
            f'{name}={value!r} is invalid: it must be {kinds}, '
            f'{accepted}; got a {type(value).__name__}.')
      if concrete and not accepts(value):
        if abs(value) == float('inf'):
          accepted = f'finite and {accepted}'
        raise ValueError(
            f'{name}={value!r} is invalid: it must be {accepted}.')
    else:
      raise TypeError(f'check_hyperparameters has no rule for {name!r}; '
                      f'known: {", ".join([*_RANGES, *_FLAGS])}.')


def _canonical_dtype(name: str, dtype: Optional[DType],
                     allow_complex: bool) -> Optional[jnp.dtype]:
  """`dtype` as a canonical floating (or complex) jnp.dtype, None as None."""
  if dtype is None:
    return None
  kinds = (jnp.floating, jnp.complexfloating) if allow_complex else (
      jnp.floating,)
  accepted = ('None or a floating or complex dtype such as '
              "'float32', 'bfloat16', 'complex64'" if allow_complex else
              "None or a floating dtype such as 'float32', 'bfloat16'")
  try:
    canonical = jnp.dtype(dtype)
  except TypeError as e:
    raise ValueError(
        f'{name}={dtype!r} is not a dtype; accepted: {accepted}.') from e
  if not any(jnp.issubdtype(canonical, kind) for kind in kinds):
    raise ValueError(f'{name}={dtype!r} is not an accepted dtype; accepted: '
                     f'{accepted}.')
  return jax.dtypes.canonicalize_dtype(canonical)


def _checked_dtypes(
    mu_dtype: Optional[DType], nu_dtype: Optional[DType], **hyperparameters: Any
) -> tuple[Optional[jnp.dtype], Optional[jnp.dtype]]:
  """Checks `hyperparameters`; returns mu_dtype and nu_dtype canonical."""
  check_hyperparameters(**hyperparameters)
  # mu may be complex; nu holds |g|^2, which is real.
  return (_canonical_dtype('mu_dtype', mu_dtype, allow_complex=True),
          _canonical_dtype('nu_dtype', nu_dtype, allow_complex=False))


# ----------------------------------------------------------------------------
# Dtypes. Params may be any mix of real, complex, low-precision and integer
# (or Python scalar) leaves; every leaf gets moments it can be updated in.


def _default_float() -> jnp.dtype:
  """float32, or float64 when x64 is enabled."""
  return jax.dtypes.canonicalize_dtype(jnp.float64)


def _moment_dtype(leaf: Any, dtype: Optional[jnp.dtype],
                  real: bool) -> jnp.dtype:
  """`dtype`, else the storage dtype of a (`real`-valued) moment of `leaf`."""
  if dtype is not None:
    return dtype
  leaf_dtype = jnp.result_type(leaf)
  # An integer moment would round nu to 0 after the first step.
  if not jnp.issubdtype(leaf_dtype, jnp.inexact):
    return _default_float()
  if real and jnp.issubdtype(leaf_dtype, jnp.complexfloating):
    return jnp.finfo(leaf_dtype).dtype
  return leaf_dtype


def _first_moment_zeros(params: optax.Params,
                        mu_dtype: Optional[jnp.dtype]) -> optax.Updates:
  """Zeros like `params` for m_t; raises if `mu_dtype` would drop imag parts."""

  def zeros(leaf):
    """m_0 = 0 for one leaf."""
    dtype = _moment_dtype(leaf, mu_dtype, real=False)
    if jnp.iscomplexobj(leaf) and not jnp.issubdtype(dtype,
                                                     jnp.complexfloating):
      raise ValueError(
          f'mu_dtype={mu_dtype!r} is invalid for a complex param of dtype '
          f'{jnp.result_type(leaf)} and shape {jnp.shape(leaf)}: the first '
          'moment would lose its imaginary part; accepted: None or a complex '
          "dtype such as 'complex64'.")
    return jnp.zeros_like(leaf, dtype=dtype)

  return jax.tree.map(zeros, params)


def _real_moment_zeros(params: optax.Params,
                       dtype: Optional[jnp.dtype]) -> optax.Updates:
  """Zeros like `params` for a real-valued moment (v_t, nu_max, u_t)."""
  return jax.tree.map(
      lambda leaf: jnp.zeros_like(leaf, dtype=_moment_dtype(leaf, dtype, True)),
      params)


def _zero_state(params: optax.Params, mu_dtype: Optional[jnp.dtype],
                nu_dtype: Optional[jnp.dtype]) -> tuple[jax.Array, Any, Any]:
  """(count, mu, nu) at step 0: an int32 zero and zero moments."""
  return (jnp.zeros([], jnp.int32), _first_moment_zeros(params, mu_dtype),
          _real_moment_zeros(params, nu_dtype))


def _compute_dtype(*arrays: Any) -> jnp.dtype:
  """The common dtype of `arrays`, promoted to at least float32."""
  # Upcasting bf16/fp16 moments in registers moves no more bytes, and keeps
  # low-precision state from also losing precision in the arithmetic.
  return jnp.promote_types(jnp.result_type(*arrays), jnp.float32)


def _real_dtype(dtype: jnp.dtype) -> jnp.dtype:
  """float32 for complex64, float64 for complex128; real dtypes unchanged."""
  return jnp.finfo(dtype).dtype


def _cast(x: Any, dtype: jnp.dtype) -> jax.Array:
  """`x` as an array of `dtype`; a complex to real cast keeps the real part."""
  # Only reached where the imaginary part is 0 (a real gradient's update
  # computed with a complex mu_dtype); jnp.real avoids the cast's warning.
  x = jnp.asarray(x)
  if jnp.iscomplexobj(x) and not jnp.issubdtype(dtype, jnp.complexfloating):
    x = jnp.real(x)
  return x.astype(dtype)


def _update_dtype(g: Any) -> jnp.dtype:
  """Updates come back in the gradient's dtype (float for integer ones)."""
  dtype = jnp.result_type(g)
  return dtype if jnp.issubdtype(dtype, jnp.inexact) else _default_float()


def _real_hyperparameter(value: Any) -> Any:
  """The real part of a complex-typed array hyperparameter; others as is."""
  # optax.inject_hyperparams casts numeric hyperparameters to the params'
  # dtype, so complex params make b1, b2, eps complex arrays with a zero
  # imaginary part. Python numbers pass untouched: no new ops in the common
  # case.
  if isinstance(value, (jax.Array, np.ndarray)) and jnp.iscomplexobj(value):
    return jnp.real(value)
  return value


def check_updates_like(updates: optax.Updates, moment: Any, where: str,
                        is_leaf: Optional[Callable[[Any], bool]] = None,
                        shape: Callable[[Any], tuple[int, ...]] = jnp.shape
                        ) -> None:
  """Raises unless `updates` has the pytree and shapes of `moment`'s params.

  `moment` is a moment from the state, whose leaves (as `is_leaf` sees
  them) stand for the params' leaves, each of shape `shape(leaf)`. Runs on
  shapes only, so under jit it costs nothing at run time; without it a
  mismatch surfaces as a deep tree_map or broadcasting error.

  Raises:
    ValueError: naming the key paths the gradients lack or add, or the first
      leaf whose shape differs from the param's, in `where`'s update.
  """
  expected = jax.tree_util.tree_flatten_with_path(moment, is_leaf=is_leaf)[0]
  got = jax.tree_util.tree_flatten_with_path(updates)[0]
  expected_paths = [jax.tree_util.keystr(path) for path, _ in expected]
  got_paths = [jax.tree_util.keystr(path) for path, _ in got]
  advice = ('pass gradients with the pytree and shapes of the params the '
            'optimizer state was initialised with.')
  if (expected_paths != got_paths or jax.tree.structure(updates)
      != jax.tree.structure(moment, is_leaf=is_leaf)):
    missing = [p for p in expected_paths if p not in got_paths]
    extra = [p for p in got_paths if p not in expected_paths]
    parts = [f'lack {", ".join(missing)}' if missing else '',
             f'have extra {", ".join(extra)}' if extra else '']
    what = ' and '.join(p for p in parts if p) or (
        f'have structure {jax.tree.structure(updates)} instead of '
        f'{jax.tree.structure(moment, is_leaf=is_leaf)}')
    raise ValueError(f'{where}: the gradients do not match the params: they '
                     f'{what}; {advice}')
  for path, (_, g), (_, m) in zip(got_paths, got, expected):
    if jnp.shape(g) != tuple(shape(m)):
      raise ValueError(
          f'{where}: the gradient at {path or "the root"} has shape '
          f'{jnp.shape(g)} but the param has shape {tuple(shape(m))}; '
          f'{advice}')


# ----------------------------------------------------------------------------
# Per-leaf arithmetic, shared by the transformations below.


def _bias_correction(decay: jax.Array, count: jax.Array) -> jax.Array:
  """1 - decay**t in the widest enabled float (float32, or float64 with x64)."""
  # Never in the moments' dtype: in bf16, 1 - 0.999**t rounds to 0 for small
  # t. Under x64 a float32 factor would cap float64 Adam at float32 accuracy.
  dtype = _default_float()
  return 1 - jnp.asarray(decay, dtype) ** count.astype(dtype)


def _first_moment(g: Any, m: jax.Array, b1: Any) -> jax.Array:
  """m_t = b1 m_{t-1} + (1 - b1) g_t, in compute precision."""
  if jnp.iscomplexobj(g) and not jnp.iscomplexobj(m):
    raise ValueError(
        f'a complex gradient of dtype {jnp.result_type(g)} and shape '
        f'{jnp.shape(g)} met a real first moment of dtype {m.dtype}: init the '
        'optimizer with complex params, or pass a complex mu_dtype.')
  dtype = _compute_dtype(g, m)
  return (1 - b1) * jnp.asarray(g).astype(dtype) + b1 * m.astype(dtype)


def _second_moment(g: Any, v: jax.Array, b2: Any) -> jax.Array:
  """v_t = b2 v_{t-1} + (1 - b2) |g_t|^2, in real compute precision."""
  dtype = _compute_dtype(g, v)
  g = jnp.asarray(g).astype(dtype)
  # conj(g) g is real and >= 0 where g * g would be complex; real g keeps
  # Optax's g * g.
  g2 = (g.conj() * g).real if jnp.iscomplexobj(g) else g * g
  return (1 - b2) * g2 + b2 * v.astype(g2.dtype)


def _moments(updates: optax.Updates, state: Any, b1: Any, b2: Any,
             bias_correction_nu: bool) -> tuple[jax.Array, Any, Any, Any]:
  """(t, m_t, v_t, v_hat_t) from the gradients and the state at t - 1."""
  b1, b2 = map(_real_hyperparameter, (b1, b2))
  count = optax.safe_increment(state.count)
  mu = jax.tree.map(lambda g, m: _first_moment(g, m, b1), updates, state.mu)
  nu = jax.tree.map(lambda g, v: _second_moment(g, v, b2), updates, state.nu)
  if not bias_correction_nu:
    return count, mu, nu, nu
  bc2 = _bias_correction(b2, count)
  return count, mu, nu, jax.tree.map(lambda v: v / bc2.astype(v.dtype), nu)


def _directions(updates: optax.Updates, mu: optax.Updates,
                nu_hat: optax.Updates, count: jax.Array, b1: Any, eps: Any,
                eps_root: Any, nesterov: bool,
                bias_correction_mu: bool) -> optax.Updates:
  """u_t = m_hat_t / (sqrt(v_hat_t + eps_root) + eps), in the grads' dtypes."""
  b1, eps, eps_root = map(_real_hyperparameter, (b1, eps, eps_root))
  bc1 = _bias_correction(b1, count)
  # NAdam looks one step ahead: its momentum term is corrected with t + 1.
  bc1_next = _bias_correction(b1, optax.safe_increment(count))

  def direction(g, m, v_hat):
    """u_t of one leaf."""
    dtype = _compute_dtype(g, m, v_hat)
    g_, m = jnp.asarray(g).astype(dtype), m.astype(dtype)
    v_hat = v_hat.astype(_real_dtype(dtype))
    if nesterov and bias_correction_mu:
      m_hat = (b1 * (m / bc1_next.astype(dtype))
               + (1 - b1) * (g_ / bc1.astype(dtype)))
    elif nesterov:
      m_hat = b1 * m + (1 - b1) * g_
    elif bias_correction_mu:
      m_hat = m / bc1.astype(dtype)
    else:
      m_hat = m
    return _cast(m_hat / (jnp.sqrt(v_hat + eps_root) + eps), _update_dtype(g))

  return jax.tree.map(direction, updates, mu, nu_hat)


# ----------------------------------------------------------------------------
# The update-direction transformations (no learning rate, no sign).


def scale_by_adam(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Optional[DType] = None,
    *,
    nu_dtype: Optional[DType] = None,
    nesterov: bool = False,
    bias_correction_mu: bool = True,
    bias_correction_nu: bool = True,
) -> optax.GradientTransformation:
  r"""Rescales gradients by Adam's bias-corrected moment estimates.

  With gradient :math:`g_t` at step :math:`t = 1, 2, \dots`:

  .. math::

    m_t &= \beta_1 m_{t-1} + (1 - \beta_1) g_t \\
    v_t &= \beta_2 v_{t-1} + (1 - \beta_2) |g_t|^2 \\
    \hat m_t &= m_t / (1 - \beta_1^t), \qquad
    \hat v_t = v_t / (1 - \beta_2^t) \\
    u_t &= \hat m_t / (\sqrt{\hat v_t + \bar\varepsilon} + \varepsilon)

  The output is :math:`u_t`, the direction only: chain it with
  ``optax.scale_by_learning_rate`` (as :func:`adam` does) to get a descent step.
  For complex params :math:`|g_t|^2 = \bar g_t g_t` is real, so :math:`v_t`
  is stored in the real dtype and :math:`m_t` stays complex (as in Optax; JAX
  gives the gradient of a real loss as :math:`\partial L / \partial \bar z`
  conjugated, so conjugate it before the update, as Optax's tests do).

  ``bias_correction_mu=False`` uses :math:`\hat m_t = m_t`, and
  ``bias_correction_nu=False`` uses :math:`\hat v_t = v_t`; with both off this
  is the uncorrected algorithm of the paper's section 6.4 (RMSProp with
  momentum), whose first steps are too large by about :math:`(1 - \beta_1) /
  \sqrt{1 - \beta_2}` when :math:`\beta_2` is close to 1.

  With ``nesterov=True`` (NAdam, Dozat 2016), :math:`\hat m_t` becomes
  :math:`\beta_1 m_t / (1 - \beta_1^{t+1}) + (1 - \beta_1) g_t / (1 -
  \beta_1^t)`, as in ``optax.nadam`` (without the two denominators if
  ``bias_correction_mu=False``).

  Where eps sits: here (as in the paper, Optax and PyTorch) :math:`\varepsilon`
  is added to :math:`\sqrt{\hat v_t}`. TensorFlow/Keras add their
  :math:`\hat\varepsilon` to :math:`\sqrt{v_t}` before the bias correction,
  which equals ours with :math:`\varepsilon = \hat\varepsilon /
  \sqrt{1 - \beta_2^t}`: the same algorithm with a step-dependent epsilon.

  Bias-correction factors are computed in float32 (float64 with x64 enabled)
  whatever the moment dtype, and the arithmetic runs in at least float32; the
  update is returned in the gradient's dtype (bf16 gradients give bf16
  updates).

  Args:
    b1: decay rate of the first moment, in [0, 1).
    b2: decay rate of the second moment, in [0, 1).
    eps: added to the denominator outside the square root, >= 0.
    eps_root: added inside the square root, >= 0 (useful when
      differentiating through the update, e.g. in meta-learning).
    mu_dtype: storage dtype of the first moment, floating or complex; None
      keeps the params' dtype.
    nu_dtype: storage dtype of the second moment, a real floating dtype; None
      keeps the params' real dtype. Use float32 with bf16 params: bf16's 8-bit
      mantissa cannot register the 0.1% change that b2 = 0.999 makes per
      step, so a bf16 v_t stops tracking the gradients.
    nesterov: use Nesterov momentum (NAdam).
    bias_correction_mu: divide m_t by 1 - b1^t.
    bias_correction_nu: divide v_t by 1 - b2^t.

  Returns:
    An ``optax.GradientTransformation`` whose state is an
    ``optax.ScaleByAdamState``.

  Raises:
    ValueError: on an argument :func:`check_hyperparameters` refuses or a
      dtype that is not accepted; at ``init``, if a complex param meets a
      real ``mu_dtype``.

  Example:
    >>> import jax.numpy as jnp, optax, adam_optax
    >>> tx = optax.chain(adam_optax.scale_by_adam(),
    ...                  optax.scale_by_learning_rate(0.1))
    >>> params = jnp.array([1.0, -2.0])
    >>> state = tx.init(params)
    >>> updates, state = tx.update(2 * params, state)
    >>> print(', '.join(f'{u:.4f}' for u in updates))  # each moves by ~lr
    -0.1000, 0.1000
  """
  mu_dtype, nu_dtype = _checked_dtypes(
      mu_dtype, nu_dtype, b1=b1, b2=b2, eps=eps, eps_root=eps_root,
      nesterov=nesterov, bias_correction_mu=bias_correction_mu,
      bias_correction_nu=bias_correction_nu)

  def init_fn(params):
    return ScaleByAdamState(*_zero_state(params, mu_dtype, nu_dtype))

  def update_fn(updates, state, params=None):
    del params
    check_updates_like(updates, state.mu, 'scale_by_adam')
    count, mu, nu, nu_hat = _moments(updates, state, b1, b2,
                                     bias_correction_nu)
    updates = _directions(updates, mu, nu_hat, count, b1, eps, eps_root,
                          nesterov, bias_correction_mu)
    return updates, ScaleByAdamState(count, optax.tree.cast_like(mu, state.mu),
                                     optax.tree.cast_like(nu, state.nu))

  return optax.GradientTransformation(init_fn, update_fn)


def scale_by_amsgrad(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Optional[DType] = None,
    bias_correction_mu: bool = True,
    bias_correction_nu: bool = True,
    *,
    nu_dtype: Optional[DType] = None,
    nesterov: bool = False,
) -> optax.GradientTransformation:
  r"""Rescales gradients by AMSGrad (Reddi et al., 2018), as Optax's.

  Adam (see :func:`scale_by_adam`) whose denominator uses
  :math:`\hat v^{max}_t = \max(\hat v^{max}_{t-1}, \hat v_t)`, the running
  maximum of the *bias-corrected* second moment, kept in the state as
  ``nu_max``. This is what ``optax.amsgrad`` does. PyTorch's
  ``Adam(amsgrad=True)`` instead keeps the maximum of the *raw* :math:`v_t`
  and divides it by the current :math:`1 - \beta_2^t`; the two agree at step
  1 and differ afterwards. We follow Optax. Turn both bias corrections off
  to match the AMSGrad paper, which takes the maximum of the raw second
  moment and does not correct the first.

  Args:
    b1: decay rate of the first moment, in [0, 1).
    b2: decay rate of the second moment, in [0, 1).
    eps: added to the denominator outside the square root, >= 0.
    eps_root: added inside the square root, >= 0.
    mu_dtype: storage dtype of the first moment, floating or complex; None
      keeps the params' dtype.
    bias_correction_mu: divide m_t by 1 - b1^t.
    bias_correction_nu: divide v_t by 1 - b2^t before the running maximum.
    nu_dtype: storage dtype of nu and nu_max, a real floating dtype; None
      keeps the params' real dtype.
    nesterov: use Nesterov momentum, as :func:`scale_by_adam` does (Optax's
      ``scale_by_amsgrad`` has no such option).

  Returns:
    An ``optax.GradientTransformation`` whose state is an
    ``optax.ScaleByAmsgradState``.

  Raises:
    ValueError: on an argument :func:`check_hyperparameters` refuses or a
      dtype that is not accepted; at ``init``, if a complex param meets a
      real ``mu_dtype``.
  """
  mu_dtype, nu_dtype = _checked_dtypes(
      mu_dtype, nu_dtype, b1=b1, b2=b2, eps=eps, eps_root=eps_root,
      nesterov=nesterov, bias_correction_mu=bias_correction_mu,
      bias_correction_nu=bias_correction_nu)

  def init_fn(params):
    return ScaleByAmsgradState(*_zero_state(params, mu_dtype, nu_dtype),
                               nu_max=_real_moment_zeros(params, nu_dtype))

  def update_fn(updates, state, params=None):
    del params
    check_updates_like(updates, state.mu, 'scale_by_amsgrad')
    count, mu, nu, nu_hat = _moments(updates, state, b1, b2,
                                     bias_correction_nu)
    nu_max = jax.tree.map(lambda old, v: jnp.maximum(old.astype(v.dtype), v),
                          state.nu_max, nu_hat)
    updates = _directions(updates, mu, nu_max, count, b1, eps, eps_root,
                          nesterov, bias_correction_mu)
    return updates, ScaleByAmsgradState(
        count, optax.tree.cast_like(mu, state.mu),
        optax.tree.cast_like(nu, state.nu),
        optax.tree.cast_like(nu_max, state.nu_max))

  return optax.GradientTransformation(init_fn, update_fn)


def scale_by_adamax(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
) -> optax.GradientTransformation:
  r"""Rescales gradients by Adamax's infinity-norm moment (paper section 7.1).

  .. math::

    m_t &= \beta_1 m_{t-1} + (1 - \beta_1) g_t \\
    u_t &= \max(\beta_2 u_{t-1}, |g_t| + \varepsilon) \\
    d_t &= m_t / ((1 - \beta_1^t)\, u_t)

  The paper's Algorithm 2 has no :math:`\varepsilon`; like ``optax.adamax``
  we add it inside the maximum so a zero gradient never divides by zero.
  :math:`u_t` needs no bias correction (section 7.1). For complex params
  :math:`|g_t|` is the modulus and :math:`u_t` is stored in the real dtype.

  Args:
    b1: decay rate of the first moment, in [0, 1).
    b2: decay rate of the infinity norm, in [0, 1).
    eps: added to |g_t| inside the maximum, >= 0.

  Returns:
    An ``optax.GradientTransformation`` with an ``optax.ScaleByAdamState``
    whose ``nu`` holds :math:`u_t`.

  Raises:
    ValueError: if a concrete b1/b2 is outside [0, 1) or eps is negative.
  """
  check_hyperparameters(b1=b1, b2=b2, eps=eps)

  def init_fn(params):
    return ScaleByAdamState(*_zero_state(params, None, None))

  def update_fn(updates, state, params=None):
    del params
    check_updates_like(updates, state.mu, 'scale_by_adamax')
    b1_, b2_, eps_ = map(_real_hyperparameter, (b1, b2, eps))
    count = optax.safe_increment(state.count)
    bc1 = _bias_correction(b1_, count)

    def infinity_norm(g, u):
      """u_t = max(b2 u_{t-1}, |g_t| + eps), in compute precision."""
      dtype = _compute_dtype(g, u)
      g_abs = jnp.abs(jnp.asarray(g).astype(dtype))
      return jnp.maximum(g_abs + eps_, b2_ * u.astype(g_abs.dtype))

    def direction(g, m, u):
      """d_t = (m_t / (1 - b1^t)) / u_t, in g's dtype."""
      dtype = _compute_dtype(m, u)
      m, u = m.astype(dtype), u.astype(_real_dtype(dtype))
      return _cast(m / bc1.astype(dtype) / u, _update_dtype(g))

    mu = jax.tree.map(lambda g, m: _first_moment(g, m, b1_), updates, state.mu)
    nu = jax.tree.map(infinity_norm, updates, state.nu)
    updates = jax.tree.map(direction, updates, mu, nu)
    return updates, ScaleByAdamState(count, optax.tree.cast_like(mu, state.mu),
                                     optax.tree.cast_like(nu, state.nu))

  return optax.GradientTransformation(init_fn, update_fn)


# ----------------------------------------------------------------------------
# Optimizers: a direction, then (for the "w" variants) decoupled weight decay,
# then the learning rate with a minus sign. Positional arguments, their order
# and defaults are Optax's; the extra options are keyword-only.


def _scale_by_adam_or_amsgrad(*args: Any, amsgrad: bool,
                              **options: Any) -> optax.GradientTransformation:
  """scale_by_amsgrad(*args, **options) if `amsgrad`, else scale_by_adam."""
  # Checked before the branch: the string 'False' would pick AMSGrad.
  check_hyperparameters(amsgrad=amsgrad)
  return (scale_by_amsgrad if amsgrad else scale_by_adam)(*args, **options)


def adam(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Optional[DType] = None,
    *,
    nu_dtype: Optional[DType] = None,
    nesterov: bool = False,
    amsgrad: bool = False,
    bias_correction_mu: bool = True,
    bias_correction_nu: bool = True,
) -> optax.GradientTransformationExtraArgs:
  r"""The Adam optimizer (Kingma & Ba, 2015): :math:`\theta_t = \theta_{t-1}
  - \alpha_t u_t` with :math:`u_t` from :func:`scale_by_adam`.

  Args:
    learning_rate: :math:`\alpha`, a float >= 0 or a schedule (step -> lr).
    b1: decay rate of the first moment, in [0, 1).
    b2: decay rate of the second moment, in [0, 1).
    eps: added to the denominator outside the square root, >= 0.
    eps_root: added inside the square root, >= 0.
    mu_dtype: storage dtype of the first moment; None keeps the params' dtype.
    nu_dtype: storage dtype of the second moment; None keeps the params'.
    nesterov: use Nesterov momentum (see :func:`nadam`).
    amsgrad: keyword-only switch: True takes the direction from
      :func:`scale_by_amsgrad` (the AMSGrad running maximum, state
      ``optax.ScaleByAmsgradState``) instead of :func:`scale_by_adam`, with
      the same arguments.
    bias_correction_mu: divide m_t by 1 - b1^t (False: the paper's
      uncorrected ablation, section 6.4).
    bias_correction_nu: divide v_t by 1 - b2^t.

  Returns:
    An Optax gradient transformation; its ``update`` returns the step to add
    with ``optax.apply_updates``.

  Raises:
    ValueError: on an out-of-range concrete hyperparameter, a non-bool flag
      or a bad dtype.

  Example:
    >>> import jax, jax.numpy as jnp, optax, adam_optax
    >>> f = lambda x: jnp.sum(x ** 2)
    >>> tx = adam_optax.adam(learning_rate=0.1)
    >>> params = jnp.array([1.0, 2.0, 3.0])
    >>> state = tx.init(params)
    >>> for _ in range(100):
    ...   updates, state = tx.update(jax.grad(f)(params), state)
    ...   params = optax.apply_updates(params, updates)
    >>> print(f'{f(params):.4f}')
    0.0005
  """
  check_hyperparameters(learning_rate=learning_rate)
  return optax.chain(
      _scale_by_adam_or_amsgrad(
          b1, b2, eps, eps_root, mu_dtype, amsgrad=amsgrad, nu_dtype=nu_dtype,
          nesterov=nesterov, bias_correction_mu=bias_correction_mu,
          bias_correction_nu=bias_correction_nu),
      optax.scale_by_learning_rate(learning_rate),
  )


def adamw(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Optional[DType] = None,
    weight_decay: ScalarOrSchedule = 1e-4,
    mask: MaskOrFn = None,
    *,
    nu_dtype: Optional[DType] = None,
    nesterov: bool = False,
    amsgrad: bool = False,
    bias_correction_mu: bool = True,
    bias_correction_nu: bool = True,
) -> optax.GradientTransformationExtraArgs:
  r"""Adam with decoupled weight decay (AdamW, Loshchilov & Hutter, 2019).

  :math:`\theta_t = \theta_{t-1} - \alpha_t (u_t + \lambda \theta_{t-1})`:
  the decay is multiplied by the learning rate, as in ``optax.adamw`` and
  PyTorch, and is not part of the moment estimates.

  Args:
    learning_rate: :math:`\alpha`, a float >= 0 or a schedule.
    b1: decay rate of the first moment, in [0, 1).
    b2: decay rate of the second moment, in [0, 1).
    eps: added to the denominator outside the square root, >= 0.
    eps_root: added inside the square root, >= 0.
    mu_dtype: storage dtype of the first moment.
    weight_decay: :math:`\lambda`, a float >= 0 or a schedule.
    mask: a pytree of bools like the params (or a callable params -> such a
      pytree); weight decay applies where True. None decays every leaf.
    nu_dtype: storage dtype of the second moment.
    nesterov: use Nesterov momentum (see :func:`nadamw`).
    amsgrad: keyword-only switch: True takes the direction from
      :func:`scale_by_amsgrad` instead of :func:`scale_by_adam`.
    bias_correction_mu: divide m_t by 1 - b1^t.
    bias_correction_nu: divide v_t by 1 - b2^t.

  Returns:
    An Optax gradient transformation; ``update`` needs ``params``.

  Raises:
    ValueError: on an out-of-range concrete hyperparameter, a non-bool flag
      or a bad dtype.
  """
  check_hyperparameters(learning_rate=learning_rate, weight_decay=weight_decay)
  return optax.chain(
      _scale_by_adam_or_amsgrad(
          b1, b2, eps, eps_root, mu_dtype, amsgrad=amsgrad, nu_dtype=nu_dtype,
          nesterov=nesterov, bias_correction_mu=bias_correction_mu,
          bias_correction_nu=bias_correction_nu),
      optax.add_decayed_weights(weight_decay, mask),
      optax.scale_by_learning_rate(learning_rate),
  )


nadam = functools.partial(adam, nesterov=True)
nadam.__doc__ = r"""Adam with Nesterov momentum (NAdam, Dozat 2016).

  As ``optax.nadam``, ``functools.partial(adam, nesterov=True)``: it takes
  every argument of :func:`adam`, and ``nesterov=False`` gives plain Adam.
  The momentum term looks one step ahead: :math:`\hat m_t = \beta_1 m_t /
  (1 - \beta_1^{t+1}) + (1 - \beta_1) g_t / (1 - \beta_1^t)`.

  Args:
    learning_rate: a float >= 0 or a schedule.
    b1: decay rate of the first moment, in [0, 1).
    b2: decay rate of the second moment, in [0, 1).
    eps: added to the denominator outside the square root, >= 0.
    eps_root: added inside the square root, >= 0.
    mu_dtype: storage dtype of the first moment.
    nu_dtype: storage dtype of the second moment.
    nesterov: use Nesterov momentum (default True).
    amsgrad: keyword-only switch to :func:`scale_by_amsgrad`'s running
      maximum, keeping the Nesterov momentum.
    bias_correction_mu: apply the two bias corrections of the momentum term.
    bias_correction_nu: divide v_t by 1 - b2^t.

  Returns:
    An Optax gradient transformation.

  Raises:
    ValueError: as :func:`adam`.
  """

nadamw = functools.partial(adamw, nesterov=True)
nadamw.__doc__ = r"""NAdam with decoupled weight decay, as ``optax.nadamw``.

  As ``optax.nadamw``, ``functools.partial(adamw, nesterov=True)``:
  :func:`adamw` with the momentum term of :func:`nadam`.

  Args:
    learning_rate: a float >= 0 or a schedule.
    b1: decay rate of the first moment, in [0, 1).
    b2: decay rate of the second moment, in [0, 1).
    eps: added to the denominator outside the square root, >= 0.
    eps_root: added inside the square root, >= 0.
    mu_dtype: storage dtype of the first moment.
    weight_decay: a float >= 0 or a schedule, multiplied by the rate.
    mask: where weight decay applies (see :func:`adamw`).
    nu_dtype: storage dtype of the second moment.
    nesterov: use Nesterov momentum (default True).
    amsgrad: keyword-only switch to :func:`scale_by_amsgrad`'s running
      maximum, keeping the Nesterov momentum.
    bias_correction_mu: apply the two bias corrections of the momentum term.
    bias_correction_nu: divide v_t by 1 - b2^t.

  Returns:
    An Optax gradient transformation; ``update`` needs ``params``.

  Raises:
    ValueError: as :func:`adamw`.
  """


def amsgrad(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Optional[DType] = None,
    bias_correction_mu: bool = True,
    bias_correction_nu: bool = True,
    *,
    nu_dtype: Optional[DType] = None,
) -> optax.GradientTransformationExtraArgs:
  """AMSGrad (Reddi et al., 2018) as ``optax.amsgrad`` (see scale_by_amsgrad).

  Args:
    learning_rate: a float >= 0 or a schedule.
    b1: decay rate of the first moment, in [0, 1).
    b2: decay rate of the second moment, in [0, 1).
    eps: added to the denominator outside the square root, >= 0.
    eps_root: added inside the square root, >= 0.
    mu_dtype: storage dtype of the first moment.
    bias_correction_mu: divide m_t by 1 - b1^t.
    bias_correction_nu: divide v_t by 1 - b2^t before the running maximum.
    nu_dtype: storage dtype of the second moments.

  Returns:
    An Optax gradient transformation.

  Raises:
    ValueError: on an out-of-range concrete hyperparameter, a non-bool flag
      or a bad dtype.
  """
  check_hyperparameters(learning_rate=learning_rate)
  return optax.chain(
      scale_by_amsgrad(b1, b2, eps, eps_root, mu_dtype, bias_correction_mu,
                       bias_correction_nu, nu_dtype=nu_dtype),
      optax.scale_by_learning_rate(learning_rate),
  )


def adamax(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
) -> optax.GradientTransformationExtraArgs:
  """Adamax (Kingma & Ba, 2015, section 7.1), as ``optax.adamax``.

  Args:
    learning_rate: a float >= 0 or a schedule.
    b1: decay rate of the first moment, in [0, 1).
    b2: decay rate of the infinity norm, in [0, 1).
    eps: added to |g| inside the maximum, >= 0.

  Returns:
    An Optax gradient transformation.

  Raises:
    ValueError: on an out-of-range concrete hyperparameter.
  """
  check_hyperparameters(learning_rate=learning_rate)
  return optax.chain(
      scale_by_adamax(b1, b2, eps),
      optax.scale_by_learning_rate(learning_rate),
  )


def adamaxw(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: ScalarOrSchedule = 1e-4,
    mask: MaskOrFn = None,
) -> optax.GradientTransformationExtraArgs:
  """Adamax with decoupled weight decay, as ``optax.adamaxw``.

  Args:
    learning_rate: a float >= 0 or a schedule.
    b1: decay rate of the first moment, in [0, 1).
    b2: decay rate of the infinity norm, in [0, 1).
    eps: added to |g| inside the maximum, >= 0.
    weight_decay: a float >= 0 or a schedule, multiplied by the rate.
    mask: where weight decay applies (see :func:`adamw`).

  Returns:
    An Optax gradient transformation; ``update`` needs ``params``.

  Raises:
    ValueError: on an out-of-range concrete hyperparameter.
  """
  check_hyperparameters(learning_rate=learning_rate, weight_decay=weight_decay)
  return optax.chain(
      scale_by_adamax(b1, b2, eps),
      optax.add_decayed_weights(weight_decay, mask),
      optax.scale_by_learning_rate(learning_rate),
  )


# ----------------------------------------------------------------------------
# The modern Adam family: ADOPT, AdEMAMix, RAdam and Cautious Adam(W). Same
# conventions as above; ADOPT, AdEMAMix and RAdam take Optax's arguments in
# Optax's order with Optax's defaults and keep Optax's state types.


def _quarter_power(step: jax.Array) -> jax.Array:
  """ADOPT's default clipping value, step**0.25."""
  return step**0.25


def scale_by_adopt(
    b1: float = 0.9,
    b2: float = 0.9999,
    eps: float = 1e-6,
    mu_dtype: Optional[DType] = None,
    *,
    nesterov: bool = False,
    use_clipping: bool = True,
    clip_value_fn: Optional[Callable[[jax.Array], jax.Array]] = None,
) -> optax.GradientTransformation:
  r"""Rescales gradients as ADOPT (Taniguchi et al., NeurIPS 2024).

  ADOPT normalises the gradient by the second moment of the *previous* steps,
  then takes momentum of the normalised gradient, which makes it converge
  for any :math:`\beta_2` (Adam may not):

  .. math::

    n_t &= \mathrm{clip}(g_t / \max(\sqrt{v_{t-1}}, \varepsilon), c_t) \\
    m_t &= \beta_1 m_{t-1} + (1 - \beta_1) n_t, \qquad
    v_t = \beta_2 v_{t-1} + (1 - \beta_2) g_t^2

  and the output is :math:`m_t`. The first step only sets :math:`v_0 =
  g_0^2` (its output is 0); :math:`c_t` = ``clip_value_fn(t)``, by default
  :math:`t^{1/4}` as in the paper's stable variant and
  ``optax.contrib.scale_by_adopt``. (The default is None rather than a
  function, so that ``optax.inject_hyperparams`` does not mistake it for a
  schedule, as it does Optax's.)

  Args:
    b1: decay rate of the momentum, in [0, 1).
    b2: decay rate of the second moment, in [0, 1).
    eps: lower bound of the normaliser, >= 0.
    mu_dtype: storage dtype of the momentum; None keeps the params' dtype.
    nesterov: output :math:`\beta_1 m_t + (1 - \beta_1) n_t` instead.
    use_clipping: clip the normalised gradient to :math:`[-c_t, c_t]`.
    clip_value_fn: step (int32, from 0) -> clipping value; None for
      :math:`t^{1/4}`.

  Returns:
    An ``optax.GradientTransformation`` whose state is an
    ``optax.ScaleByAdamState``.

  Raises:
    ValueError: on an argument :func:`check_hyperparameters` refuses or a bad
      mu_dtype.
  """
  mu_dtype, _ = _checked_dtypes(mu_dtype, None, b1=b1, b2=b2, eps=eps,
                                nesterov=nesterov, use_clipping=use_clipping)

  def init_fn(params):
    return ScaleByAdamState(*_zero_state(params, mu_dtype, None))

  def update_fn(updates, state, params=None):
    del params
    check_updates_like(updates, state.mu, 'scale_by_adopt')
    first = state.count == 0
    b1_, b2_ = jnp.where(first, 1, b1), jnp.where(first, 0, b2)
    clip = ((clip_value_fn or _quarter_power)(state.count) if use_clipping
            else None)

    def normalised(g, v):
      """g_t / max(sqrt(v_{t-1}), eps), clipped."""
      n = g / jnp.maximum(jnp.sqrt(v), eps)
      return n if clip is None else jnp.clip(n, -clip, clip)

    nu = jax.tree.map(lambda g, v: _second_moment(g, v, b2_), updates,
                      state.nu)
    n = jax.tree.map(normalised, updates, state.nu)
    mu = jax.tree.map(lambda n, m: _first_moment(n, m, b1_), n, state.mu)
    out = (jax.tree.map(lambda n, m: _first_moment(n, m, b1_), n, mu)
           if nesterov else mu)
    out = jax.tree.map(lambda u, g: _cast(u, _update_dtype(g)), out, updates)
    return out, ScaleByAdamState(optax.safe_increment(state.count),
                                 optax.tree.cast_like(mu, state.mu),
                                 optax.tree.cast_like(nu, state.nu))

  return optax.GradientTransformation(init_fn, update_fn)


def adopt(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.9999,
    eps: float = 1e-6,
    mu_dtype: Optional[DType] = None,
    *,
    nesterov: bool = False,
    use_clipping: bool = True,
    clip_value_fn: Optional[Callable[[jax.Array], jax.Array]] = None,
) -> optax.GradientTransformationExtraArgs:
  """ADOPT (:func:`scale_by_adopt`), as ``optax.contrib.adopt``.

  Args:
    learning_rate: a float >= 0 or a schedule.
    b1, b2, eps, mu_dtype, nesterov, use_clipping, clip_value_fn: as in
      :func:`scale_by_adopt`.

  Returns:
    An Optax gradient transformation.

  Raises:
    ValueError: on an out-of-range concrete hyperparameter.
  """
  check_hyperparameters(learning_rate=learning_rate)
  return optax.chain(
      scale_by_adopt(b1, b2, eps, mu_dtype, nesterov=nesterov,
                     use_clipping=use_clipping, clip_value_fn=clip_value_fn),
      optax.scale_by_learning_rate(learning_rate))


def scale_by_ademamix(
    b1: float = 0.9,
    b2: float = 0.999,
    b3: ScalarOrSchedule = 0.9999,
    alpha: ScalarOrSchedule = 6.0,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Optional[DType] = None,
) -> optax.GradientTransformation:
  r"""Rescales gradients as AdEMAMix (Pagliardini et al., 2024).

  Adam with a second, slow momentum whose weight :math:`\alpha` lets old
  gradients keep counting:

  .. math::

    m^{(1)}_t &= \beta_1 m^{(1)}_{t-1} + (1 - \beta_1) g_t, \qquad
    m^{(2)}_t = \beta_3 m^{(2)}_{t-1} + (1 - \beta_3) g_t \\
    u_t &= (\hat m^{(1)}_t + \alpha m^{(2)}_t) /
           (\sqrt{\hat v_t + \bar\varepsilon} + \varepsilon)

  with :math:`\hat m^{(1)}, \hat v` bias-corrected as in Adam and the slow
  momentum not (it fills slowly on purpose). :math:`\beta_3` and
  :math:`\alpha` may be schedules of the step (the paper warms both up).

  Args:
    b1: decay rate of the fast momentum, in [0, 1).
    b2: decay rate of the second moment, in [0, 1).
    b3: decay rate of the slow momentum, in [0, 1), or a schedule.
    alpha: weight of the slow momentum, >= 0, or a schedule.
    eps: added to the denominator outside the square root, >= 0.
    eps_root: added inside the square root, >= 0.
    mu_dtype: storage dtype of the three moments; None keeps the params'.

  Returns:
    An ``optax.GradientTransformation`` whose state is Optax's
    ``optax.contrib.ScaleByAdemamixState``.

  Raises:
    ValueError: on an argument :func:`check_hyperparameters` refuses or a bad
      mu_dtype.
  """
  mu_dtype, _ = _checked_dtypes(mu_dtype, None, b1=b1, b2=b2, b3=b3,
                                alpha=alpha, eps=eps, eps_root=eps_root)

  def init_fn(params):
    zeros = lambda: _first_moment_zeros(params, mu_dtype)
    return ScaleByAdemamixState(
        count=jnp.zeros([], jnp.int32), count_m2=jnp.zeros([], jnp.int32),
        m1=zeros(), m2=zeros(), nu=_real_moment_zeros(params, mu_dtype))

  def update_fn(updates, state, params=None):
    del params
    check_updates_like(updates, state.m1, 'scale_by_ademamix')
    b3_ = b3(state.count_m2) if callable(b3) else b3
    alpha_ = alpha(state.count_m2) if callable(alpha) else alpha
    count = optax.safe_increment(state.count)
    m1 = jax.tree.map(lambda g, m: _first_moment(g, m, b1), updates, state.m1)
    m2 = jax.tree.map(lambda g, m: _first_moment(g, m, b3_), updates,
                      state.m2)
    nu = jax.tree.map(lambda g, v: _second_moment(g, v, b2), updates,
                      state.nu)
    bc1, bc2 = _bias_correction(b1, count), _bias_correction(b2, count)

    def direction(g, m1, m2, v):
      """(m1_hat + alpha m2) / (sqrt(v_hat + eps_root) + eps)."""
      m1_hat = m1 / bc1.astype(m1.dtype)
      v_hat = v / bc2.astype(v.dtype)
      return _cast((m1_hat + alpha_ * m2) / (jnp.sqrt(v_hat + eps_root) + eps),
                   _update_dtype(g))

    out = jax.tree.map(direction, updates, m1, m2, nu)
    return out, ScaleByAdemamixState(
        count=count, count_m2=optax.safe_increment(state.count_m2),
        m1=optax.tree.cast_like(m1, state.m1),
        m2=optax.tree.cast_like(m2, state.m2),
        nu=optax.tree.cast_like(nu, state.nu))

  return optax.GradientTransformation(init_fn, update_fn)


def ademamix(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    b3: ScalarOrSchedule = 0.9999,
    alpha: ScalarOrSchedule = 5.0,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Optional[DType] = None,
    weight_decay: ScalarOrSchedule = 0.0,
    mask: MaskOrFn = None,
) -> optax.GradientTransformationExtraArgs:
  """AdEMAMix (:func:`scale_by_ademamix`), as ``optax.contrib.ademamix``.

  Args:
    learning_rate: a float >= 0 or a schedule.
    b1, b2, b3, alpha, eps, eps_root, mu_dtype: as in
      :func:`scale_by_ademamix`.
    weight_decay: decoupled weight decay, a float >= 0 or a schedule.
    mask: where weight decay applies (see :func:`adamw`).

  Returns:
    An Optax gradient transformation; ``update`` needs ``params`` when
    weight_decay is set.

  Raises:
    ValueError: on an out-of-range concrete hyperparameter.
  """
  check_hyperparameters(learning_rate=learning_rate, weight_decay=weight_decay)
  return optax.chain(
      scale_by_ademamix(b1, b2, b3, alpha, eps, eps_root, mu_dtype),
      optax.add_decayed_weights(weight_decay, mask),
      optax.scale_by_learning_rate(learning_rate))


def scale_by_radam(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    threshold: float = 5.0,
    *,
    nesterov: bool = False,
) -> optax.GradientTransformation:
  r"""Rescales gradients as Rectified Adam (Liu et al., ICLR 2020).

  Early on, Adam's :math:`\hat v_t` rests on few samples and its step has a
  large variance. RAdam estimates the length of the second moment's average,
  :math:`\rho_t = \rho_\infty - 2 t \beta_2^t / (1 - \beta_2^t)` with
  :math:`\rho_\infty = 2 / (1 - \beta_2) - 1`, and while
  :math:`\rho_t` < ``threshold`` takes plain momentum steps
  :math:`\hat m_t`; after, Adam's direction scaled by the rectification

  .. math::

    r_t = \sqrt{\frac{(\rho_t - 4)(\rho_t - 2)\rho_\infty}
                     {(\rho_\infty - 4)(\rho_\infty - 2)\rho_t}}.

  The paper's Algorithm 2 switches at :math:`\rho_t > 4`; the authors' code
  and ``optax.radam`` at 5, the default here.

  Args:
    b1: decay rate of the first moment, in [0, 1).
    b2: decay rate of the second moment, in [0, 1).
    eps: added to the denominator outside the square root, >= 0.
    eps_root: added inside the square root, >= 0.
    threshold: :math:`\rho_t` from which the adaptive step is used, >= 4.
    nesterov: use Nesterov momentum, as in :func:`scale_by_adam`.

  Returns:
    An ``optax.GradientTransformation`` whose state is an
    ``optax.ScaleByAdamState``.

  Raises:
    ValueError: on an argument :func:`check_hyperparameters` refuses.
  """
  check_hyperparameters(b1=b1, b2=b2, eps=eps, eps_root=eps_root,
                        threshold=threshold, nesterov=nesterov)
  rho_inf = 2 / (1 - b2) - 1

  def init_fn(params):
    return ScaleByAdamState(*_zero_state(params, None, None))

  def update_fn(updates, state, params=None):
    del params
    check_updates_like(updates, state.mu, 'scale_by_radam')
    count, mu, nu, nu_hat = _moments(updates, state, b1, b2, True)
    # As Optax computes it: rho_t - 4 comes out of a difference of numbers
    # near rho_inf, so its rounding decides the first rectified steps.
    b2t = b2**count
    rho = rho_inf - 2 * count * b2t / (1 - b2t)
    rect = jnp.sqrt((rho - 4) * (rho - 2) * rho_inf
                    / ((rho_inf - 4) * (rho_inf - 2) * rho))
    # The momentum step: m_hat, the Adam direction with a denominator of 1.
    plain = _directions(updates, mu, jax.tree.map(jnp.ones_like, nu_hat),
                        count, b1, 0.0, 0.0, nesterov, True)
    adaptive = _directions(updates, mu, nu_hat, count, b1, eps, eps_root,
                           nesterov, True)
    out = jax.tree.map(
        lambda a, p: jnp.where(rho >= threshold, rect.astype(a.dtype) * a, p),
        adaptive, plain)
    return out, ScaleByAdamState(count, optax.tree.cast_like(mu, state.mu),
                                 optax.tree.cast_like(nu, state.nu))

  return optax.GradientTransformation(init_fn, update_fn)


def radam(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    threshold: float = 5.0,
    *,
    nesterov: bool = False,
) -> optax.GradientTransformationExtraArgs:
  """Rectified Adam (:func:`scale_by_radam`), with ``optax.radam``'s arguments.

  Args:
    learning_rate: a float >= 0 or a schedule.
    b1, b2, eps, eps_root, threshold, nesterov: as in :func:`scale_by_radam`.

  Returns:
    An Optax gradient transformation.

  Raises:
    ValueError: on an out-of-range concrete hyperparameter.
  """
  check_hyperparameters(learning_rate=learning_rate)
  return optax.chain(
      scale_by_radam(b1, b2, eps, eps_root, threshold, nesterov=nesterov),
      optax.scale_by_learning_rate(learning_rate))


def cautious(inner: optax.GradientTransformation
             ) -> optax.GradientTransformation:
  r"""Masks `inner`'s direction where it disagrees with the gradient.

  Cautious Optimizers (Liang et al., 2024): with :math:`u_t` the inner
  direction (a descent step is :math:`-\alpha u_t`) and :math:`\phi_t =
  [u_t \odot g_t > 0]`, the output is :math:`u_t \odot \phi_t \cdot d /
  (\sum \phi_t + 1)` per leaf of :math:`d` elements, as the authors' code
  does: components that would step against the current gradient are
  dropped, and the rest scaled up so the step keeps its size. The state is
  `inner`'s own.

  Args:
    inner: a transformation whose updates are descent directions before the
      learning rate (e.g. :func:`scale_by_adam`), fed the raw gradients.

  Returns:
    An ``optax.GradientTransformation`` with `inner`'s state.
  """

  def update_fn(updates, state, params=None):
    direction, state = inner.update(updates, state, params)

    def mask(u, g):
      """u where it agrees with g, rescaled by size / (agreeing + 1)."""
      agree = (u * g > 0).astype(u.dtype)
      return u * agree * (agree.size / (jnp.sum(agree) + 1))

    return jax.tree.map(mask, direction, updates), state

  return optax.GradientTransformation(inner.init, update_fn)


def cautious_adam(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Optional[DType] = None,
    *,
    nesterov: bool = False,
) -> optax.GradientTransformationExtraArgs:
  """Cautious Adam: :func:`cautious` of :func:`scale_by_adam`.

  Args:
    learning_rate: a float >= 0 or a schedule.
    b1, b2, eps, eps_root, mu_dtype, nesterov: as in :func:`scale_by_adam`.

  Returns:
    An Optax gradient transformation.

  Raises:
    ValueError: on an out-of-range concrete hyperparameter.
  """
  check_hyperparameters(learning_rate=learning_rate)
  return optax.chain(
      cautious(scale_by_adam(b1, b2, eps, eps_root, mu_dtype,
                             nesterov=nesterov)),
      optax.scale_by_learning_rate(learning_rate))


def cautious_adamw(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Optional[DType] = None,
    weight_decay: ScalarOrSchedule = 1e-4,
    mask: MaskOrFn = None,
    *,
    nesterov: bool = False,
) -> optax.GradientTransformationExtraArgs:
  """Cautious AdamW (the paper's C-AdamW): decay is applied unmasked.

  Args:
    learning_rate: a float >= 0 or a schedule.
    b1, b2, eps, eps_root, mu_dtype, nesterov: as in :func:`scale_by_adam`.
    weight_decay: a float >= 0 or a schedule, multiplied by the rate.
    mask: where weight decay applies (see :func:`adamw`).

  Returns:
    An Optax gradient transformation; ``update`` needs ``params``.

  Raises:
    ValueError: on an out-of-range concrete hyperparameter.
  """
  check_hyperparameters(learning_rate=learning_rate, weight_decay=weight_decay)
  return optax.chain(
      cautious(scale_by_adam(b1, b2, eps, eps_root, mu_dtype,
                             nesterov=nesterov)),
      optax.add_decayed_weights(weight_decay, mask),
      optax.scale_by_learning_rate(learning_rate))
