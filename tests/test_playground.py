"""Tests for the 2-D optimizer playground."""

import csv
import os
import struct

import logging
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
from PIL import Image
import pytest

from configs import quadratic
from conftest import main_flags
from conftest import run_main
from adamjax.common import errors
from adamjax.optim import registry
from adamjax import playground
from adamjax.playground import figures
from adamjax.playground import problems
from adamjax.playground import runs as runs_lib
from adamjax.playground import trajectories
from adamjax.playground import writers

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
      figures.CONTOUR_FIGSIZE, config.dpi)
  assert _png_size(stem + '_loss.png') == _expected_size(
      figures.LOSS_FIGSIZE, config.dpi)
  with open(stem + '.gif', 'rb') as f:
    assert f.read(6) == b'GIF89a'
  with Image.open(stem + '.gif') as gif:
    assert gif.n_frames > 1
    assert gif.size == _expected_size(figures.CONTOUR_FIGSIZE, config.dpi)

  _, summary = _read_csv(stem + '_summary.csv')
  steps = int(summary[0][2])
  header, rows = _read_csv(stem + '_trajectories.csv')
  assert header == writers.TRAJECTORY_HEADER
  assert len(rows) == steps + 1  # The start, then every step taken.
  assert float(rows[-1][5]) < config.tolerance

  out = capsys.readouterr().out
  assert f'adam, lr=0.1: {steps} steps; final point (' in out


def test_learning_rate_sweep_draws_one_panel_per_rate(tmp_path):
  """A list of rates gives a small-multiples PNG sized by its panel grid."""
  config = _config(learning_rates=(0.01, 0.1, 0.5))
  playground.run(config, str(tmp_path))
  stem = os.path.join(tmp_path, 'quadratic_adam_lr_sweep')
  rows, columns = figures.panel_grid(3)
  assert (rows, columns) == (1, 3)
  assert _png_size(stem + '_contour.png') == _expected_size(
      (figures.PANEL_INCHES * columns, figures.PANEL_INCHES * rows),
      config.dpi)
  _, summary = _read_csv(stem + '_summary.csv')
  assert [float(row[1]) for row in summary] == [0.01, 0.1, 0.5]


def test_compare_writes_one_row_per_registry_optimizer(tmp_path):
  """Comparison mode tabulates every optimizer in the registry, in order."""
  playground.run(_config(compare=True, max_steps=50), str(tmp_path))
  stem = os.path.join(tmp_path, 'quadratic_compare')
  header, rows = _read_csv(stem + '_summary.csv')
  assert header == writers.SUMMARY_HEADER
  assert [row[0] for row in rows] == list(registry.OPTIMIZERS)
  with open(stem + '_summary.md') as f:
    markdown = f.read().splitlines()
  assert len(markdown) == 2 + len(registry.OPTIMIZERS)
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
     r"problem='rosenbrok' is invalid; accepted: quadratic, ill_conditioned, "
     r'rosenbrock, beale, saddle'),
    ({'optimizer.name': 'adamm'},
     r"optimizer.name='adamm' is invalid; accepted: adam, adamw"),
    ({'compare': True, 'compare_optimizers': ('adam', 'sgdd')},
     r"compare_optimizers\[1\]='sgdd' is invalid; accepted: adam, adamw"),
    ({'start': (1.0,)}, r'start=\(1.0,\) is invalid; accepted: None'),
    ({'start': (1.0, float('nan'))},
     r'start\[1\]=nan is invalid; accepted: a finite number'),
    ({'max_steps': 0},
     r'max_steps=0 is invalid; accepted: an integer in \[1, '),
    ({'learning_rates': (0.1, -1.0)}, r'learning_rate=-1.0 is invalid'),
    ({'learning_rates': (0.1, 'fast')},
     r"learning_rates\[1\]='fast' is invalid; accepted: a finite number"),
    ({'compare': True, 'learning_rates': (0.1,)}, r'cannot be combined'),
    # Issue 8: each of these used to crash or mislead.
    ({'start': (1e30, 1e30)},
     r'start=\(1e\+30, 1e\+30\) is invalid; accepted: a point where f is '
     r'finite \(f = inf there in float32\)'),
    ({'start': (1e20, 0.0)}, r'f = inf there'),  # (1e20)^2 overflows float32.
    ({'dpi': 100000}, r'dpi=100000 is invalid; accepted: an integer in '
                      r'\[10, 300\]'),
    ({'dpi': 5}, r'dpi=5 is invalid'),
    ({'tolerance': float('inf')},
     r'tolerance=inf is invalid; accepted: a finite number > 0'),
    ({'tolerance': 0.0}, r'tolerance=0.0 is invalid'),
    ({'max_steps': 10**9}, r'max_steps=1000000000 is invalid; accepted: an '
                           r'integer in \[1, 1000000\]'),
])
def test_bad_settings_are_clear_errors(tmp_path, overrides, message):
  """Bad input raises a ConfigError naming the value and what is accepted."""
  config = _config()
  config.update_from_flattened_dict(overrides)
  with pytest.raises(errors.ConfigError, match=message):
    playground.run(config, str(tmp_path))


