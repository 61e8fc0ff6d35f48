"""The one optimizer registry: names -> Optax transformations, plus schedules.

Both the MNIST trainer and the 2-D playground build their optimizers here, so a
name means the same thing everywhere. This module also owns the list of
hyperparameters a user can set (HYPERPARAMETER_TYPES: the config's optimizer
slots) and the range each accepts, so a typo, a hyperparameter the optimizer
does not take or a value out of range is a `errors.ConfigError` naming the
field, its value and what is accepted, before any training starts.
"""

import functools
import inspect
import math
import numbers
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from adamjax.optim import lowmem
import adam_optax
from adamjax.common import errors

# name -> factory(learning_rate, **hyperparameters) -> GradientTransformation.
OPTIMIZERS: dict[str, Callable[..., optax.GradientTransformation]] = {
    'adam': adam_optax.adam,
    'adamw': adam_optax.adamw,
    'nadam': adam_optax.nadam,
    'nadamw': adam_optax.nadamw,
    'amsgrad': adam_optax.amsgrad,
    'adamax': adam_optax.adamax,
    'adamaxw': adam_optax.adamaxw,
    'optax_adam': optax.adam,
    'sgd': functools.partial(optax.sgd, momentum=None),
    'momentum': functools.partial(optax.sgd, momentum=0.9),
    'nesterov': functools.partial(optax.sgd, momentum=0.9, nesterov=True),
    'rmsprop': optax.rmsprop,
    'adagrad': optax.adagrad,
    'adadelta': optax.adadelta,
    'adam8bit': lowmem.adam8bit, 'adamw8bit': lowmem.adamw8bit,
}

# The hyperparameters a user can set (each is a config slot in
# configs/default.py, None meaning the optimizer's default), with their types.
# Keyword arguments of the factories that are not listed here (masks,
# accumulator dtypes, eps_in_sqrt, ...) keep their defaults.
HYPERPARAMETER_TYPES: dict[str, type] = {
    'b1': float,
    'b2': float,
    'eps': float,
    'eps_root': float,
    'weight_decay': float,
    'momentum': float,
    'decay': float,
    'rho': float,
    'initial_accumulator_value': float,
    'initial_scale': float,
    'nesterov': bool,
    'amsgrad': bool,
    'centered': bool,
    'bias_correction_mu': bool,
    'bias_correction_nu': bool,
    'mu_dtype': str,
    'nu_dtype': str,
}


class Interval(NamedTuple):
  """The accepted values of a float hyperparameter: [low, high] or [low, high).

  Attributes:
    low: the smallest accepted value (always included).
    high: the upper bound; math.inf for none.
    high_included: whether `high` itself is accepted.
  """
  low: float
  high: float
  high_included: bool

  def __contains__(self, value: float) -> bool:
    """Whether `value` (a finite real) lies in the interval."""
    if self.high_included:
      return self.low <= value <= self.high
    return self.low <= value < self.high

  def __str__(self) -> str:
    """The interval as a reader writes it: 'in [0, 1)' or '>= 0'."""
    if self.high == math.inf:
      return f'>= {self.low:g}'
    return f'in [{self.low:g}, {self.high:g}{"]" if self.high_included else ")"}'


_NON_NEGATIVE = Interval(0.0, math.inf, False)
# Exponential decay rates: 1 would never forget (Adam's bias correction then
# divides by zero), so Adam's b1 and b2, like SGD's momentum, stay below it.
_DECAY_BELOW_ONE = Interval(0.0, 1.0, False)
# RMSProp's decay and Adadelta's rho are well defined at 1 (the running
# average stays at its initial value).
_DECAY_UP_TO_ONE = Interval(0.0, 1.0, True)

# The accepted range of every float entry of HYPERPARAMETER_TYPES.
HYPERPARAMETER_RANGES: dict[str, Interval] = {
    'b1': _DECAY_BELOW_ONE,
    'b2': _DECAY_BELOW_ONE,
    'eps': _NON_NEGATIVE,
    'eps_root': _NON_NEGATIVE,
    'weight_decay': _NON_NEGATIVE,
    'momentum': _DECAY_BELOW_ONE,
    'decay': _DECAY_UP_TO_ONE,
    'rho': _DECAY_UP_TO_ONE,
    'initial_accumulator_value': _NON_NEGATIVE,
    'initial_scale': _NON_NEGATIVE,
}

# 'warmup_cosine' is 'cosine' under its older name: every schedule now takes
# the warm-up.
SCHEDULES = ('constant', 'cosine', 'warmup_cosine', 'inverse_sqrt')


def hyperparameters(name: str) -> tuple[str, ...]:
  """The hyperparameters of optimizer `name` that can be set, in its order.

  Args:
    name: a key of OPTIMIZERS.

  Returns:
    The names of its keyword arguments (besides the learning rate) that are
    keys of HYPERPARAMETER_TYPES.

  Raises:
    errors.ConfigError: if `name` is not in OPTIMIZERS.
  """
  _check_name(name)
  params = inspect.signature(OPTIMIZERS[name]).parameters
  return tuple(p for p in params if p in HYPERPARAMETER_TYPES)


