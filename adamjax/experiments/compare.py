"""Compares optimizers on one model: the same start, the same batches.

  python main.py --config=configs/compare.py --workdir=/tmp/compare \
      --config.data_dir=/path/to/mnist

Each run is an ordinary training run in its own folder whose parameters and
data order come from its seed alone, so all optimizers start alike and see
the same batches; a killed comparison rerun with the same command resumes.
report.py makes the tables, figures.py the figures. Into the workdir go:

  lr_search/<optimizer>/lr_<rate>/  the search runs (config.lr_search)
  lr_search.md, .csv, .json         each grid point's result; chosen rates
  runs/<optimizer>/seed_<seed>/     one run: metrics.jsonl, config.json,
                                    checkpoints, tensorboard
  loss.png, accuracy.png            train loss per step, test accuracy/epoch
  ranking.png                       final accuracy, 95% intervals, ranks
  summary.md, summary.csv           one row per optimizer (mean over seeds)
  runs.csv                          one row per (optimizer, seed)
  identical.txt                     optimizer pairs whose runs agree bitwise
"""

import json
import os
import time
from typing import Any, Optional, Sequence

from absl import logging
import ml_collections

from adamjax import schema
from adamjax.common import checks
from adamjax.common import errors
from adamjax.common import tables
from adamjax.experiments import figures
from adamjax.experiments import report
from adamjax.optim import registry
from adamjax.trainer import checkpointing
from adamjax.trainer import metrics_log
import train

# Fields of the comparison config that a single run does not have.
COMPARE_FIELDS = tuple(schema.COMPARISON)

# Rank keys of a grid point's last epoch, larger is better (the second entry
# breaks ties).
SEARCH_METRICS = {
    'val_accuracy': lambda m: (m['val_accuracy'], -m['val_loss']),
    'val_loss': lambda m: (-m['val_loss'], m['val_accuracy']),
    'train_loss': lambda m: (-m['train_loss'], m['val_accuracy']),
}
# The config.optimizer fields that are not hyperparameters.
_NOT_HPARAMS = ('name', 'learning_rate')
DIVERGED_FILE = 'diverged.txt'
RUNS_DIR, SEARCH_DIR = 'runs', 'lr_search'


def hyperparameters(config: ml_collections.ConfigDict,
                    name: str) -> dict[str, Any]:
  """The set config.optimizer hyperparameters that optimizer `name` takes.

  Args:
    config: the comparison config.
    name: a registry name.

  Returns:
    {field: value}, None values left out.
  """
  accepted = registry.hyperparameters(name)
  return {k: v for k, v in config.optimizer.items()
          if k not in _NOT_HPARAMS and v is not None and k in accepted}


def label(name: str, learning_rate: float, hparams: dict[str, Any]) -> str:
  """An optimizer's legend label in the figures.

  Args:
    name: the registry optimizer.
    learning_rate: its rate.
    hparams: from hyperparameters().

  Returns:
    The name, the rate and each hyperparameter, e.g. 'adam, lr=0.002, b2=0.99'.
  """
  extra = ''.join(f', {k}={v:g}' if checks.is_real(v) else f', {k}={v}'
                  for k, v in sorted(hparams.items()))
  return f'{name}, lr={learning_rate:g}{extra}'


def check_config(config: ml_collections.ConfigDict) -> None:
  """Checks every field (the schema) and every run's optimizer, up front.

  Raises:
    errors.ConfigError: naming the bad field or entry.
  """
  schema.validate(config)
  # Every rate each optimizer will run at, so none fails mid-comparison.
  for name in config.optimizers:
    rates = ([config.learning_rates[name]]
             if config.learning_rates.get(name) is not None else
             search_grid(config, name) if config.lr_search else
             [registry.DEFAULT_LEARNING_RATES[name]])
    for rate in rates:
      try:
        registry.create_optimizer(name, rate, config.grad_clip_norm,
                                  **hyperparameters(config, name))
      except errors.ConfigError as e:
        raise errors.ConfigError(
            f'config.optimizers entry {name!r} (learning rate {rate:g}): '
            f'{e}') from e


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
    An ordinary 'classify' config, as the run's config.json holds it.
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


