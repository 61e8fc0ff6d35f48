"""The one optimizer registry: names -> Optax transformations.

The trainer, the comparison and the playground all build optimizers here, so a
name means the same everywhere. HYPERPARAMETERS defines the config's
`optimizer` slots, so a typo or bad value fails before any training starts.
"""

import functools
import inspect
from typing import Any, Callable, NamedTuple, Optional

import jax
import optax

import adam_optax
from adamjax.common import checks
from adamjax.common import errors
from adamjax.optim import lowmem
from adamjax.optim import schedules


class Entry(NamedTuple):
  """A registered optimizer.

  Attributes:
    factory: (learning_rate, **hyperparameters) -> GradientTransformation.
    learning_rate: a rate commonly used for a small CNN at batch 64; the
      comparison centres its search grid on it.
  """
  factory: Callable[..., optax.GradientTransformation]
  learning_rate: float


REGISTRY: dict[str, Entry] = {
    'adam': Entry(adam_optax.adam, 1e-3),
    'adamw': Entry(adam_optax.adamw, 1e-3),
    'nadam': Entry(adam_optax.nadam, 1e-3),
    'nadamw': Entry(adam_optax.nadamw, 1e-3),
    'amsgrad': Entry(adam_optax.amsgrad, 1e-3),
    'adamax': Entry(adam_optax.adamax, 2e-3),
    'adamaxw': Entry(adam_optax.adamaxw, 2e-3),
    'adopt': Entry(adam_optax.adopt, 1e-3),
    'ademamix': Entry(adam_optax.ademamix, 1e-3),
    'radam': Entry(adam_optax.radam, 1e-3),
    'cautious_adam': Entry(adam_optax.cautious_adam, 1e-3),
    'cautious_adamw': Entry(adam_optax.cautious_adamw, 1e-3),
    'optax_adam': Entry(optax.adam, 1e-3),
    'sgd': Entry(functools.partial(optax.sgd, momentum=None), 0.1),
    'momentum': Entry(functools.partial(optax.sgd, momentum=0.9), 0.01),
    'nesterov': Entry(functools.partial(optax.sgd, momentum=0.9,
                                        nesterov=True), 0.01),
    'rmsprop': Entry(optax.rmsprop, 1e-3),
    'adagrad': Entry(optax.adagrad, 0.01),
    'adadelta': Entry(optax.adadelta, 1.0),
    # Outside references: Lion takes sign steps, so a rate ~10x below Adam's.
    'lion': Entry(optax.lion, 1e-4),
    'adabelief': Entry(optax.adabelief, 1e-3),
    'adam8bit': Entry(lowmem.adam8bit, 1e-3),
    'adamw8bit': Entry(lowmem.adamw8bit, 1e-3),
    'adam4bit': Entry(lowmem.adam4bit, 1e-3),
    'adamw4bit': Entry(lowmem.adamw4bit, 1e-3),
}
OPTIMIZERS = {name: entry.factory for name, entry in REGISTRY.items()}
DEFAULT_LEARNING_RATES = {name: e.learning_rate for name, e in REGISTRY.items()}


class Hyperparameter(NamedTuple):
  """A hyperparameter a user can set: its type, range and meaning."""
  kind: type
  help: str
  accepted: Optional[checks.Range] = None


