"""Adam and its family, written by hand as Optax gradient transformations.

The moment estimates, bias correction and update rule below follow Algorithm 1
of Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015
(https://arxiv.org/abs/1412.6980). Optax is used only for composition (chain,
learning-rate scaling, weight decay) and for its types, so every transformation
here drops into any Optax pipeline: ``optax.chain``, schedules,
``optax.inject_hyperparams``, ``optax.MultiSteps``, ``optax.masked``, clipping.

Everything is a pure ``init``/``update`` pair over pytrees; the step count lives
in the state, so the functions can be jitted, vmapped, scanned and checkpointed.

A drop-in for Optax's Adam family. Each of ``scale_by_adam``,
``scale_by_amsgrad``, ``scale_by_adamax``, ``adam``, ``adamw``, ``nadam``,
``nadamw``, ``amsgrad``, ``adamax`` and ``adamaxw`` takes Optax's arguments in
Optax's positional order with Optax's defaults (extra options are keyword-only),
and the states are Optax's own ``optax.ScaleByAdamState`` and
``optax.ScaleByAmsgradState``, so ``isinstance`` checks and
``optax.tree_utils.tree_get``/``tree_set`` work unchanged. Params may be real
or complex (the second moment is |g|^2 = conj(g) g), Python scalars, or
contain ``None`` leaves. Where we differ from Optax on purpose:

* Stricter arguments, checked at construction: a negative learning rate, eps,
  eps_root or weight decay, b1/b2 outside [0, 1), a non-bool flag and a
  non-floating dtype raise ``ValueError`` naming the argument (Optax accepts
  them and fails late or silently: b1 = 1 or b2 = 1 gives NaN updates from
  the first step, a negative rate ascends, the string 'False' is a true
  flag). Only concrete Python/NumPy numbers are checked; a jax array or a
  tracer (``inject_hyperparams``, ``vmap`` over rates) passes through
  unchecked, so traced and array-valued hyperparameters work as in Optax.
* Complex params: ``nu`` (and ``nu_max``, Adamax's ``u``) is stored in the
  real dtype (float32 for complex64), where Optax stores a complex array whose
  imaginary part stays 0: half the memory, and values equal to Optax's up to
  rounding (a few ulps per step), not bit for bit. A real ``mu_dtype`` for a
  complex leaf raises at ``init`` (Optax silently drops the imaginary part of
  the momentum).
* Integer (or Python ``int``) leaves get float moments and updates, as a
  float leaf would; Optax keeps their moments as integers, so nu rounds to 0
  after the first step.
* The arithmetic runs in at least float32 (bf16/fp16 moments are upcast in
  registers; Optax computes in bf16) and updates come back in the gradient's
  dtype. The extra options are keyword-only: ``nu_dtype``, ``amsgrad``, and
  ``bias_correction_mu`` / ``bias_correction_nu`` on the whole Adam family
  (Optax has the last two on ``amsgrad`` only, where ours take them
  positionally too).

For real float32 and float64 params with the default options, one jitted
step compiles to the same program as Optax's, so the results are
bit-identical.
"""

import numbers
from typing import Any, Callable, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np
import optax

