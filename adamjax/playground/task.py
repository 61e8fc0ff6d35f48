"""The command-line playground task: check the config, run, write the outputs.

  python main.py --config=configs/quadratic.py --workdir=/tmp/playground

Every check here runs before any computation and raises errors.ConfigError
naming the field, its value and what is accepted; main.py prints it in one
line. The checks of single values are public: the web page applies the same
ones to what the user types.
"""

import math
import os
from typing import Any

import ml_collections

from adamjax.common import errors
from adamjax.optim import registry
from adamjax.playground import problems
from adamjax.playground import runs as runs_lib
from adamjax.playground import writers

MAX_STEPS = 1_000_000  # Buffers are (runs, steps + 1, 2) float32.
DPI_RANGE = (10, 300)  # Above 300 the GIF's frames take gigabytes.


def _is_number(value: Any) -> bool:
  """Whether `value` is an int or float (not a bool)."""
  return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_start(start: Any, problem: problems.Problem,
                field: str = 'start') -> tuple[float, float]:
  """Checks a start point: two finite numbers where the loss is finite.

  Args:
    start: the value to check.
    problem: the problem it is a start of.
    field: the setting's name, for the message.

  Returns:
    (x, y) as floats.

  Raises:
    errors.ConfigError: naming the field, the value and what is accepted.
  """
  if not (isinstance(start, (tuple, list)) and len(start) == 2 and all(
      _is_number(v) and math.isfinite(v) for v in start)):
    raise errors.ConfigError(
        f'{field}={start!r} is invalid; accepted: None (the problem\'s default '
        'start) or two finite numbers, e.g. --config.start="(1.5, -1.0)".')
  start = float(start[0]), float(start[1])
  runs_lib.check_start(problem, start, field)
  return start


def check_tolerance(tolerance: Any, field: str = 'tolerance') -> float:
  """Returns `tolerance` as a float; raises unless it is finite and > 0."""
  if not (_is_number(tolerance) and math.isfinite(tolerance)
          and tolerance > 0):
    # inf would count the start as converged: "0 steps".
    raise errors.ConfigError(f'{field}={tolerance!r} is invalid; accepted: a '
                             'finite number > 0, e.g. 1e-6.')
  return float(tolerance)


def check_steps(steps: Any, field: str = 'max_steps',
                most: int = MAX_STEPS) -> int:
  """Returns `steps`; raises unless it is an integer in [1, most]."""
  if not (isinstance(steps, int) and not isinstance(steps, bool)
          and 1 <= steps <= most):
    raise errors.ConfigError(f'{field}={steps!r} is invalid; accepted: an '
                             f'integer from 1 to {most}.')
  return steps


def check_optimizer_name(name: Any, field: str) -> str:
  """Returns `name`; raises unless it is a key of registry.OPTIMIZERS."""
  if not (isinstance(name, str) and name in registry.OPTIMIZERS):
    raise errors.ConfigError(
        f'{field} has unknown optimizer {name!r}; accepted: '
        f'{", ".join(registry.OPTIMIZERS)}.')
  return name


def _check_settings(config: ml_collections.ConfigDict) -> None:
  """Raises a ConfigError naming any invalid run setting."""
  check_steps(config.max_steps)
  check_tolerance(config.tolerance)
  dpi = config.dpi
  if not (isinstance(dpi, int) and not isinstance(dpi, bool)
          and DPI_RANGE[0] <= dpi <= DPI_RANGE[1]):
    raise errors.ConfigError(
        f'dpi={dpi!r} is invalid; accepted: an integer from {DPI_RANGE[0]} to '
        f'{DPI_RANGE[1]} (pixels per inch; the contour plot is 7.5 x 5 '
        'inches).')
  for rate in config.learning_rates:
    if not _is_number(rate):
      raise errors.ConfigError(
          f'learning_rates={config.learning_rates!r} holds {rate!r}; accepted: '
          'numbers, e.g. --config.learning_rates="(0.01, 0.1, 0.5)".')
  if config.compare and config.learning_rates:
    raise errors.ConfigError(
        f'compare=True and learning_rates={config.learning_rates!r} cannot be '
        'combined; accepted: one of them (compare runs every optimizer at '
        'one rate each; learning_rates sweeps one optimizer).')
  for name in config.compare_optimizers:
    check_optimizer_name(
        name, f'compare_optimizers={config.compare_optimizers!r}')
  for name in config.compare_learning_rates:
    check_optimizer_name(name, 'compare_learning_rates')


