"""Compares optimizers on one model: the same start, the same batches, one table.

  python main.py --config=configs/compare.py --workdir=/tmp/compare \
      --config.data_dir=/path/to/mnist

Every run is an ordinary training run (`train.train_and_evaluate`) in its own
folder, so each resumes from its checkpoints and a killed comparison, rerun
with the same command, continues where it stopped. Into the workdir go:

  lr_search/<optimizer>/lr_<rate>/   the search runs (with config.lr_search)
  lr_search.md, lr_search.csv        every grid point's validation result
  runs/<optimizer>/seed_<seed>/      metrics.jsonl, config.json, checkpoints,
                                     tensorboard: a single run's outputs
  loss.png                           training loss vs step (log y): the raw
                                     mean over seeds, faint, under its
                                     smoothed curve and the seeds' spread
  accuracy.png                       test accuracy vs epoch, mean and spread
  summary.md, summary.csv            one row per optimizer (mean over seeds)
  runs.csv                           one row per run (optimizer, seed)
  identical.txt                      pairs of optimizers whose runs agree
                                     bit for bit (ours and Optax's Adam)

Fair by construction: every run of a seed builds its initial parameters and
its data-order key from that seed alone (setup.setup), so all optimizers
start from the same parameters and see the same batches in the same order.

The learning-rate search trains each optimizer without a fixed rate (an entry
in config.learning_rates) for config.lr_search_epochs at each point of its
grid (DEFAULT_LEARNING_RATES times config.lr_search_factors), with the last
config.lr_search_validation_examples training examples held out, and takes
the rate that scores best by config.lr_search_metric (SEARCH_METRICS): by
default the highest validation accuracy (ties: the lower validation loss);
'train_loss' is Kingma & Ba's rule, the lowest training cost. A diverged run
never wins. The search never evaluates on the test split (the trainer drops
it when validation_examples > 0).
"""

import dataclasses
import json
import logging as std_logging
import math
import os
import time
from typing import Any, Optional, Sequence

from absl import logging
import ml_collections
import numpy as np

from adamjax.trainer import checkpointing
from adamjax.common import errors
from adamjax.trainer import metrics_log
from adamjax.optim import registry
from adamjax.trainer import setup
import train

# Centre of each optimizer's search grid, and its rate when there is neither
# an entry in config.learning_rates nor a search: rates commonly used for a
# small CNN at batch 64 (Optax's and the frameworks' usual defaults).
DEFAULT_LEARNING_RATES = {
    'adam': 1e-3, 'optax_adam': 1e-3, 'adamw': 1e-3, 'nadam': 1e-3,
    'amsgrad': 1e-3, 'adamax': 2e-3, 'nadamw': 1e-3, 'sgd': 0.1,
    'momentum': 0.01, 'nesterov': 0.01, 'rmsprop': 1e-3, 'adagrad': 0.01,
    'adadelta': 1.0,
}

# Fields of the comparison config that a single run does not have.
COMPARE_FIELDS = ('optimizers', 'learning_rates', 'seeds', 'target_accuracy',
                  'lr_search', 'lr_search_factors', 'lr_search_epochs',
                  'lr_search_validation_examples', 'lr_search_metric',
                  'loss_smoothing', 'dpi', 'report_only')

# How the search ranks a grid point, by its last epoch's metrics: a key that
# is larger for the better run (the second entry breaks ties).
SEARCH_METRICS = {
    'val_accuracy': lambda m: (m['val_accuracy'], -m['val_loss']),
    'val_loss': lambda m: (-m['val_loss'], m['val_accuracy']),
    'train_loss': lambda m: (-m['train_loss'], m['val_accuracy']),
}
# Hyperparameters of config.optimizer that are not per-optimizer settings.
_NOT_HPARAMS = ('name', 'learning_rate')
DIVERGED_FILE = 'diverged.txt'
RUNS_DIR, SEARCH_DIR = 'runs', 'lr_search'
SUMMARY_HEADER = ('optimizer', 'learning_rate', 'hyperparameters', 'seeds',
                  'final_test_accuracy', 'final_test_accuracy_std',
                  'best_test_accuracy', 'final_train_loss',
                  'epochs_to_target', 'time_to_target_s', 'train_time_s')
