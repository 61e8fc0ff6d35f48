"""Adam and its family, written by hand as Optax gradient transformations.

The moment estimates, bias correction and update rule below follow Algorithm 1
of Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015
(https://arxiv.org/abs/1412.6980). Optax is used only for composition (chain,
learning-rate scaling, weight decay) and for its types, so every transformation
here drops into any Optax pipeline: ``optax.chain``, schedules,
``optax.inject_hyperparams``, ``optax.MultiSteps``, ``optax.masked``, clipping.

Everything is a pure ``init``/``update`` pair over pytrees; the step count lives
in the state, so the functions can be jitted, vmapped, scanned and checkpointed.
"""

import numbers
from typing import Any, Callable, NamedTuple, Optional, Union

import jax
import jax.numpy as jnp
import optax

__all__ = [
    'ScaleByAdamState',
    'ScaleByAmsgradState',
    'adam',
    'adamax',
    'adamw',
    'amsgrad',
    'nadam',
    'scale_by_adam',
    'scale_by_adamax',
]

ScalarOrSchedule = Union[float, jax.Array, optax.Schedule]
DType = Any


class ScaleByAdamState(NamedTuple):
  """State of :func:`scale_by_adam` (and :func:`scale_by_adamax`).

  Attributes:
    count: int32 scalar, the number of updates applied so far (saturates at
      the int32 maximum instead of overflowing).
    mu: first-moment estimate m_t, a pytree like the params.
    nu: second-moment estimate v_t (for Adamax: the infinity norm u_t).
  """

  count: jax.Array
  mu: optax.Updates
  nu: optax.Updates


class ScaleByAmsgradState(NamedTuple):
  """State of :func:`scale_by_adam` with ``amsgrad=True``.

  Attributes:
    count: int32 scalar, the number of updates applied so far.
    mu: first-moment estimate m_t.
    nu: second-moment estimate v_t.
    nu_max: running element-wise maximum of the bias-corrected v_t.
  """

  count: jax.Array
  mu: optax.Updates
  nu: optax.Updates
  nu_max: optax.Updates


# ----------------------------------------------------------------------------
# Argument checks. They run at construction, on concrete Python numbers only:
# a traced or array value (e.g. under optax.inject_hyperparams) is passed
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


def _canonical_dtype(name: str, dtype: Optional[DType]) -> Optional[jnp.dtype]:
  """Returns `dtype` as a floating jnp.dtype (or None), else raises."""
  if dtype is None:
    return None
  try:
    canonical = jnp.dtype(dtype)
  except TypeError as e:
    raise ValueError(
        f'{name}={dtype!r} is not a dtype; accepted: None or a floating '
        "dtype such as 'float32', 'bfloat16', 'float16'."
    ) from e
  if not jnp.issubdtype(canonical, jnp.floating):
    raise ValueError(
        f'{name}={dtype!r} is not a floating dtype; accepted: None or a '
        "floating dtype such as 'float32', 'bfloat16', 'float16'."
    )
  return jax.dtypes.canonicalize_dtype(canonical)


def _reject_complex(params: optax.Params) -> None:
  """Raises if any leaf is complex (the second moment here assumes reals)."""
  for leaf in jax.tree.leaves(params):
    if jnp.iscomplexobj(leaf):
      raise ValueError(
          f'adam_optax supports real parameters only; got a leaf of dtype '
          f'{jnp.asarray(leaf).dtype} and shape {jnp.shape(leaf)}.'
      )


def _upcast(*arrays: jax.Array) -> tuple[jax.Array, ...]:
  """Casts `arrays` to their common dtype, promoted to at least float32.

  bf16/fp16 moments are upcast in registers (the bytes moved are unchanged),
  so low-precision params and state do not also lose precision in the
  arithmetic; float64 stays float64.
  """
  dtype = jnp.promote_types(jnp.result_type(*arrays), jnp.float32)
  return tuple(x.astype(dtype) for x in arrays)