def train_run(config: ml_collections.ConfigDict, workdir: str, name: str,
              learning_rate: float, seed: int,
              report_only: bool = False) -> report.Result:
  """Trains (or resumes, or just reads) one run; a divergence is a result.

  A run that diverged leaves DIVERGED_FILE with the message, so a resumed
  comparison with the same config does not train it again.

  Args:
    config: the run's config (run_config).
    workdir: the run's folder.
    name: the registry optimizer, for the Result.
    learning_rate: for the Result.
    seed: for the Result.
    report_only: train nothing; read what the folder holds.
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
  return report.Result(name, learning_rate, seed, workdir, rows,
                       config.num_epochs, diverged)


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
  """The learning rates the search tries for one optimizer.

  Args:
    config: the comparison config.
    name: the registry optimizer.

  Returns:
    Its DEFAULT_LEARNING_RATES entry times each of config.lr_search_factors,
    to 6 significant digits (they name the runs' folders).
  """
  return [float(f'{registry.DEFAULT_LEARNING_RATES[name] * factor:.6g}')
          for factor in config.lr_search_factors]


def search(config: ml_collections.ConfigDict, workdir: str,
           names: Sequence[str]) -> tuple[dict[str, float], list[list[Any]]]:
  """Picks each optimizer's rate on held-out validation examples.

  Each rate of search_grid trains for config.lr_search_epochs with the last
  config.lr_search_validation_examples training examples held out (the test
  split is never evaluated). The best by config.lr_search_metric wins
  ('train_loss' is Kingma & Ba's rule); a diverged run never does.

  Args:
    config: the comparison config.
    workdir: the comparison's folder (runs go to workdir/lr_search/).
    names: the optimizers to search for.

  Returns:
    ({name: chosen rate}, the table rows in report.SEARCH_HEADER's order).

  Raises:
    errors.DivergedError: if an optimizer diverged at every rate.
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
  """The learning rate of each optimizer the comparison runs.

  Args:
    config: the comparison config.
    searched: {name: rate} chosen by the search.

  Returns:
    {name: rate} for config.optimizers: its config.learning_rates entry,
    else its searched rate, else its registry.DEFAULT_LEARNING_RATES entry.
  """
  rates = {}
  for name in config.optimizers:
    fixed = config.learning_rates.get(name)
    rates[name] = (fixed if fixed is not None else
                   searched.get(name, registry.DEFAULT_LEARNING_RATES[name]))
  return rates


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
    errors.DivergedError: if the search's runs of an optimizer all diverged.
    errors.MissingPackageError: before any training, without TensorBoard.
  """
  check_config(config)
  # The loss figure reads TensorBoard's events: fail now, not after training.
  report.tensorboard_reader()
  os.makedirs(workdir, exist_ok=True)
  start = time.perf_counter()
  searched = {}
  to_search = [n for n in config.optimizers
               if config.learning_rates.get(n) is None]
  if config.lr_search and to_search:
    searched, search_rows = search(config, workdir, to_search)
    tables.write_table(os.path.join(workdir, 'lr_search'),
                       report.SEARCH_HEADER, search_rows)
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
  summary = report.with_ranks(
      [report.summary_row(name, rates[name], hyperparameters(config, name),
                          results[name], target)
       for name in config.optimizers],
      {name: report.final_accuracy_interval(results[name])
       for name in config.optimizers})
  runs = [report.run_row(r, target) for name in config.optimizers
          for r in results[name]]
  tables.write_table(os.path.join(workdir, 'summary'), report.SUMMARY_HEADER,
                     summary)
  tables.write_csv(os.path.join(workdir, 'runs.csv'), report.RUNS_HEADER, runs)
  paths = figures.write_figures(workdir, labels, results,
                                config.loss_smoothing, target, config.dpi)
  identical = report.identical_pairs(results)
  identical_text = ''.join(
      f'{a} and {b}: every logged step loss and epoch metric bitwise equal '
      f'in seeds {", ".join(map(str, seeds))}\n' for a, b, seeds in identical)
  with open(os.path.join(workdir, 'identical.txt'), 'w') as f:
    f.write(identical_text)
  print(f'Compared {len(config.optimizers)} optimizers x '
        f'{len(config.seeds)} seeds in {time.perf_counter() - start:.0f} s; '
        f'wrote {", ".join(paths)}, summary.md, summary.csv, runs.csv in '
        f'{workdir}', flush=True)
  print(tables.markdown_table(report.SUMMARY_HEADER, summary), flush=True)
  print(identical_text or 'No two optimizers gave bitwise identical runs.',
        flush=True)
  return {'learning_rates': rates, 'summary': summary, 'runs': runs,
          'identical': identical}