RUNS_HEADER = ('optimizer', 'learning_rate', 'seed', 'final_test_accuracy',
               'best_test_accuracy', 'best_epoch', 'final_train_loss',
               'epoch_to_target', 'time_to_target_s', 'train_time_s', 'status')
SEARCH_HEADER = ('optimizer', 'learning_rate', 'val_accuracy', 'val_loss',
                 'train_loss', 'chosen', 'status')


def _is_number(value: Any) -> bool:
  """Whether `value` is an int or float (not a bool)."""
  return isinstance(value, (int, float)) and not isinstance(value, bool)


def hyperparameters(config: ml_collections.ConfigDict,
                    name: str) -> dict[str, Any]:
  """The set config.optimizer hyperparameters that optimizer `name` takes.

  Args:
    config: the comparison config.
    name: a registry name.

  Returns:
    {field: value} for each non-None field of config.optimizer (other than
    name and learning_rate) in registry.hyperparameters(name).
  """
  accepted = registry.hyperparameters(name)
  return {k: v for k, v in config.optimizer.items()
          if k not in _NOT_HPARAMS and v is not None and k in accepted}


def label(name: str, learning_rate: float, hparams: dict[str, Any]) -> str:
  """The legend label: the name, the rate and any set hyperparameters."""
  extra = ''.join(f', {k}={v:g}' if _is_number(v) else f', {k}={v}'
                  for k, v in sorted(hparams.items()))
  return f'{name}, lr={learning_rate:g}{extra}'


def check_config(config: ml_collections.ConfigDict) -> None:
  """Checks the comparison's own fields and every run's optimizer, up front.

  Raises:
    errors.ConfigError: naming the bad field or entry, its value and what is
      accepted.
  """
  names = config.optimizers
  if (not isinstance(names, (tuple, list)) or not names or
      not all(isinstance(n, str) for n in names)):
    raise errors.ConfigError(
        f'config.optimizers={names!r} is invalid: accepted is a non-empty '
        'tuple of registry names, e.g. --config.optimizers="(\'adam\',\'sgd\')".')
  for name in names:
    if name not in registry.OPTIMIZERS:
      raise errors.ConfigError(
          f'config.optimizers has unknown optimizer {name!r}; accepted: '
          f'{", ".join(registry.OPTIMIZERS)}.')
  duplicates = sorted({n for n in names if names.count(n) > 1})
  if duplicates:
    raise errors.ConfigError(
        f'config.optimizers={tuple(names)!r} lists {", ".join(duplicates)} '
        'more than once; accepted: each name once.')
  for name, rate in config.learning_rates.items():
    if name not in registry.OPTIMIZERS:
      raise errors.ConfigError(
          f'config.learning_rates.{name} names no registry optimizer; '
          f'accepted: {", ".join(registry.OPTIMIZERS)}.')
    if rate is not None and not (_is_number(rate) and math.isfinite(rate)
                                 and rate > 0):
      raise errors.ConfigError(
          f'config.learning_rates.{name}={rate!r} is invalid: accepted is None '
          '(searched or default) or a finite number > 0.')
  seeds = config.seeds
  if (not isinstance(seeds, (tuple, list)) or not seeds or not all(
      isinstance(s, int) and not isinstance(s, bool) and 0 <= s < 2**32
      for s in seeds) or len(set(seeds)) != len(seeds)):
    raise errors.ConfigError(
        f'config.seeds={seeds!r} is invalid: accepted is a non-empty tuple of '
        'distinct integers in [0, 2**32), e.g. --config.seeds="(0, 1)".')
  target = config.target_accuracy
  if not (_is_number(target) and 0 < target <= 1):
    raise errors.ConfigError(
        f'config.target_accuracy={target!r} is invalid: accepted is a '
        'fraction in (0, 1], e.g. 0.99.')
  smoothing = config.loss_smoothing
  if not (_is_number(smoothing) and 0 <= smoothing < 1):
    raise errors.ConfigError(
        f'config.loss_smoothing={smoothing!r} is invalid: accepted is a '
        'number in [0, 1) (0: no smoothing).')
  dpi = config.dpi
  if not (isinstance(dpi, int) and not isinstance(dpi, bool)
          and 10 <= dpi <= 300):
    raise errors.ConfigError(f'config.dpi={dpi!r} is invalid: accepted is an '
                             'integer from 10 to 300.')
  if config.lr_search:
    factors = config.lr_search_factors
    if (not isinstance(factors, (tuple, list)) or not factors or not all(
        _is_number(f) and math.isfinite(f) and f > 0 for f in factors)):
      raise errors.ConfigError(
          f'config.lr_search_factors={factors!r} is invalid: accepted is a '
          'non-empty tuple of numbers > 0, e.g. "(0.3, 1.0, 3.0)".')
    metric = config.lr_search_metric
    if metric not in SEARCH_METRICS:
      raise errors.ConfigError(
          f'config.lr_search_metric={metric!r} is invalid: accepted: '
          f'{", ".join(SEARCH_METRICS)}.')
    for field in ('lr_search_epochs', 'lr_search_validation_examples'):
      value = config[field]
      if not (isinstance(value, int) and not isinstance(value, bool)
              and value >= 1):
        raise errors.ConfigError(f'config.{field}={value!r} is invalid: '
                                 'accepted is an integer >= 1.')
  # Every run's optimizer and trainer fields, before anything trains; the
  # message names the entry it came from.
  for name in names:
    rates = ([config.learning_rates[name]]
             if config.learning_rates.get(name) is not None else
             search_grid(config, name) if config.lr_search else
             [DEFAULT_LEARNING_RATES.get(name, 1e-3)])
    for rate in rates:
      try:
        registry.create_optimizer(name, rate, config.grad_clip_norm,
                                    **hyperparameters(config, name))
      except errors.ConfigError as e:
        raise errors.ConfigError(
            f'config.optimizers entry {name!r} (learning rate {rate:g}): '
            f'{e}') from e
    setup.validate_config(run_config(config, name, rates[0], seeds[0]))


