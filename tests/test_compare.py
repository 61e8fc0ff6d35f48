"""Tests for the comparison's orchestration (compare.py) on a tiny dataset.

The whole comparison runs once (the `compared` fixture); the tests read what
it wrote. report.py's and figures.py's own tests are in test_report.py and
test_experiment_figures.py.
"""

import csv
import hashlib
import json
import math
import os

import numpy as np
import pytest

from configs import compare as compare_config
from adamjax import schema
from adamjax.optim import registry
from adamjax.trainer import checkpointing
from adamjax.experiments import compare
from adamjax.experiments import report
from adamjax.experiments import study
from adamjax.common import errors
from adamjax.data import input_pipeline
from adamjax.trainer import metrics_log
from adamjax.trainer import evaluation
from adamjax.data import order
from adamjax.trainer import setup
import train
from conftest import make_tiny_mnist
from conftest import run_main

VALIDATION = 64  # Of the tiny dataset's 256 training examples.


def tiny_compare_config(data_dir, **overrides):
  """The comparison shrunk to seconds: 3 optimizers, 2 seeds, 2 epochs."""
  config = compare_config.get_config()
  config.data_dir = data_dir
  config.optimizers = ('adam', 'optax_adam', 'sgd')
  # adam and optax_adam fixed, so only sgd is searched (2 grid points).
  config.learning_rates.adam = 1e-3
  config.learning_rates.optax_adam = 1e-3
  config.lr_search_factors = (0.3, 1.0)
  config.lr_search_validation_examples = VALIDATION
  config.num_epochs = 2
  config.batch_size = 32
  config.eval_batch_size = 50
  config.dpi = 40
  config.update(overrides)
  return config


def _digest(*arrays):
  """SHA-256 of the arrays' bytes."""
  h = hashlib.sha256()
  for a in arrays:
    h.update(np.ascontiguousarray(np.asarray(a)).tobytes())
  return h.hexdigest()


class Recorder:
  """Wraps the trainer's setup, batch order and evaluation to record them.

  Per run folder: the fingerprint of the initial parameters and the
  data-order key (from setup), every epoch's batch indices, and a digest of
  every split evaluated.
  """

  def __init__(self, monkeypatch):
    """Installs the wrappers."""
    self.start, self.batches, self.evaluated = {}, {}, {}
    self.current = None
    real_setup, batches, evaluate = (setup.setup, order.epoch_batches,
                                     evaluation.evaluate)

    def recording_setup(config, workdir, *args, **kwargs):
      run = real_setup(config, workdir, *args, **kwargs)
      self.current = os.path.relpath(workdir, self.root)
      self.start[self.current] = (
          checkpointing.fingerprint(run.state.params),
          np.asarray(run.state.data_key).tolist(), int(run.state.step))
      return run

    def recording_batches(rng, epoch, *args):
      indices = batches(rng, epoch, *args)
      self.batches.setdefault(self.current, []).append(np.asarray(indices))
      return indices

    def recording_evaluate(state, split, batch_size, *args):
      self.evaluated.setdefault(self.current, []).append(
          _digest(split.images, split.labels))
      return evaluate(state, split, batch_size, *args)

    monkeypatch.setattr(setup, 'setup', recording_setup)
    monkeypatch.setattr(order, 'epoch_batches', recording_batches)
    monkeypatch.setattr(evaluation, 'evaluate', recording_evaluate)
    self.root = None


@pytest.fixture(scope='module')
def compared(tmp_path_factory):
  """One tiny comparison with search, run once for the tests below."""
  data_dir = str(tmp_path_factory.mktemp('data'))
  make_tiny_mnist(data_dir)
  workdir = str(tmp_path_factory.mktemp('compare'))
  with pytest.MonkeyPatch.context() as monkeypatch:
    recorder = Recorder(monkeypatch)
    recorder.root = workdir
    result = compare.run(tiny_compare_config(data_dir), workdir)
  return data_dir, workdir, result, recorder


def _read_csv(path):
  """A CSV file's rows as dicts."""
  with open(path, newline='') as f:
    return list(csv.DictReader(f))


