"""Analysis of a comparison's finished runs: table rows, targets, identity.

Reads the runs' metrics.jsonl rows and TensorBoard step losses; nothing here
trains or draws.
"""

import dataclasses
import logging as std_logging
import os
from typing import Any, Optional, Sequence

import numpy as np

from adamjax.common import errors
from adamjax.experiments import statistics
from adamjax.trainer import metrics_log

# What a comparison ranks by (config.metric), larger is better: its name in
# the tables' columns, in words, the factor and unit it is shown in.
METRICS = {
    'accuracy': ('test accuracy', 100.0, '%'),
    # The ELBO is a lower bound on log p(x) to maximise: -(negative ELBO).
    'elbo': ('test ELBO', 1.0, ' nats'),
}


def _header(columns: tuple[str, ...], metric: str) -> tuple[str, ...]:
  """The columns with 'accuracy' named after the metric."""
  return tuple(c.replace('accuracy', metric) for c in columns)


SUMMARY_HEADER = ('optimizer', 'learning_rate', 'hyperparameters', 'seeds',
                  'final_test_accuracy', 'final_test_accuracy_std',
                  'best_test_accuracy', 'final_train_loss',
                  'epochs_to_target', 'time_to_target_s', 'train_time_s',
                  'final_test_accuracy_ci95', 'epochs_to_target_ci95',
                  'time_to_target_s_ci95', 'rank')
RUNS_HEADER = ('optimizer', 'learning_rate', 'seed', 'final_test_accuracy',
               'best_test_accuracy', 'best_epoch', 'final_train_loss',
               'epoch_to_target', 'time_to_target_s', 'train_time_s', 'status')


def summary_header(metric: str = 'accuracy') -> tuple[str, ...]:
  """SUMMARY_HEADER for a comparison ranked by `metric` (a key of METRICS)."""
  return _header(SUMMARY_HEADER, metric)


def runs_header(metric: str = 'accuracy') -> tuple[str, ...]:
  """RUNS_HEADER for a comparison ranked by `metric` (a key of METRICS)."""
  return _header(RUNS_HEADER, metric)


def score(row: dict[str, Any], metric: str = 'accuracy',
          split: str = 'test') -> float:
  """An epoch row's value of the metric, larger is better.

  Args:
    row: a metrics.jsonl row.
    metric: a key of METRICS: the split's accuracy, or its ELBO (minus the
      mean negative ELBO the trainer logs as the loss).
    split: 'test' or 'val'.
  """
  if metric == 'elbo':
    return -row[f'{split}_loss']
  return row[f'{split}_accuracy']
SEARCH_HEADER = ('optimizer', 'learning_rate', 'val_accuracy', 'val_loss',
                 'train_loss', 'chosen', 'status', 'hyperparameters')


