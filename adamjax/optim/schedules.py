"""Learning-rate schedules by name, each with an optional linear warm-up."""

import jax.numpy as jnp
import optax

from adamjax.common import checks
from adamjax.common import errors

# A learning rate: 0 freezes the parameters; a negative one would ascend.
LEARNING_RATE = checks.NON_NEGATIVE
# 'warmup_cosine': the older name of 'cosine' (every schedule takes a warm-up).
SCHEDULES = ('constant', 'cosine', 'warmup_cosine', 'inverse_sqrt')


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
  checks.fail('schedule', name, ', '.join(SCHEDULES))


def create_schedule(
    name: str,
    learning_rate: float,
    total_steps: int,
    warmup_steps: int = 0,
) -> optax.ScalarOrSchedule:
  """Builds a learning-rate schedule, with an optional linear warm-up.

  Args:
    name: one of SCHEDULES: 'constant'; 'cosine' (to 0 by total_steps);
      'inverse_sqrt' (the paper's alpha_t = alpha / sqrt(t), t = 1, 2, ...).
    learning_rate: the base (peak) learning rate.
    total_steps: optimizer steps in the run (>= 1).
    warmup_steps: steps of a linear rise from 0, after which schedule `name`
      runs as if the run started there.

  Returns:
    A float for 'constant' without warm-up, otherwise a schedule.

  Raises:
    errors.ConfigError: on an unknown name, a bad learning rate, or a
      warm-up that is negative or not shorter than the run.
  """
  checks.number('learning_rate', learning_rate, LEARNING_RATE)
  if not (checks.is_int(total_steps) and total_steps >= 1):
    raise errors.ConfigError(
        f'total_steps={total_steps!r} is invalid: the run must have at least '
        'one optimizer step (check num_epochs and the dataset size).')
  if not (checks.is_int(warmup_steps) and 0 <= warmup_steps < total_steps):
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