def test_writes_every_figure_and_table(compared):
  """Figures, tables and each run's own outputs exist and agree."""
  _, workdir, result, _ = compared
  for name in ('loss.png', 'accuracy.png', 'ranking.png'):
    with open(os.path.join(workdir, name), 'rb') as f:
      data = f.read()
    assert data.startswith(b'\x89PNG') and len(data) > 5_000, name
  summary = _read_csv(os.path.join(workdir, 'summary.csv'))
  assert [row['optimizer'] for row in summary] == ['adam', 'optax_adam', 'sgd']
  # adam and optax_adam run bitwise alike: the same interval, the same rank.
  assert summary[0]['rank'] == summary[1]['rank']
  assert summary[0]['final_test_accuracy_ci95'] == (
      summary[1]['final_test_accuracy_ci95'])
  assert {row['rank'] for row in summary} <= {'1', '2', '3'}
  assert '1' in {row['rank'] for row in summary}
  for row in summary:
    low, high = map(float, row['final_test_accuracy_ci95'].split(' to '))
    assert low <= float(row['final_test_accuracy']) <= high
  markdown = open(os.path.join(workdir, 'summary.md')).read().splitlines()
  assert markdown[0].startswith('| optimizer | learning_rate |')
  assert len(markdown) == 2 + 3
  runs = _read_csv(os.path.join(workdir, 'runs.csv'))
  assert len(runs) == 6
  for row in runs:
    folder = os.path.join(workdir, 'runs', row['optimizer'],
                          f'seed_{row["seed"]}')
    metrics = metrics_log.read_metrics(folder)
    assert [m['epoch'] for m in metrics] == [1, 2]
    accuracies = [m['test_accuracy'] for m in metrics]
    assert float(row['final_test_accuracy']) == accuracies[-1]
    assert float(row['best_test_accuracy']) == max(accuracies)
    assert float(row['final_train_loss']) == metrics[-1]['train_loss']
    assert float(row['train_time_s']) == pytest.approx(
        sum(m['epoch_time_s'] for m in metrics), abs=0.01)
    reached = [m['epoch'] for m in metrics if m['test_accuracy'] >= 0.99]
    assert row['epoch_to_target'] == (str(reached[0]) if reached else '')
    saved = json.load(open(os.path.join(folder, 'config.json')))
    assert saved['task'] == 'classify'
    assert saved['optimizer']['name'] == row['optimizer']
    assert saved['optimizer']['learning_rate'] == float(row['learning_rate'])
    assert saved['seed'] == int(row['seed'])
    assert 'optimizers' not in saved  # An ordinary single run's config.
    assert os.path.isdir(os.path.join(folder, 'checkpoints'))
    steps, losses = report.step_losses(folder)
    # log_every_steps=1: every step's loss, 8 steps per epoch.
    assert steps.tolist() == list(range(1, 17))
    assert np.mean(losses[:8]) == pytest.approx(metrics[0]['train_loss'],
                                                rel=1e-5)
  mean_final = np.mean([float(r['final_test_accuracy']) for r in runs
                        if r['optimizer'] == 'sgd'])
  assert float(summary[2]['final_test_accuracy']) == pytest.approx(
      mean_final, abs=1e-4)
  search = _read_csv(os.path.join(workdir, 'lr_search.csv'))
  assert [row['optimizer'] for row in search] == ['sgd', 'sgd']
  assert sum(row['chosen'] == 'yes' for row in search) == 1


def test_same_start_and_batch_order_for_every_optimizer(compared):
  """Per seed, every optimizer starts from the same params and batches."""
  _, _, _, recorder = compared
  for seed in (0, 1):
    folders = [f'runs/{name}/seed_{seed}'
               for name in ('adam', 'optax_adam', 'sgd')]
    starts = [recorder.start[f] for f in folders]
    assert all(s[2] == 0 for s in starts)  # Fresh runs, step 0.
    assert len({(s[0], str(s[1])) for s in starts}) == 1
    orders = [recorder.batches[f] for f in folders]
    assert all(len(o) == 2 for o in orders)  # One per epoch.
    for other in orders[1:]:
      for epoch_a, epoch_b in zip(orders[0], other):
        np.testing.assert_array_equal(epoch_a, epoch_b)
  # The check can fail: another seed starts elsewhere and shuffles otherwise.
  assert (recorder.start['runs/adam/seed_0'][0] !=
          recorder.start['runs/adam/seed_1'][0])
  assert not np.array_equal(recorder.batches['runs/adam/seed_0'][0],
                            recorder.batches['runs/adam/seed_1'][0])