def run_config(config: ml_collections.ConfigDict, name: str,
               learning_rate: float, seed: int,
               validation_examples: Optional[int] = None,
               num_epochs: Optional[int] = None) -> ml_collections.ConfigDict:
  """The config of one run: the comparison's shared fields, one optimizer.

  Args:
    config: the comparison config.
    name: the registry optimizer.
    learning_rate: its rate.
    seed: the run's seed (initial parameters and data order).
    validation_examples: hold out this many training examples (the search);
      None keeps config.validation_examples.
    num_epochs: None keeps config.num_epochs.

  Returns:
    An ordinary training config (task 'classify'), as a single run's
    config.json holds it.
  """
  run = ml_collections.ConfigDict(config.to_dict())
  for field in COMPARE_FIELDS:
    del run[field]
  run.task = 'classify'
  run.seed = seed
  hparams = hyperparameters(config, name)
  for field in list(run.optimizer.keys()):
    if field not in _NOT_HPARAMS:
      run.optimizer[field] = hparams.get(field)
  run.optimizer.name = name
  run.optimizer.learning_rate = float(learning_rate)
  if validation_examples is not None:
    run.validation_examples = validation_examples
  if num_epochs is not None:
    run.num_epochs = num_epochs
  return run


@dataclasses.dataclass
class Result:
  """One finished run: its settings and what it logged.

  Attributes:
    name: the registry optimizer.
    learning_rate: its rate.
    seed: the seed.
    workdir: the run's folder.
    rows: metrics.jsonl's rows, one per epoch.
    num_epochs: the epochs the run is meant to have.
    diverged: the DivergedError message, or None.
  """
  name: str
  learning_rate: float
  seed: int
  workdir: str
  rows: list[dict[str, Any]]
  num_epochs: int
  diverged: Optional[str] = None

  @property
  def complete(self) -> bool:
    """Whether every epoch is logged (and the run did not diverge)."""
    return not self.diverged and len(self.rows) >= self.num_epochs