def _bias_correction(decay: jax.Array, count: jax.Array) -> jax.Array:
  """1 - decay**t in the widest enabled float (float32, or float64 with x64).

  Never in the moments' dtype: in bf16, 1 - 0.999**t rounds to 0 for small t.
  Under x64 a float32 factor would cap float64 Adam at float32 accuracy.
  """
  dtype = jax.dtypes.canonicalize_dtype(jnp.float64)
  return 1 - jnp.asarray(decay, dtype) ** count.astype(dtype)


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
) -> optax.GradientTransformation:
  r"""Rescales gradients by Adam's bias-corrected moment estimates.

  With gradient :math:`g_t` at step :math:`t = 1, 2, \dots`:

  .. math::

    m_t &= \beta_1 m_{t-1} + (1 - \beta_1) g_t \\
    v_t &= \beta_2 v_{t-1} + (1 - \beta_2) g_t^2 \\
    \hat m_t &= m_t / (1 - \beta_1^t), \qquad
    \hat v_t = v_t / (1 - \beta_2^t) \\
    u_t &= \hat m_t / (\sqrt{\hat v_t + \bar\varepsilon} + \varepsilon)

  The output is :math:`u_t`, the direction only: chain it with
  ``optax.scale_by_learning_rate`` (as :func:`adam` does) to get a descent step.

  With ``nesterov=True`` (NAdam, Dozat 2016), :math:`\hat m_t` becomes
  :math:`\beta_1 m_t / (1 - \beta_1^{t+1}) + (1 - \beta_1) g_t / (1 -
  \beta_1^t)`, as in ``optax.nadam``.

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
    mu_dtype: storage dtype of the first moment; None keeps the params' dtype.
    nu_dtype: storage dtype of the second moment (and of ``nu_max``); None
      keeps the params' dtype. Use float32 with bf16 params: bf16's 8-bit
      mantissa cannot register the 0.1% change that b2 = 0.999 makes per
      step, so a bf16 v_t stops tracking the gradients.
    nesterov: use Nesterov momentum (NAdam).
    amsgrad: use the AMSGrad maximum of the second moment.

  Returns:
    An ``optax.GradientTransformation`` whose state is a
    :class:`ScaleByAdamState` (or :class:`ScaleByAmsgradState` with amsgrad).

  Raises:
    ValueError: if a concrete b1/b2 is outside [0, 1), a concrete eps/eps_root
      is negative, or a dtype is not a floating dtype.

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
  mu_dtype = _canonical_dtype('mu_dtype', mu_dtype)
  nu_dtype = _canonical_dtype('nu_dtype', nu_dtype)

  def init_fn(params):
    _reject_complex(params)
    mu = optax.tree.zeros_like(params, dtype=mu_dtype)
    nu = optax.tree.zeros_like(params, dtype=nu_dtype)
    count = jnp.zeros([], jnp.int32)
    if amsgrad:
      nu_max = optax.tree.zeros_like(params, dtype=nu_dtype)
      return ScaleByAmsgradState(count=count, mu=mu, nu=nu, nu_max=nu_max)
    return ScaleByAdamState(count=count, mu=mu, nu=nu)

  def update_fn(updates, state, params=None):
    del params
    count = optax.safe_increment(state.count)
    bc1 = _bias_correction(b1, count)
    bc2 = _bias_correction(b2, count)
    # NAdam looks one step ahead: its momentum term is corrected with t + 1.
    bc1_next = _bias_correction(b1, optax.safe_increment(count))

    def first_moment(g, m):
      """m_t = b1 m_{t-1} + (1 - b1) g_t, in compute precision."""
      g, m = _upcast(g, m)
      return (1 - b1) * g + b1 * m

    def second_moment(g, v):
      """v_t = b2 v_{t-1} + (1 - b2) g_t^2, in compute precision."""
      g, v = _upcast(g, v)
      return (1 - b2) * (g * g) + b2 * v

    def direction(g, m, v_hat):
      """u_t = m_hat_t / (sqrt(v_hat_t + eps_root) + eps), in g's dtype."""
      g_, m, v_hat = _upcast(g, m, v_hat)
      if nesterov:
        m_hat = (b1 * (m / bc1_next.astype(m.dtype))
                 + (1 - b1) * (g_ / bc1.astype(m.dtype)))
      else:
        m_hat = m / bc1.astype(m.dtype)
      return (m_hat / (jnp.sqrt(v_hat + eps_root) + eps)).astype(g.dtype)

    mu = jax.tree.map(first_moment, updates, state.mu)
    nu = jax.tree.map(second_moment, updates, state.nu)
    nu_hat = jax.tree.map(lambda v: v / bc2.astype(v.dtype), nu)
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
  :math:`u_t` needs no bias correction (section 7.1).

  Args:
    b1: decay rate of the first moment, in [0, 1).
    b2: decay rate of the infinity norm, in [0, 1).
    eps: added to |g_t| inside the maximum, >= 0.

  Returns:
    An ``optax.GradientTransformation`` with a :class:`ScaleByAdamState`
    whose ``nu`` holds :math:`u_t`.

  Raises:
    ValueError: if a concrete b1/b2 is outside [0, 1) or eps is negative.
  """
  _check_unit_interval('b1', b1)
  _check_unit_interval('b2', b2)
  _check_non_negative('eps', eps)

  def init_fn(params):
    _reject_complex(params)
    return ScaleByAdamState(
        count=jnp.zeros([], jnp.int32),
        mu=optax.tree.zeros_like(params),
        nu=optax.tree.zeros_like(params),
    )

  def update_fn(updates, state, params=None):
    del params
    count = optax.safe_increment(state.count)
    bc1 = _bias_correction(b1, count)

    def first_moment(g, m):
      """m_t = b1 m_{t-1} + (1 - b1) g_t, in compute precision."""
      g, m = _upcast(g, m)
      return (1 - b1) * g + b1 * m

    def infinity_norm(g, u):
      """u_t = max(b2 u_{t-1}, |g_t| + eps), in compute precision."""
      g, u = _upcast(g, u)
      return jnp.maximum(jnp.abs(g) + eps, b2 * u)

    def direction(g, m, u):
      """d_t = (m_t / (1 - b1^t)) / u_t, in g's dtype."""
      m, u = _upcast(m, u)
      return (m / bc1.astype(m.dtype) / u).astype(g.dtype)

    mu = jax.tree.map(first_moment, updates, state.mu)
    nu = jax.tree.map(infinity_norm, updates, state.nu)
    updates = jax.tree.map(direction, updates, mu, nu)
    return updates, ScaleByAdamState(count, optax.tree.cast_like(mu, state.mu),
                                     optax.tree.cast_like(nu, state.nu))

  return optax.GradientTransformation(init_fn, update_fn)