# Factory arguments not listed here (masks, accumulator dtypes, ...) keep their
# defaults. RMSProp's decay and Adadelta's rho may be 1 (the average stays
# put); Adam's b1 and b2 may not (the bias correction divides by zero).
HYPERPARAMETERS: dict[str, Hyperparameter] = {
    'b1': Hyperparameter(float, 'Adam family: decay of the first moment',
                         checks.BELOW_ONE),
    'b2': Hyperparameter(float, 'Adam family: decay of the second moment',
                         checks.BELOW_ONE),
    'b3': Hyperparameter(float, 'ademamix: decay of the slow momentum',
                         checks.BELOW_ONE),
    'alpha': Hyperparameter(float, 'ademamix: weight of the slow momentum',
                            checks.NON_NEGATIVE),
    'threshold': Hyperparameter(float, 'radam: the rho_t from which the '
                                'adaptive step is used', checks.Range(4.0)),
    'eps': Hyperparameter(float, 'Adam family and RMSProp: added to the '
                          'denominator', checks.NON_NEGATIVE),
    'eps_root': Hyperparameter(float, 'Adam family: added inside the square '
                               'root', checks.NON_NEGATIVE),
    'weight_decay': Hyperparameter(float, 'decoupled weight decay (adamw, '
                                   'nadamw, adamaxw, adamw8bit, adamw4bit, '
                                   'ademamix, cautious_adamw, lion)',
                                   checks.NON_NEGATIVE),
    'momentum': Hyperparameter(float, 'momentum of sgd/rmsprop',
                               checks.BELOW_ONE),
    'decay': Hyperparameter(float, 'rmsprop: decay of the squared-gradient '
                            'average', checks.UNIT),
    'rho': Hyperparameter(float, 'adadelta: decay of the averages',
                          checks.UNIT),
    'initial_accumulator_value': Hyperparameter(
        float, 'adagrad: starting accumulator', checks.NON_NEGATIVE),
    'initial_scale': Hyperparameter(
        float, 'rmsprop: starting squared-gradient average',
        checks.NON_NEGATIVE),
    'nesterov': Hyperparameter(bool, 'use the Nesterov form of momentum '
                               '(sgd, nadam)'),
    'amsgrad': Hyperparameter(bool, 'Adam: keep the running maximum of the '
                              'second moment'),
    'use_clipping': Hyperparameter(bool, 'adopt: clip the normalised '
                                   'gradient to step**0.25'),
    'centered': Hyperparameter(bool, 'rmsprop: divide by the centred '
                               'variance'),
    'bias_correction_mu': Hyperparameter(
        bool, "Adam: divide the first moment by 1 - b1^t (the paper's "
        'correction)'),
    'bias_correction_nu': Hyperparameter(
        bool, "Adam: divide the second moment by 1 - b2^t (the paper's "
        'correction)'),
    'mu_dtype': Hyperparameter(str, 'storage dtype of the first moment '
                               '(e.g. bfloat16)'),
    'nu_dtype': Hyperparameter(str, 'storage dtype of the second moment'),
}
HYPERPARAMETER_TYPES = {k: h.kind for k, h in HYPERPARAMETERS.items()}
HYPERPARAMETER_RANGES = {k: h.accepted for k, h in HYPERPARAMETERS.items()
                         if h.kind is float}

# How a low-precision parameter absorbs its update (config.param_rounding).
PARAM_ROUNDINGS = ('nearest', 'kahan', 'stochastic')


def hyperparameters(name: str) -> tuple[str, ...]:
  """The hyperparameters of optimizer `name` that can be set, in its order.

  Args:
    name: a key of OPTIMIZERS.

  Returns:
    Its keyword arguments that are keys of HYPERPARAMETERS.

  Raises:
    errors.ConfigError: if `name` is not in OPTIMIZERS.
  """
  checks.choice('optimizer.name', name, OPTIMIZERS)
  params = inspect.signature(OPTIMIZERS[name]).parameters
  return tuple(p for p in params if p in HYPERPARAMETERS)


def _is_traced(value: Any) -> bool:
  """A schedule or a (possibly traced) array: the caller's to check."""
  return callable(value) or isinstance(value, jax.Array)


def check_hyperparameter(optimizer: str, field: str, value: Any) -> None:
  """Raises a ConfigError unless `value` has the type and range of `field`."""
  name, hyperparameter = f'optimizer.{field}', HYPERPARAMETERS[field]
  try:
    if hyperparameter.kind is bool:
      checks.boolean(name, value)
    elif hyperparameter.kind is str:
      checks.dtype_name(name, value)
    elif not _is_traced(value):
      checks.number(name, value, hyperparameter.accepted)
  except errors.ConfigError as e:
    raise errors.ConfigError(f'Optimizer {optimizer!r}: {e}') from None


def _check_nesterov_has_momentum(name: str, hparams: dict[str, Any]) -> None:
  """Refuses Nesterov without momentum, which optax.sgd/rmsprop ignore."""
  params = inspect.signature(OPTIMIZERS[name]).parameters
  if 'momentum' not in params or 'nesterov' not in params:
    return  # The Adam family's Nesterov form needs no momentum setting.
  nesterov = hparams.get('nesterov', params['nesterov'].default)
  momentum = hparams.get('momentum', params['momentum'].default)
  if nesterov is True and not momentum:
    raise errors.ConfigError(
        f'optimizer.nesterov=True (optimizer {name!r}) needs a momentum in '
        f'(0, 1), but optimizer.momentum is {momentum!r}.')