def test_our_adam_and_optax_adam_coincide_bitwise(compared):
  """Same start, same batches: identical step losses and metrics."""
  _, workdir, result, _ = compared
  # The runner finds exactly this pair (sgd differs from both).
  assert result['identical'] == [('adam', 'optax_adam', [0, 1])]
  assert open(os.path.join(workdir, 'identical.txt')).read() == (
      'adam and optax_adam: every logged step loss and epoch metric bitwise '
      'equal in seeds 0, 1\n')
  for seed in (0, 1):
    ours, theirs = (os.path.join(workdir, 'runs', n, f'seed_{seed}')
                    for n in ('adam', 'optax_adam'))
    np.testing.assert_array_equal(report.step_losses(ours)[1],
                                  report.step_losses(theirs)[1])
    for a, b in zip(metrics_log.read_metrics(ours),
                    metrics_log.read_metrics(theirs)):
      for key in ('train_loss', 'test_loss', 'test_accuracy'):
        assert a[key] == b[key]


def test_lr_search_never_evaluates_the_test_split(compared):
  """Search runs evaluate only the held-out tail of the training files."""
  data_dir, workdir, result, recorder = compared
  train_split, test_split = input_pipeline.load_idx_dir(data_dir)
  held_out = _digest(train_split.images[-VALIDATION:],
                     train_split.labels[-VALIDATION:])
  test_digest = _digest(test_split.images, test_split.labels)
  search_runs = [f for f in recorder.evaluated if f.startswith('lr_search')]
  assert len(search_runs) == 2
  for folder in search_runs:
    assert set(recorder.evaluated[folder]) == {held_out}
  # The final runs do evaluate the test split (so the check can fail).
  assert set(recorder.evaluated['runs/sgd/seed_0']) == {test_digest}
  # The choice follows the validation accuracy.
  search = _read_csv(os.path.join(workdir, 'lr_search.csv'))
  best = max(search, key=lambda r: (float(r['val_accuracy']),
                                    -float(r['val_loss'])))
  assert best['chosen'] == 'yes'
  assert result['learning_rates']['sgd'] == float(best['learning_rate'])
  for row in search:
    rows = metrics_log.read_metrics(os.path.join(
        workdir, 'lr_search', 'sgd', f'lr_{float(row["learning_rate"]):g}'))
    assert 'test_accuracy' not in rows[-1]
    assert float(row['val_accuracy']) == pytest.approx(
        rows[-1]['val_accuracy'], abs=5e-5)


def test_rerun_resumes_without_training_again(compared, monkeypatch):
  """A finished comparison rerun reads its runs back: no step is trained."""
  data_dir, workdir, result, _ = compared
  calls = []
  monkeypatch.setattr(train, 'train_and_evaluate',
                      lambda *a, **k: calls.append(a))
  again = compare.run(tiny_compare_config(data_dir), workdir)
  assert not calls  # Finished runs are not even set up again.
  assert again['runs'] == result['runs']


def test_report_only_trains_nothing_and_marks_unfinished_runs(
    compared, monkeypatch):
  """report_only writes the tables from what is there, partial runs marked."""
  data_dir, workdir, _, _ = compared
  monkeypatch.setattr(setup, 'setup', lambda *a, **k: pytest.fail('trained'))
  result = compare.run(tiny_compare_config(data_dir, num_epochs=3,
                                           report_only=True), workdir)
  assert {row[-1] for row in result['runs']} == {'partial: 2 of 3 epochs'}
  summary = _read_csv(os.path.join(workdir, 'summary.csv'))
  assert summary[0]['seeds'] == ('0 (partial: 2/3 epochs) '
                                 '1 (partial: 2/3 epochs)')
  assert result['identical'] == []  # Only complete runs are compared.
  # Restore the complete tables for the other tests.
  compare.run(tiny_compare_config(data_dir, report_only=True), workdir)