@pytest.mark.parametrize('name', ['rosenbrock', 'beale', 'saddle'])
def test_every_problem_draws(tmp_path, name):
  """The other problems run and draw (log-spaced contours, saddle marker)."""
  playground.run(_config(problem=name, max_steps=30), str(tmp_path))
  assert os.path.exists(os.path.join(tmp_path, f'{name}_adam_contour.png'))


# ----------------------------------------------------------------------------
# The package split, the traced hyperparameters, and the outputs' content.


def test_importing_the_package_does_not_import_matplotlib():
  """Only drawing imports matplotlib (training never pays for it)."""
  code = ('import sys, adamjax.playground, adamjax.playground.task; '
          'print(sorted(m for m in ("matplotlib", "starlette", "uvicorn") '
          'if m in sys.modules))')
  out = subprocess.run([sys.executable, '-c', code], capture_output=True,
                       text=True, check=True, cwd=os.path.dirname(
                           os.path.dirname(os.path.abspath(__file__))))
  assert out.stdout.strip() == '[]'


def _registry_reference(name, learning_rate, hparams, start, num_steps, loss):
  """The registry optimizer stepped in a Python loop: concrete, untraced."""
  tx = registry.create_optimizer(name, learning_rate, **hparams)
  params = jnp.asarray(start, jnp.float32)
  state = tx.init(params)
  points = [params]
  for _ in range(num_steps):
    updates, state = tx.update(jax.grad(loss)(params), state, params)
    params = optax.apply_updates(params, updates)
    points.append(params)
  return np.array(points)


# Non-default values, so a hyperparameter that the traced path dropped (and
# replaced by its default) would change the trajectory.
_NON_DEFAULTS = {
    'adam': {'b1': 0.5, 'b2': 0.9, 'eps': 0.1},
    'adamw': {'b1': 0.7, 'weight_decay': 0.3},
    'nadam': {'b1': 0.6, 'eps': 0.05},
    'nadamw': {'b1': 0.6, 'weight_decay': 0.3},
    'amsgrad': {'b2': 0.5},
    'adamax': {'b1': 0.5, 'b2': 0.8},
    'adamaxw': {'b2': 0.8, 'weight_decay': 0.3},
    'optax_adam': {'b1': 0.5, 'eps': 0.1, 'nesterov': True},
    'sgd': {},
    'momentum': {'momentum': 0.5},
    'nesterov': {'momentum': 0.3},
    'rmsprop': {'decay': 0.5, 'eps': 0.01, 'centered': True},
    'adagrad': {'initial_accumulator_value': 1.0},
    'adadelta': {'rho': 0.5, 'eps': 1e-3},
    # 2-D points are below the 8-bit threshold: these run float32 moments.
    'adam8bit': {'b1': 0.5, 'b2': 0.9, 'eps': 0.1},
    'adamw8bit': {'b1': 0.7, 'weight_decay': 0.3},
    'adam4bit': {'b1': 0.5, 'b2': 0.9, 'eps': 0.1},
    'adamw4bit': {'b2': 0.9, 'weight_decay': 0.3},
    'adopt': {'b1': 0.5, 'b2': 0.9, 'eps': 0.01},
    'ademamix': {'b3': 0.99, 'alpha': 2.0, 'weight_decay': 0.3},
    'radam': {'b2': 0.9, 'threshold': 4.5},
    'cautious_adam': {'b1': 0.5, 'eps': 0.1},
    'cautious_adamw': {'b2': 0.9, 'weight_decay': 0.3},
    'lion': {'b1': 0.5, 'b2': 0.9},
    'adabelief': {'b1': 0.5, 'eps': 1e-3},
}


