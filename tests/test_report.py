"""Tests for the analysis of finished runs (experiments/report.py)."""

import dataclasses
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from adamjax.experiments import report
from adamjax.trainer import metrics_log

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_smooth_is_a_debiased_moving_average():
  """A constant stays constant; otherwise the EMA recursion, debiased."""
  np.testing.assert_allclose(report.smooth(np.full(50, 3.0), 0.9), 3.0)
  values = np.array([4.0, 2.0, 1.0])
  w = 0.5
  ema = [0.5 * 4.0, 0.25 * 4.0 + 0.5 * 2.0,
         0.125 * 4.0 + 0.25 * 2.0 + 0.5 * 1.0]
  expected = [e / (1 - w**t) for t, e in enumerate(ema, 1)]
  np.testing.assert_allclose(report.smooth(values, w), expected)
  np.testing.assert_array_equal(report.smooth(values, 0.0), values)


def test_resumed_log_keeps_the_steps_written_before(tmp_path):
  """A run resumed from step 3 keeps steps 1-3's losses, drops a killed 4."""
  log = metrics_log.RunLog(str(tmp_path), 0, 1, 1e9)
  log.write_steps(0, [1.0, 2.0, 3.0, 9.0], 64, 1, 4, 10)  # 4: after the save.
  log.close()
  # Event files are named by the second they were opened in.
  time.sleep(1.1)
  log = metrics_log.RunLog(str(tmp_path), 3, 1, 1e9)
  log.write_steps(3, [4.0, 5.0], 64, 1, 5, 10)
  log.close()
  steps, losses = report.step_losses(str(tmp_path))
  assert steps.tolist() == [1, 2, 3, 4, 5]
  assert losses.tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]


def _result(seed, accuracies, times, losses):
  """A finished report.Result with the given per-epoch metrics."""
  rows = [dict(epoch=i + 1, test_accuracy=a, epoch_time_s=t, train_loss=l)
          for i, (a, t, l) in enumerate(zip(accuracies, times, losses))]
  return report.Result('adam', 1e-3, seed, f'/runs/seed_{seed}', rows,
                        len(rows))


def test_table_rows_hold_the_runs_numbers():
  """runs.csv and summary rows: finals, bests, the target epoch and times."""
  # Seed 0 reaches the target exactly (0.99 >= 0.99) at epoch 2 and ends
  # below its best; seed 1 reaches it at its last epoch.
  first = _result(0, [0.97, 0.99, 0.985], [10.0, 5.0, 5.0], [0.5, 0.3, 0.2])
  second = _result(1, [0.98, 0.985, 0.995], [12.0, 6.0, 6.0],
                   [0.6, 0.4, 0.25])
  assert report.run_row(first, 0.99) == [
      'adam', 1e-3, 0, 0.985, 0.99, 2, 0.2, 2, 15.0, 20.0, 'ok']
  assert report.run_row(second, 0.99)[7:10] == [3, 24.0, 24.0]
  assert report.run_row(first, 0.999)[7:9] == ['', '']
  assert report.summary_row(
      'adam', 1e-3, {'b1': 0.8}, [first, second], 0.99,
      report.final_accuracy_interval([first, second])) == [
      'adam', 1e-3, 'b1=0.8', '0 1', '0.9900', '0.0050', '0.9925', '0.2250',
      '2 3', '19.5', '22.0', '0.9850 to 0.9950', '2.00 to 3.00',
      '15.0 to 24.0', '']


def test_summary_means_leave_out_an_unfinished_seed():
  """With one seed complete, a partial seed enters neither means nor seeds."""
  done = _result(0, [0.97, 0.99, 0.985], [10.0, 5.0, 5.0], [0.5, 0.3, 0.2])
  partial = _result(1, [0.5], [10.0], [2.0])
  partial.num_epochs = 3
  row = report.summary_row('adam', 1e-3, {}, [done, partial], 0.99,
                           report.final_accuracy_interval([done, partial]))
  assert row[3:8] == ['0', '0.9850', '0.0000', '0.9900', '0.2000']
  # One complete seed: a point.
  assert row[-4:-1] == ['0.9850 to 0.9850', '2.00 to 2.00', '15.0 to 15.0']