@pytest.mark.parametrize('field, value, message', [
    ('optimizers', ('adam', 'adamm'), "config.optimizers[1]='adamm' is invalid"),
    ('optimizers', ('adam', 'sgd', 'adam'), "each entry once ('adam' repeat"),
    ('optimizers', (), 'config.optimizers=()'),
    ('learning_rates.sgd', -0.1, 'config.learning_rates.sgd=-0.1'),
    ('learning_rates.sgd', float('nan'), 'config.learning_rates.sgd=nan'),
    ('seeds', (0, 0), 'config.seeds=(0, 0)'),
    ('target_accuracy', 1.5, 'config.target_accuracy=1.5'),
    ('lr_search_factors', (1.0, -2.0), 'config.lr_search_factors'),
    ('optimizer.b1', 1.5, "entry 'adam'"),
    ('seeds', (), 'config.seeds=() is invalid; accepted: a non-empty tuple'),
    ('lr_search_factors', (), 'config.lr_search_factors=()'),
    ('lr_search_factors', (0.0, 1.0), 'config.lr_search_factors[0]=0.0'),
    ('lr_search_factors', (1.0, float('inf')),
     'config.lr_search_factors[1]=inf'),
    ('learning_rates.adam', 0.0, 'config.learning_rates.adam=0.0'),
    ('num_epochs', 0, 'config.num_epochs=0'),
    ('lr_search_epochs', 0, 'config.lr_search_epochs=0'),
    ('lr_search_validation_examples', 0,
     'config.lr_search_validation_examples=0'),
])
def test_bad_entries_fail_before_any_training(tmp_path, monkeypatch, field,
                                              value, message):
  """A bad list, rate or hyperparameter is a ConfigError naming the entry."""
  monkeypatch.setattr(setup, 'setup', lambda *a, **k: pytest.fail('trained'))
  config = tiny_compare_config(str(tmp_path), optimizers=('adam', 'sgd'))
  node, _, leaf = field.rpartition('.')
  (config[node] if node else config)[leaf] = value
  with pytest.raises(errors.ConfigError, match=None) as info:
    compare.run(config, str(tmp_path / 'out'))
  assert message in str(info.value)
  assert not os.path.exists(tmp_path / 'out' / 'runs')


def test_bad_entry_from_the_command_line_is_one_line(tmp_path):
  """main.py reports a bad learning-rate entry in one line, exit 1."""
  result = run_main(
      '--config=configs/compare.py', f'--workdir={tmp_path}',
      f'--config.data_dir={tmp_path}', '--config.optimizers=("adam","sgd")',
      '--config.learning_rates.sgd=-1')
  assert result.returncode == 1
  errors_printed = [l for l in result.stderr.splitlines()
                    if l.startswith('Error:')]
  assert len(errors_printed) == 1
  assert 'config.learning_rates.sgd=-1' in errors_printed[0]
  assert 'Traceback' not in result.stderr


def test_run_config_is_an_ordinary_training_config(tmp_path):
  """Shared hyperparameters go to the optimizers that take them only."""
  config = tiny_compare_config(str(tmp_path))
  config.optimizer.b2 = 0.99
  config.optimizer.momentum = 0.8
  adam = compare.run_config(config, 'adam', 2e-3, 5)
  sgd = compare.run_config(config, 'momentum', 0.05, 5)
  assert (adam.optimizer.b2, adam.optimizer.momentum) == (0.99, None)
  assert (sgd.optimizer.b2, sgd.optimizer.momentum) == (None, 0.8)
  assert (adam.optimizer.name, adam.optimizer.learning_rate, adam.seed,
          adam.task) == ('adam', 2e-3, 5, 'classify')
  assert not set(compare.COMPARE_FIELDS) & set(adam.keys())
  schema.validate(adam)
  assert compare.label('adam', 2e-3, {'b2': 0.99}) == 'adam, lr=0.002, b2=0.99'


@pytest.mark.parametrize('metric, expected_rate', [
    ('val_accuracy', 0.1), ('val_loss', 0.3), ('train_loss', 0.03)])
def test_lr_search_picks_by_the_configured_metric(tmp_path, monkeypatch,
                                                  metric, expected_rate):
  """Each lr_search_metric picks the rate that is best by that metric."""
  # Three grid points where each metric prefers a different one.
  logged = {0.03: dict(val_accuracy=0.90, val_loss=0.50, train_loss=0.10),
            0.1: dict(val_accuracy=0.95, val_loss=0.40, train_loss=0.30),
            0.3: dict(val_accuracy=0.93, val_loss=0.20, train_loss=0.20)}
  monkeypatch.setattr(
      compare, 'train_run', lambda config, workdir, name, rate, seed, _: (
          report.Result(name, rate, seed, workdir,
                         [dict(epoch=1, **logged[rate])], 1)))
  config = tiny_compare_config(str(tmp_path), optimizers=('sgd',),
                               lr_search_factors=(0.3, 1.0, 3.0),
                               lr_search_epochs=1, lr_search_metric=metric)
  chosen, chosen_hparams, rows = compare.search(config, str(tmp_path),
                                                 ['sgd'])
  assert chosen == {'sgd': expected_rate}
  assert chosen_hparams == {'sgd': {}}  # A grid varies the rate only.
  assert [row[1] for row in rows if row[5] == 'yes'] == [expected_rate]
  # A choice at either end of the grid is flagged; one inside it is not.
  status = {row[1]: row[6] for row in rows}
  assert status[expected_rate] == ('ok' if expected_rate == 0.1 else
                                   'ok, at the edge of the grid')


