"""The comparison's figures: training loss per step, accuracy per epoch.

Each curve is one optimizer's mean over its seeds with the min-max band:

  loss.png       training loss vs step (log y), smoothed; the raw mean faint
  accuracy.png   test accuracy vs epoch

and one dot per optimizer, ranked, with its 95% bootstrap interval:

  ranking.png    final test accuracy (%), best on top, the rank beside it

and, across workloads, AlgoPerf's performance profiles:

  performance_profile.png   share of workloads within tau of the fastest
"""

import math
import os
from typing import Any, Optional, Sequence

import numpy as np

from adamjax.common import errors
with errors.optional_packages(('matplotlib',), "the experiments' figures need",
                              'requirements-dev.txt'):
  # pylint: disable=g-import-not-at-top
  from matplotlib import colormaps
  from matplotlib import ticker
  from matplotlib.figure import Figure
  from adamjax.common import plotting
  # pylint: enable=g-import-not-at-top
from adamjax.experiments import report
from adamjax.experiments import statistics

FIGSIZE = (9.0, 4.5)  # Inches; the legend sits right of the axes.

# One colour per optimizer family and a line style and marker per member, the
# same in every figure, so that twenty curves stay apart and adam is adam
# everywhere.
FAMILIES = {
    'adam': ('adam', 'adamw', 'nadam', 'nadamw', 'amsgrad', 'adamax',
             'adamaxw', 'optax_adam', 'adam8bit', 'adamw8bit', 'adam4bit',
             'adamw4bit'),
    'modern adam': ('adopt', 'ademamix', 'radam', 'cautious_adam',
                    'cautious_adamw'),
    'sgd': ('sgd', 'momentum', 'nesterov'),
    'adaptive': ('rmsprop', 'adagrad', 'adadelta', 'adabelief'),
    'sign': ('lion',),
}
_LINESTYLES = ('-', '--', ':', '-.', (0, (5, 1, 1, 1)))
_MARKERS = ('o', 's', '^', 'D', 'v')


