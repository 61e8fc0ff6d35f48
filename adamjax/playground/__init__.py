"""A 2-D optimizer playground: watch the registry's optimizers minimize f(x, y).

  python main.py --config=configs/quadratic.py --workdir=/tmp/playground
  python main.py --config=configs/playground_web.py --workdir=/tmp/web

The first runs the configured optimizer(s) on a named problem and writes
contour plots, loss curves, CSV and Markdown tables and a GIF; the second
serves a page that redraws the paths as the knobs move. Both share:

  problems      the test functions and their plot windows
  trajectories  the JAX computation (registry optimizers, traced knobs)
  runs          settings in, trajectories cut where they stopped out
  writers       CSV and Markdown tables
  figures       matplotlib figures and the GIF (imported only to draw)
  task          config checks and the command-line task, `run`
  web           the browser front end, `serve`

Importing the package imports neither matplotlib nor the web server.
"""

from adamjax.playground.problems import PROBLEMS, Problem, get_problem
from adamjax.playground.runs import Run, Setting, compute, optimize
from adamjax.playground.runs import steps_to_tolerance
from adamjax.playground.task import run

__all__ = ['PROBLEMS', 'Problem', 'Run', 'Setting', 'compute', 'get_problem',
           'optimize', 'run', 'steps_to_tolerance']
