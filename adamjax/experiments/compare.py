"""Compares optimizers on one model: the same start, the same batches.

  python main.py --config=configs/compare.py --workdir=/tmp/compare \
      --config.data_dir=/path/to/mnist

Each run is an ordinary training run in its own folder whose parameters and
data order come from its seed alone, so all optimizers start alike and see
the same batches; a killed comparison rerun with the same command resumes.
report.py makes the tables, figures.py the figures. Into the workdir go:

  lr_search/<optimizer>/lr_<rate>/  the search runs (config.lr_search): the
  lr_search/<optimizer>/trial_<i>/  rate grid, or lr_search_trials quasi-
                                    random trials of rate and hyperparameters
  comparison.json                   the comparison's config (the protocol)
  lr_search.md, .csv, .json         each setting's result; chosen settings
  runs/<optimizer>/seed_<seed>/     one run: metrics.jsonl, config.json,
                                    checkpoints, tensorboard
  loss.png, accuracy.png            train loss per step, test accuracy/epoch
  ranking.png                       final accuracy, 95% intervals, ranks
  summary.md, summary.csv           one row per optimizer (mean over seeds)
  runs.csv                          one row per (optimizer, seed)
  identical.txt                     optimizer pairs whose runs agree bitwise
"""

import inspect
import json
import os
import time
from typing import Any, NamedTuple, Optional, Sequence

from absl import logging
import jax
import ml_collections
import numpy as np

from adamjax import models
from adamjax import schema
from adamjax.common import checks
from adamjax.common import errors
from adamjax.common import tables
from adamjax.experiments import figures
from adamjax.experiments import report
from adamjax.experiments import statistics
from adamjax.optim import registry
from adamjax.trainer import checkpointing
from adamjax.trainer import metrics_log
import train

# Fields of the comparison config that a single run does not have.
COMPARE_FIELDS = tuple(schema.COMPARISON)

# Rank keys of a grid point's last epoch, larger is better (the second entry
# breaks ties; the VAE has no accuracy).
SEARCH_METRICS = {
    'val_accuracy': lambda m: (m['val_accuracy'], -m['val_loss']),
    'val_loss': lambda m: (-m['val_loss'], m.get('val_accuracy', 0.0)),
    'train_loss': lambda m: (-m['train_loss'], m.get('val_accuracy', 0.0)),
}
# The config.optimizer fields that are not hyperparameters.
_NOT_HPARAMS = ('name', 'learning_rate')
# What a quasi-random trial varies besides the rate, where the optimizer has
# it with a numeric default (so plain 'sgd' never gains momentum) and the
# config leaves it unset: decays as 1 - value log-uniform, as AlgoPerf does.
SEARCH_SPACE = {
    'b1': statistics.SearchRange(0.5, 0.99, 'one_minus_log'),
    'b2': statistics.SearchRange(0.9, 0.9999, 'one_minus_log'),
    'momentum': statistics.SearchRange(0.5, 0.99, 'one_minus_log'),
    'weight_decay': statistics.SearchRange(1e-5, 1e-1, 'log'),
}


class Workload(NamedTuple):
  """A task of a multi-workload comparison (config.workloads).

  Attributes:
    overrides: config fields this workload sets, the same for every
      optimizer (a recipe from configs/: model, batch size, ...; the metric
      that ranks the optimizers, config.metric).
    target: the value of the test metric (config.metric) whose epoch of
      first reaching it the performance profiles compare.
  """
  overrides: dict[str, Any]
  target: float