def test_unknown_lr_search_metric_is_a_config_error(tmp_path):
  """A misspelt metric is refused naming the field and the accepted ones."""
  config = tiny_compare_config(str(tmp_path), lr_search_metric='val_acc')
  with pytest.raises(errors.ConfigError,
                     match="lr_search_metric='val_acc'.*train_loss"):
    compare.check_config(config)


def test_search_trains_with_the_first_seed(compared):
  """The search's runs use config.seeds[0], the seed of the first runs."""
  _, workdir, _, _ = compared
  configs = [os.path.join(root, 'config.json') for root, _, files in
             os.walk(os.path.join(workdir, 'lr_search'))
             if 'config.json' in files]
  assert len(configs) == 2
  for path in configs:
    with open(path) as f:
      assert json.load(f)['seed'] == tiny_compare_config('').seeds[0] == 0


def test_fixed_rate_wins_over_searched_and_default(tmp_path):
  """learning_rates: a config entry, else the searched rate, else the default."""
  config = tiny_compare_config(str(tmp_path),
                               optimizers=('adam', 'sgd', 'momentum'))
  config.learning_rates.sgd = 0.05
  rates = compare.learning_rates(config, {'adam': 3e-3, 'sgd': 0.3})
  assert rates == {'adam': 1e-3, 'sgd': 0.05,
                   'momentum': registry.DEFAULT_LEARNING_RATES['momentum']}
  config.learning_rates.adam = None
  assert compare.learning_rates(config, {'adam': 3e-3})['adam'] == 3e-3


def test_search_metrics_are_the_schemas():
  """The ranking rules cover exactly the metrics the schema accepts."""
  assert tuple(compare.SEARCH_METRICS) == schema.SEARCH_METRICS
  assert compare.COMPARE_FIELDS == tuple(schema.COMPARISON)


def test_quasi_random_search_gives_every_optimizer_the_same_budget(
    tmp_path, monkeypatch):
  """N trials each, over the rate and each one's own decays and decay.

  The winner is the best validation score, and its hyperparameters, not
  only its rate, are what the seed runs get.
  """
  seen = {}

  def fake_run(config, workdir, name, rate, seed, _):
    """A run whose validation accuracy peaks at one setting per optimizer."""
    hparams = {k: v for k, v in config.optimizer.items()
               if k not in ('name', 'learning_rate') and v is not None}
    seen.setdefault(name, []).append((rate, hparams, workdir))
    score = 0.9 - abs(math.log10(rate / registry.DEFAULT_LEARNING_RATES[
        name])) / 10 - hparams.get('weight_decay', 0)
    assert config.validation_examples == VALIDATION  # Never the test split.
    return report.Result(name, rate, seed, workdir, [dict(
        epoch=1, val_accuracy=score, val_loss=1 - score, train_loss=1.0)], 1)

  monkeypatch.setattr(compare, 'train_run', fake_run)
  names = ['adam', 'sgd', 'momentum', 'lion', 'adagrad']
  config = tiny_compare_config(str(tmp_path), optimizers=tuple(names),
                               lr_search_trials=6,
                               lr_search_range=(0.1, 10.0))
  compare.check_config(config)
  chosen, chosen_hparams, rows = compare.search(config, str(tmp_path), names)
  assert {name: len(runs) for name, runs in seen.items()} == dict.fromkeys(
      names, 6)
  varied = {name: set(runs[0][1]) for name, runs in seen.items()}
  assert varied == {'adam': {'b1', 'b2'}, 'sgd': set(),
                    'momentum': {'momentum'},
                    'lion': {'b1', 'b2', 'weight_decay'}, 'adagrad': set()}
  for name, runs in seen.items():
    default = registry.DEFAULT_LEARNING_RATES[name]
    rates = [rate for rate, _, _ in runs]
    assert len(set(rates)) == 6
    assert all(0.1 * default <= rate <= 10 * default for rate in rates)
    assert all(0.5 <= h['b2'] < 1 for _, h, _ in runs if 'b2' in h)
    assert len({folder for _, _, folder in runs}) == 6
    best = max(runs, key=lambda run: 0.9 - abs(math.log10(
        run[0] / default)) / 10 - run[1].get('weight_decay', 0))
    assert (chosen[name], chosen_hparams[name]) == best[:2]
  assert sum(row[5] == 'yes' for row in rows) == len(names)
  # The winner's hyperparameters reach the seed runs' configs.
  run = compare.run_config(config, 'lion', chosen['lion'], 1,
                           searched=chosen_hparams['lion'])
  for field, value in chosen_hparams['lion'].items():
    assert run.optimizer[field] == value
  # A config-fixed hyperparameter is not searched.
  config.optimizer.b1 = 0.8
  assert compare.searched_hyperparameters(config, 'adam') == ['b2']