def train_run(config: ml_collections.ConfigDict, workdir: str, name: str,
              learning_rate: float, seed: int,
              report_only: bool = False) -> Result:
  """Trains (or resumes, or just reads) one run; a divergence is a result.

  A run that diverged leaves DIVERGED_FILE with the message, so a resumed
  comparison with the same config does not train it again.

  Args:
    config: the run's config (run_config).
    workdir: the run's folder.
    name: the registry optimizer (for the Result).
    learning_rate: its rate (for the Result).
    seed: the seed (for the Result).
    report_only: train nothing; read what the folder holds.

  Returns:
    The Result.
  """
  marker = os.path.join(workdir, DIVERGED_FILE)
  diverged = None
  if (os.path.exists(marker) and not config.restart and
      _same_config(config, workdir)):
    with open(marker) as f:
      diverged = f.read().strip()
  elif not report_only:
    # Also for a finished run: the trainer refuses a workdir whose run had
    # another config, and returns at once after reading the checkpoint.
    logging.info('training %s, lr=%g, seed %d in %s', name, learning_rate,
                 seed, workdir)
    try:
      train.train_and_evaluate(config, workdir)
    except errors.DivergedError as e:
      diverged = str(e)
      with open(marker, 'w') as f:
        f.write(diverged + '\n')
  rows = [r for r in metrics_log.read_metrics(workdir)
          if r['epoch'] <= config.num_epochs]
  return Result(name, learning_rate, seed, workdir, rows, config.num_epochs,
                diverged)


def _same_config(config: ml_collections.ConfigDict, workdir: str) -> bool:
  """Whether workdir's config.json describes the same run as `config`."""
  path = os.path.join(workdir, checkpointing.CONFIG_FILE)
  if not os.path.exists(path):
    return False
  with open(path) as f:
    saved = json.load(f)
  return not checkpointing.config_differences(
      saved, json.loads(config.to_json_best_effort()))


def _rate_folder(rate: float) -> str:
  """A folder name for a learning rate, e.g. lr_0.003."""
  return f'lr_{rate:g}'


def search_grid(config: ml_collections.ConfigDict, name: str) -> list[float]:
  """The rates the search tries for `name`: its default times each factor."""
  return [float(f'{DEFAULT_LEARNING_RATES.get(name, 1e-3) * factor:.6g}')
          for factor in config.lr_search_factors]


def search(config: ml_collections.ConfigDict, workdir: str,
           names: Sequence[str]) -> tuple[dict[str, float], list[list[Any]]]:
  """Picks each optimizer's rate on the held-out validation examples.

  Args:
    config: the comparison config.
    workdir: the comparison's folder (runs go to workdir/lr_search/).
    names: the optimizers to search for.

  Returns:
    ({name: chosen rate}, the table rows in SEARCH_HEADER's order).
  """
  chosen, rows = {}, []
  seed = config.seeds[0]
  rank = SEARCH_METRICS[config.lr_search_metric]
  for name in names:
    results = []
    for rate in search_grid(config, name):
      run = run_config(config, name, rate, seed,
                       validation_examples=config.lr_search_validation_examples,
                       num_epochs=config.lr_search_epochs)
      # Only the epoch metrics matter here: no per-step logging.
      run.log_every_steps = 0
      results.append(train_run(run, os.path.join(
          workdir, SEARCH_DIR, name, _rate_folder(rate)), name, rate, seed,
                               config.report_only))
    scored = [r for r in results if r.complete]
    if not scored and config.report_only:
      rows += [[name, r.learning_rate, '', '', '', '', 'not run']
               for r in results]
      continue
    if not scored:
      raise errors.DivergedError(
          f'learning-rate search: {name} diverged at every rate '
          f'({", ".join(f"{r.learning_rate:g}" for r in results)}); set '
          f'--config.learning_rates.{name} or other lr_search_factors.')
    best = max(scored, key=lambda r: rank(r.rows[-1]))
    chosen[name] = best.learning_rate
    edge = best.learning_rate in (results[0].learning_rate,
                                  results[-1].learning_rate)
    for r in results:
      last = r.rows[-1] if r.complete else {}
      status = ('diverged' if r.diverged else 'ok' if r.complete else
                'not finished')
      if r is best and edge and len(results) > 1:
        status = 'ok, at the edge of the grid'
      numbers = [f'{last[k]:.4f}' if k in last else ''
                 for k in ('val_accuracy', 'val_loss', 'train_loss')]
      rows.append([name, r.learning_rate, *numbers,
                   'yes' if r is best else '', status])
  return chosen, rows