WORKLOADS = {
    # The seed recipe.
    'mnist_cnn': Workload({}, 0.99),
    'fashion_cnn': Workload({'dataset': 'fashion_mnist'}, 0.90),
    # The paper's models (configs/kingma_ba_mlp.py, kingma_ba_logreg.py).
    'mnist_mlp': Workload({'model': 'mlp', 'dropout_rate': 0.5,
                           'batch_size': 128, 'grad_chunks': 1,
                           'steps_per_dispatch': 6}, 0.97),
    'mnist_logreg': Workload({'model': 'logreg', 'l2': 1e-4,
                              'batch_size': 128, 'grad_chunks': 1,
                              'steps_per_dispatch': 13}, 0.92),
    # The paper's VAE (section 6.4, batch 100), ranked by its test ELBO in
    # nats (larger is better) and searched on the validation loss (the
    # negative ELBO): it has no accuracy.
    'mnist_vae': Workload({'model': 'vae', 'batch_size': 100,
                           'grad_chunks': 1, 'metric': 'elbo',
                           'lr_search_metric': 'val_loss'}, -115.0),
}
# Ratios to the fastest optimizer at which the profiles are drawn.
PROFILE_TAUS = tuple(float(t) for t in np.linspace(1.0, 4.0, 61))
DIVERGED_FILE = 'diverged.txt'
COMPARISON_FILE = 'comparison.json'
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
  _check_metric(config)
  low_high = tuple(config.lr_search_range)
  if len(low_high) != 2 or not low_high[0] < low_high[1]:
    raise errors.ConfigError(
        f'config.lr_search_range={low_high!r} is invalid; accepted: two '
        'factors, low < high, e.g. --config.lr_search_range="(0.1, 10.0)".')
  # Every setting each optimizer will run at, so none fails mid-comparison.
  for name in config.optimizers:
    settings = ([(config.learning_rates[name], {})]
                if config.learning_rates.get(name) is not None else
                search_settings(config, name) if config.lr_search else
                [(registry.DEFAULT_LEARNING_RATES[name], {})])
    for rate, searched in settings:
      try:
        registry.create_optimizer(
            name, rate, config.grad_clip_norm,
            **{**hyperparameters(config, name), **searched})
      except errors.ConfigError as e:
        raise errors.ConfigError(
            f'config.optimizers entry {name!r} (learning rate {rate:g}): '
            f'{e}') from e


def _check_metric(config: ml_collections.ConfigDict) -> None:
  """The metric fits the model, and the target and the search the metric."""
  elbo = models.OBJECTIVES.get(config.model) == 'elbo'
  if (config.metric == 'elbo') != elbo:
    checks.fail('config.metric', config.metric,
                f'{"elbo" if elbo else "accuracy"} for config.model='
                f'{config.model!r}')
  if elbo and not config.target_accuracy < 0:
    checks.fail('config.target_accuracy', config.target_accuracy,
                'an ELBO in nats, < 0, with config.metric=elbo')
  if not elbo and not config.target_accuracy > 0:
    checks.fail('config.target_accuracy', config.target_accuracy,
                'an accuracy in (0, 1] with config.metric=accuracy')
  if elbo and config.lr_search_metric == 'val_accuracy':
    checks.fail('config.lr_search_metric', config.lr_search_metric,
                'val_loss or train_loss with config.metric=elbo (the VAE '
                'has no accuracy)')


def run_config(config: ml_collections.ConfigDict, name: str,
               learning_rate: float, seed: int,
               validation_examples: Optional[int] = None,
               num_epochs: Optional[int] = None,
               searched: Optional[dict[str, Any]] = None
               ) -> ml_collections.ConfigDict:
  """The config of one run: the comparison's shared fields, one optimizer.

  Args:
    config: the comparison config.
    name: the registry optimizer.
    learning_rate: its rate.
    seed: the run's seed (initial parameters and data order).
    validation_examples: hold out this many training examples (the search);
      None keeps config.validation_examples.
    num_epochs: None keeps config.num_epochs.
    searched: hyperparameters a search trial (or its winner) sets, over
      config.optimizer's.

  Returns:
    An ordinary 'classify' config, as the run's config.json holds it.
  """
  run = ml_collections.ConfigDict(config.to_dict())
  for field in COMPARE_FIELDS:
    del run[field]
  run.task = 'classify'
  run.seed = seed
  hparams = {**hyperparameters(config, name), **(searched or {})}
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
  same = not config.restart and _same_config(config, workdir)
  if same and os.path.exists(marker):
    with open(marker) as f:
      diverged = f.read().strip()
  elif same and len(metrics_log.read_metrics(workdir)) >= config.num_epochs:
    # Finished with this config: a resumed study skips it without building
    # its data and state (seconds each, over hundreds of runs).
    pass
  elif not report_only:
    # The trainer refuses a workdir whose run had another config.
    logging.info('training %s, lr=%g, seed %d in %s', name, learning_rate,
                 seed, workdir)
    try:
      train.train_and_evaluate(config, workdir)
    except errors.DivergedError as e:
      diverged = str(e)
      with open(marker, 'w') as f:
        f.write(diverged + '\n')
    finally:
      # Each run compiles its own programs (its optimizer is part of the
      # step); kept, a study's hundreds of runs exhaust the process's memory
      # maps and XLA's compiler fails (seen at ~130 MLP runs).
      jax.clear_caches()
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