def _is_real(value: Any) -> bool:
  """Whether `value` is a real number (Python or NumPy), bools excluded."""
  return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_learning_rate(learning_rate: Any) -> None:
  """Raises unless `learning_rate` is a schedule or a finite number >= 0."""
  if callable(learning_rate) or isinstance(learning_rate, jax.Array):
    # Schedules and (possibly traced) arrays cannot be checked here.
    return
  if not (_is_real(learning_rate) and math.isfinite(learning_rate)
          and learning_rate >= 0):
    raise errors.ConfigError(
        f'learning_rate={learning_rate!r} is invalid: it must be a finite '
        'number >= 0 (or a schedule).')


def _check_name(name: str) -> None:
  """Raises a ConfigError listing the registry if `name` is not in it."""
  if name not in OPTIMIZERS:
    raise errors.ConfigError(
        f'Unknown optimizer {name!r}; accepted: {", ".join(OPTIMIZERS)}.')


def _check_hyperparameter(optimizer: str, field: str, value: Any) -> None:
  """Raises a ConfigError unless `value` has the type and range of `field`."""
  kind = HYPERPARAMETER_TYPES[field]
  where = f'optimizer.{field}={value!r} (optimizer {optimizer!r})'
  if kind is bool:
    if not isinstance(value, bool):
      raise errors.ConfigError(f'{where} is invalid: it must be True or False.')
  elif kind is str:
    # A dtype name; None (the default) never reaches here.
    try:
      ok = jnp.issubdtype(jnp.dtype(value), jnp.floating)
    except TypeError:
      ok = False
    if not ok:
      raise errors.ConfigError(
          f'{where} is invalid: it must name a floating dtype such as '
          "'float32' or 'bfloat16'.")
  elif callable(value) or isinstance(value, jax.Array):
    # A schedule (e.g. adamw's weight_decay) or a possibly traced array (e.g.
    # under optax.inject_hyperparams): reading it would force a host sync or
    # fail, so it is the caller's to check.
    return
  else:
    accepted = HYPERPARAMETER_RANGES[field]
    if not (_is_real(value) and math.isfinite(value) and value in accepted):
      raise errors.ConfigError(
          f'{where} is out of range: it must be a finite number {accepted}.')


def _check_nesterov_has_momentum(name: str, hparams: dict[str, Any]) -> None:
  """Raises if Nesterov is asked of SGD or RMSProp without momentum.

  optax.sgd and optax.rmsprop silently ignore `nesterov` when momentum is
  unset or 0, so the run would not be what the config says.
  """
  params = inspect.signature(OPTIMIZERS[name]).parameters
  if 'momentum' not in params or 'nesterov' not in params:
    return  # The Adam family's Nesterov form needs no momentum setting.
  # The values in effect: set ones, else the registry's or Optax's defaults.
  nesterov = hparams.get('nesterov', params['nesterov'].default)
  momentum = hparams.get('momentum', params['momentum'].default)
  if nesterov is not True:
    return
  if not momentum:
    raise errors.ConfigError(
        f'optimizer.nesterov=True (optimizer {name!r}) needs a momentum in '
        f'(0, 1), but optimizer.momentum is {momentum!r}.')


def create_optimizer(
    name: str,
    learning_rate: optax.ScalarOrSchedule,
    grad_clip_norm: Optional[float] = None,
    **hparams: Any,
) -> optax.GradientTransformation:
  """Builds a registered optimizer.

  Args:
    name: a key of OPTIMIZERS.
    learning_rate: a finite float >= 0 or a schedule (step -> learning rate).
    grad_clip_norm: if set (finite, > 0), clip gradients to this global norm
      first.
    **hparams: optimizer-specific hyperparameters, keys of
      HYPERPARAMETER_TYPES (e.g. b1, weight_decay); entries whose value is
      None are ignored (the optimizer's default).

  Returns:
    The Optax gradient transformation.

  Raises:
    errors.ConfigError: on an unknown name, a hyperparameter the optimizer
      does not take, a value of the wrong type or out of its range
      (HYPERPARAMETER_RANGES), a negative or non-finite learning rate, a bad
      clipping norm, or any value the optimizer itself refuses.
  """
  accepted = hyperparameters(name)
  hparams = {k: v for k, v in hparams.items() if v is not None}
  unknown = sorted(set(hparams) - set(accepted))
  if unknown:
    raise errors.ConfigError(
        f'Optimizer {name!r} does not take {", ".join(unknown)}; it accepts: '
        f'learning_rate, {", ".join(accepted)}.')
  _check_learning_rate(learning_rate)
  for field, value in hparams.items():
    _check_hyperparameter(name, field, value)
  _check_nesterov_has_momentum(name, hparams)
  if grad_clip_norm is not None and not (
      _is_real(grad_clip_norm) and math.isfinite(grad_clip_norm)
      and grad_clip_norm > 0):
    raise errors.ConfigError(
        f'grad_clip_norm={grad_clip_norm!r} is invalid: it must be a finite '
        'number > 0 (or unset for no clipping).')
  try:
    tx = OPTIMIZERS[name](learning_rate=learning_rate, **hparams)
  except ValueError as e:
    # adam_optax checks its arguments at construction and raises plain
    # ValueErrors (it stands alone); they are the user's config here.
    raise errors.ConfigError(f'Optimizer {name!r}: {e}') from e
  if grad_clip_norm is None:
    return tx
  return optax.chain(optax.clip_by_global_norm(grad_clip_norm), tx)


