"""A 2-D optimizer playground: watch the registry's optimizers minimize f(x, y).

  python main.py --config=configs/quadratic.py --workdir=/tmp/playground

runs the configured optimizer (our Adam by default) on a named problem from a
start point, keeps the trajectory up to the first step whose loss is below the
tolerance (or up to the step cap), prints where it stopped, and writes a
contour plot with the path, a loss curve, the trajectory as CSV, a summary
table and an animated GIF to the workdir. A list of learning rates gives one
panel per rate; comparison mode runs every optimizer in the registry.

Trajectories are computed in JAX with the real optimizers from
optimizers.create_optimizer: one jitted `lax.scan` over the step cap, vmapped
over (start point, learning rate) pairs, so a sweep over rates is a single
computation. Plotting is matplotlib on the headless Agg backend.

Every problem's minimum value is 0, so "converged" means loss < tolerance.
"""

import csv
import functools
import math
import os
from typing import Any, Callable, NamedTuple, Optional, Sequence

import jax
from jax import lax
import jax.numpy as jnp
import matplotlib

matplotlib.use('Agg')  # Headless: no display is needed or used.
# pylint: disable=g-import-not-at-top,wrong-import-position
from matplotlib import animation
from matplotlib import pyplot as plt
import ml_collections
import numpy as np
import optax

import optimizers
# pylint: enable=g-import-not-at-top,wrong-import-position

# Figure sizes in inches: a PNG is the size times config.dpi pixels.
CONTOUR_FIGSIZE = (7.5, 5.0)  # The legend sits right of the square plot.
LOSS_FIGSIZE = (8.0, 4.0)
PANEL_INCHES = 3.5  # One square panel of the learning-rate small multiples.
MAX_PANEL_COLUMNS = 4
GIF_FRAMES = 60  # At most; early steps get a frame each, later ones fewer.
GIF_FPS = 12
GRID_POINTS = 201  # Per axis, for the contour lines.

Loss = Callable[[jax.Array], jax.Array]
# ((x_min, x_max), (y_min, y_max)): the region a plot shows.
Window = tuple[tuple[float, float], tuple[float, float]]


class Problem(NamedTuple):
  """A 2-D test function and how to draw it.

  Attributes:
    formula: the function, for titles.
    loss: maps a point p (p[0] = x, p[1] = y, optionally with trailing grid
      axes) to f(x, y); plain arithmetic, so it takes NumPy and JAX arrays.
    start: the default start point.
    landmarks: (label, (x, y)) points to mark: the minima, a saddle point.
    xlim: the plotted x range (widened to show the start point).
    ylim: the plotted y range (widened to show the start point).
    log_levels: space the contour levels logarithmically (for functions whose
      values span many decades), else quadratically (even in radius).
  """

  formula: str
  loss: Loss
  start: tuple[float, float]
  landmarks: tuple[tuple[str, tuple[float, float]], ...]
  xlim: tuple[float, float]
  ylim: tuple[float, float]
  log_levels: bool


def _quadratic(p):
  """x^2 + y^2."""
  x, y = p
  return x**2 + y**2


def _ill_conditioned(p):
  """x^2 + 100 y^2: curvatures 2 and 200, condition number 100."""
  x, y = p
  return x**2 + 100 * y**2


def _rosenbrock(p):
  """Rosenbrock's banana valley, minimum 0 at (1, 1)."""
  x, y = p
  return (1 - x)**2 + 100 * (y - x**2)**2


def _beale(p):
  """Beale's function, minimum 0 at (3, 0.5)."""
  x, y = p
  return ((1.5 - x + x * y)**2 + (2.25 - x + x * y**2)**2
          + (2.625 - x + x * y**3)**2)


def _saddle(p):
  """x^2 + (y^2 - 1)^2: a saddle at the origin, minima 0 at (0, +-1)."""
  x, y = p
  return x**2 + (y**2 - 1)**2