def searched_hyperparameters(config: ml_collections.ConfigDict,
                             name: str) -> list[str]:
  """The SEARCH_SPACE entries that optimizer `name`'s trials vary."""
  params = inspect.signature(registry.OPTIMIZERS[name]).parameters
  fixed = hyperparameters(config, name)
  return [field for field in SEARCH_SPACE
          if field in registry.hyperparameters(name) and field not in fixed
          and checks.is_real(params[field].default)]


def search_settings(config: ml_collections.ConfigDict, name: str
                    ) -> list[tuple[float, dict[str, float]]]:
  """The (learning rate, hyperparameters) settings the search tries.

  Args:
    config: the comparison config.
    name: the registry optimizer.

  Returns:
    With config.lr_search_trials = 0, the grid's rates (search_grid) with no
    hyperparameters; otherwise that many quasi-random trials (seeded by the
    first seed) over the rate, log-uniform in config.lr_search_range times
    the default rate, and searched_hyperparameters' SEARCH_SPACE ranges.
  """
  if not config.lr_search_trials:
    return [(rate, {}) for rate in search_grid(config, name)]
  default = registry.DEFAULT_LEARNING_RATES[name]
  low, high = config.lr_search_range
  space = {'learning_rate': statistics.SearchRange(default * low,
                                                   default * high)}
  space.update({field: SEARCH_SPACE[field]
                for field in searched_hyperparameters(config, name)})
  trials = statistics.quasi_random_trials(space, config.lr_search_trials,
                                          seed=config.seeds[0])
  return [(trial.pop('learning_rate'), trial) for trial in trials]