def learning_rates(config: ml_collections.ConfigDict,
                   searched: dict[str, float]) -> dict[str, float]:
  """Each listed optimizer's rate: its entry, else searched, else default."""
  rates = {}
  for name in config.optimizers:
    fixed = config.learning_rates.get(name)
    rates[name] = (fixed if fixed is not None else
                   searched.get(name, DEFAULT_LEARNING_RATES.get(name, 1e-3)))
  return rates


def smooth(values: np.ndarray, weight: float) -> np.ndarray:
  """TensorBoard's debiased exponential moving average of a curve.

  Args:
    values: the raw curve.
    weight: the EMA weight in [0, 1); 0 returns the curve unchanged.

  Returns:
    The smoothed curve: ema_t / (1 - weight^t), so the start is not pulled
    towards zero.
  """
  out, ema = np.empty(len(values)), 0.0
  for t, value in enumerate(values, 1):
    ema = weight * ema + (1 - weight) * value
    out[t - 1] = ema / (1 - weight**t) if weight else value
  return out


def step_losses(workdir: str) -> tuple[np.ndarray, np.ndarray]:
  """A run's per-step training losses from its TensorBoard events.

  Args:
    workdir: the run's folder.

  Returns:
    (steps, losses), sorted by step; empty if the run logged none. Events
    that a killed run wrote after its last checkpoint are dropped
    (EventAccumulator honours the resumed writer's purge marker).
  """
  # Imported here: only reading the figures' data needs TensorBoard.
  from tensorboard.backend.event_processing import event_accumulator  # pylint: disable=g-import-not-at-top
  # Its reader logs a line per events file at INFO.
  std_logging.getLogger('tensorboard').setLevel(std_logging.WARNING)
  accumulator = event_accumulator.EventAccumulator(
      os.path.join(workdir, metrics_log.TENSORBOARD_DIR),
      size_guidance={event_accumulator.SCALARS: 0})
  accumulator.Reload()
  if 'train/loss' not in accumulator.Tags()['scalars']:
    return np.zeros(0, int), np.zeros(0)
  by_step = {e.step: e.value for e in accumulator.Scalars('train/loss')}
  steps = np.array(sorted(by_step), int)
  return steps, np.array([by_step[s] for s in steps])


def first_reaching(rows: Sequence[dict[str, Any]], target: float,
                   key: str = 'test_accuracy') -> Optional[int]:
  """The index of the first row whose `key` is >= target, or None."""
  for i, row in enumerate(rows):
    if row[key] >= target:
      return i
  return None


def time_to_target(rows: Sequence[dict[str, Any]], target: float
                   ) -> tuple[Optional[int], Optional[float]]:
  """(epoch, training seconds up to it) of the first row at the target.

  Args:
    rows: a run's metrics.jsonl rows, one per epoch.
    target: the test accuracy to reach.

  Returns:
    The epoch and the sum of epoch_time_s through it; (None, None) if no
    epoch reaches the target.
  """
  reached = first_reaching(rows, target)
  if reached is None:
    return None, None
  return rows[reached]['epoch'], sum(row['epoch_time_s']
                                     for row in rows[:reached + 1])


def run_row(result: Result, target: float) -> list[Any]:
  """One runs.csv row (RUNS_HEADER) for a finished or diverged run."""
  rows = result.rows
  if result.diverged or not rows:
    return [result.name, result.learning_rate, result.seed] + [''] * 7 + [
        'diverged' if result.diverged else 'no epochs']
  accuracies = [r['test_accuracy'] for r in rows]
  best = int(np.argmax(accuracies))
  epoch, seconds = time_to_target(rows, target)
  return [result.name, result.learning_rate, result.seed, accuracies[-1],
          accuracies[best], rows[best]['epoch'], rows[-1]['train_loss'],
          '' if epoch is None else epoch,
          '' if seconds is None else round(seconds, 2),
          round(sum(r['epoch_time_s'] for r in rows), 2),
          'ok' if result.complete else
          f'partial: {len(rows)} of {result.num_epochs} epochs']