def test_every_registry_optimizer_has_non_default_settings_here():
  """The table below covers the whole registry."""
  assert set(_NON_DEFAULTS) == set(registry.OPTIMIZERS)


@pytest.mark.parametrize('name', list(registry.OPTIMIZERS))
def test_traced_hyperparameters_equal_the_registry_optimizer(name):
  """inject_hyperparams with traced knobs steps as the plain registry call."""
  problem = playground.PROBLEMS['rosenbrock']
  hparams = _NON_DEFAULTS[name]
  (run,) = runs_lib.compute(problem, [runs_lib.Setting(name, 0.002, hparams)],
                            (-1.2, 1.0), 25, tolerance=0.0)
  expected = _registry_reference(name, 0.002, hparams, (-1.2, 1.0), 25,
                                 problem.loss)
  np.testing.assert_allclose(run.points, expected, rtol=1e-5, atol=1e-6)


def test_knobs_and_step_count_are_traced_not_recompiled():
  """New rates, b1, eps and step counts reuse the compiled program."""
  problem = playground.PROBLEMS['beale']
  def go(rate, b1, steps, names=('adam', 'sgd')):
    """Runs `names` once with these knobs; returns the runs."""
    settings = [runs_lib.Setting(n, rate, {'b1': b1} if n == 'adam' else {})
                for n in names]
    return runs_lib.compute(problem, settings, (1.0, 1.5), steps, 1e-9,
                            max_steps=300)
  first = go(0.01, 0.9, 100)
  compiled = trajectories.compiled_programs()
  second = go(0.02, 0.5, 250)
  assert trajectories.compiled_programs() == compiled
  # ... and the new values took effect: different paths, 250 steps.
  assert len(second[0].points) == 251 and len(first[0].points) == 101
  assert not np.allclose(second[0].points[:101], first[0].points)
  go(0.01, 0.9, 100, names=('adam', 'momentum'))  # A new optimizer set.
  assert trajectories.compiled_programs() == compiled + 1


def test_markdown_summary_is_a_table_with_a_separator_row(tmp_path):
  """Header, the separator row, then the CSV's rows ('—' for empty cells)."""
  playground.run(_config(compare=True, max_steps=50,
                         compare_optimizers=('adam', 'sgd')), str(tmp_path))
  stem = os.path.join(tmp_path, 'quadratic_compare_summary')
  with open(stem + '.md') as f:
    lines = f.read().splitlines()
  assert lines[0] == '| ' + ' | '.join(writers.SUMMARY_HEADER) + ' |'
  assert lines[1] == '|---|---|---|---|---|---|---|'
  _, rows = _read_csv(stem + '.csv')
  for line, row in zip(lines[2:], rows, strict=True):
    cells = [c.strip() for c in line.strip('|').split('|')]
    assert cells == [c if c else '—' for c in row]
  assert rows[0][2] == ''  # adam at 0.1 within 50 steps: not reached.
  assert lines[2].split('|')[3].strip() == '—'