def search(config: ml_collections.ConfigDict, workdir: str,
           names: Sequence[str]) -> tuple[dict[str, float], list[list[Any]]]:
  """Picks each optimizer's setting on held-out validation examples.

  Each setting of search_settings (the same number for every optimizer)
  trains for config.lr_search_epochs with the last
  config.lr_search_validation_examples training examples held out (the test
  split is never evaluated). The best by config.lr_search_metric wins
  ('train_loss' is Kingma & Ba's rule); a diverged run never does.

  Args:
    config: the comparison config.
    workdir: the comparison's folder (runs go to workdir/lr_search/).
    names: the optimizers to search for.

  Returns:
    ({name: chosen rate}, {name: chosen searched hyperparameters}, the table
    rows in report.SEARCH_HEADER's order).

  Raises:
    errors.DivergedError: if an optimizer diverged at every setting.
  """
  chosen, chosen_hparams, rows = {}, {}, []
  seed = config.seeds[0]
  rank = SEARCH_METRICS[config.lr_search_metric]
  for name in names:
    results, settings = [], search_settings(config, name)
    for i, (rate, searched) in enumerate(settings):
      run = run_config(config, name, rate, seed,
                       validation_examples=config.lr_search_validation_examples,
                       num_epochs=config.lr_search_epochs, searched=searched)
      # Only the epoch metrics matter here: no per-step logging.
      run.log_every_steps = 0
      folder = f'trial_{i:03d}' if searched else _rate_folder(rate)
      results.append(train_run(run, os.path.join(
          workdir, SEARCH_DIR, name, folder), name, rate, seed,
                               config.report_only))
    scored = [r for r in results if r.complete]
    hparams_text = [' '.join(f'{k}={v:g}' for k, v in sorted(h.items()))
                    for _, h in settings]
    if not scored and config.report_only:
      rows += [[name, r.learning_rate, '', '', '', '', 'not run', text]
               for r, text in zip(results, hparams_text)]
      continue
    if not scored:
      raise errors.DivergedError(
          f'learning-rate search: {name} diverged at every setting (rates '
          f'{", ".join(f"{r.learning_rate:g}" for r in results)}); set '
          f'--config.learning_rates.{name} or other lr_search_factors or '
          'lr_search_range.')
    best = max(scored, key=lambda r: rank(r.rows[-1]))
    chosen[name] = best.learning_rate
    chosen_hparams[name] = settings[results.index(best)][1]
    # A grid's best at either end may want a wider grid.
    edge = not config.lr_search_trials and best.learning_rate in (
        results[0].learning_rate, results[-1].learning_rate)
    for r, text in zip(results, hparams_text):
      last = r.rows[-1] if r.complete else {}
      status = ('diverged' if r.diverged else 'ok' if r.complete else
                'not finished')
      if r is best and edge and len(results) > 1:
        status = 'ok, at the edge of the grid'
      numbers = [f'{last[k]:.4f}' if k in last else ''
                 for k in ('val_accuracy', 'val_loss', 'train_loss')]
      rows.append([name, r.learning_rate, *numbers,
                   'yes' if r is best else '', status, text])
  return chosen, chosen_hparams, rows


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
  if config.workloads:
    return run_workloads(config, workdir)
  # The loss figure reads TensorBoard's events: fail now, not after training.
  report.tensorboard_reader()
  os.makedirs(workdir, exist_ok=True)
  # The protocol as run (budget, seeds, metric, target), for the study report.
  with open(os.path.join(workdir, COMPARISON_FILE), 'w') as f:
    f.write(config.to_json_best_effort(indent=2) + '\n')
  start = time.perf_counter()
  searched, chosen_hparams = {}, {}
  to_search = [n for n in config.optimizers
               if config.learning_rates.get(n) is None]
  if config.lr_search and to_search:
    searched, chosen_hparams, search_rows = search(config, workdir, to_search)
    tables.write_table(os.path.join(workdir, 'lr_search'),
                       report.SEARCH_HEADER, search_rows)
    with open(os.path.join(workdir, 'lr_search.json'), 'w') as f:
      json.dump({name: {'learning_rate': rate, **chosen_hparams[name]}
                 for name, rate in searched.items()}, f, indent=2)
  rates = learning_rates(config, searched)
  hparams = {name: {**hyperparameters(config, name),
                    **chosen_hparams.get(name, {})}
             for name in config.optimizers}
  results, labels = {}, {}
  for name in config.optimizers:
    labels[name] = label(name, rates[name], hparams[name])
    results[name] = [
        train_run(run_config(config, name, rates[name], seed,
                             searched=chosen_hparams.get(name)),
                  os.path.join(workdir, RUNS_DIR, name, f'seed_{seed}'),
                  name, rates[name], seed, config.report_only)
        for seed in config.seeds]
  target, metric = config.target_accuracy, config.metric
  intervals = report.accuracy_intervals(results, metric)
  summary = report.with_ranks(
      [report.summary_row(name, rates[name], hparams[name], results[name],
                          target, intervals.get(name), metric)
       for name in config.optimizers], intervals)
  runs = [report.run_row(r, target, metric) for name in config.optimizers
          for r in results[name]]
  summary_header = report.summary_header(metric)
  tables.write_table(os.path.join(workdir, 'summary'), summary_header, summary)
  tables.write_csv(os.path.join(workdir, 'runs.csv'),
                   report.runs_header(metric), runs)
  paths = figures.write_figures(workdir, labels, results, intervals,
                                config.loss_smoothing, target, config.dpi,
                                metric)
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
  print(tables.markdown_table(summary_header, summary), flush=True)
  print(identical_text or 'No two optimizers gave bitwise identical runs.',
        flush=True)
  return {'learning_rates': rates, 'summary': summary, 'runs': runs,
          'identical': identical}


