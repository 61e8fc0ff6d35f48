"""The command-line playground task: check the config, run, write the outputs.

  python main.py --config=configs/quadratic.py --workdir=/tmp/playground

Every setting is checked (adamjax.common.checks) before any computation.
"""

import os
from typing import Any

import ml_collections

from adamjax import schema
from adamjax.common import checks
from adamjax.common import errors
from adamjax.optim import registry
from adamjax.playground import problems
from adamjax.playground import runs as runs_lib
from adamjax.playground import writers

def optimizer_name(name: str, value: Any) -> str:
  """Checks a key of registry.OPTIMIZERS (a check for checks.sequence)."""
  return checks.choice(name, value, registry.OPTIMIZERS)


def _start(config: ml_collections.ConfigDict,
           problem: problems.Problem) -> tuple[float, float]:
  """The start point: the problem's default, or the config's if inside."""
  if config.start is None:
    return problem.start
  start = tuple(float(v) for v in config.start)
  runs_lib.check_start(problem, start)
  return start


def _check_settings(config: ml_collections.ConfigDict) -> None:
  """The schema's checks, then the one between two fields."""
  schema.validate(config)
  if config.compare and config.learning_rates:
    raise errors.ConfigError(
        f'compare=True and learning_rates={config.learning_rates!r} cannot be '
        'combined; accepted: one of them (compare runs every optimizer at '
        'one rate each; learning_rates sweeps one optimizer).')


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
  _check_settings(config)
  start = _start(config, problem)
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
