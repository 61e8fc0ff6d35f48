"""The playground's pictures: contour plots with paths, loss curves, a GIF.

Drawn on common.plotting's figures (the object API on the Agg canvas), so
importing the rest of the package never imports matplotlib: only this module
does, when a figure is drawn. The GIF's frames are rendered here and written
with Pillow (a matplotlib dependency), which is what matplotlib's PillowWriter
does, minus its log line.
"""

import math
from typing import Any, Sequence

import numpy as np

from adamjax.common import errors
with errors.optional_packages(('matplotlib', 'PIL'),
                              "the playground's figures need",
                              'requirements-web.txt'):
  # pylint: disable=g-import-not-at-top
  from matplotlib.figure import Figure
  from PIL import Image
  from adamjax.common import plotting
  # pylint: enable=g-import-not-at-top
from adamjax.playground import problems
from adamjax.playground.runs import Run

# The generic figure code lives in common.plotting; task.py, web.py and the
# tests reach these three through this module.
png_bytes, save_png, style = (plotting.png_bytes, plotting.save_png,
                              plotting.style)

# Figure sizes in inches: a PNG is the size times the dpi in pixels.
CONTOUR_FIGSIZE = (7.5, 5.0)  # The legend sits right of the square plot.
LOSS_FIGSIZE = (8.0, 4.0)
PANEL_INCHES = 3.5  # One square panel of the learning-rate small multiples.
MAX_PANEL_COLUMNS = 4
GIF_FRAMES = 60  # At most; early steps get a frame each, later ones fewer.
GIF_FPS = 12
GRID_POINTS = 201  # Per axis, for the contour lines.


def shown(run: Run, window: problems.Window) -> np.ndarray:
  """`run`'s points up to and including the first outside `window`.

  A diverging run leaves the window for good; drawing its later points (which
  for an oscillating run alternate far above and below) would only streak
  lines across the picture.

  Args:
    run: the run.
    window: the plotted region.

  Returns:
    The points to draw, (k, 2).
  """
  (x0, x1), (y0, y1) = window
  x, y = run.points[:, 0], run.points[:, 1]
  outside = (x < x0) | (x > x1) | (y < y0) | (y > y1)
  return run.points[:np.argmax(outside) + 1] if outside.any() else run.points


def _draw_landscape(ax, problem: problems.Problem,
                    window: problems.Window) -> None:
  """Draws the contour lines and landmarks of `problem` in `window`."""
  xs, ys, z = problems.grid(problem, window, GRID_POINTS)
  levels = problems.contour_levels(z, problem.log_levels)
  ax.contour(xs, ys, z, levels=levels,
             colors='0.55', linewidths=0.6)
  for label, (x, y) in problem.landmarks:
    marker = 'X' if label == 'saddle point' else '*'
    ax.plot(x, y, marker, color='crimson', markersize=12, zorder=3,
            markeredgecolor='white', label=label)
  (x0, x1), (y0, y1) = window
  ax.set_xlim(x0, x1)
  ax.set_ylim(y0, y1)
  # Equal scales, so an ill-conditioned bowl looks as elongated as it is;
  # any spare width goes left of the plot, not between it and the legend.
  ax.set_aspect('equal')
  ax.set_anchor('E')
  ax.set_xlabel('x')
  ax.set_ylabel('y')


def _draw_path(ax, points: np.ndarray, label: str, line_style: dict[str, Any]):
  """Draws a path with a dot at its end; returns the (line, dot) artists."""
  line, = ax.plot(points[:, 0], points[:, 1], marker='.', markersize=3,
                  linewidth=1.2, label=label, **line_style)
  head, = ax.plot(points[-1:, 0], points[-1:, 1], 'o', markersize=6,
                  color=line_style['color'])
  return line, head


def _legend(fig, ax) -> None:
  """A legend right of the axes, without repeated 'minimum' entries."""
  handles, labels = ax.get_legend_handles_labels()
  unique = dict(zip(labels, handles))
  # 'outside': the constrained layout shrinks the axes to make room.
  fig.legend(unique.values(), unique.keys(), fontsize='small',
             loc='outside right center')


def contour_figure(problem: problems.Problem, runs: Sequence[Run],
                   dpi: int) -> Figure:
  """One contour plot with every run's path.

  Args:
    problem: the function the runs minimized.
    runs: the runs (all from the same start).
    dpi: the resolution; the image is CONTOUR_FIGSIZE * dpi pixels.

  Returns:
    The figure; its single axes is fig.axes[0].
  """
  fig = plotting.new_figure(CONTOUR_FIGSIZE, dpi)
  ax = fig.add_subplot()
  window = problems.window(problem, tuple(runs[0].points[0]))
  _draw_landscape(ax, problem, window)
  for i, run in enumerate(runs):
    _draw_path(ax, shown(run, window), run.legend, plotting.style(i))
  ax.set_title(f'f(x, y) = {problem.formula}')
  _legend(fig, ax)
  return fig


def panel_grid(num_panels: int) -> tuple[int, int]:
  """The (rows, columns) of the small-multiples figure for `num_panels`."""
  columns = min(num_panels, MAX_PANEL_COLUMNS)
  return math.ceil(num_panels / columns), columns