# The saddle: near the origin x^2 + (y^2 - 1)^2 = 1 + x^2 - 2 y^2 + y^4, i.e.
# the textbook saddle x^2 - 2 y^2 (shifted by 1), and the y^4 term bounds it
# from below, so every optimizer has somewhere to go and "loss < tolerance"
# means it escaped the saddle and reached a minimum. The default start lies
# just off the saddle's stable line y = 0: on it the y-gradient is exactly 0
# and no gradient method ever leaves. Just off it the y-gradient -4y is tiny:
# SGD grows y by a factor 1 + 4 lr per step, so its escape time depends on
# how close it starts (at lr 0.1, |y| > 0.5 after 19 steps from y = 1e-3, 40
# from 1e-6), while Adam's per-coordinate normalization moves y by ~lr from
# the first step (6 steps from either start).
PROBLEMS: dict[str, Problem] = {
    'quadratic': Problem('x² + y²', _quadratic, (1.5, 1.0),
                         (('minimum', (0.0, 0.0)),),
                         (-2.0, 2.0), (-2.0, 2.0), False),
    'ill_conditioned': Problem('x² + 100 y²', _ill_conditioned, (1.5, 1.0),
                               (('minimum', (0.0, 0.0)),),
                               (-2.0, 2.0), (-1.5, 1.5), False),
    'rosenbrock': Problem('(1 - x)² + 100 (y - x²)²', _rosenbrock,
                          (-1.2, 1.0), (('minimum', (1.0, 1.0)),),
                          (-2.0, 2.0), (-1.0, 3.0), True),
    'beale': Problem('Beale', _beale, (1.0, 1.5),
                     (('minimum', (3.0, 0.5)),),
                     (-4.5, 4.5), (-4.5, 4.5), True),
    'saddle': Problem('x² + (y² - 1)²', _saddle, (1.5, 1e-3),
                      (('saddle point', (0.0, 0.0)), ('minimum', (0.0, 1.0)),
                       ('minimum', (0.0, -1.0))),
                      (-2.0, 2.0), (-2.0, 2.0), False),
}


def get_problem(name: str) -> Problem:
  """Looks up a problem by name.

  Args:
    name: a key of PROBLEMS.

  Returns:
    The Problem.

  Raises:
    ValueError: naming `name` and every accepted name, if it is unknown.
  """
  if name not in PROBLEMS:
    raise ValueError(
        f'Unknown problem {name!r}; accepted: {", ".join(PROBLEMS)}.')
  return PROBLEMS[name]


# ----------------------------------------------------------------------------
# The computation (pure JAX; no config in here).


@functools.partial(jax.jit,
                   static_argnames=('loss', 'make_optimizer', 'num_steps'))
def trajectories(
    starts: jax.Array,
    learning_rates: jax.Array,
    *,
    loss: Loss,
    make_optimizer: Callable[[optax.Schedule], optax.GradientTransformation],
    num_steps: int,
) -> tuple[jax.Array, jax.Array]:
  """Runs an optimizer for `num_steps` from each start with its paired rate.

  The point is one array of shape (2,), so the optimizer keeps its moments
  per coordinate, as it does for every element of every pytree leaf: x moves
  by its own m_x / sqrt(v_x) and y by m_y / sqrt(v_y). (The seed script this
  replaces updated both x and y with the whole 2-vector of moments.)

  One `lax.scan` runs all the steps, vmapped over the (start, rate) pairs;
  callers cut the result at the first step below their tolerance (see
  `steps_to_tolerance`), so no Python code runs per step.

  Args:
    starts: (n, 2) start points.
    learning_rates: (n,) learning rates (traced: one compile serves all).
    loss: the function to minimize, point (2,) -> scalar.
    make_optimizer: builds the optimizer from a learning-rate schedule, e.g.
      functools.partial(optimizers.create_optimizer, 'adam', b1=0.9).
    num_steps: the number of optimizer steps.

  Returns:
    (points, losses): (n, num_steps + 1, 2) and (n, num_steps + 1), the
    start first.
  """
  grad_fn = jax.grad(loss)

  def one(start, learning_rate):
    """The trajectory from one start at one rate."""
    # A constant schedule closing over the traced rate: every registry
    # optimizer takes a schedule, so the rate can be vmapped without
    # rebuilding (or recompiling) the optimizer per value.
    tx = make_optimizer(lambda count: learning_rate)

    def step(carry, _):
      """One optimizer step; emits the new point."""
      params, state = carry
      updates, state = tx.update(grad_fn(params), state, params)
      params = optax.apply_updates(params, updates)
      return (params, state), params

    _, points = lax.scan(step, (start, tx.init(start)), length=num_steps)
    points = jnp.concatenate([start[None], points])
    return points, jax.vmap(loss)(points)

  return jax.vmap(one)(starts, learning_rates)


