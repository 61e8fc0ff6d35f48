"""Tests for the 2-D optimizer playground."""

import csv
import os
import struct

import jax
import numpy as np
from PIL import Image
import pytest

from configs import quadratic
import optimizers
import playground

PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'


def _config(**overrides):
  """The playground config with quick settings and `overrides` applied."""
  config = quadratic.get_config()
  config.max_steps = 200
  config.dpi = 40
  config.animate = False
  config.update(overrides)
  return config


def _png_size(path):
  """(width, height) from a PNG's IHDR chunk; fails unless it is a PNG."""
  with open(path, 'rb') as f:
    head = f.read(24)
  assert head[:8] == PNG_SIGNATURE, path
  assert head[12:16] == b'IHDR', path
  return struct.unpack('>II', head[16:24])


def _expected_size(figsize, dpi):
  """The pixel size matplotlib gives a `figsize`-inch figure at `dpi`."""
  return round(figsize[0] * dpi), round(figsize[1] * dpi)


def _read_csv(path):
  """The header and the rows of a CSV file."""
  with open(path, newline='') as f:
    rows = list(csv.reader(f))
  return tuple(rows[0]), rows[1:]


def _seed_adam(start, learning_rate, b1, b2, eps, num_steps):
  """The seed's Adam on x^2 + y^2 in float64 NumPy, moments per coordinate."""
  point = np.array(start, np.float64)
  m = np.zeros(2)
  v = np.zeros(2)
  points = [point.copy()]
  for t in range(1, num_steps + 1):
    grad = 2 * point
    m = b1 * m + (1 - b1) * grad
    v = b2 * v + (1 - b2) * grad**2
    m_hat = m / (1 - b1**t)
    v_hat = v / (1 - b2**t)
    point = point - learning_rate * m_hat / (np.sqrt(v_hat) + eps)
    points.append(point.copy())
  return np.array(points)


def test_adam_converges_to_the_origin_on_the_quadratic():
  """Our Adam from the default start ends within the tolerance of (0, 0)."""
  problem = playground.PROBLEMS['quadratic']
  (run,) = playground.optimize(problem, 'adam', [0.1], problem.start, 1000,
                               1e-6)
  assert run.steps_to_tolerance is not None
  assert len(run.points) == run.steps_to_tolerance + 1
  assert run.losses[-1] < 1e-6
  assert run.losses[-2] >= 1e-6  # It stops at the first step below.
  np.testing.assert_allclose(run.points[-1], [0.0, 0.0], atol=1e-3)


@pytest.mark.parametrize('hparams', [
    {'b1': 0.9, 'b2': 0.999, 'eps': 1e-8},
    # A large eps tells eps outside the square root from eps inside.
    {'b1': 0.5, 'b2': 0.9, 'eps': 0.1},
])
def test_trajectory_equals_the_seed_algorithm_per_coordinate(hparams):
  """The scanned trajectory is the seed's Adam with per-coordinate moments."""
  (run,) = playground.optimize(
      playground.PROBLEMS['quadratic'], 'adam', [0.1], (1.5, 1.0), 150,
      tolerance=0.0, **hparams)  # Tolerance 0: never cut.
  expected = _seed_adam((1.5, 1.0), 0.1, num_steps=150, **hparams)
  np.testing.assert_allclose(run.points, expected, atol=5e-5)


def test_vmapped_learning_rates_equal_separate_runs():
  """One vmapped computation over rates gives each rate's own trajectory."""
  problem = playground.PROBLEMS['ill_conditioned']
  swept = playground.optimize(problem, 'momentum', [0.001, 0.005], (1.0, 1.0),
                              50, 0.0)
  for run in swept:
    (alone,) = playground.optimize(problem, 'momentum', [run.learning_rate],
                                   (1.0, 1.0), 50, 0.0)
    np.testing.assert_allclose(run.points, alone.points, rtol=1e-6)


def test_steps_to_tolerance_is_the_first_step_below():
  """The first index below the tolerance, per row; -1 where none is."""
  losses = np.array([[5.0, 0.5, 2.0, 0.01, 0.001],
                     [5.0, 4.0, 3.0, 2.0, 1.0]])
  steps = playground.steps_to_tolerance(losses, 0.6)
  np.testing.assert_array_equal(steps, [1, -1])


@pytest.mark.parametrize('name', list(playground.PROBLEMS))
def test_landmarks_are_stationary_points(name):
  """Each marked point has zero gradient; each minimum has loss 0."""
  problem = playground.PROBLEMS[name]
  for label, point in problem.landmarks:
    point = np.array(point, np.float32)
    np.testing.assert_allclose(jax.grad(problem.loss)(point), 0.0, atol=1e-5)
    if label == 'minimum':
      assert problem.loss(point) == 0.0


def test_diverging_run_is_cut_before_the_first_non_finite_loss():
  """SGD at 0.1 on x^2 + 100 y^2 (stable only below 0.01) is 'diverged'."""
  (run,) = playground.optimize(playground.PROBLEMS['ill_conditioned'], 'sgd',
                               [0.1], (1.5, 1.0), 200, 1e-6)
  assert run.diverged and run.steps_to_tolerance is None
  assert np.isfinite(run.losses).all()
  assert run.status == f'diverged at step {len(run.losses)}'