def _finished(results: Sequence[Result]) -> list[Result]:
  """The complete runs, or if there is none, the unfinished ones with rows."""
  return ([r for r in results if r.complete] or
          [r for r in results if not r.diverged and r.rows])


def summary_row(name: str, learning_rate: float, hparams: dict[str, Any],
                results: Sequence[Result], target: float) -> list[Any]:
  """One summary row (SUMMARY_HEADER): an optimizer's means over seeds.

  The means are over the complete runs; only if there is none, over the
  unfinished ones (report_only), which the seeds column marks.
  """
  finished = _finished(results)
  extra = ' '.join(f'{k}={v}' for k, v in sorted(hparams.items()))
  seeds = ' '.join(
      str(r.seed) if r.complete or r.diverged else
      f'{r.seed} (partial: {len(r.rows)}/{r.num_epochs} epochs)'
      for r in results if r in finished or r.diverged)
  if not finished:
    status = 'diverged' if any(r.diverged for r in results) else 'not run'
    return [name, learning_rate, extra, seeds, status] + [''] * 6
  final = [r.rows[-1]['test_accuracy'] for r in finished]
  best = [max(row['test_accuracy'] for row in r.rows) for r in finished]
  loss = [r.rows[-1]['train_loss'] for r in finished]
  epochs, times = [], []
  for r in finished:
    epoch, seconds = time_to_target(r.rows, target)
    epochs.append('—' if epoch is None else str(epoch))
    if seconds is not None:
      times.append(seconds)
  total = [sum(row['epoch_time_s'] for row in r.rows) for r in finished]
  return [name, learning_rate, extra, seeds, f'{np.mean(final):.4f}',
          f'{np.std(final):.4f}', f'{np.mean(best):.4f}',
          f'{np.mean(loss):.4f}', ' '.join(epochs),
          f'{np.mean(times):.1f}' if times else '',
          f'{np.mean(total):.1f}']


def write_table(stem: str, header: Sequence[str],
                rows: Sequence[Sequence[Any]]) -> None:
  """Writes rows as `stem`.csv and `stem`.md (shared with the playground)."""
  # Imported here: the playground package's writers hold the shared code.
  from adamjax.playground import writers  # pylint: disable=g-import-not-at-top
  writers.write_table(stem, header, rows)


def identical_seeds(a: Sequence[Result], b: Sequence[Result]) -> list[int]:
  """The seeds on which two optimizers' runs coincide bit for bit.

  Compares, for every seed where both runs are complete, every epoch's train
  and test metrics and every per-step training loss that both runs logged
  (TensorBoard), exactly (float equality, no tolerance).

  Args:
    a: one optimizer's results, one per seed.
    b: the other's, for the same seeds in the same order.

  Returns:
    The seeds compared, if they are all equal; [] if any differs or no seed
    has both runs complete.
  """
  keys = ('train_loss', 'train_accuracy', 'test_loss', 'test_accuracy')
  seeds = []
  for x, y in zip(a, b):
    if not (x.complete and y.complete):
      continue
    if len(x.rows) != len(y.rows) or any(
        rx.get(k) != ry.get(k) for rx, ry in zip(x.rows, y.rows)
        for k in keys):
      return []
    (x_steps, x_losses), (y_steps, y_losses) = (step_losses(x.workdir),
                                                step_losses(y.workdir))
    # A step a resumed run's logging lost is missing, not different.
    _, i, j = np.intersect1d(x_steps, y_steps, return_indices=True)
    if not np.array_equal(x_losses[i], y_losses[j]):
      return []
    seeds.append(x.seed)
  return seeds