@pytest.mark.parametrize('value', [(1.0,), (10.0, 0.1), (0.1, 1.0, 10.0)])
def test_bad_lr_search_range_is_named(tmp_path, value):
  config = tiny_compare_config(str(tmp_path), lr_search_range=value)
  with pytest.raises(errors.ConfigError, match='config.lr_search_range='):
    compare.check_config(config)


def test_seed_runs_get_the_searched_hyperparameters(tmp_path, monkeypatch):
  """run(): the final runs use the winning trial's rate and hyperparameters."""
  seen = []

  def fake_run(config, workdir, name, rate, seed, _):
    """Search runs score by b1 closeness to 0.9; every run is recorded."""
    seen.append((workdir, config))
    score = 1 - abs((config.optimizer.b1 or 0.9) - 0.9)
    return report.Result(name, rate, seed, workdir, [dict(
        epoch=e + 1, val_accuracy=score, val_loss=1 - score, train_loss=1.0,
        test_accuracy=score, epoch_time_s=1.0)
                                                     for e in range(2)], 2)

  monkeypatch.setattr(compare, 'train_run', fake_run)
  monkeypatch.setattr(compare.figures, 'write_figures', lambda *a: [])
  monkeypatch.setattr(compare.report, 'identical_pairs', lambda r: [])
  monkeypatch.setattr(compare.report, 'tensorboard_reader', lambda: None)
  config = tiny_compare_config(str(tmp_path), optimizers=('nadam',),
                               lr_search_trials=4, lr_search_epochs=2)
  result = compare.run(config, str(tmp_path))
  search = [c for w, c in seen if os.sep + 'lr_search' + os.sep in w]
  final = [c for w, c in seen if os.sep + 'runs' + os.sep in w]
  assert len(search) == 4 and len(final) == len(config.seeds)
  best = max(search, key=lambda c: -abs(c.optimizer.b1 - 0.9))
  for c in final:
    assert c.optimizer.b1 == best.optimizer.b1
    assert c.optimizer.b2 == best.optimizer.b2
    assert c.optimizer.learning_rate == best.optimizer.learning_rate
  assert result['learning_rates'] == {'nadam': best.optimizer.learning_rate}
  saved = json.load(open(tmp_path / 'lr_search.json'))
  assert saved == {'nadam': {'learning_rate': best.optimizer.learning_rate,
                             'b1': best.optimizer.b1,
                             'b2': best.optimizer.b2}}


def test_workloads_are_the_schemas_and_set_their_recipe(tmp_path):
  assert tuple(compare.WORKLOADS) == schema.WORKLOADS
  config = tiny_compare_config(str(tmp_path), workloads=schema.WORKLOADS,
                               fashion_mnist_dir='/data/fashion')
  mlp = compare.workload_config(config, 'mnist_mlp')
  assert (mlp.model, mlp.dropout_rate, mlp.target_accuracy, mlp.workloads,
          mlp.data_dir) == ('mlp', 0.5, 0.97, (), str(tmp_path))
  vae = compare.workload_config(config, 'mnist_vae')
  assert (vae.model, vae.metric, vae.lr_search_metric, vae.target_accuracy) == (
      'vae', 'elbo', 'val_loss', -115.0)
  fashion = compare.workload_config(config, 'fashion_cnn')
  assert (fashion.dataset, fashion.data_dir, fashion.model) == (
      'fashion_mnist', '/data/fashion', 'cnn')
  assert config.model == 'cnn' and config.workloads  # The original is kept.
  with pytest.raises(errors.ConfigError, match="workloads.*'mnist_mpl'"):
    compare.check_config(tiny_compare_config(str(tmp_path),
                                             workloads=('mnist_mpl',)))


