"""Tests for the comparison's figures: experiments/figures.py, plot_curves."""

import json
import os
import struct
import subprocess
import sys

import numpy as np

from adamjax.experiments import figures
from adamjax.experiments import report
from adamjax.trainer import metrics_log

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PLOT_CURVES = (sys.executable, '-m', 'adamjax.experiments.plot_curves')


def _lines(fig):
  """{label: (x, y)} of the figure's labelled curves."""
  return {line.get_label(): (line.get_xdata(), line.get_ydata())
          for line in fig.axes[0].lines
          if not line.get_label().startswith('_')}


def test_accuracy_figure_draws_the_seed_mean_band_and_target():
  """Seeds cut to their common epochs; the mean, its band, the target."""
  fig = figures.accuracy_figure(
      [('adam', [[0.9, 0.95], [0.92, 0.97, 0.99]]), ('sgd', [[0.8, 0.85]]),
       ('empty', [[]])], target=0.96, dpi=40)
  lines = _lines(fig)
  x, y = lines['adam (mean, min-max of 2 seeds)']
  np.testing.assert_array_equal(x, [1, 2])
  # Accuracies in percent.
  np.testing.assert_allclose(y, [91.0, 96.0])
  np.testing.assert_allclose(lines['sgd'][1], [80.0, 85.0])
  assert lines['target 96%'][1][0] == 96.0
  assert fig.axes[0].get_ylabel() == 'test accuracy (%)'
  assert len(fig.axes[0].collections) == 1  # One band: adam's two seeds.
  assert not [l for l in lines if l.startswith('empty')]
  assert tuple(fig.get_size_inches()) == figures.FIGSIZE
  # A loss stays as it is.
  loss = figures.accuracy_figure([('adam', [[0.5, 0.4]])], 0.1, 40,
                                 metric='train loss')
  np.testing.assert_allclose(_lines(loss)['adam'][1], [0.5, 0.4])


def test_every_registry_optimizer_has_its_family_style():
  """A family colour per optimizer, members told apart by line or marker."""
  from adamjax.optim import registry  # pylint: disable=g-import-not-at-top
  members = [n for names in figures.FAMILIES.values() for n in names]
  assert sorted(members) == sorted(registry.OPTIMIZERS)
  looks = {n: figures.optimizer_style(n) for n in members}
  assert len({(s['color'], s['linestyle'], s['marker'])
              for s in looks.values()}) == len(members)
  for names in figures.FAMILIES.values():
    assert len({looks[n]['color'] for n in names}) == 1
    # ranking.png shows markers only: the first five members differ there.
    assert len({looks[n]['marker'] for n in names[:5]}) == len(names[:5])
  assert looks['adam']['color'] != looks['sgd']['color']
  # The same in every figure: by name, not by position.
  assert figures.optimizer_style('sgd', 7) == figures.optimizer_style('sgd')


def test_loss_figure_draws_the_smoothed_seed_mean_over_the_raw_one():
  """The labelled curve is the mean of each seed's smoothed losses."""
  losses = [np.array([4.0, 2.0, 1.0, 0.5]), np.array([3.0, 2.5, 1.5])]
  steps = [np.arange(1, 5), np.arange(1, 4)]
  fig = figures.loss_figure([('adam', steps, losses)], smoothing=0.5, dpi=40)
  x, y = _lines(fig)['adam (mean, min-max of 2 seeds)']
  np.testing.assert_array_equal(x, [1, 2, 3])
  expected = np.mean([report.smooth(l[:3], 0.5) for l in losses], 0)
  np.testing.assert_allclose(y, expected)
  raw = [l for l in fig.axes[0].lines if l.get_label().startswith('_')]
  np.testing.assert_allclose(raw[0].get_ydata(), [3.5, 2.25, 1.25])
  assert fig.axes[0].get_yscale() == 'log'


def test_write_figures_draws_only_optimizers_with_finished_runs(
    tmp_path, monkeypatch):
  """A diverged optimizer has no curve; both PNGs are FIGSIZE * dpi pixels."""
  def result(name, seed, diverged=None):
    rows = [dict(epoch=1, test_accuracy=0.9 + seed / 100)]
    return report.Result(name, 0.1, seed, f'{name}{seed}', rows, 1, diverged)
  monkeypatch.setattr(report, 'step_losses',
                      lambda w: (np.arange(1, 4), np.array([3.0, 2.0, 1.0])))
  drawn = {}
  def recording(name):
    """figures.`name`, recording the series it is given."""
    draw = getattr(figures, name)
    def record(series, *args):
      drawn[name] = series
      return draw(series, *args)
    return record
  for name in ('loss_figure', 'accuracy_figure', 'ranking_figure'):
    monkeypatch.setattr(figures, name, recording(name))
  results = {'adam': [result('adam', 0), result('adam', 1)],
             'sgd': [result('sgd', 0, diverged='loss is nan')]}
  paths = figures.write_figures(str(tmp_path), {'adam': 'A', 'sgd': 'S'},
                                results, report.accuracy_intervals(results),
                                0.5, 0.95, 40)
  assert paths == [str(tmp_path / 'loss.png'), str(tmp_path / 'accuracy.png'),
                   str(tmp_path / 'ranking.png')]
  assert [s[0] for s in drawn['loss_figure']] == ['A']
  assert drawn['accuracy_figure'] == [('A', [[0.9], [0.91]])]
  (label, interval, rank), = drawn['ranking_figure']
  assert (label, interval.mean, interval.count, rank) == ('A', 0.905, 2, 1)
  for path in paths[:2]:
    with open(path, 'rb') as f:
      head = f.read(24)
    assert head[:8] == b'\x89PNG\r\n\x1a\n'
    assert struct.unpack('>II', head[16:24]) == (
        round(figures.FIGSIZE[0] * 40), round(figures.FIGSIZE[1] * 40))


def test_plot_curves_draws_groups_of_runs_and_names_a_bad_glob(tmp_path):
  """plot_curves.py writes a PNG from run folders; an empty glob is one line."""
  for name, accuracies in (('a_s0', [0.9, 0.95]), ('a_s1', [0.91, 0.96]),
                           ('b_s0', [0.8, 0.97])):
    os.makedirs(tmp_path / name)
    with open(tmp_path / name / metrics_log.METRICS_FILE, 'w') as f:
      for epoch, accuracy in enumerate(accuracies, 1):
        f.write(json.dumps({'epoch': epoch, 'test_accuracy': accuracy}) + '\n')
  out = tmp_path / 'fig.png'
  result = subprocess.run(
      [*PLOT_CURVES, f'--out={out}', f'A={tmp_path}/a_s*',
       f'B={tmp_path}/b_s*'],
      capture_output=True, text=True, timeout=120, cwd=ROOT)
  assert result.returncode == 0, result.stderr
  assert out.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
  result = subprocess.run(
      [*PLOT_CURVES, f'--out={out}', f'C={tmp_path}/none*'],
      capture_output=True, text=True, timeout=120, cwd=ROOT)
  assert result.returncode == 1
  assert result.stderr.strip() == (
      f"Error: no run folder matches '{tmp_path}/none*'.")