def _new_figure(dpi: int):
  """A constrained-layout figure on its own Agg canvas, and its axes."""
  # Imported here: matplotlib loads only when a figure is drawn.
  from adamjax.playground import figures  # pylint: disable=g-import-not-at-top
  fig = figures.new_figure((9.0, 4.5), dpi)
  return fig, fig.add_subplot()


def _spread(label_text: str, seeds: int) -> str:
  """The legend label, saying what the band shows when there is one."""
  return label_text + (f' (mean, min-max of {seeds} seeds)' if seeds > 1
                       else '')


def loss_figure(series: Sequence[tuple[str, Sequence[np.ndarray],
                                       Sequence[np.ndarray]]],
                smoothing: float, dpi: int):
  """Training loss versus step, log y: raw mean faint, smoothed mean, band.

  Args:
    series: (label, per-seed steps, per-seed losses) per curve; the seeds are
      cut to their shortest common length.
    smoothing: the EMA weight of the smoothed curve (see smooth).
    dpi: the resolution.

  Returns:
    The matplotlib figure.
  """
  from adamjax.playground import figures  # pylint: disable=g-import-not-at-top
  fig, ax = _new_figure(dpi)
  low, high = math.inf, 0.0
  # Many raw curves overlap into one grey band; fainter when there are many.
  raw_alpha = min(0.2, 1.0 / max(1, len(series)))
  for i, (text, steps, losses) in enumerate(series):
    length = min(len(l) for l in losses)
    if not length:
      continue
    style = figures.style(i)
    raw = np.array([l[:length] for l in losses])
    smoothed = np.array([smooth(c, smoothing) for c in raw])
    x = steps[0][:length]
    ax.plot(x, raw.mean(0), color=style['color'], alpha=raw_alpha,
            linewidth=0.5)
    ax.plot(x, smoothed.mean(0), label=_spread(text, len(losses)), **style)
    low, high = min(low, smoothed.min()), max(high, smoothed.max())
    if len(losses) > 1:
      ax.fill_between(x, smoothed.min(0), smoothed.max(0),
                      color=style['color'], alpha=0.15)
  ax.set_yscale('log')
  if high > 0:
    # The smoothed curves decide the range; single batches' losses (down to
    # 1e-4 and below) would squash them into a band.
    ax.set_ylim(low / 3, high * 1.5)
  ax.set_xlabel('step')
  ax.set_ylabel('training loss')
  ax.set_title(f'Training loss (smoothed, EMA weight {smoothing:g}; raw mean '
               'over seeds faint)')
  ax.grid(True, which='major', alpha=0.3)
  fig.legend(fontsize='small', loc='outside right center')
  return fig


def accuracy_figure(series: Sequence[tuple[str, Sequence[Sequence[float]]]],
                    target: float, dpi: int, metric: str = 'test accuracy'):
  """Accuracy after each epoch: the mean over seeds and its min-max band.

  Args:
    series: (label, per-seed accuracies from epoch 1) per curve; the seeds
      are cut to their shortest common length.
    target: drawn as a dashed horizontal line.
    dpi: the resolution.
    metric: the y axis's name.

  Returns:
    The matplotlib figure.
  """
  from matplotlib import ticker  # pylint: disable=g-import-not-at-top
  from adamjax.playground import figures  # pylint: disable=g-import-not-at-top
  fig, ax = _new_figure(dpi)
  for i, (text, curves) in enumerate(series):
    epochs = min(len(c) for c in curves)
    if not epochs:
      continue
    style = figures.style(i)
    values = np.array([c[:epochs] for c in curves])
    x = np.arange(1, epochs + 1)
    ax.plot(x, values.mean(0), marker='o', label=_spread(text, len(curves)),
            **style)
    if len(curves) > 1:
      ax.fill_between(x, values.min(0), values.max(0), color=style['color'],
                      alpha=0.15)
  ax.axhline(target, color='grey', linewidth=0.8, linestyle='--',
             label=f'target {target:g}')
  ax.set_xlabel('epoch')
  ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
  ax.set_ylabel(metric)
  ax.set_title(f'{metric[0].upper()}{metric[1:]} after each epoch (mean over '
               'seeds)')
  ax.grid(True, which='major', alpha=0.3)
  fig.legend(fontsize='small', loc='outside right center')
  return fig