def steps_to_tolerance(losses: jax.Array, tolerance: float) -> jax.Array:
  """The first step whose loss is below `tolerance`, or -1 if none is.

  Args:
    losses: (..., num_steps + 1) losses, step 0 (the start) first.
    tolerance: the threshold.

  Returns:
    An int array of shape losses.shape[:-1].
  """
  below = losses < tolerance
  return jnp.where(below.any(axis=-1), jnp.argmax(below, axis=-1), -1)


# ----------------------------------------------------------------------------
# Runs: trajectories cut where they stopped, and their reports.


class Run(NamedTuple):
  """One optimizer's trajectory, cut where it stopped.

  Attributes:
    optimizer: the registry name.
    learning_rate: the rate it ran with.
    points: (steps + 1, 2) points, the start first.
    losses: (steps + 1,) losses.
    steps_to_tolerance: the first step with loss < tolerance, or None.
    diverged: whether the loss became inf or NaN (the path stops before).
  """

  optimizer: str
  learning_rate: float
  points: np.ndarray
  losses: np.ndarray
  steps_to_tolerance: Optional[int]
  diverged: bool

  @property
  def label(self) -> str:
    """The name and rate."""
    return f'{self.optimizer}, lr={self.learning_rate:g}'

  @property
  def legend(self) -> str:
    """The label and how the run ended, for legends."""
    return f'{self.label} ({self.status})'

  @property
  def status(self) -> str:
    """How the run ended, in words."""
    if self.steps_to_tolerance is not None:
      return f'{self.steps_to_tolerance} steps'
    if self.diverged:
      return f'diverged at step {len(self.losses)}'
    return f'not reached in {len(self.losses) - 1} steps'


def _cut(optimizer: str, learning_rate: float, points: np.ndarray,
         losses: np.ndarray, steps: int) -> Run:
  """Cuts a full trajectory at its first step below tolerance or non-finite."""
  if steps >= 0:
    return Run(optimizer, learning_rate, points[:steps + 1], losses[:steps + 1],
               steps, False)
  finite = np.isfinite(losses) & np.isfinite(points).all(axis=-1)
  if finite.all():
    return Run(optimizer, learning_rate, points, losses, None, False)
  end = int(np.argmin(finite))
  return Run(optimizer, learning_rate, points[:end], losses[:end], None, True)


def optimize(
    problem: Problem,
    optimizer: str,
    learning_rates: Sequence[float],
    start: tuple[float, float],
    max_steps: int,
    tolerance: float,
    **hparams: Any,
) -> list[Run]:
  """Runs a registry optimizer at each rate from one start, in one vmap.

  Args:
    problem: the function to minimize.
    optimizer: a name from optimizers.OPTIMIZERS.
    learning_rates: the rates, one run each.
    start: the start point (x, y).
    max_steps: the step cap.
    tolerance: a run stops at its first step with loss < tolerance.
    **hparams: the optimizer's hyperparameters (None: its default).

  Returns:
    One Run per rate, in order.

  Raises:
    ValueError: on an unknown optimizer, a hyperparameter it does not take,
      or a bad learning rate (the registry's checks, run on concrete values).
  """
  for learning_rate in learning_rates:
    # Built here only for the registry's checks on concrete values: inside
    # `trajectories` the rate is traced, so they could not run there.
    optimizers.create_optimizer(optimizer, learning_rate, **hparams)
  make_optimizer = functools.partial(optimizers.create_optimizer, optimizer,
                                     **hparams)
  n = len(learning_rates)
  points, losses = trajectories(
      jnp.tile(jnp.asarray(start, jnp.float32), (n, 1)),
      jnp.asarray(learning_rates, jnp.float32),
      loss=problem.loss, make_optimizer=make_optimizer, num_steps=max_steps)
  steps = np.asarray(steps_to_tolerance(losses, tolerance))
  points, losses = np.asarray(points), np.asarray(losses)
  return [_cut(optimizer, lr, points[i], losses[i], int(steps[i]))
          for i, lr in enumerate(learning_rates)]