__all__ = [
    'ScaleByAdamState',
    'ScaleByAmsgradState',
    'adam',
    'adamax',
    'adamaxw',
    'adamw',
    'amsgrad',
    'nadam',
    'nadamw',
    'scale_by_adam',
    'scale_by_adamax',
    'scale_by_amsgrad',
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


# ----------------------------------------------------------------------------
# Argument checks. They run at construction, on concrete Python/NumPy numbers
# only: a traced or array value (e.g. under optax.inject_hyperparams) is passed
# through unchecked, since inspecting it would force a host sync or fail.


def _is_concrete_number(value: Any) -> bool:
  """Whether `value` is a plain Python/NumPy real number we can check."""
  # numbers.Real covers np.float32 and np.int64, which are not Python floats
  # or ints; jax arrays (and so tracers) are not registered with it.
  return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_unit_interval(name: str, value: Any) -> None:
  """Raises unless a concrete `value` lies in [0, 1)."""
  if _is_concrete_number(value) and not 0.0 <= value < 1.0:
    raise ValueError(f'{name}={value!r} is invalid: it must lie in [0, 1).')


def _check_non_negative(name: str, value: Any) -> None:
  """Raises unless a concrete `value` is >= 0."""
  if _is_concrete_number(value) and not value >= 0.0:
    raise ValueError(f'{name}={value!r} is invalid: it must be >= 0.')


def _check_learning_rate(learning_rate: Any) -> None:
  """Raises unless `learning_rate` is a schedule or a concrete value >= 0."""
  if callable(learning_rate):
    return
  _check_non_negative('learning_rate', learning_rate)


def _check_flag(name: str, value: Any) -> None:
  """Raises unless `value` is a Python or NumPy bool.

  The flags choose the program that is traced, so they must be static: a
  traced flag could not be branched on, and a truthy non-bool such as the
  string 'False' would silently mean True.
  """
  if not isinstance(value, (bool, np.bool_)):
    raise ValueError(f'{name}={value!r} is invalid: it must be True or False.')


def _canonical_dtype(name: str, dtype: Optional[DType],
                     allow_complex: bool) -> Optional[jnp.dtype]:
  """Returns `dtype` as a floating (or complex) jnp.dtype or None, else raises.

  Args:
    name: the argument's name, for the error message.
    dtype: anything jnp.dtype accepts, or None.
    allow_complex: whether a complex dtype is accepted (mu may be complex; nu
      holds |g|^2, which is real).
  """
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


# ----------------------------------------------------------------------------
# Dtypes. Params may be any mix of real, complex, low-precision and integer
# (or Python scalar) leaves; every leaf gets moments it can be updated in.


def _default_float() -> jnp.dtype:
  """float32, or float64 when x64 is enabled."""
  return jax.dtypes.canonicalize_dtype(jnp.float64)


def _moment_dtype(leaf: Any, dtype: Optional[jnp.dtype],
                  real: bool) -> jnp.dtype:
  """The storage dtype of a moment of `leaf`.

  Args:
    leaf: a params leaf (array or Python scalar).
    dtype: the dtype asked for (mu_dtype or nu_dtype), or None for the
      leaf's own.
    real: whether the moment is real-valued (|g|^2, max |g|): complex leaves
      then get their real counterpart (float32 for complex64).

  Returns:
    `dtype` if given; else the leaf's dtype (its real counterpart if `real`),
    or the default float for integer and bool leaves, whose moments are not
    integers.
  """
  if dtype is not None:
    return dtype
  leaf_dtype = jnp.result_type(leaf)
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
  """Zeros like `params` for a real-valued moment (v_t, u_t), see above."""
  return jax.tree.map(
      lambda leaf: jnp.zeros_like(leaf, dtype=_moment_dtype(leaf, dtype, True)),
      params)


def _compute_dtype(*arrays: Any) -> jnp.dtype:
  """The common dtype of `arrays`, promoted to at least float32.

  bf16/fp16 moments are upcast in registers (the bytes moved are unchanged),
  so low-precision params and state do not also lose precision in the
  arithmetic; float64 stays float64; complex stays complex; integer and
  Python-scalar gradients compute in float.
  """
  return jnp.promote_types(jnp.result_type(*arrays), jnp.float32)


def _real_dtype(dtype: jnp.dtype) -> jnp.dtype:
  """float32 for complex64, float64 for complex128; real dtypes unchanged."""
  return jnp.finfo(dtype).dtype


def _cast(x: Any, dtype: jnp.dtype) -> jax.Array:
  """`x` as an array of `dtype`; a complex to real cast keeps the real part.

  Only used where the imaginary part is 0 (a real gradient's update computed
  with a complex mu_dtype), so nothing is lost, and the real part is taken
  explicitly rather than by a cast that warns.
  """
  x = jnp.asarray(x)
  if jnp.iscomplexobj(x) and not jnp.issubdtype(dtype, jnp.complexfloating):
    x = jnp.real(x)
  return x.astype(dtype)


def _update_dtype(g: Any) -> jnp.dtype:
  """Updates come back in the gradient's dtype (float for integer ones)."""
  dtype = jnp.result_type(g)
  return dtype if jnp.issubdtype(dtype, jnp.inexact) else _default_float()


def _real_hyperparameter(value: Any) -> Any:
  """The real part of a complex-typed array hyperparameter; others as is.

  optax.inject_hyperparams casts numeric hyperparameters to the params'
  dtype, so with complex params b1, b2, eps arrive as complex arrays with a
  zero imaginary part. Python numbers pass untouched (no new ops in the
  common case).
  """
  if isinstance(value, (jax.Array, np.ndarray)) and jnp.iscomplexobj(value):
    return jnp.real(value)
  return value


def _bias_correction(decay: jax.Array, count: jax.Array) -> jax.Array:
  """1 - decay**t in the widest enabled float (float32, or float64 with x64).

  Never in the moments' dtype: in bf16, 1 - 0.999**t rounds to 0 for small t.
  Under x64 a float32 factor would cap float64 Adam at float32 accuracy.
  """
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


def _squared_norm(g: Any, v: jax.Array) -> jax.Array:
  """|g_t|^2 in the real compute precision of `g` and `v`.

  For complex g this is conj(g) g, real and >= 0 (g * g would be complex and
  could be negative); for real g it is g * g, as in Optax.
  """
  dtype = _compute_dtype(g, v)
  g = jnp.asarray(g).astype(dtype)
  if jnp.iscomplexobj(g):
    return (g.conj() * g).real
  return g * g


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
    amsgrad: bool = False,
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

  With ``amsgrad=True`` (Reddi et al. 2018) the denominator uses
  :math:`\hat v^{max}_t = \max(\hat v^{max}_{t-1}, \hat v_t)`, the running
  maximum of the *bias-corrected* second moment. This is what
  ``optax.amsgrad`` does. PyTorch's ``Adam(amsgrad=True)`` instead keeps the
  maximum of the *raw* :math:`v_t` and divides it by the current
  :math:`1 - \beta_2^t`; the two agree at step 1 and differ afterwards. We
  follow Optax.

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
    nu_dtype: storage dtype of the second moment (and of ``nu_max``), a real
      floating dtype; None keeps the params' real dtype. Use float32 with bf16
      params: bf16's 8-bit mantissa cannot register the 0.1% change that
      b2 = 0.999 makes per step, so a bf16 v_t stops tracking the gradients.
    nesterov: use Nesterov momentum (NAdam).
    amsgrad: use the AMSGrad maximum of the second moment.
    bias_correction_mu: divide m_t by 1 - b1^t.
    bias_correction_nu: divide v_t by 1 - b2^t (before the AMSGrad maximum).

  Returns:
    An ``optax.GradientTransformation`` whose state is an
    ``optax.ScaleByAdamState`` (``optax.ScaleByAmsgradState`` with amsgrad).

  Raises:
    ValueError: if a concrete b1/b2 is outside [0, 1), a concrete eps/eps_root
      is negative, a flag is not a bool, or a dtype is not accepted; at
      ``init``, if a complex param meets a real ``mu_dtype``.

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
  _check_unit_interval('b1', b1)
  _check_unit_interval('b2', b2)
  _check_non_negative('eps', eps)
  _check_non_negative('eps_root', eps_root)
  for name, flag in [('nesterov', nesterov), ('amsgrad', amsgrad),
                     ('bias_correction_mu', bias_correction_mu),
                     ('bias_correction_nu', bias_correction_nu)]:
    _check_flag(name, flag)
  mu_dtype = _canonical_dtype('mu_dtype', mu_dtype, allow_complex=True)
  nu_dtype = _canonical_dtype('nu_dtype', nu_dtype, allow_complex=False)

  def init_fn(params):
    mu = _first_moment_zeros(params, mu_dtype)
    nu = _real_moment_zeros(params, nu_dtype)
    count = jnp.zeros([], jnp.int32)
    if amsgrad:
      nu_max = _real_moment_zeros(params, nu_dtype)
      return ScaleByAmsgradState(count=count, mu=mu, nu=nu, nu_max=nu_max)
    return ScaleByAdamState(count=count, mu=mu, nu=nu)

  def update_fn(updates, state, params=None):
    del params
    b1_, b2_, eps_, eps_root_ = map(_real_hyperparameter,
                                    (b1, b2, eps, eps_root))
    count = optax.safe_increment(state.count)
    bc1 = _bias_correction(b1_, count)
    bc2 = _bias_correction(b2_, count)
    # NAdam looks one step ahead: its momentum term is corrected with t + 1.
    bc1_next = _bias_correction(b1_, optax.safe_increment(count))

    def second_moment(g, v):
      """v_t = b2 v_{t-1} + (1 - b2) |g_t|^2, in compute precision."""
      g2 = _squared_norm(g, v)
      return (1 - b2_) * g2 + b2_ * v.astype(g2.dtype)

    def direction(g, m, v_hat):
      """u_t = m_hat_t / (sqrt(v_hat_t + eps_root) + eps), in g's dtype."""
      dtype = _compute_dtype(g, m, v_hat)
      g_, m = jnp.asarray(g).astype(dtype), m.astype(dtype)
      v_hat = v_hat.astype(_real_dtype(dtype))
      if nesterov and bias_correction_mu:
        m_hat = (b1_ * (m / bc1_next.astype(dtype))
                 + (1 - b1_) * (g_ / bc1.astype(dtype)))
      elif nesterov:
        m_hat = b1_ * m + (1 - b1_) * g_
      elif bias_correction_mu:
        m_hat = m / bc1.astype(dtype)
      else:
        m_hat = m
      return _cast(m_hat / (jnp.sqrt(v_hat + eps_root_) + eps_),
                   _update_dtype(g))

    mu = jax.tree.map(lambda g, m: _first_moment(g, m, b1_), updates, state.mu)
    nu = jax.tree.map(second_moment, updates, state.nu)
    if bias_correction_nu:
      nu_hat = jax.tree.map(lambda v: v / bc2.astype(v.dtype), nu)
    else:
      nu_hat = nu
    if amsgrad:
      nu_hat = jax.tree.map(lambda old, v: jnp.maximum(old.astype(v.dtype), v),
                            state.nu_max, nu_hat)
    updates = jax.tree.map(direction, updates, mu, nu_hat)

    mu = optax.tree.cast_like(mu, state.mu)
    nu = optax.tree.cast_like(nu, state.nu)
    if amsgrad:
      nu_max = optax.tree.cast_like(nu_hat, state.nu_max)
      return updates, ScaleByAmsgradState(count, mu, nu, nu_max)
    return updates, ScaleByAdamState(count, mu, nu)

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
) -> optax.GradientTransformation:
  """Rescales gradients by AMSGrad (Reddi et al., 2018), as Optax's.

  The same as :func:`scale_by_adam` with ``amsgrad=True``, with Optax's
  signature: the bias-correction switches come right after ``mu_dtype`` and
  may be passed positionally. Turn both off to match the AMSGrad paper, which
  takes the maximum of the raw second moment and does not correct the first.

  Args:
    b1: decay rate of the first moment, in [0, 1).
    b2: decay rate of the second moment, in [0, 1).
    eps: added to the denominator outside the square root, >= 0.
    eps_root: added inside the square root, >= 0.
    mu_dtype: storage dtype of the first moment; None keeps the params'.
    bias_correction_mu: divide m_t by 1 - b1^t.
    bias_correction_nu: divide v_t by 1 - b2^t before the running maximum.
    nu_dtype: storage dtype of nu and nu_max; None keeps the params' real
      dtype.

  Returns:
    An ``optax.GradientTransformation`` with an ``optax.ScaleByAmsgradState``.

  Raises:
    ValueError: as :func:`scale_by_adam`.
  """
  return scale_by_adam(b1, b2, eps, eps_root, mu_dtype, nu_dtype=nu_dtype,
                       amsgrad=True, bias_correction_mu=bias_correction_mu,
                       bias_correction_nu=bias_correction_nu)


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
  _check_unit_interval('b1', b1)
  _check_unit_interval('b2', b2)
  _check_non_negative('eps', eps)

  def init_fn(params):
    return ScaleByAdamState(
        count=jnp.zeros([], jnp.int32),
        mu=_first_moment_zeros(params, None),
        nu=_real_moment_zeros(params, None),
    )

  def update_fn(updates, state, params=None):
    del params
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