def _after_warmup(name: str, learning_rate: float,
                  decay_steps: int) -> optax.ScalarOrSchedule:
  """The schedule `name` itself, counting its steps from the warm-up's end."""
  if name == 'constant':
    return learning_rate
  if name in ('cosine', 'warmup_cosine'):
    return optax.cosine_decay_schedule(learning_rate, decay_steps)
  if name == 'inverse_sqrt':
    # Optax counts steps from 0; the paper's t starts at 1. join_schedules
    # also evaluates this during the warm-up, at negative counts, whose root
    # must not be NaN (or complex for Python ints): hence the clamp.
    return lambda count: learning_rate / jnp.sqrt(jnp.maximum(count, 0) + 1)
  raise errors.ConfigError(
      f'Unknown schedule {name!r}; accepted: {", ".join(SCHEDULES)}.')


def create_schedule(
    name: str,
    learning_rate: float,
    total_steps: int,
    warmup_steps: int = 0,
) -> optax.ScalarOrSchedule:
  """Builds a learning-rate schedule, with an optional linear warm-up.

  Args:
    name: 'constant'; 'cosine' (decay to 0 by total_steps); 'inverse_sqrt'
      (the paper's alpha_t = alpha / sqrt(t), t = 1, 2, ...); 'warmup_cosine'
      is 'cosine' under its older name.
    learning_rate: the base (peak) learning rate.
    total_steps: the number of optimizer steps in the run (>= 1).
    warmup_steps: if > 0, the rate first rises linearly from 0 to
      learning_rate over this many steps, then follows schedule `name` as if
      the run started there (so 'cosine' with a warm-up is Optax's
      warmup_cosine_decay_schedule).

  Returns:
    A float for 'constant' without warm-up, otherwise a schedule
    (step -> learning rate).

  Raises:
    errors.ConfigError: on an unknown name, a bad learning rate, or a
      warm-up that is negative or not shorter than the run.
  """
  _check_learning_rate(learning_rate)
  if not (isinstance(total_steps, numbers.Integral) and total_steps >= 1):
    raise errors.ConfigError(
        f'total_steps={total_steps!r} is invalid: the run must have at least '
        'one optimizer step (check num_epochs and the dataset size).')
  if not (isinstance(warmup_steps, numbers.Integral)
          and 0 <= warmup_steps < total_steps):
    raise errors.ConfigError(
        f'warmup_steps={warmup_steps!r} is invalid: it must be an integer in '
        f'[0, total_steps={total_steps}).')
  schedule = _after_warmup(name, learning_rate, total_steps - warmup_steps)
  if warmup_steps == 0:
    return schedule
  warmup = optax.linear_schedule(0.0, learning_rate, warmup_steps)
  if not callable(schedule):
    schedule = optax.constant_schedule(schedule)
  return optax.join_schedules([warmup, schedule], [warmup_steps])


# How a low-precision parameter absorbs its update (config.param_rounding):
# round to nearest (plain), Kahan-compensated, or stochastically rounded.
PARAM_ROUNDINGS = ('nearest', 'kahan', 'stochastic')


def from_config(config: Any, total_steps: int) -> optax.GradientTransformation:
  """Builds the optimizer a config describes (outside any jitted code).

  Args:
    config: a ConfigDict with `optimizer` (name, learning_rate and optional
      hyperparameters), `schedule`, `warmup_steps`, `grad_clip_norm` and
      optionally `param_rounding` (one of PARAM_ROUNDINGS; with 'stochastic',
      `seed` seeds the rounding noise).
    total_steps: the number of optimizer steps in the run (for schedules).

  Returns:
    The Optax gradient transformation.

  Raises:
    errors.ConfigError: on any value create_schedule or create_optimizer
      refuses.
  """
  opt = dict(config.optimizer)
  name = opt.pop('name')
  learning_rate = opt.pop('learning_rate')
  schedule = create_schedule(config.schedule, learning_rate, total_steps,
                             config.warmup_steps)
  tx = create_optimizer(name, schedule, config.grad_clip_norm, **opt)
  rounding = config.get('param_rounding', 'nearest')
  if rounding == 'nearest':
    return tx
  # Last in the chain: it turns the final update into one that lands on the
  # low-precision parameter (adam_lowmem's docstrings say how).
  if rounding == 'kahan':
    return optax.chain(tx, lowmem.kahan_compensation())
  if rounding == 'stochastic':
    return optax.chain(tx, lowmem.stochastic_rounding(config.seed))
  raise errors.ConfigError(
      f'config.param_rounding={rounding!r} is invalid; accepted: '
      f'{", ".join(PARAM_ROUNDINGS)}.')
