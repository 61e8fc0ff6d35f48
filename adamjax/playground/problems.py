"""The 2-D test functions of the playground and the region each is drawn in.

Plain arithmetic on `p[0]` (x) and `p[1]` (y), so a loss takes NumPy arrays
(for contour grids) and JAX arrays (for gradients) alike. Every problem's
minimum value is 0, so "converged" means loss < tolerance.
"""

from typing import Callable, NamedTuple

import numpy as np

from adamjax.common import checks

Loss = Callable[..., object]
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
    errors.ConfigError: naming `name` and every accepted name, if unknown.
  """
  return PROBLEMS[checks.choice('problem', name, PROBLEMS)]


def window(problem: Problem, start: tuple[float, float]) -> Window:
  """The problem's plot window, widened to show `start` with a margin.

  Args:
    problem: the problem.
    start: the start point (x, y).

  Returns:
    ((x_min, x_max), (y_min, y_max)).
  """
  def widen(lim, value):
    """Extends the interval `lim` to include `value` with a margin."""
    margin = 0.1 * (lim[1] - lim[0])
    return min(lim[0], value - margin), max(lim[1], value + margin)
  return widen(problem.xlim, start[0]), widen(problem.ylim, start[1])


def contour_levels(z: np.ndarray, log_levels: bool) -> np.ndarray:
  """Contour levels for grid values `z`: log-spaced, or even in sqrt(f)."""
  if log_levels:
    return np.geomspace(max(z.min(), 1e-3), z.max(), 25)
  # Evenly spaced in sqrt(f): even in radius for the quadratics.
  return np.linspace(np.sqrt(z.min()), np.sqrt(z.max()), 20)[1:] ** 2


def grid(problem: Problem, window: Window,
         points: int) -> tuple[np.ndarray, ...]:
  """(xs, ys, z): the loss on a points x points grid over `window`."""
  (x0, x1), (y0, y1) = window
  xs, ys = np.meshgrid(np.linspace(x0, x1, points),
                       np.linspace(y0, y1, points))
  return xs, ys, problem.loss(np.stack([xs, ys]))