@dataclasses.dataclass
class Result:
  """One finished run: its settings and what it logged.

  Attributes:
    name: the registry optimizer.
    learning_rate: its rate.
    seed: the seed.
    workdir: the run's folder.
    rows: metrics.jsonl's rows, one per epoch.
    num_epochs: the epochs the run is meant to train.
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


def smooth(values: np.ndarray, weight: float) -> np.ndarray:
  """TensorBoard's debiased exponential moving average of a curve.

  Args:
    values: the raw curve.
    weight: the EMA weight in [0, 1); 0 returns the curve unchanged.

  Returns:
    ema_t / (1 - weight^t), so the start is not pulled towards zero.
  """
  out, ema = np.empty(len(values)), 0.0
  for t, value in enumerate(values, 1):
    ema = weight * ema + (1 - weight) * value
    out[t - 1] = ema / (1 - weight**t) if weight else value
  return out


def tensorboard_reader() -> Any:
  """TensorBoard's event_accumulator module, or a MissingPackageError.

  Imported here: TensorBoard is slow to import, the tables don't need it, and
  training alone (requirements.txt) does not install it.
  """
  with errors.optional_packages(('tensorboard',),
                                "the comparison's per-step loss curves need",
                                'requirements-dev.txt'):
    from tensorboard.backend.event_processing import event_accumulator  # pylint: disable=g-import-not-at-top
  return event_accumulator


def step_losses(workdir: str) -> tuple[np.ndarray, np.ndarray]:
  """A run's per-step training losses from its TensorBoard events.

  Args:
    workdir: the run's folder.

  Returns:
    (steps, losses), sorted by step, without the events a killed run wrote
    after its last checkpoint (the resumed writer's purge marker).
  """
  event_accumulator = tensorboard_reader()
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
                   metric: str = 'accuracy',
                   split: str = 'test') -> Optional[int]:
  """The first row at or above a target.

  Args:
    rows: a run's metrics.jsonl rows, one per epoch.
    target: the value to reach.
    metric: the metric compared (see score).
    split: 'test' or 'val'.

  Returns:
    The index of the first row whose score is >= target, or None.
  """
  for i, row in enumerate(rows):
    if score(row, metric, split) >= target:
      return i
  return None


def time_to_target(rows: Sequence[dict[str, Any]], target: float,
                   metric: str = 'accuracy'
                   ) -> tuple[Optional[int], Optional[float]]:
  """(epoch, training seconds up to it) of the first row at the target.

  Args:
    rows: a run's metrics.jsonl rows, one per epoch.
    target: the test metric's value to reach.
    metric: a key of METRICS.

  Returns:
    The epoch and the training time through it: the epochs' epoch_time_s
    less their compile_time_s; (None, None) if no epoch reaches the target.
  """
  reached = first_reaching(rows, target, metric)
  if reached is None:
    return None, None
  return rows[reached]['epoch'], sum(
      row['epoch_time_s'] - row.get('compile_time_s', 0.0)
      for row in rows[:reached + 1])


def _interval_text(values: Sequence[float], runs: int, digits: int) -> str:
  """'low to high' of the mean's 95% interval, '(k of n seeds)' if k < n."""
  if not values:
    return ''
  interval = statistics.bootstrap_interval(values)
  text = f'{interval.low:.{digits}f} to {interval.high:.{digits}f}'
  if len(values) < runs:
    text += f' ({len(values)} of {runs} seeds)'
  return text


def finished(results: Sequence[Result]) -> list[Result]:
  """The runs that the summary and the figures show.

  Args:
    results: one optimizer's runs, one per seed.

  Returns:
    The complete runs, or if there is none, the unfinished ones with rows
    (report_only during training).
  """
  return ([r for r in results if r.complete] or
          [r for r in results if not r.diverged and r.rows])


def run_row(result: Result, target: float,
            metric: str = 'accuracy') -> list[Any]:
  """One runs.csv row for a finished, partial or diverged run.

  Args:
    result: the run.
    target: the test metric's value whose first epoch and time the row gives.
    metric: a key of METRICS.

  Returns:
    The row in RUNS_HEADER's order; '' where there is no value.
  """
  rows = result.rows
  if result.diverged or not rows:
    return [result.name, result.learning_rate, result.seed] + [''] * 7 + [
        'diverged' if result.diverged else 'no epochs']
  accuracies = [score(r, metric) for r in rows]
  best = int(np.argmax(accuracies))
  epoch, seconds = time_to_target(rows, target, metric)
  return [result.name, result.learning_rate, result.seed, accuracies[-1],
          accuracies[best], rows[best]['epoch'], rows[-1]['train_loss'],
          '' if epoch is None else epoch,
          '' if seconds is None else round(seconds, 2),
          round(sum(r['epoch_time_s'] for r in rows), 2),
          'ok' if result.complete else
          f'partial: {len(rows)} of {result.num_epochs} epochs']


def final_accuracy_interval(results: Sequence[Result],
                            metric: str = 'accuracy'
                            ) -> Optional[statistics.Interval]:
  """The 95% bootstrap interval of the mean final test metric.

  Args:
    results: one optimizer's runs, one per seed.
    metric: a key of METRICS.

  Returns:
    Over its complete runs only (a partial run's last epoch is not final);
    None if there is none.
  """
  finals = [score(r.rows[-1], metric) for r in results if r.complete]
  return statistics.bootstrap_interval(finals) if finals else None


def accuracy_intervals(results: dict[str, Sequence[Result]],
                       metric: str = 'accuracy'
                       ) -> dict[str, statistics.Interval]:
  """{optimizer: final_accuracy_interval} for those with a complete run."""
  intervals = {name: final_accuracy_interval(runs, metric)
               for name, runs in results.items()}
  return {name: i for name, i in intervals.items() if i is not None}


def with_ranks(summary: list[list[Any]],
               intervals: dict[str, statistics.Interval]
               ) -> list[list[Any]]:
  """Summary rows (from summary_row) with their rank filled in.

  Args:
    summary: rows in SUMMARY_HEADER's order, the rank column ''.
    intervals: from accuracy_intervals.

  Returns:
    The rows, each with statistics.significance_ranks' rank (ties share
    it; '' for an optimizer without complete runs).
  """
  ranks = statistics.significance_ranks(intervals)
  return [row[:-1] + [ranks.get(row[0], '')] for row in summary]


def summary_row(name: str, learning_rate: float, hparams: dict[str, Any],
                results: Sequence[Result], target: float,
                interval: Optional[statistics.Interval],
                metric: str = 'accuracy') -> list[Any]:
  """One summary row: an optimizer's means over finished() runs.

  Args:
    name: the registry optimizer.
    learning_rate: its rate.
    hparams: from compare.hyperparameters.
    results: its runs, one per seed.
    target: the test metric's value whose first epoch and time the row
      gives.
    interval: final_accuracy_interval(results), computed once by the caller.
    metric: a key of METRICS.

  Returns:
    The row in SUMMARY_HEADER's order, numbers formatted as text; the rank
    is '' (with_ranks fills it in once every optimizer's row is known).
  """
  shown = finished(results)
  extra = ' '.join(f'{k}={v}' for k, v in sorted(hparams.items()))
  seeds = ' '.join(
      str(r.seed) if r.complete or r.diverged else
      f'{r.seed} (partial: {len(r.rows)}/{r.num_epochs} epochs)'
      for r in results if r in shown or r.diverged)
  if not shown:
    status = 'diverged' if any(r.diverged for r in results) else 'not run'
    return [name, learning_rate, extra, seeds, status] + [''] * 10
  final = [score(r.rows[-1], metric) for r in shown]
  best = [max(score(row, metric) for row in r.rows) for r in shown]
  loss = [r.rows[-1]['train_loss'] for r in shown]
  epochs, reached, times = [], [], []
  for r in shown:
    epoch, seconds = time_to_target(r.rows, target, metric)
    epochs.append('—' if epoch is None else str(epoch))
    if seconds is not None:
      reached.append(epoch)
      times.append(seconds)
  total = [sum(row['epoch_time_s'] for row in r.rows) for r in shown]
  return [name, learning_rate, extra, seeds, f'{np.mean(final):.4f}',
          f'{np.std(final):.4f}', f'{np.mean(best):.4f}',
          f'{np.mean(loss):.4f}', ' '.join(epochs),
          f'{np.mean(times):.1f}' if times else '',
          f'{np.mean(total):.1f}',
          f'{interval.low:.4f} to {interval.high:.4f}' if interval else '',
          _interval_text(reached, len(shown), 2),
          _interval_text(times, len(shown), 1), '']


def identical_seeds(a: Sequence[Result], b: Sequence[Result]) -> list[int]:
  """The seeds on which two optimizers' runs coincide bit for bit.

  Compares every epoch's metrics and every step loss both runs logged, with
  float equality, on each seed where both runs are complete.

  Args:
    a: one optimizer's results, one per seed.
    b: the other's, for the same seeds in the same order.

  Returns:
    The seeds compared if all are equal, else [].
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


def identical_pairs(results: dict[str, Sequence[Result]]
                    ) -> list[tuple[str, str, list[int]]]:
  """Every pair of optimizers whose runs coincide bit for bit.

  Args:
    results: {name: its runs, one per seed}, every name with the same seeds
      in the same order.

  Returns:
    (a, b, seeds) for each pair with identical_seeds, a before b.
  """
  names = list(results)
  pairs = []
  for i, a in enumerate(names):
    for b in names[i + 1:]:
      seeds = identical_seeds(results[a], results[b])
      if seeds:
        pairs.append((a, b, seeds))
  return pairs