def workload_config(config: ml_collections.ConfigDict,
                    name: str) -> ml_collections.ConfigDict:
  """The single-workload comparison config of workload `name`.

  Args:
    config: the multi-workload comparison config.
    name: a key of WORKLOADS.

  Returns:
    config with the workload's overrides and target, no workloads, and for
    fashion_cnn data_dir = fashion_mnist_dir.
  """
  workload = WORKLOADS[name]
  one = ml_collections.ConfigDict(config.to_dict())
  one.update(workload.overrides)
  one.target_accuracy = workload.target
  one.workloads = ()
  if one.dataset == 'fashion_mnist':
    one.data_dir = config.fashion_mnist_dir
  return one


def epochs_to_target(runs: Sequence[Sequence[Any]]) -> dict[str, float]:
  """Each optimizer's median epoch of first reaching the target.

  Args:
    runs: runs.csv rows (report.RUNS_HEADER), one per optimizer and seed.

  Returns:
    {optimizer: the median over its seeds; math.inf for a seed that never
    reached the target (so inf when half or more never did)}.
  """
  column = report.RUNS_HEADER.index('epoch_to_target')
  epochs: dict[str, list[float]] = {}
  for row in runs:
    epochs.setdefault(row[0], []).append(
        float(row[column]) if row[column] != '' else float('inf'))
  return {name: float(np.median(values)) for name, values in epochs.items()}


def profile_table(epochs: dict[str, dict[str, float]]
                  ) -> tuple[list[str], list[list[str]], dict[str, Any]]:
  """AlgoPerf's performance profiles and their table.

  Args:
    epochs: {workload: epochs_to_target of its runs}; every workload names
      the same optimizers.

  Returns:
    (header, rows, profiles): per optimizer, best first, its median epoch
    to each workload's target and the share of workloads where it was the
    fastest (tau 1) or within 2x (tau 2); profiles at PROFILE_TAUS.
  """
  profiles = statistics.performance_profiles(epochs, PROFILE_TAUS)
  header = ['optimizer', *epochs, 'fastest_on', 'within_2x_on']
  at = {tau: PROFILE_TAUS.index(tau) for tau in (1.0, 2.0)}
  rows = [[o, *(f'{epochs[w][o]:g}' for w in epochs),
           f'{profiles[o][at[1.0]]:.2f}', f'{profiles[o][at[2.0]]:.2f}']
          for o in sorted(profiles, key=lambda o: -profiles[o].sum())]
  return header, rows, profiles


def run_workloads(config: ml_collections.ConfigDict,
                  workdir: str) -> dict[str, Any]:
  """Runs the comparison on each of config.workloads; profiles across them.

  Each workload is an ordinary comparison (search, seeds, tables, figures)
  in workdir/<workload>, resumable as one. Across them, each optimizer's
  median epoch to the workload's target gives AlgoPerf's performance
  profiles (profile.md, performance_profile.png).

  Args:
    config: the comparison config with config.workloads set.
    workdir: the study's folder.

  Returns:
    {workload: run()'s result, ..., 'profiles': {optimizer: fractions at
    PROFILE_TAUS}, 'epochs_to_target': {workload: {optimizer: epochs}}}.
  """
  # Every workload's settings checked before any of them trains.
  for name in config.workloads:
    check_config(workload_config(config, name))
  os.makedirs(workdir, exist_ok=True)
  out, epochs = {}, {}
  for name in config.workloads:
    logging.info('workload %s', name)
    out[name] = run(workload_config(config, name),
                    os.path.join(workdir, name))
    epochs[name] = epochs_to_target(out[name]['runs'])
  header, rows, profiles = profile_table(epochs)
  tables.write_table(os.path.join(workdir, 'profile'), header, rows)
  path = os.path.join(workdir, 'performance_profile.png')
  figures.save_profile_figure(profiles, PROFILE_TAUS, config.dpi, path)
  print(f'Workloads {", ".join(config.workloads)}: median epochs to each '
        f'target and the share of workloads where each optimizer was '
        f'fastest or within 2x; wrote profile.md, {path}', flush=True)
  print(tables.markdown_table(header, rows), flush=True)
  out['profiles'] = profiles
  out['epochs_to_target'] = epochs
  return out