def _settings(config: ml_collections.ConfigDict) -> tuple[list, str]:
  """The optimizers to run and the output stem, per the config's mode."""
  opt = config.optimizer.to_dict()
  name = opt.pop('name')
  rate = opt.pop('learning_rate')
  if config.compare:
    settings = []
    for other in config.compare_optimizers or registry.OPTIMIZERS:
      own = config.compare_learning_rates.get(other)
      settings.append(runs_lib.Setting(other, rate if own is None else own))
    return settings, f'{config.problem}_compare'
  if config.learning_rates:
    return ([runs_lib.Setting(name, lr, opt) for lr in config.learning_rates],
            f'{config.problem}_{name}_lr_sweep')
  return [runs_lib.Setting(name, rate, opt)], f'{config.problem}_{name}'


def run(config: ml_collections.ConfigDict, workdir: str) -> None:
  """Runs the playground task and writes its pictures and tables.

  Three modes: one optimizer at one rate (the default); one optimizer at each
  of `config.learning_rates` (one vmapped computation, one panel per rate);
  and `config.compare`, every registry optimizer (or those named in
  `config.compare_optimizers`) at its default hyperparameters and
  `config.optimizer.learning_rate`, or its entry in
  `config.compare_learning_rates`. One shared rate is the default because
  the comparison is "same knob, different algorithm": at Adam's 0.1 plain
  SGD diverges on the ill-conditioned quadratic, and the tables say so
  ("diverged at step N"); set an optimizer's own rate to see it converge.

  Writes `<stem>_contour.png`, `<stem>_loss.png`, `<stem>_trajectories.csv`,
  `<stem>_summary.csv`, `<stem>_summary.md` and (if `config.animate`)
  `<stem>.gif` to `workdir`, where the stem is `<problem>_<optimizer>`,
  `<problem>_<optimizer>_lr_sweep` or `<problem>_compare`.

  Args:
    config: the playground config (see configs/quadratic.py).
    workdir: the folder for the outputs (created if missing).

  Raises:
    errors.ConfigError: on an unknown problem or optimizer, or a bad setting.
  """
  problem = problems.get_problem(config.problem)
  start = (problem.start if config.start is None
           else check_start(config.start, problem))
  _check_settings(config)
  settings, stem = _settings(config)
  runs = runs_lib.compute(problem, settings, start, config.max_steps,
                          config.tolerance)

  print(f'{problem.formula} from {start}, tolerance {config.tolerance:g}, '
        f'at most {config.max_steps} steps:')
  for r in runs:
    x, y = r.points[-1]
    print(f'  {r.label}: {r.status}; final point ({x:.6g}, {y:.6g}), '
          f'loss {r.losses[-1]:.3g}')

  # Imported here: matplotlib loads only when a figure is drawn.
  from adamjax.playground import figures  # pylint: disable=g-import-not-at-top
  os.makedirs(workdir, exist_ok=True)
  stem = os.path.join(workdir, stem)
  draw = figures.panels_figure if config.learning_rates else (
      figures.contour_figure)
  figures.save_png(draw(problem, runs, config.dpi), stem + '_contour.png')
  figures.save_png(figures.loss_figure(runs, config.tolerance, config.dpi),
                   stem + '_loss.png')
  writers.write_trajectories_csv(stem + '_trajectories.csv', runs)
  writers.write_summary(stem + '_summary', runs)
  suffixes = ['_contour.png', '_loss.png', '_trajectories.csv',
              '_summary.csv', '_summary.md']
  if config.animate:
    figures.write_gif(stem + '.gif', problem, runs, config.dpi)
    suffixes.append('.gif')
  print('Wrote ' + ', '.join(stem + suffix for suffix in suffixes))
