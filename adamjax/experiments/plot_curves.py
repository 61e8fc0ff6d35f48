"""Draws test accuracy per epoch of finished runs, one curve per group of seeds.

  python -m adamjax.experiments.plot_curves --out=results/best_vs_seed.png \
      --ymin=0.98 \
      "seed recipe=/tmp/tta/mnist_seed*" "best recipe=/tmp/best/test_s*"

Each argument is LABEL=GLOB of main.py run folders (files are skipped), drawn
as their mean with the min-max band, like the comparison's accuracy.png.
"""

import argparse
import glob
import os
import sys

from adamjax.experiments import figures
from adamjax.trainer import metrics_log


def curves(pattern: str, metric: str) -> list[list[float]]:
  """The `metric` per epoch of every run folder matching a glob.

  Args:
    pattern: the glob; files it matches are skipped.
    metric: a metrics.jsonl field.

  Returns:
    One list per folder, sorted by path: the metric after each epoch.

  Raises:
    SystemExit: with a one-line message if no folder matches or one lacks
      the metric.
  """
  folders = sorted(f for f in glob.glob(pattern) if os.path.isdir(f))
  if not folders:
    sys.exit(f'Error: no run folder matches {pattern!r}.')
  result = []
  for folder in folders:
    rows = metrics_log.read_metrics(folder)
    if not rows or metric not in rows[0]:
      sys.exit(f'Error: {folder} has no {metric!r} in its metrics.jsonl.')
    result.append([row[metric] for row in rows])
  return result


def main() -> None:
  """Parses LABEL=GLOB arguments and writes the figure."""
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('groups', nargs='+', help='LABEL=GLOB of run folders.')
  parser.add_argument('--out', required=True, help='The PNG to write.')
  parser.add_argument('--metric', default='test_accuracy',
                      help="A metrics.jsonl field, e.g. 'val_accuracy'.")
  parser.add_argument('--target', type=float, default=0.995,
                      help='Drawn as a dashed line.')
  parser.add_argument('--ymin', type=float, default=None,
                      help='Lower end of the y axis (default: the data).')
  parser.add_argument('--dpi', type=int, default=120)
  args = parser.parse_args()
  series = []
  for group in args.groups:
    label, sep, pattern = group.partition('=')
    if not sep or not label or not pattern:
      sys.exit(f'Error: {group!r} is not LABEL=GLOB.')
    series.append((label, curves(pattern, args.metric)))
  figure = figures.accuracy_figure(series, args.target, args.dpi,
                                   metric=args.metric.replace('_', ' '))
  if args.ymin is not None:
    # Points below are cut off, so that the epochs that matter fill the plot.
    figure.axes[0].set_ylim(bottom=args.ymin * (
        100 if 'accuracy' in args.metric else 1))  # Accuracies in percent.
  figure.savefig(args.out)
  print(f'wrote {args.out}')


if __name__ == '__main__':
  main()