def _check_weight_decay(weight_decay: Any) -> None:
  """Raises unless `weight_decay` is a schedule or a concrete value >= 0."""
  if not callable(weight_decay):
    _check_non_negative('weight_decay', weight_decay)


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
    amsgrad: use the AMSGrad maximum (see :func:`amsgrad`).
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
  _check_learning_rate(learning_rate)
  return optax.chain(
      scale_by_adam(b1, b2, eps, eps_root, mu_dtype, nesterov=nesterov,
                    nu_dtype=nu_dtype, amsgrad=amsgrad,
                    bias_correction_mu=bias_correction_mu,
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
    amsgrad: use the AMSGrad maximum.
    bias_correction_mu: divide m_t by 1 - b1^t.
    bias_correction_nu: divide v_t by 1 - b2^t.

  Returns:
    An Optax gradient transformation; ``update`` needs ``params``.

  Raises:
    ValueError: on an out-of-range concrete hyperparameter, a non-bool flag
      or a bad dtype.
  """
  _check_learning_rate(learning_rate)
  _check_weight_decay(weight_decay)
  return optax.chain(
      scale_by_adam(b1, b2, eps, eps_root, mu_dtype, nesterov=nesterov,
                    nu_dtype=nu_dtype, amsgrad=amsgrad,
                    bias_correction_mu=bias_correction_mu,
                    bias_correction_nu=bias_correction_nu),
      optax.add_decayed_weights(weight_decay, mask),
      optax.scale_by_learning_rate(learning_rate),
  )


def nadam(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Optional[DType] = None,
    *,
    nu_dtype: Optional[DType] = None,
    nesterov: bool = True,
    bias_correction_mu: bool = True,
    bias_correction_nu: bool = True,
) -> optax.GradientTransformationExtraArgs:
  """Adam with Nesterov momentum (NAdam, Dozat 2016), as ``optax.nadam``.

  Like ``optax.nadam`` (which is ``adam`` with ``nesterov=True`` bound), it
  takes ``nesterov``, and ``nesterov=False`` gives plain Adam.

  Args:
    learning_rate: a float >= 0 or a schedule.
    b1: decay rate of the first moment, in [0, 1).
    b2: decay rate of the second moment, in [0, 1).
    eps: added to the denominator outside the square root, >= 0.
    eps_root: added inside the square root, >= 0.
    mu_dtype: storage dtype of the first moment.
    nu_dtype: storage dtype of the second moment.
    nesterov: use Nesterov momentum.
    bias_correction_mu: apply the two bias corrections of the momentum term.
    bias_correction_nu: divide v_t by 1 - b2^t.

  Returns:
    An Optax gradient transformation.
  """
  return adam(learning_rate, b1, b2, eps, eps_root, mu_dtype,
              nesterov=nesterov, nu_dtype=nu_dtype,
              bias_correction_mu=bias_correction_mu,
              bias_correction_nu=bias_correction_nu)


def nadamw(
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
    nesterov: bool = True,
    bias_correction_mu: bool = True,
    bias_correction_nu: bool = True,
) -> optax.GradientTransformationExtraArgs:
  """NAdam with decoupled weight decay, as ``optax.nadamw``.

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
    nesterov: use Nesterov momentum.
    bias_correction_mu: apply the two bias corrections of the momentum term.
    bias_correction_nu: divide v_t by 1 - b2^t.

  Returns:
    An Optax gradient transformation; ``update`` needs ``params``.
  """
  return adamw(learning_rate, b1, b2, eps, eps_root, mu_dtype, weight_decay,
               mask, nesterov=nesterov, nu_dtype=nu_dtype,
               bias_correction_mu=bias_correction_mu,
               bias_correction_nu=bias_correction_nu)


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
  """AMSGrad (Reddi et al., 2018) as ``optax.amsgrad`` (see scale_by_adam).

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
  """
  _check_learning_rate(learning_rate)
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
  """
  _check_learning_rate(learning_rate)
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
  """
  _check_learning_rate(learning_rate)
  _check_weight_decay(weight_decay)
  return optax.chain(
      scale_by_adamax(b1, b2, eps),
      optax.add_decayed_weights(weight_decay, mask),
      optax.scale_by_learning_rate(learning_rate),
  )