# ----------------------------------------------------------------------------
# Optimizers: a direction, then (for AdamW) decoupled weight decay, then the
# learning rate with a minus sign. All return optax.GradientTransformation(s).


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

  Returns:
    An Optax gradient transformation; its ``update`` returns the step to add
    with ``optax.apply_updates``.

  Raises:
    ValueError: on an out-of-range concrete hyperparameter or a bad dtype.

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
      scale_by_adam(b1, b2, eps, eps_root, mu_dtype, nu_dtype=nu_dtype,
                    nesterov=nesterov, amsgrad=amsgrad),
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
    mask: Optional[Union[Any, Callable[[optax.Params], Any]]] = None,
    *,
    nu_dtype: Optional[DType] = None,
    nesterov: bool = False,
    amsgrad: bool = False,
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
    nesterov: use Nesterov momentum.
    amsgrad: use the AMSGrad maximum.

  Returns:
    An Optax gradient transformation; ``update`` needs ``params``.

  Raises:
    ValueError: on an out-of-range concrete hyperparameter or a bad dtype.
  """
  _check_learning_rate(learning_rate)
  if not callable(weight_decay):
    _check_non_negative('weight_decay', weight_decay)
  return optax.chain(
      scale_by_adam(b1, b2, eps, eps_root, mu_dtype, nu_dtype=nu_dtype,
                    nesterov=nesterov, amsgrad=amsgrad),
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
) -> optax.GradientTransformationExtraArgs:
  """Adam with Nesterov momentum (NAdam, Dozat 2016), as ``optax.nadam``.

  Args:
    learning_rate: a float >= 0 or a schedule.
    b1: decay rate of the first moment, in [0, 1).
    b2: decay rate of the second moment, in [0, 1).
    eps: added to the denominator outside the square root, >= 0.
    eps_root: added inside the square root, >= 0.
    mu_dtype: storage dtype of the first moment.
    nu_dtype: storage dtype of the second moment.

  Returns:
    An Optax gradient transformation.
  """
  return adam(learning_rate, b1, b2, eps, eps_root, mu_dtype,
              nu_dtype=nu_dtype, nesterov=True)


def amsgrad(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Optional[DType] = None,
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
    nu_dtype: storage dtype of the second moments.

  Returns:
    An Optax gradient transformation.
  """
  return adam(learning_rate, b1, b2, eps, eps_root, mu_dtype,
              nu_dtype=nu_dtype, amsgrad=True)


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