def optimizer_style(name: str, index: int = 0) -> dict[str, Any]:
  """The colour, line style and marker of optimizer `name` in every figure.

  Args:
    name: a registry optimizer; a name in no family (a label of one's own)
      gets plotting.style(index).
    index: its position in the figure, for such names.

  Returns:
    {'color', 'linestyle', 'marker'} for Axes.plot.
  """
  for family_index, members in enumerate(FAMILIES.values()):
    if name in members:
      i = members.index(name)
      # Both cycle, shifted for the second five, so that each member has
      # its own marker (ranking.png) and its own line and marker (curves).
      return {'color': colormaps['tab10'](family_index),
              'linestyle': _LINESTYLES[i % len(_LINESTYLES)],
              'marker': _MARKERS[(i + i // len(_MARKERS)) % len(_MARKERS)]}
  return {**plotting.style(index), 'marker': 'o'}


def _new_axes(dpi: int):
  """A FIGSIZE figure and its single axes."""
  fig = plotting.new_figure(FIGSIZE, dpi)
  return fig, fig.add_subplot()


def _spread(label_text: str, seeds: int) -> str:
  """The legend label, saying what the band shows when there is one."""
  return label_text + (f' (mean, min-max of {seeds} seeds)' if seeds > 1
                       else '')


def loss_figure(series: Sequence[tuple[str, Sequence[np.ndarray],
                                       Sequence[np.ndarray]]],
                smoothing: float, dpi: int,
                styles: Optional[Sequence[dict[str, Any]]] = None) -> Figure:
  """Training loss versus step, log y: raw mean faint, smoothed mean, band.

  Args:
    series: (label, per-seed steps, per-seed losses) per curve; the seeds are
      cut to their shortest common length.
    smoothing: the EMA weight (report.smooth).
    dpi: the resolution.
    styles: each curve's optimizer_style; None numbers them.
  """
  fig, ax = _new_axes(dpi)
  low, high = math.inf, 0.0
  # Many raw curves overlap into one grey band; fainter when there are many.
  raw_alpha = min(0.2, 1.0 / max(1, len(series)))
  for i, (text, steps, losses) in enumerate(series):
    length = min(len(l) for l in losses)
    if not length:
      continue
    style = dict(styles[i] if styles else optimizer_style('', i))
    style.pop('marker')  # Thousands of steps: lines only.
    raw = np.array([l[:length] for l in losses])
    smoothed = np.array([report.smooth(c, smoothing) for c in raw])
    x = steps[0][:length]
    ax.plot(x, raw.mean(0), color=style['color'], alpha=raw_alpha,
            linewidth=0.5)
    ax.plot(x, smoothed.mean(0), label=_spread(text, len(losses)), **style)
    low, high = min(low, smoothed.min()), max(high, smoothed.max())
    if len(losses) > 1:
      ax.fill_between(x, smoothed.min(0), smoothed.max(0),
                      color=style['color'], alpha=0.15)
  ax.set_yscale('log')
  if high > 0:
    # The smoothed curves decide the range; single batches' losses (down to
    # 1e-4 and below) would squash them into a band.
    ax.set_ylim(low / 3, high * 1.5)
  ax.set_xlabel('step')
  ax.set_ylabel('training loss')
  # Over the whole figure: a long legend leaves the axes too narrow for it.
  fig.suptitle(f'Training loss (smoothed, EMA weight {smoothing:g}; raw mean '
               'over seeds faint)')
  ax.grid(True, which='major', alpha=0.3)
  fig.legend(fontsize='small', loc='outside right center')
  return fig


def accuracy_figure(series: Sequence[tuple[str, Sequence[Sequence[float]]]],
                    target: float, dpi: int,
                    metric: str = 'test accuracy',
                    styles: Optional[Sequence[dict[str, Any]]] = None
                    ) -> Figure:
  """Accuracy after each epoch: the mean over seeds and its min-max band.

  Args:
    series: (label, per-seed accuracies from epoch 1) per curve; the seeds
      are cut to their shortest common length.
    target: drawn as a dashed horizontal line.
    dpi: the resolution.
    metric: the y axis's name; an accuracy is drawn in percent.
    styles: each curve's optimizer_style; None numbers them.
  """
  scale = 100 if 'accuracy' in metric else 1
  fig, ax = _new_axes(dpi)
  for i, (text, curves) in enumerate(series):
    epochs = min(len(c) for c in curves)
    if not epochs:
      continue
    style = styles[i] if styles else optimizer_style('', i)
    values = scale * np.array([c[:epochs] for c in curves])
    x = np.arange(1, epochs + 1)
    ax.plot(x, values.mean(0), label=_spread(text, len(curves)), **style)
    if len(curves) > 1:
      ax.fill_between(x, values.min(0), values.max(0), color=style['color'],
                      alpha=0.15)
  ax.axhline(scale * target, color='grey', linewidth=0.8, linestyle='--',
             label=f'target {scale * target:g}{"%" if scale == 100 else ""}')
  ax.set_xlabel('epoch')
  ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
  ax.set_ylabel(f'{metric} (%)' if scale == 100 else metric)
  fig.suptitle(f'{metric[0].upper()}{metric[1:]} after each epoch (mean over '
               'seeds)')
  ax.grid(True, which='major', alpha=0.3)
  fig.legend(fontsize='small', loc='outside right center')
  return fig


def ranking_figure(entries: Sequence[tuple[str, statistics.Interval, int]],
                   dpi: int,
                   styles: Optional[Sequence[dict[str, Any]]] = None,
                   metric: str = 'accuracy') -> Figure:
  """The final test metric per optimizer: mean and 95% interval, ranked.

  Args:
    entries: (label, interval of the final test metric, rank) per
      optimizer, in any order; drawn by mean, best on top.
    dpi: the resolution.
    styles: each entry's optimizer_style (its colour and marker); None: one
      colour.
    metric: a key of report.METRICS (accuracy is drawn in percent).
  """
  words = report.METRICS[metric][0]
  fig = plotting.new_figure((FIGSIZE[0], 1.0 + 0.35 * len(entries)), dpi)
  _draw_ranking(fig.add_subplot(), entries, styles, metric, True)
  # Over the whole figure: long labels leave the axes too narrow for it.
  fig.suptitle(f'Final {words}: mean and 95% bootstrap interval over '
               'seeds\n(a shared rank: the seeds cannot separate them)',
               fontsize='medium')
  return fig


def ranking_panels(panels: Sequence[tuple[str, str, Sequence[tuple[
    str, statistics.Interval, int]]]], dpi: int) -> Figure:
  """Small multiples of ranking_figure: one panel per workload of a study.

  Args:
    panels: (title, metric, entries) per workload; entries as in
      ranking_figure, labelled by registry name (which sets each one's
      optimizer_style, the same in every panel).
    dpi: the resolution.
  """
  columns = 2 if len(panels) > 1 else 1
  rows = -(-len(panels) // columns)
  most = max(len(entries) for _, _, entries in panels)
  fig = plotting.new_figure((12.0, rows * (0.9 + 0.3 * most)), dpi)
  for i, (title, metric, entries) in enumerate(panels):
    ax = fig.add_subplot(rows, columns, i + 1)
    _draw_ranking(ax, entries, [optimizer_style(name) for name, _, _ in
                                entries], metric, False)
    ax.set_title(title, fontsize='medium')
  fig.suptitle('Final test metric per workload: mean and 95% bootstrap '
               'interval over seeds, best on top (a shared rank: the seeds '
               'cannot separate them)', fontsize='medium')
  return fig


def _draw_ranking(ax: Any, entries: Sequence[tuple[str, statistics.Interval,
                                                   int]],
                  styles: Optional[Sequence[dict[str, Any]]], metric: str,
                  seeds_in_labels: bool) -> None:
  """Draws ranking_figure's dots, intervals and ranks into `ax`."""
  words, scale, unit = report.METRICS[metric]
  styles = styles or [optimizer_style('', 0)] * len(entries)
  ordered = sorted(zip(entries, styles), key=lambda e: e[0][1].mean)
  for y, ((text, interval, rank), style) in enumerate(ordered):
    ax.errorbar([scale * interval.mean], [y],
                xerr=[[scale * (interval.mean - interval.low)],
                      [scale * (interval.high - interval.mean)]],
                fmt=style['marker'], color=style['color'], capsize=3)
    ax.annotate(f'rank {rank}', (scale * interval.high, y),
                xytext=(6, 0), textcoords='offset points', va='center',
                fontsize='small')
  ax.set_yticks(range(len(ordered)),
                [f'{text} ({interval.count} seeds)' if seeds_in_labels
                 else text for (text, interval, _), _ in ordered],
                fontsize='small')
  ax.set_xlabel(f'final {words} ({unit.strip()})')
  ax.grid(True, axis='x', alpha=0.3)
  ax.margins(x=0.25)  # Room for the rank beside the best interval.


def save_profile_figure(profiles: dict[str, np.ndarray],
                        taus: Sequence[float], dpi: int, path: str) -> None:
  """Draws performance profiles (statistics.performance_profiles) to `path`.

  Args:
    profiles: {optimizer: fraction of workloads at each tau}.
    taus: the ratios to the fastest optimizer, from 1.
    dpi: the resolution.
    path: the PNG file to write.
  """
  fig, ax = _new_axes(dpi)
  ranked = sorted(profiles, key=lambda o: -profiles[o].sum())
  for i, name in enumerate(ranked):
    style = optimizer_style(name, i)
    # Equal profiles are common (few workloads, whole epochs): each line is
    # lifted by its own fraction of a point so that none hides another.
    lift = 0.6 * (i - (len(ranked) - 1) / 2)
    ax.step(taus, 100 * profiles[name] + lift, where='post', label=name,
            color=style['color'], linestyle=style['linestyle'])
  ax.set_xlabel('tau: epochs to target over the fastest optimizer\'s')
  ax.set_ylabel('workloads within tau (%)')
  ax.set_ylim(-6, 106)
  fig.suptitle('Performance profiles (AlgoPerf): higher and further left is '
               'better\n(lines offset by up to '
               f'{0.3 * (len(ranked) - 1):.1f} points so that equal ones '
               'stay visible)', fontsize='medium')
  ax.grid(True, alpha=0.3)
  fig.legend(fontsize='small', loc='outside right center')
  plotting.save_png(fig, path)


def write_figures(workdir: str, labels: dict[str, str],
                  results: dict[str, list[report.Result]],
                  intervals: dict[str, statistics.Interval], smoothing: float,
                  target: float, dpi: int,
                  metric: str = 'accuracy') -> list[str]:
  """Draws loss.png and accuracy.png from the runs.

  Args:
    workdir: the comparison's folder; the figures go into it.
    labels: {name: its legend label}.
    results: {name: its runs, one per seed}; only report.finished runs are
      drawn.
    intervals: report.accuracy_intervals(results), for the ranking.
    smoothing: the loss curves' EMA weight.
    target: the test metric's value drawn as a dashed line.
    dpi: the resolution.
    metric: a key of report.METRICS.

  Returns:
    The PNG files' paths: loss (when the runs logged step losses),
    accuracy (the test metric per epoch) and (when some optimizer has a
    complete run) ranking.
  """
  losses, accuracies, styles = [], [], []
  for name, runs in results.items():
    shown = report.finished(runs)
    if not shown:
      continue
    styles.append(optimizer_style(name, len(styles)))
    curves = [report.step_losses(r.workdir) for r in shown]
    losses.append((labels[name], [c[0] for c in curves],
                   [c[1] for c in curves]))
    accuracies.append((labels[name], [[report.score(row, metric)
                                       for row in r.rows] for r in shown]))
  paths = []
  # Runs with config.log_every_steps = 0 logged no step losses.
  if any(len(l) for _, _, per_seed in losses for l in per_seed):
    paths.append(os.path.join(workdir, 'loss.png'))
    plotting.save_png(loss_figure(losses, smoothing, dpi, styles), paths[-1])
  words, _, unit = report.METRICS[metric]
  paths.append(os.path.join(workdir, 'accuracy.png'))
  plotting.save_png(accuracy_figure(
      accuracies, target, dpi,
      words if unit == '%' else f'{words} ({unit.strip()})', styles),
                    paths[-1])
  if intervals:
    ranks = statistics.significance_ranks(intervals)
    paths.append(os.path.join(workdir, 'ranking.png'))
    plotting.save_png(ranking_figure(
        [(labels[name], i, ranks[name]) for name, i in intervals.items()],
        dpi, [optimizer_style(name, k) for k, name in enumerate(intervals)],
        metric), paths[-1])
  return paths