def test_summary_numbers_match_the_trajectories(tmp_path):
  """Each summary row restates its trajectory's last row and first hit."""
  config = _config(compare=True, max_steps=150,
                   compare_optimizers=('adam', 'sgd', 'adagrad'))
  config.tolerance = 1e-4
  playground.run(config, str(tmp_path))
  stem = os.path.join(tmp_path, 'quadratic_compare')
  _, summary = _read_csv(stem + '_summary.csv')
  _, points = _read_csv(stem + '_trajectories.csv')
  for row in summary:
    name, rate, steps, final_loss, final_x, final_y, status = row
    mine = [p for p in points if p[0] == name]
    assert float(mine[0][1]) == float(rate)
    losses = [float(p[5]) for p in mine]
    below = [i for i, loss in enumerate(losses) if loss < config.tolerance]
    if steps:
      assert int(steps) == below[0] == len(mine) - 1
      assert status == f'{steps} steps'
    else:
      assert not below and status == 'not reached in 150 steps'
    assert float(final_loss) == pytest.approx(losses[-1], rel=1e-2)
    assert float(final_x) == pytest.approx(float(mine[-1][3]), rel=1e-3,
                                           abs=1e-7)
    assert float(final_y) == pytest.approx(float(mine[-1][4]), rel=1e-3,
                                           abs=1e-7)
  assert [r[2] != '' for r in summary] == [True, True, False]


def test_diverging_path_is_drawn_only_to_where_it_leaves_the_plot():
  """SGD at 0.1 on x^2 + 100 y^2: the line ends at the first point outside."""
  problem = playground.PROBLEMS['ill_conditioned']
  (run,) = playground.optimize(problem, 'sgd', [0.1], (1.5, 1.0), 200, 1e-6)
  assert run.diverged and len(run.points) > 10
  fig = figures.contour_figure(problem, [run], dpi=30)
  (x0, x1), (y0, y1) = problems.window(problem, (1.5, 1.0))
  path = fig.axes[0].lines[len(problem.landmarks)]  # After the landmarks.
  xy = np.asarray(path.get_xydata())
  assert 2 <= len(xy) < 10
  np.testing.assert_array_equal(xy, run.points[:len(xy)])
  inside = (xy[:, 0] >= x0) & (xy[:, 0] <= x1) & (xy[:, 1] >= y0) & (
      xy[:, 1] <= y1)
  assert inside[:-1].all() and not inside[-1]


def _near(image, pixel, color, radius=3, tolerance=40):
  """Whether some pixel within `radius` of `pixel` has about `color`."""
  col, row = pixel
  box = np.asarray(image.convert('RGB'), np.int32)[
      row - radius:row + radius + 1, col - radius:col + radius + 1]
  return bool((np.abs(box - np.asarray(color)).max(axis=-1) < tolerance).any())


def _rgb(color):
  """An RGBA float color as 0-255 RGB."""
  return [round(255 * c) for c in color[:3]]


def test_gif_last_frame_shows_the_final_point(tmp_path):
  """The final point's dot is in the last frame, not in the first."""
  problem = playground.PROBLEMS['quadratic']
  # Five long steps (about lr each), stopped by the step cap: the end is on
  # no landmark and 0.27 away from every earlier point, so a GIF that
  # stopped even one frame early would not show a dot there.
  (run,) = playground.optimize(problem, 'adam', [0.5], (1.5, 1.0), 5, 1e-9)
  assert np.linalg.norm(run.points[:-1] - run.points[-1], axis=1).min() > 0.25
  path = str(tmp_path / 'a.gif')
  figures.write_gif(path, problem, [run], dpi=50)
  fig = figures.contour_figure(problem, [run], dpi=50)
  fig.canvas.draw()
  end = figures.to_pixel(fig.axes[0], run.points[-1])
  color = _rgb(figures.style(0)['color'])
  with Image.open(path) as gif:
    assert gif.size == (round(7.5 * 50), round(5.0 * 50))
    gif.seek(0)
    first = gif.convert('RGB')
    gif.seek(gif.n_frames - 1)
    last = gif.convert('RGB')
  assert _near(last, end, color)
  assert not _near(first, end, color)