def write_figures(workdir: str, labels: dict[str, str],
                  results: dict[str, list[Result]], smoothing: float,
                  target: float, dpi: int) -> list[str]:
  """Draws loss.png and accuracy.png from the runs; returns their paths."""
  from adamjax.playground import figures  # pylint: disable=g-import-not-at-top
  losses, accuracies = [], []
  for name, runs in results.items():
    finished = _finished(runs)
    if not finished:
      continue
    curves = [step_losses(r.workdir) for r in finished]
    losses.append((labels[name], [c[0] for c in curves],
                   [c[1] for c in curves]))
    accuracies.append((labels[name], [[row['test_accuracy'] for row in r.rows]
                                      for r in finished]))
  paths = [os.path.join(workdir, 'loss.png'),
           os.path.join(workdir, 'accuracy.png')]
  figures.save_png(loss_figure(losses, smoothing, dpi), paths[0])
  figures.save_png(accuracy_figure(accuracies, target, dpi), paths[1])
  return paths


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Runs the comparison (searching rates first if asked) and writes it up.

  Args:
    config: the comparison config (see configs/compare.py).
    workdir: the comparison's folder; rerunning with it resumes.

  Returns:
    {'learning_rates': {name: rate}, 'summary': rows, 'runs': rows,
     'identical': [(name, name, seeds), ...] bitwise equal pairs}.

  Raises:
    errors.ConfigError: before any training, on a bad field or entry.
  """
  check_config(config)
  os.makedirs(workdir, exist_ok=True)
  start = time.perf_counter()
  searched = {}
  to_search = [n for n in config.optimizers
               if config.learning_rates.get(n) is None]
  if config.lr_search and to_search:
    searched, search_rows = search(config, workdir, to_search)
    write_table(os.path.join(workdir, 'lr_search'), SEARCH_HEADER, search_rows)
    with open(os.path.join(workdir, 'lr_search.json'), 'w') as f:
      json.dump(searched, f, indent=2)
  rates = learning_rates(config, searched)
  results, labels = {}, {}
  for name in config.optimizers:
    labels[name] = label(name, rates[name], hyperparameters(config, name))
    results[name] = [
        train_run(run_config(config, name, rates[name], seed),
                  os.path.join(workdir, RUNS_DIR, name, f'seed_{seed}'),
                  name, rates[name], seed, config.report_only)
        for seed in config.seeds]
  target = config.target_accuracy
  summary = [summary_row(name, rates[name], hyperparameters(config, name),
                         results[name], target) for name in config.optimizers]
  runs = [run_row(r, target) for name in config.optimizers
          for r in results[name]]
  write_table(os.path.join(workdir, 'summary'), SUMMARY_HEADER, summary)
  from adamjax.playground import writers  # pylint: disable=g-import-not-at-top
  writers.write_csv(os.path.join(workdir, 'runs.csv'), RUNS_HEADER, runs)
  paths = write_figures(workdir, labels, results, config.loss_smoothing,
                        target, config.dpi)
  names = list(config.optimizers)
  identical = []
  for i, a in enumerate(names):
    for b in names[i + 1:]:
      seeds = identical_seeds(results[a], results[b])
      if seeds:
        identical.append((a, b, seeds))
  identical_text = ''.join(
      f'{a} and {b}: every logged step loss and epoch metric bitwise equal '
      f'in seeds {", ".join(map(str, seeds))}\n' for a, b, seeds in identical)
  with open(os.path.join(workdir, 'identical.txt'), 'w') as f:
    f.write(identical_text)
  print(f'Compared {len(config.optimizers)} optimizers x '
        f'{len(config.seeds)} seeds in {time.perf_counter() - start:.0f} s; '
        f'wrote {", ".join(paths)}, summary.md, summary.csv, runs.csv in '
        f'{workdir}', flush=True)
  print(writers.markdown_table(SUMMARY_HEADER, summary), flush=True)
  print(identical_text or 'No two optimizers gave bitwise identical runs.',
        flush=True)
  return {'learning_rates': rates, 'summary': summary, 'runs': runs,
          'identical': identical}
