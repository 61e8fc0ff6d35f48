"""Matplotlib figures on their own Agg canvas, their line styles, PNG output.

No pyplot: no global backend or figure registry, so figures drawn in parallel
or in a server share no state. Only modules that draw import this (and so
matplotlib).
"""

import io
from typing import Any

from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def style(index: int) -> dict[str, Any]:
  """The colour and line style of curve `index` of a figure.

  Args:
    index: the curve's position, from 0.

  Returns:
    {'color', 'linestyle'} for Axes.plot: the ten tab10 colours solid, then
    dashed, then dotted.
  """
  return {'color': colormaps['tab10'](index % 10),
          'linestyle': ('-', '--', ':')[index // 10 % 3]}


def new_figure(figsize: tuple[float, float], dpi: int) -> Figure:
  """A constrained-layout figure on its own Agg canvas.

  Args:
    figsize: (width, height) in inches.
    dpi: dots per inch.
  """
  fig = Figure(figsize=figsize, dpi=dpi, layout='constrained')
  FigureCanvasAgg(fig)
  return fig


def png_bytes(fig: Figure) -> bytes:
  """The figure as PNG bytes, at its own dpi.

  Args:
    fig: the figure.
  """
  out = io.BytesIO()
  fig.savefig(out, format='png', dpi=fig.dpi)
  return out.getvalue()


def save_png(fig: Figure, path: str) -> None:
  """Writes the figure to `path` as PNG.

  Args:
    fig: the figure.
    path: the file to write.
  """
  with open(path, 'wb') as f:
    f.write(png_bytes(fig))