def test_epochs_to_target_is_the_median_over_seeds():
  col = report.RUNS_HEADER.index('epoch_to_target')
  def row(name, epoch):
    r = [''] * len(report.RUNS_HEADER)
    r[0], r[col] = name, epoch
    return r
  runs = [row('adam', 2), row('adam', 3), row('adam', 4),
          row('sgd', 5), row('sgd', ''), row('sgd', '')]
  assert compare.epochs_to_target(runs) == {'adam': 3.0, 'sgd': math.inf}


def test_workloads_give_performance_profiles(tmp_path, monkeypatch):
  """Each workload is a comparison in its folder; profiles across them."""
  epochs = {'mnist_cnn': {'adam': 2, 'sgd': 4},
            'mnist_logreg': {'adam': 3, 'sgd': ''}}
  calls = []

  def fake_run(config, workdir):
    """run() of one workload: its runs.csv rows, one seed each."""
    name = os.path.basename(workdir)
    calls.append((name, config.model, config.target_accuracy))
    col = report.RUNS_HEADER.index('epoch_to_target')
    rows = []
    for optimizer, epoch in epochs[name].items():
      r = [''] * len(report.RUNS_HEADER)
      r[0], r[col] = optimizer, epoch
      rows.append(r)
    return {'runs': rows}

  monkeypatch.setattr(compare, 'run', fake_run)
  config = tiny_compare_config(str(tmp_path), optimizers=('adam', 'sgd'),
                               workloads=('mnist_cnn', 'mnist_logreg'))
  out = compare.run_workloads(config, str(tmp_path / 'study'))
  assert calls == [('mnist_cnn', 'cnn', 0.99),
                   ('mnist_logreg', 'logreg', 0.92)]
  taus = list(compare.PROFILE_TAUS)
  # adam fastest on both; sgd 2x slower on one, never on the other.
  assert out['profiles']['adam'][taus.index(1.0)] == 1.0
  assert out['profiles']['sgd'][taus.index(1.0)] == 0.0
  assert out['profiles']['sgd'][taus.index(2.0)] == 0.5
  table = (tmp_path / 'study' / 'profile.md').read_text().splitlines()
  assert table[2].startswith('| adam | 2 | 3 | 1.00 | 1.00 |')
  assert table[3].startswith('| sgd | 4 | inf | 0.00 | 0.50 |')
  png = (tmp_path / 'study' / 'performance_profile.png').read_bytes()
  assert png.startswith(b'\x89PNG') and len(png) > 5_000


def test_the_vae_workload_is_ranked_by_its_test_elbo(tmp_path):
  """mnist_vae: the same trainer, ranked by the ELBO (minus the test loss),
  searched on the validation loss; no accuracy anywhere."""
  make_tiny_mnist(str(tmp_path))
  config = tiny_compare_config(
      str(tmp_path), optimizers=('adam', 'sgd'), workloads=('mnist_vae',),
      lr_search_trials=2, seeds=(0, 1), num_epochs=1, log_every_steps=0)
  config.learning_rates.adam = None
  config.learning_rates.optax_adam = None
  compare.run(config, str(tmp_path / 'study'))
  folder = tmp_path / 'study' / 'mnist_vae'
  summary = {r['optimizer']: r for r in _read_csv(folder / 'summary.csv')}
  elbos = {}
  for name in ('adam', 'sgd'):
    finals = []
    for seed in (0, 1):
      rows = metrics_log.read_metrics(str(folder / 'runs' / name /
                                          f'seed_{seed}'))
      assert 'test_loss' in rows[-1] and 'test_accuracy' not in rows[-1]
      finals.append(-rows[-1]['test_loss'])
    elbos[name] = np.mean(finals)
    assert float(summary[name]['final_test_elbo']) == pytest.approx(
        elbos[name], abs=1e-4)
    # The search's winner has the lowest validation loss of its trials.
    trials = [r for r in _read_csv(folder / 'lr_search.csv')
              if r['optimizer'] == name]
    chosen, = [r for r in trials if r['chosen'] == 'yes']
    assert float(chosen['val_loss']) == min(float(r['val_loss'])
                                            for r in trials)
    assert chosen['val_accuracy'] == ''
  better = max(elbos, key=elbos.get)
  assert summary[better]['rank'] == '1'
  assert 'final_test_elbo_ci95' in summary[better]
  stored = json.load(open(folder / compare.COMPARISON_FILE))
  assert (stored['metric'], stored['lr_search_trials']) == ('elbo', 2)
  # The study report reads the same folder: ELBOs in nats, the best first.
  text = study.write_report([str(tmp_path / 'study')], str(tmp_path / 'out'))
  first = [l for l in text.splitlines() if l.startswith('| 1 | ')][0]
  assert first.startswith(f'| 1 | {better} | ')
  assert f'{elbos[better]:.2f} nats [' in first
  assert (tmp_path / 'out' / 'mnist_vae' / 'runs.csv').exists()


