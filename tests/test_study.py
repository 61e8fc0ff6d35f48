"""Tests for the study report (experiments/study.py) on hand-written runs."""

import json
import math
import os

import numpy as np
import pytest

from adamjax.common import tables
from adamjax.experiments import compare
from adamjax.experiments import report
from adamjax.experiments import statistics
from adamjax.experiments import study


def write_workload(folder, finals, epochs, metric='accuracy', target=0.9):
  """A finished comparison's files: comparison.json, summary.csv, runs.csv.

  Args:
    folder: where to write (created).
    finals: {optimizer: final test metric per seed}.
    epochs: {optimizer: epoch of reaching the target per seed ('' never)}.
    metric: the comparison's config.metric.
    target: its target.
  """
  os.makedirs(folder)
  config = {'metric': metric, 'target_accuracy': target, 'model': 'cnn',
            'dataset': 'mnist', 'batch_size': 64, 'lr_search_trials': 4,
            'lr_search_factors': [1.0], 'lr_search_epochs': 1,
            'lr_search_validation_examples': 10000,
            'lr_search_metric': 'val_accuracy', 'seeds': [0, 1, 2],
            'num_epochs': 2}
  with open(os.path.join(folder, compare.COMPARISON_FILE), 'w') as f:
    json.dump(config, f)
  runs, summary = [], []
  for name, values in finals.items():
    for seed, (value, epoch) in enumerate(zip(values, epochs[name])):
      runs.append([name, 1e-3, seed, value, value, 2, 0.1, epoch,
                   '' if epoch == '' else 2.0 * epoch, 9.0, 'ok'])
    reached = [e for e in epochs[name] if e != '']
    summary.append([name, 1e-3, 'b1=0.9', '0 1 2', '', '', '', '',
                    ' '.join(str(e) if e != '' else '—'
                             for e in epochs[name]),
                    f'{2.0 * np.mean(reached):.1f}' if reached else '', '',
                    '', '', '1.0 to 3.0' if reached else '', ''])
  tables.write_table(os.path.join(folder, 'summary'),
                     report.summary_header(metric), summary)
  tables.write_csv(os.path.join(folder, 'runs.csv'),
                   report.runs_header(metric), runs)


def test_report_ranks_with_ties_and_profiles_across_workloads(tmp_path):
  """Two workloads: the table's means and intervals are the bootstrap of
  the seeds' finals; overlapping intervals share rank 1; the profile comes
  from the median epochs to target."""
  write_workload(tmp_path / 'a' / 'cnn',
                 {'adam': [0.95, 0.96, 0.97], 'sgd': [0.96, 0.97, 0.965],
                  'lion': [0.80, 0.81, 0.79]},
                 {'adam': [1, 1, 2], 'sgd': [2, 2, 2], 'lion': ['', '', '']})
  write_workload(tmp_path / 'b' / 'vae',
                 {'adam': [-100.0, -101.0, -99.0],
                  'sgd': [-120.0, -121.0, -119.0],
                  'lion': [-110.0, -111.0, -109.0]},
                 {'adam': [3, 3, 3], 'sgd': [6, 6, ''], 'lion': ['', '', 4]},
                 metric='elbo', target=-115.0)
  text = study.write_report([str(tmp_path / 'a'), str(tmp_path / 'b')],
                            str(tmp_path / 'out'), dpi=40)
  adam = statistics.bootstrap_interval([0.95, 0.96, 0.97])
  lines = text.splitlines()
  cnn_rows = [l for l in lines if l.startswith('| ') and 'cnn' not in l][1:4]
  assert cnn_rows[0].startswith('| 1 | sgd |')  # Highest mean first.
  assert cnn_rows[1].startswith(
      f'| 1 | adam | lr 0.001, b1 0.9 | {100 * adam.mean:.2f}% '
      f'[{100 * adam.low:.2f}, {100 * adam.high:.2f}] | 1 1 2 |')
  assert cnn_rows[2].startswith('| 3 | lion |')
  assert 'not reached' in cnn_rows[2]
  assert 'Tied for first (no other interval lies wholly above theirs): sgd, ' \
         'adam; 1 other separated below.' in text
  assert '| 1 | adam | lr 0.001, b1 0.9 | -100.00 nats [' in text
  assert 'target -115.00 nats' in text and 'target 90.00%' in text
  # Medians: cnn adam 1, sgd 2, lion inf; vae adam 3, sgd 6, lion inf.
  profile = (tmp_path / 'out' / 'profile.md').read_text().splitlines()
  assert profile[2] == '| adam | 1 | 3 | 1.00 | 1.00 |'
  assert profile[3] == '| sgd | 2 | 6 | 0.00 | 1.00 |'
  assert profile[4] == '| lion | inf | inf | 0.00 | 0.00 |'
  for name in ('ranking.png', 'performance_profile.png', 'study.md',
               'cnn/runs.csv', 'vae/comparison.json'):
    assert (tmp_path / 'out' / name).exists(), name


def test_a_folder_without_a_finished_comparison_is_named(tmp_path):
  (tmp_path / 'empty').mkdir()
  with pytest.raises(ValueError, match='empty: no finished comparison'):
    study.find_workloads([str(tmp_path / 'empty')])
  with pytest.raises(SystemExit, match='Error: .*missing: no finished'):
    study.main([str(tmp_path / 'missing'), '--out', str(tmp_path / 'o')])


def test_a_workload_given_twice_is_refused(tmp_path):
  for study_name in ('a', 'b'):
    write_workload(tmp_path / study_name / 'cnn', {'adam': [0.9]},
                   {'adam': [1]})
  with pytest.raises(ValueError, match="workload 'cnn' appears twice"):
    study.find_workloads([str(tmp_path / 'a'), str(tmp_path / 'b')])


def test_profiles_keep_only_the_optimizers_of_every_workload(tmp_path):
  write_workload(tmp_path / 's' / 'one', {'adam': [0.9], 'sgd': [0.9]},
                 {'adam': [1], 'sgd': [2]})
  write_workload(tmp_path / 's' / 'two', {'adam': [0.9]}, {'adam': [4]})
  header, rows, profiles = study.profile_rows(
      study.find_workloads([str(tmp_path / 's')]))
  assert header == ['optimizer', 'one', 'two', 'fastest_on', 'within_2x_on']
  assert rows == [['adam', '1', '4', '1.00', '1.00']]
  assert set(profiles) == {'adam'} and not math.isnan(profiles['adam'][0])
