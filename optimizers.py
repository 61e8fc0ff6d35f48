"""The one optimizer registry: names -> Optax transformations, plus schedules.

Both the MNIST trainer and the 2-D playground build their optimizers here, so a
name means the same thing everywhere. Hyperparameters are checked against the
chosen optimizer's signature, so a typo or a hyperparameter that the optimizer
does not take is an error that lists what it does take.
"""

import functools
import inspect
import math
from typing import Any, Callable, Optional

import optax

import adam_optax

# name -> factory(learning_rate, **hyperparameters) -> GradientTransformation.
OPTIMIZERS: dict[str, Callable[..., optax.GradientTransformation]] = {
    'adam': adam_optax.adam,
    'adamw': adam_optax.adamw,
    'nadam': adam_optax.nadam,
    'amsgrad': adam_optax.amsgrad,
    'adamax': adam_optax.adamax,
    'optax_adam': optax.adam,
    'sgd': functools.partial(optax.sgd, momentum=None),
    'momentum': functools.partial(optax.sgd, momentum=0.9),
    'nesterov': functools.partial(optax.sgd, momentum=0.9, nesterov=True),
    'rmsprop': optax.rmsprop,
    'adagrad': optax.adagrad,
    'adadelta': optax.adadelta,
}

SCHEDULES = ('constant', 'cosine', 'warmup_cosine', 'inverse_sqrt')


def hyperparameters(name: str) -> tuple[str, ...]:
  """The keyword hyperparameters optimizer `name` accepts (besides the lr)."""
  _check_name(name)
  params = inspect.signature(OPTIMIZERS[name]).parameters
  return tuple(p for p in params if p != 'learning_rate')


def _check_learning_rate(learning_rate: Any) -> None:
  """Raises unless `learning_rate` is a schedule or a finite float >= 0."""
  if callable(learning_rate):
    return
  if not (math.isfinite(learning_rate) and learning_rate >= 0):
    raise ValueError(f'learning_rate={learning_rate!r} is invalid: it must be '
                     'a finite number >= 0 (or a schedule).')


def _check_name(name: str) -> None:
  """Raises a ValueError listing the registry if `name` is not in it."""
  if name not in OPTIMIZERS:
    raise ValueError(
        f'Unknown optimizer {name!r}; accepted: {", ".join(OPTIMIZERS)}.')


def create_optimizer(
    name: str,
    learning_rate: optax.ScalarOrSchedule,
    grad_clip_norm: Optional[float] = None,
    **hparams: Any,
) -> optax.GradientTransformation:
  """Builds a registered optimizer.

  Args:
    name: a key of OPTIMIZERS.
    learning_rate: a float >= 0 or a schedule (step -> learning rate).
    grad_clip_norm: if set (> 0), clip gradients to this global norm first.
    **hparams: optimizer-specific hyperparameters (e.g. b1, weight_decay);
      entries whose value is None are ignored (the optimizer's default).

  Returns:
    The Optax gradient transformation.

  Raises:
    ValueError: on an unknown name, a hyperparameter the optimizer does not
      take, a negative learning rate or a non-positive clipping norm.
  """
  accepted = hyperparameters(name)
  hparams = {k: v for k, v in hparams.items() if v is not None}
  unknown = sorted(set(hparams) - set(accepted))
  if unknown:
    raise ValueError(
        f'Optimizer {name!r} does not take {", ".join(unknown)}; it accepts: '
        f'learning_rate, {", ".join(accepted)}.')
  _check_learning_rate(learning_rate)
  tx = OPTIMIZERS[name](learning_rate=learning_rate, **hparams)
  if grad_clip_norm is None:
    return tx
  if not grad_clip_norm > 0:
    raise ValueError(f'grad_clip_norm={grad_clip_norm!r} is invalid: it must '
                     'be > 0 (or unset for no clipping).')
  return optax.chain(optax.clip_by_global_norm(grad_clip_norm), tx)


def create_schedule(
    name: str,
    learning_rate: float,
    total_steps: int,
    warmup_steps: int = 0,
) -> optax.ScalarOrSchedule:
  """Builds a learning-rate schedule.

  Args:
    name: 'constant'; 'cosine' (decay to 0 over total_steps);
      'warmup_cosine' (linear warm-up for warmup_steps, then cosine to 0);
      'inverse_sqrt' (the paper's alpha_t = alpha / sqrt(t), t = 1, 2, ...).
    learning_rate: the base (peak) learning rate.
    total_steps: the number of optimizer steps in the run.
    warmup_steps: the warm-up length for 'warmup_cosine'.

  Returns:
    A float for 'constant', otherwise a schedule (step -> learning rate).

  Raises:
    ValueError: on an unknown name or warm-up longer than the run.
  """
  _check_learning_rate(learning_rate)
  if name == 'constant':
    return learning_rate
  if name == 'cosine':
    return optax.cosine_decay_schedule(learning_rate, total_steps)
  if name == 'warmup_cosine':
    if not 0 <= warmup_steps < total_steps:
      raise ValueError(
          f'warmup_steps={warmup_steps} is invalid: it must lie in '
          f'[0, total_steps={total_steps}).')
    return optax.warmup_cosine_decay_schedule(
        0.0, learning_rate, warmup_steps, total_steps)
  if name == 'inverse_sqrt':
    # Optax counts steps from 0; the paper's t starts at 1.
    return lambda count: learning_rate / (count + 1) ** 0.5
  raise ValueError(
      f'Unknown schedule {name!r}; accepted: {", ".join(SCHEDULES)}.')


def from_config(config: Any, total_steps: int) -> optax.GradientTransformation:
  """Builds the optimizer a config describes (outside any jitted code).

  Args:
    config: a ConfigDict with `optimizer` (name, learning_rate and optional
      hyperparameters), `schedule`, `warmup_steps` and `grad_clip_norm`.
    total_steps: the number of optimizer steps in the run (for schedules).

  Returns:
    The Optax gradient transformation.
  """
  opt = dict(config.optimizer)
  name = opt.pop('name')
  learning_rate = opt.pop('learning_rate')
  schedule = create_schedule(config.schedule, learning_rate, total_steps,
                             config.warmup_steps)
  return create_optimizer(name, schedule, config.grad_clip_norm, **opt)