# ----------------------------------------------------------------------------
# Tables.

TRAJECTORY_HEADER = ('optimizer', 'learning_rate', 'step', 'x', 'y', 'loss')
SUMMARY_HEADER = ('optimizer', 'learning_rate', 'steps_to_tolerance',
                  'final_loss', 'final_x', 'final_y', 'status')


def write_trajectories_csv(path: str, runs: Sequence[Run]) -> None:
  """Writes every point of every run, one row per (run, step).

  Args:
    path: the CSV file to write.
    runs: the runs.
  """
  with open(path, 'w', newline='') as f:
    writer = csv.writer(f)
    writer.writerow(TRAJECTORY_HEADER)
    for run in runs:
      for step, ((x, y), loss) in enumerate(zip(run.points, run.losses)):
        writer.writerow([run.optimizer, run.learning_rate, step, x, y, loss])


def _summary_rows(runs: Sequence[Run]) -> list[list[Any]]:
  """One row per run, in SUMMARY_HEADER's order ('' = tolerance not reached)."""
  return [[run.optimizer, run.learning_rate,
           '' if run.steps_to_tolerance is None else run.steps_to_tolerance,
           f'{run.losses[-1]:.3g}', f'{run.points[-1, 0]:.4g}',
           f'{run.points[-1, 1]:.4g}', run.status] for run in runs]


def write_summary(stem: str, runs: Sequence[Run]) -> None:
  """Writes the summary table as `stem`.csv and `stem`.md (Markdown).

  Args:
    stem: the path without extension.
    runs: the runs, one row each.
  """
  rows = _summary_rows(runs)
  with open(stem + '.csv', 'w', newline='') as f:
    writer = csv.writer(f)
    writer.writerow(SUMMARY_HEADER)
    writer.writerows(rows)
  lines = ['| ' + ' | '.join(SUMMARY_HEADER) + ' |',
           '|' + '---|' * len(SUMMARY_HEADER)]
  lines += ['| ' + ' | '.join(str(v) if v != '' else '—' for v in row) + ' |'
            for row in rows]
  with open(stem + '.md', 'w') as f:
    f.write('\n'.join(lines) + '\n')


# ----------------------------------------------------------------------------
# Pictures.