def panels_figure(problem: problems.Problem, runs: Sequence[Run],
                  dpi: int) -> Figure:
  """Small multiples: one contour panel per run.

  Args:
    problem: the function the runs minimized.
    runs: the runs, one panel each.
    dpi: the resolution; each panel is PANEL_INCHES * dpi pixels square.

  Returns:
    The figure.
  """
  rows, columns = panel_grid(len(runs))
  fig = plotting.new_figure((PANEL_INCHES * columns, PANEL_INCHES * rows),
                            dpi)
  axes = fig.subplots(rows, columns, squeeze=False, sharex=True, sharey=True)
  window = problems.window(problem, tuple(runs[0].points[0]))
  for i, (ax, run) in enumerate(zip(axes.flat, runs)):
    _draw_landscape(ax, problem, window)
    _draw_path(ax, shown(run, window), run.label, plotting.style(i))
    ax.set_title(f'{run.label}\n{run.status}', fontsize='medium')
  for ax in axes.flat[len(runs):]:
    ax.set_axis_off()
  fig.suptitle(f'f(x, y) = {problem.formula}')
  return fig


def loss_figure(runs: Sequence[Run], tolerance: float, dpi: int) -> Figure:
  """The loss-versus-step curves on a log scale.

  Args:
    runs: the runs, one curve each.
    tolerance: drawn as a horizontal line.
    dpi: the resolution; the image is LOSS_FIGSIZE * dpi pixels.

  Returns:
    The figure.
  """
  fig = plotting.new_figure(LOSS_FIGSIZE, dpi)
  ax = fig.add_subplot()
  for i, run in enumerate(runs):
    ax.plot(run.losses, label=run.legend, **plotting.style(i))
  ax.axhline(tolerance, color='grey', linewidth=0.8, linestyle='--',
             label=f'tolerance {tolerance:g}')
  ax.set_yscale('log')
  # A diverging run would stretch the axis to 1e30 and flatten the others;
  # the tolerance keeps the top positive when a run starts at a minimum.
  ax.set_ylim(top=100 * max(tolerance, *(run.losses[0] for run in runs)))
  ax.set_xlabel('step')
  ax.set_ylabel('loss')
  ax.grid(True, which='major', alpha=0.3)
  _legend(fig, ax)
  return fig


def to_pixel(ax, point: tuple[float, float]) -> tuple[int, int]:
  """The (column, row) of data `point` in the figure's rendered image.

  Args:
    ax: an axes of a figure that has been drawn (layout done) at its dpi.
    point: (x, y) in data coordinates.

  Returns:
    Image coordinates, row 0 at the top.
  """
  x, y = ax.transData.transform(point)
  height = ax.figure.bbox.height
  return int(round(x)), int(round(height - y))


def frame_steps(length: int, frames: int) -> np.ndarray:
  """Up to `frames` steps in [0, length), one per step early, sparser later.

  Args:
    length: the number of points in the longest path.
    frames: the most frames.

  Returns:
    Increasing step indices; the last is length - 1, so the last frame shows
    every path whole.
  """
  return np.unique(np.geomspace(1, length, frames).astype(int) - 1)


def write_gif(path: str, problem: problems.Problem, runs: Sequence[Run],
              dpi: int, frames: int = GIF_FRAMES) -> None:
  """Writes an animated GIF of the runs' paths growing step by step.

  The frames are laid out as `contour_figure` (same size, axes and window),
  so a point's pixel in a frame is its pixel in that figure.

  Args:
    path: the GIF file to write.
    problem: the function the runs minimized.
    runs: the runs, all drawn on one contour plot.
    dpi: the resolution; frames are CONTOUR_FIGSIZE * dpi pixels.
    frames: at most this many frames (the steps shown are spaced
      geometrically, so the first steps are not lost in a long run).
  """
  fig = contour_figure(problem, runs, dpi)
  ax = fig.axes[0]
  window = problems.window(problem, tuple(runs[0].points[0]))
  paths = [shown(run, window) for run in runs]
  # contour_figure drew each run as (line, head) after the landmarks.
  artists = ax.lines[len(problem.landmarks):]
  pairs = list(zip(artists[::2], artists[1::2]))
  # Fix the layout once, so the axes do not shift between frames.
  fig.canvas.draw()
  fig.set_layout_engine('none')
  images = []
  for step in frame_steps(max(len(points) for points in paths), frames):
    for points, (line, head) in zip(paths, pairs):
      # A finished path stays finished.
      points = points[:step + 1]
      line.set_data(points[:, 0], points[:, 1])
      head.set_data(points[-1:, 0], points[-1:, 1])
    ax.set_title(f'f(x, y) = {problem.formula}, step {step}')
    fig.canvas.draw()
    images.append(Image.fromarray(
        np.asarray(fig.canvas.buffer_rgba())).convert('RGB'))
  images[0].save(path, save_all=True, append_images=images[1:],
                 duration=round(1000 / GIF_FPS), loop=0)