def _gradients_like_params(tx: optax.GradientTransformation, name: str
                           ) -> optax.GradientTransformation:
  """`tx` whose update first checks the gradients against the params."""
  # Optax's own optimizers meet a mismatched tree deep in tree_map (or, for
  # plain sgd, not at all until apply_updates). Shapes only, so it adds no
  # ops; the state is tx's own, so checkpoints and results are unchanged.
  def update_fn(updates, state, params=None):
    if params is not None:
      adam_optax.check_updates_like(updates, params, f'optimizer {name!r}')
    return tx.update(updates, state, params)
  return optax.GradientTransformation(tx.init, update_fn)


def create_optimizer(
    name: str,
    learning_rate: optax.ScalarOrSchedule,
    grad_clip_norm: Optional[float] = None,
    **hparams: Any,
) -> optax.GradientTransformation:
  """Builds a registered optimizer.

  Args:
    name: a key of OPTIMIZERS.
    learning_rate: a finite float >= 0 or a schedule.
    grad_clip_norm: if set, clip gradients to this global norm first.
    **hparams: keys of HYPERPARAMETERS (e.g. b1); None keeps the default.

  Raises:
    errors.ConfigError: on an unknown name or hyperparameter, or a value of
      the wrong type, out of range, or refused by the optimizer.
  """
  accepted = hyperparameters(name)
  hparams = {k: v for k, v in hparams.items() if v is not None}
  unknown = sorted(set(hparams) - set(accepted))
  if unknown:
    raise errors.ConfigError(
        f'Optimizer {name!r} does not take {", ".join(unknown)}; it accepts: '
        f'learning_rate, {", ".join(accepted)}.')
  if not _is_traced(learning_rate):
    checks.number('optimizer.learning_rate', learning_rate,
                  schedules.LEARNING_RATE)
  for field, value in hparams.items():
    check_hyperparameter(name, field, value)
  _check_nesterov_has_momentum(name, hparams)
  checks.number('grad_clip_norm', grad_clip_norm, checks.POSITIVE,
                optional=True)
  try:
    tx = OPTIMIZERS[name](learning_rate=learning_rate, **hparams)
  except ValueError as e:
    # adam_optax stands alone and raises plain ValueErrors; here they are
    # the user's config.
    raise errors.ConfigError(f'Optimizer {name!r}: {e}') from e
  tx = _gradients_like_params(tx, name)
  if grad_clip_norm is None:
    return tx
  return optax.chain(optax.clip_by_global_norm(grad_clip_norm), tx)


def from_config(
    optimizer: Any,
    *,
    total_steps: int,
    schedule: str = 'constant',
    warmup_steps: int = 0,
    grad_clip_norm: Optional[float] = None,
    param_rounding: str = 'nearest',
    seed: int = 0,
) -> optax.GradientTransformation:
  """Builds the optimizer of a config's `optimizer` slice (outside any jit).

  Args:
    optimizer: the `optimizer` ConfigDict or dict: name, learning_rate and
      hyperparameters.
    total_steps: optimizer steps in the run.
    schedule: one of schedules.SCHEDULES.
    warmup_steps: linear warm-up steps.
    grad_clip_norm: as in create_optimizer.
    param_rounding: one of PARAM_ROUNDINGS.
    seed: seeds param_rounding='stochastic'.

  Raises:
    errors.ConfigError: on any value schedules.create_schedule or
      create_optimizer refuses.
  """
  opt = dict(optimizer)
  name = opt.pop('name')
  learning_rate = opt.pop('learning_rate')
  checks.choice('param_rounding', param_rounding, PARAM_ROUNDINGS)
  rate = schedules.create_schedule(schedule, learning_rate, total_steps,
                                   warmup_steps)
  tx = create_optimizer(name, rate, grad_clip_norm, **opt)
  # Last in the chain: it turns the final update into one that lands on the
  # low-precision parameter (see lowmem's docstrings).
  if param_rounding == 'kahan':
    return optax.chain(tx, lowmem.kahan_compensation())
  if param_rounding == 'stochastic':
    return optax.chain(tx, lowmem.stochastic_rounding(seed))
  return tx