def _style(index: int) -> dict[str, Any]:
  """A distinct color (and, past ten runs, line style) for run `index`."""
  return {'color': plt.get_cmap('tab10')(index % 10),
          'linestyle': ('-', '--', ':')[index // 10 % 3]}


def _window(problem: Problem, start: tuple[float, float]) -> Window:
  """The problem's plot window, widened to show the start point."""
  def widen(lim, value):
    """Extends the interval `lim` to include `value` with a margin."""
    margin = 0.1 * (lim[1] - lim[0])
    return min(lim[0], value - margin), max(lim[1], value + margin)
  return widen(problem.xlim, start[0]), widen(problem.ylim, start[1])


def _shown(run: Run, window: Window) -> np.ndarray:
  """`run`'s points up to and including the first outside `window`.

  A diverging run leaves the window for good; drawing its later points (which
  for an oscillating run alternate far above and below) would only streak
  lines across the picture.
  """
  (x0, x1), (y0, y1) = window
  x, y = run.points[:, 0], run.points[:, 1]
  outside = (x < x0) | (x > x1) | (y < y0) | (y > y1)
  return run.points[:np.argmax(outside) + 1] if outside.any() else run.points


def _draw_landscape(ax, problem: Problem, window: Window) -> None:
  """Draws the contour lines and landmarks of `problem` in `window`."""
  (x0, x1), (y0, y1) = window
  xs, ys = np.meshgrid(np.linspace(x0, x1, GRID_POINTS),
                       np.linspace(y0, y1, GRID_POINTS))
  z = problem.loss(np.stack([xs, ys]))
  if problem.log_levels:
    levels = np.geomspace(max(z.min(), 1e-3), z.max(), 25)
  else:
    # Evenly spaced in sqrt(f): even in radius for the quadratics.
    levels = np.linspace(np.sqrt(z.min()), np.sqrt(z.max()), 20)[1:] ** 2
  ax.contour(xs, ys, z, levels=levels, colors='0.55', linewidths=0.6)
  for label, (x, y) in problem.landmarks:
    marker = 'X' if label == 'saddle point' else '*'
    ax.plot(x, y, marker, color='crimson', markersize=12, zorder=3,
            markeredgecolor='white', label=label)
  ax.set_xlim(x0, x1)
  ax.set_ylim(y0, y1)
  # Equal scales, so an ill-conditioned bowl looks as elongated as it is;
  # any spare width goes left of the plot, not between it and the legend.
  ax.set_aspect('equal')
  ax.set_anchor('E')
  ax.set_xlabel('x')
  ax.set_ylabel('y')


def _draw_path(ax, points: np.ndarray, label: str, style: dict[str, Any]):
  """Draws a path with a dot at its end; returns the (line, dot) artists."""
  line, = ax.plot(points[:, 0], points[:, 1], marker='.', markersize=3,
                  linewidth=1.2, label=label, **style)
  head, = ax.plot(points[-1:, 0], points[-1:, 1], 'o', markersize=6,
                  color=style['color'])
  return line, head


def _legend(fig, ax) -> None:
  """A legend right of the axes, without repeated 'minimum' entries."""
  handles, labels = ax.get_legend_handles_labels()
  unique = dict(zip(labels, handles))
  # 'outside': the constrained layout shrinks the axes to make room.
  fig.legend(unique.values(), unique.keys(), fontsize='small',
             loc='outside right center')


def plot_contour(path: str, problem: Problem, runs: Sequence[Run],
                 dpi: int) -> None:
  """Writes one contour plot with every run's path (PNG).

  Args:
    path: the PNG file to write.
    problem: the function the runs minimized.
    runs: the runs.
    dpi: the resolution; the image is CONTOUR_FIGSIZE * dpi pixels.
  """
  fig, ax = plt.subplots(figsize=CONTOUR_FIGSIZE, layout='constrained')
  window = _window(problem, tuple(runs[0].points[0]))
  _draw_landscape(ax, problem, window)
  for i, run in enumerate(runs):
    _draw_path(ax, _shown(run, window), run.legend, _style(i))
  ax.set_title(f'f(x, y) = {problem.formula}')
  _legend(fig, ax)
  fig.savefig(path, dpi=dpi)
  plt.close(fig)


def panel_grid(num_panels: int) -> tuple[int, int]:
  """The (rows, columns) of the small-multiples figure for `num_panels`."""
  columns = min(num_panels, MAX_PANEL_COLUMNS)
  return math.ceil(num_panels / columns), columns


def plot_panels(path: str, problem: Problem, runs: Sequence[Run],
                dpi: int) -> None:
  """Writes small multiples: one contour panel per run (PNG).

  Args:
    path: the PNG file to write.
    problem: the function the runs minimized.
    runs: the runs, one panel each.
    dpi: the resolution; each panel is PANEL_INCHES * dpi pixels square.
  """
  rows, columns = panel_grid(len(runs))
  fig, axes = plt.subplots(
      rows, columns, squeeze=False, sharex=True, sharey=True,
      figsize=(PANEL_INCHES * columns, PANEL_INCHES * rows),
      layout='constrained')
  window = _window(problem, tuple(runs[0].points[0]))
  for i, (ax, run) in enumerate(zip(axes.flat, runs)):
    _draw_landscape(ax, problem, window)
    _draw_path(ax, _shown(run, window), run.label, _style(i))
    ax.set_title(f'{run.label}\n{run.status}', fontsize='medium')
  for ax in axes.flat[len(runs):]:
    ax.set_axis_off()
  fig.suptitle(f'f(x, y) = {problem.formula}')
  fig.savefig(path, dpi=dpi)
  plt.close(fig)


def plot_losses(path: str, runs: Sequence[Run], tolerance: float,
                dpi: int) -> None:
  """Writes the loss-versus-step curves on a log scale (PNG).

  Args:
    path: the PNG file to write.
    runs: the runs, one curve each.
    tolerance: drawn as a horizontal line.
    dpi: the resolution; the image is LOSS_FIGSIZE * dpi pixels.
  """
  fig, ax = plt.subplots(figsize=LOSS_FIGSIZE, layout='constrained')
  for i, run in enumerate(runs):
    ax.plot(run.losses, label=run.legend, **_style(i))
  ax.axhline(tolerance, color='grey', linewidth=0.8, linestyle='--',
             label=f'tolerance {tolerance:g}')
  ax.set_yscale('log')
  # A diverging run would stretch the axis to 1e30 and flatten the others.
  ax.set_ylim(top=100 * max(run.losses[0] for run in runs))
  ax.set_xlabel('step')
  ax.set_ylabel('loss')
  ax.grid(True, which='major', alpha=0.3)
  _legend(fig, ax)
  fig.savefig(path, dpi=dpi)
  plt.close(fig)


def _frame_steps(length: int, frames: int) -> np.ndarray:
  """Up to `frames` steps in [0, length), one per step early, sparser later."""
  return np.unique(np.geomspace(1, length, frames).astype(int) - 1)


def animate(path: str, problem: Problem, runs: Sequence[Run], dpi: int,
            frames: int = GIF_FRAMES) -> None:
  """Writes an animated GIF of the runs' paths growing step by step.

  Args:
    path: the GIF file to write.
    problem: the function the runs minimized.
    runs: the runs, all drawn on one contour plot.
    dpi: the resolution; frames are CONTOUR_FIGSIZE * dpi pixels.
    frames: at most this many frames (the steps shown are spaced
      geometrically, so the first steps are not lost in a long run).
  """
  fig, ax = plt.subplots(figsize=CONTOUR_FIGSIZE, layout='constrained')
  window = _window(problem, tuple(runs[0].points[0]))
  _draw_landscape(ax, problem, window)
  paths = [_shown(run, window) for run in runs]
  artists = [_draw_path(ax, points[:1], run.legend, _style(i))
             for i, (run, points) in enumerate(zip(runs, paths))]
  _legend(fig, ax)

  def draw(step):
    """Shows every path up to `step` (a finished path stays finished)."""
    for points, (line, head) in zip(paths, artists):
      points = points[:step + 1]
      line.set_data(points[:, 0], points[:, 1])
      head.set_data(points[-1:, 0], points[-1:, 1])
    ax.set_title(f'f(x, y) = {problem.formula}, step {step}')
    return [artist for pair in artists for artist in pair]

  steps = _frame_steps(max(len(run.points) for run in runs), frames)
  movie = animation.FuncAnimation(fig, draw, frames=steps, blit=False)
  movie.save(path, writer=animation.PillowWriter(fps=GIF_FPS), dpi=dpi)
  plt.close(fig)


# ----------------------------------------------------------------------------
# The task.


def _start_point(config: ml_collections.ConfigDict,
                 problem: Problem) -> tuple[float, float]:
  """The configured start point, or the problem's default; checked."""
  if config.start is None:
    return problem.start
  start = config.start
  if not (isinstance(start, (tuple, list)) and len(start) == 2 and all(
      isinstance(v, (int, float)) and not isinstance(v, bool)
      and math.isfinite(v) for v in start)):
    raise ValueError(
        f'start={start!r} is invalid; accepted: None (the problem\'s default '
        'start) or two finite numbers, e.g. --config.start="(1.5, -1.0)".')
  return float(start[0]), float(start[1])


def _check_settings(config: ml_collections.ConfigDict) -> None:
  """Raises a ValueError naming any invalid run setting."""
  if not (isinstance(config.max_steps, int) and config.max_steps >= 1):
    raise ValueError(f'max_steps={config.max_steps!r} is invalid; accepted: '
                     'an integer >= 1.')
  if not config.tolerance > 0:
    raise ValueError(f'tolerance={config.tolerance!r} is invalid; accepted: '
                     'a number > 0.')
  for rate in config.learning_rates:
    if isinstance(rate, bool) or not isinstance(rate, (int, float)):
      raise ValueError(
          f'learning_rates={config.learning_rates!r} holds {rate!r}; accepted: '
          'numbers, e.g. --config.learning_rates="(0.01, 0.1, 0.5)".')
  if config.compare and config.learning_rates:
    raise ValueError(
        f'compare=True and learning_rates={config.learning_rates!r} cannot be '
        'combined; accepted: one of them (compare runs every optimizer at '
        'one rate each; learning_rates sweeps one optimizer).')
  unknown = sorted(set(config.compare_learning_rates) - set(
      optimizers.OPTIMIZERS))
  if unknown:
    raise ValueError(
        f'compare_learning_rates has unknown optimizers {", ".join(unknown)}; '
        f'accepted: {", ".join(optimizers.OPTIMIZERS)}.')


def _compare_runs(config, problem, start) -> list[Run]:
  """The compared optimizers at their default hyperparameters and rates."""
  runs = []
  for name in config.compare_optimizers or optimizers.OPTIMIZERS:
    rate = config.compare_learning_rates.get(name)
    rate = config.optimizer.learning_rate if rate is None else rate
    runs += optimize(problem, name, [rate], start, config.max_steps,
                     config.tolerance)
  return runs


def run(config: ml_collections.ConfigDict, workdir: str) -> None:
  """Runs the playground task and writes its pictures and tables.

  Three modes: one optimizer at one rate (the default); one optimizer at each
  of `config.learning_rates` (one vmapped computation, one panel per rate);
  and `config.compare`, every registry optimizer (or those named in
  `config.compare_optimizers`) at its default hyperparameters and
  `config.optimizer.learning_rate`, or its entry in
  `config.compare_learning_rates`. One shared rate is the default because
  the comparison is "same knob, different algorithm": at Adam's 0.1 plain
  SGD diverges on the ill-conditioned quadratic, and the tables say so
  ("diverged at step N"); set an optimizer's own rate to see it converge.

  Writes `<stem>_contour.png`, `<stem>_loss.png`, `<stem>_trajectories.csv`,
  `<stem>_summary.csv`, `<stem>_summary.md` and (if `config.animate`)
  `<stem>.gif` to `workdir`, where the stem is `<problem>_<optimizer>`,
  `<problem>_<optimizer>_lr_sweep` or `<problem>_compare`.

  Args:
    config: the playground config (see configs/quadratic.py).
    workdir: the folder for the outputs (created if missing).

  Raises:
    ValueError: on an unknown problem or optimizer, or a bad setting.
  """
  problem = get_problem(config.problem)
  start = _start_point(config, problem)
  _check_settings(config)
  opt = config.optimizer.to_dict()
  name = opt.pop('name')
  rate = opt.pop('learning_rate')
  if config.compare:
    runs = _compare_runs(config, problem, start)
    stem = f'{config.problem}_compare'
  elif config.learning_rates:
    runs = optimize(problem, name, list(config.learning_rates), start,
                    config.max_steps, config.tolerance, **opt)
    stem = f'{config.problem}_{name}_lr_sweep'
  else:
    runs = optimize(problem, name, [rate], start, config.max_steps,
                    config.tolerance, **opt)
    stem = f'{config.problem}_{name}'

  print(f'{problem.formula} from {start}, tolerance {config.tolerance:g}, '
        f'at most {config.max_steps} steps:')
  for r in runs:
    x, y = r.points[-1]
    print(f'  {r.label}: {r.status}; final point ({x:.6g}, {y:.6g}), '
          f'loss {r.losses[-1]:.3g}')

  os.makedirs(workdir, exist_ok=True)
  stem = os.path.join(workdir, stem)
  draw_contour = plot_panels if config.learning_rates else plot_contour
  draw_contour(stem + '_contour.png', problem, runs, config.dpi)
  plot_losses(stem + '_loss.png', runs, config.tolerance, config.dpi)
  write_trajectories_csv(stem + '_trajectories.csv', runs)
  write_summary(stem + '_summary', runs)
  suffixes = ['_contour.png', '_loss.png', '_trajectories.csv',
              '_summary.csv', '_summary.md']
  if config.animate:
    animate(stem + '.gif', problem, runs, config.dpi)
    suffixes.append('.gif')
  print('Wrote ' + ', '.join(stem + suffix for suffix in suffixes))
