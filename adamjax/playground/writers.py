"""The playground's tables: trajectories as CSV, a summary as CSV and Markdown.

Plain `csv` and strings; shared by the command line (files in the workdir) and
the web page (the CSV download and the on-page table use the same rows). The
summary is written in the project's table format (common.tables).
"""

import csv
import io
from typing import Any, Sequence

from adamjax.common import tables
from adamjax.playground.runs import Run

TRAJECTORY_HEADER = ('optimizer', 'learning_rate', 'step', 'x', 'y', 'loss')
SUMMARY_HEADER = ('optimizer', 'learning_rate', 'steps_to_tolerance',
                  'final_loss', 'final_x', 'final_y', 'status')


def trajectories_csv(runs: Sequence[Run]) -> str:
  """Every point of every run as CSV text, one row per (run, step).

  Args:
    runs: the runs.

  Returns:
    The CSV text, TRAJECTORY_HEADER first.
  """
  out = io.StringIO()
  writer = csv.writer(out)
  writer.writerow(TRAJECTORY_HEADER)
  for run in runs:
    for step, ((x, y), loss) in enumerate(zip(run.points, run.losses)):
      writer.writerow([run.optimizer, run.learning_rate, step, x, y, loss])
  return out.getvalue()


def write_trajectories_csv(path: str, runs: Sequence[Run]) -> None:
  """Writes `trajectories_csv(runs)` to `path`."""
  with open(path, 'w', newline='') as f:
    f.write(trajectories_csv(runs))


def summary_rows(runs: Sequence[Run]) -> list[list[Any]]:
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
  tables.write_table(stem, SUMMARY_HEADER, summary_rows(runs))