@pytest.mark.parametrize('name', ['rosenbrock', 'beale', 'saddle'])
def test_contour_marks_the_minimum_where_the_problem_says(tmp_path, name):
  """The crimson marker's data and its pixels sit at the problem's minima."""
  problem = playground.PROBLEMS[name]
  (run,) = playground.optimize(problem, 'adam', [0.01], problem.start, 3, 0.0)
  fig = figures.contour_figure(problem, [run], dpi=60)
  path = str(tmp_path / 'c.png')
  figures.save_png(fig, path)
  ax = fig.axes[0]
  marks = [(line.get_label(), tuple(line.get_xydata()[0]))
           for line in ax.lines[:len(problem.landmarks)]]
  assert marks == list(problem.landmarks)
  with Image.open(path) as png:
    for _, point in problem.landmarks:
      assert _near(png, figures.to_pixel(ax, point), (220, 20, 60),
                   radius=2, tolerance=30)  # Crimson.
    # And not somewhere else: the plot's centre-left is no marker.
    assert not _near(png, figures.to_pixel(ax, (problem.xlim[0] + 0.3,
                                                problem.ylim[1] - 0.3)),
                     (220, 20, 60), radius=2, tolerance=30)


def test_gif_writing_logs_nothing(tmp_path, caplog):
  """No 'Animation.save using ...' line from matplotlib (issue 8's noise)."""
  caplog.set_level(logging.DEBUG)
  playground.run(_config(animate=True, max_steps=20), str(tmp_path))
  assert not [r for r in caplog.records if r.name.startswith('matplotlib')]


@pytest.mark.parametrize('flag, message', [
    ('--config.start=(1e30,1e30)', 'Error: start=(1e+30, 1e+30) is invalid'),
    ('--config.dpi=100000', 'Error: config.dpi=100000 is invalid'),
    ('--config.tolerance=inf', 'Error: config.tolerance=inf is invalid'),
    ('--config.compare_learning_rates.foo=0.1', "has no field 'foo'"),
])
def test_main_reports_bad_playground_settings_in_one_line(tmp_path, flag,
                                                          message):
  """Issue 8's playground cases through main.py: a message, no traceback."""
  out = run_main('--config=configs/quadratic.py', f'--workdir={tmp_path}',
                 flag)
  assert out.returncode in (1, 2), out.stderr
  assert message in out.stderr + out.stdout
  assert 'Traceback' not in out.stderr
  assert not os.listdir(tmp_path)  # Stopped before writing anything.


def test_the_web_page_without_its_packages_is_one_line(monkeypatch, capsys,
                                                       tmp_path):
  """No starlette: main.py says what to install, in one line, exit 1."""
  import importlib  # pylint: disable=g-import-not-at-top
  from adamjax.common import console  # pylint: disable=g-import-not-at-top
  expected = ("the playground's web page needs: pip install -r "
              "requirements-web.txt (no module named 'starlette').")
  for name in ['starlette'] + [n for n in sys.modules
                               if n.startswith('starlette.')]:
    monkeypatch.setitem(sys.modules, name, None)  # As if not installed.
  monkeypatch.delitem(sys.modules, 'adamjax.playground.web', raising=False)
  # `from adamjax.playground import web` reads the package's attribute first.
  monkeypatch.delattr(playground, 'web', raising=False)
  with pytest.raises(errors.MissingPackageError) as info:
    importlib.import_module('adamjax.playground.web')
  assert str(info.value) == expected
  from adamjax.common import cli  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(console, 'setup', lambda flag_values: None)
  monkeypatch.setattr(cli, 'quiet_logs', lambda: None)
  with main_flags('--config=configs/playground_web.py',
                  f'--workdir={tmp_path}') as main:
    with pytest.raises(SystemExit) as info:
      main.main(['main.py'])
  assert info.value.code == 1
  assert capsys.readouterr().err == f'Error: {expected}\n'