@pytest.mark.parametrize('overrides, message', [
    ({'model': 'vae'}, "config.metric='accuracy'.*elbo for config.model='vae'"),
    ({'metric': 'elbo'}, "config.metric='elbo'.*accuracy for config.model"),
    ({'model': 'vae', 'metric': 'elbo', 'lr_search_metric': 'val_loss'},
     r'config.target_accuracy=0.99.*ELBO in nats, < 0'),
    ({'model': 'vae', 'metric': 'elbo', 'target_accuracy': -100.0},
     "config.lr_search_metric='val_accuracy'.*val_loss or train_loss"),
    ({'target_accuracy': -100.0},
     r'config.target_accuracy=-100.0.*accuracy in \(0, 1\]'),
])
def test_a_metric_that_does_not_fit_the_model_is_named(tmp_path, overrides,
                                                       message):
  with pytest.raises(errors.ConfigError, match=message):
    compare.check_config(tiny_compare_config(str(tmp_path), **overrides))


@pytest.mark.skipif(not os.path.exists('/proc/self/maps'),
                    reason='counts the memory maps Linux lists')
def test_runs_release_their_compiled_programs(tmp_path):
  """A study trains hundreds of runs in one process: each run's compiled
  programs (about 200 memory maps on CPU) must go with it, or XLA's compiler
  runs out of maps (vm.max_map_count) and crashes the study."""
  make_tiny_mnist(str(tmp_path))
  config = tiny_compare_config(str(tmp_path))
  maps = []
  for i, rate in enumerate((1e-3, 2e-3, 3e-3, 4e-3)):
    run = compare.run_config(config, 'adam', rate, 0, num_epochs=1)
    compare.train_run(run, str(tmp_path / f'run_{i}'), 'adam', rate, 0)
    with open('/proc/self/maps') as f:
      maps.append(sum(1 for _ in f))
  assert maps[-1] - maps[1] < 60, maps


def test_a_killed_run_is_resumed_and_a_finished_one_skipped(tmp_path,
                                                           monkeypatch):
  """Stopped in epoch 2, the run trains on when the study is rerun; once
  finished, a rerun does not set it up again."""
  make_tiny_mnist(str(tmp_path))
  run = compare.run_config(tiny_compare_config(str(tmp_path)), 'adam', 1e-3, 0)
  folder = str(tmp_path / 'run')
  real_epoch, epochs = train.train_epoch, []

  def stopped_in_epoch_2(run_, state, *args):
    epochs.append(int(state.epoch))
    if int(state.epoch) == 2:
      raise errors.InterruptedRun('stopped')
    return real_epoch(run_, state, *args)

  monkeypatch.setattr(train, 'train_epoch', stopped_in_epoch_2)
  with pytest.raises(errors.InterruptedRun):
    compare.train_run(run, folder, 'adam', 1e-3, 0)
  monkeypatch.setattr(train, 'train_epoch', real_epoch)
  result = compare.train_run(run, folder, 'adam', 1e-3, 0)
  assert result.complete and [r['epoch'] for r in result.rows] == [1, 2]
  calls = []
  monkeypatch.setattr(train, 'train_and_evaluate',
                      lambda *a, **k: calls.append(a))
  again = compare.train_run(run, folder, 'adam', 1e-3, 0)
  assert not calls and again.rows == result.rows
