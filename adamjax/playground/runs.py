"""Run bookkeeping: optimizer settings in, trajectories cut where they stopped.

A Run is one optimizer's path from the start point up to the first step whose
loss is below the tolerance, or up to the step cap, or (if the loss became
inf or NaN) up to the last finite step. Both front ends (the command line and
the web page) build their runs here.
"""

import math
from typing import Any, NamedTuple, Optional, Sequence

import numpy as np

from adamjax.common import checks
from adamjax.common import errors
from adamjax.optim import registry
from adamjax.playground import problems
from adamjax.playground import trajectories


class Run(NamedTuple):
  """One optimizer's trajectory, cut where it stopped.

  Attributes:
    optimizer: the registry name.
    learning_rate: the rate it ran with.
    points: (steps + 1, 2) points, the start first.
    losses: (steps + 1,) losses.
    steps_to_tolerance: the first step with loss < tolerance, or None.
    diverged: whether the loss became inf or NaN (the path stops before).
  """

  optimizer: str
  learning_rate: float
  points: np.ndarray
  losses: np.ndarray
  steps_to_tolerance: Optional[int]
  diverged: bool

  @property
  def label(self) -> str:
    """The name and rate."""
    return f'{self.optimizer}, lr={self.learning_rate:g}'

  @property
  def legend(self) -> str:
    """The label and how the run ended, for legends."""
    return f'{self.label} ({self.status})'

  @property
  def status(self) -> str:
    """How the run ended, in words."""
    if self.steps_to_tolerance is not None:
      return f'{self.steps_to_tolerance} steps'
    if self.diverged:
      return f'diverged at step {len(self.losses)}'
    return f'not reached in {len(self.losses) - 1} steps'


class Setting(NamedTuple):
  """One optimizer to run: a registry name, its rate and hyperparameters."""

  optimizer: str
  learning_rate: float
  hparams: dict[str, Any] = {}


def steps_to_tolerance(losses: np.ndarray, tolerance: float) -> np.ndarray:
  """The first step whose loss is below `tolerance`, or -1 if none is.

  Args:
    losses: (..., num_steps + 1) losses, step 0 (the start) first.
    tolerance: the threshold.

  Returns:
    An int array of shape losses.shape[:-1].
  """
  below = np.asarray(losses) < tolerance
  return np.where(below.any(axis=-1), np.argmax(below, axis=-1), -1)


def cut(optimizer: str, learning_rate: float, points: np.ndarray,
        losses: np.ndarray, tolerance: float) -> Run:
  """Cuts a full trajectory at its first step below tolerance or non-finite.

  Args:
    optimizer: the registry name.
    learning_rate: the rate.
    points: (num_steps + 1, 2) the whole trajectory, the start first.
    losses: (num_steps + 1,) its losses; the first must be finite.
    tolerance: the convergence threshold.

  Returns:
    The Run.
  """
  steps = int(steps_to_tolerance(losses, tolerance))
  finite = np.isfinite(losses) & np.isfinite(points).all(axis=-1)
  # A tolerance step after the loss went non-finite cannot happen (NaN and
  # inf are never below it), so the first test decides.
  if steps >= 0:
    return Run(optimizer, learning_rate, points[:steps + 1], losses[:steps + 1],
               steps, False)
  if finite.all():
    return Run(optimizer, learning_rate, points, losses, None, False)
  end = int(np.argmin(finite))
  return Run(optimizer, learning_rate, points[:end], losses[:end], None, True)


def check_start(problem: problems.Problem,
                start: tuple[float, float]) -> None:
  """Raises a ConfigError unless the loss at `start` is finite.

  Args:
    problem: the problem.
    start: the start point.
  """
  with np.errstate(over='ignore', invalid='ignore'):
    # Computed as the trajectories are, in float32, where 1e20**2 is inf.
    value = float(problem.loss(np.array(start, np.float32)))
  if not math.isfinite(value):
    checks.fail('start', start, f'a point where f is finite (f = {value} '
                f'there in float32), e.g. within x in {problem.xlim}, y in '
                f'{problem.ylim}')


def compute(problem: problems.Problem, settings: Sequence[Setting],
            start: tuple[float, float], num_steps: int, tolerance: float,
            max_steps: Optional[int] = None) -> list[Run]:
  """Runs several optimizers from one start in one jitted computation.

  Settings that differ only in numbers (rate, b1, ...) share a compiled
  program: they are vmapped together, and their values are traced.

  Args:
    problem: the function to minimize.
    settings: the optimizers to run, in order.
    start: the start point (x, y).
    num_steps: the step cap, >= 1.
    tolerance: a run stops at its first step with loss < tolerance.
    max_steps: the compiled buffer size (>= num_steps); None: num_steps. A
      fixed value lets num_steps change without recompiling.

  Returns:
    One Run per setting, in order.

  Raises:
    errors.ConfigError: on an unknown optimizer, a hyperparameter it does not
      take or a value out of range (the registry's checks), or if the loss at
      the start is not finite.
  """
  check_start(problem, start)
  for s in settings:
    # The registry's checks need concrete values; inside the computation the
    # numbers are traced, so they run here, on the real values, first. Any
    # ValueError from them is a bad setting, so it is reported as one.
    try:
      registry.create_optimizer(s.optimizer, s.learning_rate, **s.hparams)
    except ValueError as e:
      raise errors.ConfigError(f'{s.optimizer}: {e}') from e
  groups: dict[trajectories.Spec, list[int]] = {}
  numbers = []
  for i, s in enumerate(settings):
    spec, values = trajectories.split(s.optimizer, s.learning_rate, s.hparams)
    groups.setdefault(spec, []).append(i)
    numbers.append(values)
  stacked = tuple(
      {k: np.array([numbers[i][k] for i in members], np.float32)
       for k in numbers[members[0]]}
      for members in groups.values())
  results = trajectories.trajectories(
      np.array(start, np.float32), stacked, np.int32(num_steps),
      loss=problem.loss, specs=tuple(groups),
      max_steps=num_steps if max_steps is None else max_steps)
  runs: list[Optional[Run]] = [None] * len(settings)
  for members, (points, losses) in zip(groups.values(), results):
    points = np.asarray(points)[:, :num_steps + 1]
    losses = np.asarray(losses)[:, :num_steps + 1]
    for row, i in enumerate(members):
      runs[i] = cut(settings[i].optimizer, settings[i].learning_rate,
                    points[row], losses[row], tolerance)
  return runs


def optimize(
    problem: problems.Problem,
    optimizer: str,
    learning_rates: Sequence[float],
    start: tuple[float, float],
    max_steps: int,
    tolerance: float,
    **hparams: Any,
) -> list[Run]:
  """Runs one registry optimizer at each rate from one start, in one vmap.

  Args:
    problem: the function to minimize.
    optimizer: a name from registry.OPTIMIZERS.
    learning_rates: the rates, one run each.
    start: the start point (x, y).
    max_steps: the step cap.
    tolerance: a run stops at its first step with loss < tolerance.
    **hparams: the optimizer's hyperparameters (None: its default).

  Returns:
    One Run per rate, in order.
  """
  return compute(problem, [Setting(optimizer, lr, hparams)
                           for lr in learning_rates],
                 start, max_steps, tolerance)