def test_ranks_fill_in_and_share_places():
  """Two optimizers whose seeds overlap share rank 1; a third is 3rd."""
  runs = {
      'adam': [_result(s, [0.990 + 0.001 * s], [1.0], [0.1]) for s in (0, 1)],
      'nadam': [_result(s, [0.9905 + 0.001 * s], [1.0], [0.1])
                for s in (0, 1)],
      'sgd': [_result(s, [0.97 + 0.001 * s], [1.0], [0.1]) for s in (0, 1)],
  }
  intervals = report.accuracy_intervals(runs)
  rows = [report.summary_row(name, 1e-3, {}, r, 0.99, intervals[name])
          for name, r in runs.items()]
  assert all(row[-1] == '' for row in rows)
  ranked = report.with_ranks(rows, intervals)
  assert [row[-1] for row in ranked] == [1, 1, 3]
  assert [row[:-1] for row in ranked] == [row[:-1] for row in rows]


@pytest.mark.parametrize('change, expected', [
    (None, [0, 1]), ('step_loss', []), ('last_epoch', [])])
def test_identical_seeds_needs_every_step_and_epoch_equal(monkeypatch, change,
                                                          expected):
  """One differing step loss or one differing later epoch breaks identity."""
  def runs(tag):
    return [dataclasses.replace(
        _result(seed, [0.9, 0.95], [1.0, 1.0], [0.3, 0.2]),
        workdir=f'{tag}{seed}') for seed in (0, 1)]
  a, b = runs('a'), runs('b')
  losses = {w: np.array([0.5, 0.4, 0.3]) for w in ('a0', 'a1', 'b0', 'b1')}
  if change == 'step_loss':
    losses['b1'] = np.array([0.5, 0.4, 0.3 + 1e-7])
  if change == 'last_epoch':
    b[1].rows[-1]['test_accuracy'] = 0.9501
  monkeypatch.setattr(report, 'step_losses',
                      lambda w: (np.arange(3), losses[w]))
  assert report.identical_seeds(a, b) == expected


def test_time_to_target_sums_the_epochs_through_the_first_reaching_one():
  """The first epoch at the target (not the best), and the time through it."""
  rows = [dict(epoch=1, test_accuracy=0.5, val_accuracy=0.6, epoch_time_s=3.0),
          dict(epoch=2, test_accuracy=0.9, val_accuracy=0.7, epoch_time_s=2.0),
          dict(epoch=3, test_accuracy=0.8, val_accuracy=0.8, epoch_time_s=1.0)]
  assert report.first_reaching(rows, 0.8) == 1
  assert report.first_reaching(rows, 0.8, split='val') == 2
  assert report.time_to_target(rows, 0.8) == (2, 5.0)
  assert report.time_to_target(rows, 0.95) == (None, None)
  # Compilation is left out of the training time.
  rows[0]['compile_time_s'] = 1.5
  assert report.time_to_target(rows, 0.8) == (2, 3.5)


def test_time_intervals_count_only_the_seeds_that_reached_the_target():
  """A seed that never reaches the target is named, not averaged in."""
  runs = [_result(s, accuracies, [4.0] * 3, [0.1] * 3) for s, accuracies in
          enumerate(([0.9, 0.99, 0.99], [0.99, 0.99, 0.99],
                     [0.9, 0.9, 0.9]))]
  row = report.summary_row('adam', 1e-3, {}, runs, 0.99,
                           report.final_accuracy_interval(runs))
  assert row[8] == '2 1 —'
  assert row[-3:-1] == ['1.00 to 2.00 (2 of 3 seeds)',
                        '4.0 to 8.0 (2 of 3 seeds)']


def test_identical_pairs_lists_each_equal_pair_once_in_order(monkeypatch):
  """Every pair is compared once, the first-listed name first."""
  compared = []
  def seeds(a, b):
    compared.append((a[0].name, b[0].name))
    return [0] if {a[0].name, b[0].name} == {'adam', 'optax_adam'} else []
  monkeypatch.setattr(report, 'identical_seeds', seeds)
  results = {name: [dataclasses.replace(_result(0, [0.9], [1.0], [0.3]),
                                        name=name)]
             for name in ('sgd', 'adam', 'optax_adam')}
  assert report.identical_pairs(results) == [('adam', 'optax_adam', [0])]
  assert compared == [('sgd', 'adam'), ('sgd', 'optax_adam'),
                      ('adam', 'optax_adam')]


def test_importing_report_loads_neither_matplotlib_nor_tensorboard():
  """The tables and benchmarks read results without the drawing libraries."""
  code = ('import sys; from adamjax.experiments import report; '
          'print(sorted(m for m in ("matplotlib", "tensorboard") '
          'if m in sys.modules))')
  result = subprocess.run([sys.executable, '-c', code], capture_output=True,
                          text=True, cwd=ROOT, timeout=120, check=True)
  assert result.stdout.strip() == '[]'