def test_run_writes_pictures_tables_and_gif(tmp_path, capsys):
  """One run: PNGs of the configured size, a GIF, the CSV, a printout."""
  config = _config(animate=True)
  playground.run(config, str(tmp_path))
  stem = os.path.join(tmp_path, 'quadratic_adam')

  assert _png_size(stem + '_contour.png') == _expected_size(
      playground.CONTOUR_FIGSIZE, config.dpi)
  assert _png_size(stem + '_loss.png') == _expected_size(
      playground.LOSS_FIGSIZE, config.dpi)
  with open(stem + '.gif', 'rb') as f:
    assert f.read(6) == b'GIF89a'
  with Image.open(stem + '.gif') as gif:
    assert gif.n_frames > 1
    assert gif.size == _expected_size(playground.CONTOUR_FIGSIZE, config.dpi)

  _, summary = _read_csv(stem + '_summary.csv')
  steps = int(summary[0][2])
  header, rows = _read_csv(stem + '_trajectories.csv')
  assert header == playground.TRAJECTORY_HEADER
  assert len(rows) == steps + 1  # The start, then every step taken.
  assert float(rows[-1][5]) < config.tolerance

  out = capsys.readouterr().out
  assert f'adam, lr=0.1: {steps} steps; final point (' in out


def test_learning_rate_sweep_draws_one_panel_per_rate(tmp_path):
  """A list of rates gives a small-multiples PNG sized by its panel grid."""
  config = _config(learning_rates=(0.01, 0.1, 0.5))
  playground.run(config, str(tmp_path))
  stem = os.path.join(tmp_path, 'quadratic_adam_lr_sweep')
  rows, columns = playground.panel_grid(3)
  assert (rows, columns) == (1, 3)
  assert _png_size(stem + '_contour.png') == _expected_size(
      (playground.PANEL_INCHES * columns, playground.PANEL_INCHES * rows),
      config.dpi)
  _, summary = _read_csv(stem + '_summary.csv')
  assert [float(row[1]) for row in summary] == [0.01, 0.1, 0.5]


def test_compare_writes_one_row_per_registry_optimizer(tmp_path):
  """Comparison mode tabulates every optimizer in the registry, in order."""
  playground.run(_config(compare=True, max_steps=50), str(tmp_path))
  stem = os.path.join(tmp_path, 'quadratic_compare')
  header, rows = _read_csv(stem + '_summary.csv')
  assert header == playground.SUMMARY_HEADER
  assert [row[0] for row in rows] == list(optimizers.OPTIMIZERS)
  with open(stem + '_summary.md') as f:
    markdown = f.read().splitlines()
  assert len(markdown) == 2 + len(optimizers.OPTIMIZERS)
  assert os.path.exists(stem + '_contour.png')
  assert os.path.exists(stem + '_loss.png')


def test_compare_uses_per_optimizer_rates(tmp_path):
  """compare_learning_rates overrides the shared rate for its optimizers."""
  config = _config(compare=True, max_steps=20,
                   compare_optimizers=('adam', 'sgd'))
  config.compare_learning_rates.sgd = 0.01
  playground.run(config, str(tmp_path))
  _, rows = _read_csv(os.path.join(tmp_path, 'quadratic_compare_summary.csv'))
  assert [(row[0], float(row[1])) for row in rows] == [('adam', 0.1),
                                                       ('sgd', 0.01)]


@pytest.mark.parametrize('overrides, message', [
    ({'problem': 'rosenbrok'},
     r"Unknown problem 'rosenbrok'; accepted: quadratic, ill_conditioned, "
     r'rosenbrock, beale, saddle'),
    ({'optimizer.name': 'adamm'},
     r"Unknown optimizer 'adamm'; accepted: adam, adamw"),
    ({'compare': True, 'compare_optimizers': ('adam', 'sgdd')},
     r"Unknown optimizer 'sgdd'; accepted: adam, adamw"),
    ({'start': (1.0,)}, r'start=\(1.0,\) is invalid; accepted: None'),
    ({'start': (1.0, float('nan'))}, r'start=\(1.0, nan\) is invalid'),
    ({'max_steps': 0}, r'max_steps=0 is invalid; accepted: an integer >= 1'),
    ({'learning_rates': (0.1, -1.0)}, r'learning_rate=-1.0 is invalid'),
    ({'compare': True, 'learning_rates': (0.1,)}, r'cannot be combined'),
])
def test_bad_settings_are_clear_errors(tmp_path, overrides, message):
  """Bad input raises a ValueError naming the value and what is accepted."""
  config = _config()
  config.update_from_flattened_dict(overrides)
  with pytest.raises(ValueError, match=message):
    playground.run(config, str(tmp_path))


@pytest.mark.parametrize('name', ['rosenbrock', 'beale', 'saddle'])
def test_every_problem_draws(tmp_path, name):
  """The other problems run and draw (log-spaced contours, saddle marker)."""
  playground.run(_config(problem=name, max_steps=30), str(tmp_path))
  assert os.path.exists(os.path.join(tmp_path, f'{name}_adam_contour.png'))
