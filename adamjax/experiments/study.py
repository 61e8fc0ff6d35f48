"""A study's report: RESULTS.md's tables and figures from finished comparisons.

  python -m adamjax.experiments.study --out=results/protocol \
      /tmp/study/logreg /tmp/study/cnn ...

Each argument is the workdir of a finished comparison (main.py
--config=configs/compare.py, with or without config.workloads); every folder
in it that holds a comparison.json is one workload, so workloads run with
different budgets (cheap ones in full, the CNNs smaller) report together.
Nothing trains. Into --out go:

  study.md                 per workload the protocol as run and the ranked
                           table (means, 95% intervals, ties, time to
                           target); then the performance profiles
  ranking.png              one panel per workload, ranked, with intervals
  performance_profile.png  AlgoPerf's profiles across the workloads
  profile.md, profile.csv  epochs to target per workload, the profile at 1, 2
  <workload>/              the workload's summary, runs, trials, config
"""

import argparse
import csv
import json
import os
import shutil
import sys
from typing import Any, NamedTuple, Sequence

import numpy as np

from adamjax.common import plotting
from adamjax.common import tables
from adamjax.experiments import compare
from adamjax.experiments import figures
from adamjax.experiments import report
from adamjax.experiments import statistics

# What each workload folder contributes to --out/<workload>/.
COPIED = ('comparison.json', 'summary.md', 'summary.csv', 'runs.csv',
          'lr_search.md', 'lr_search.csv', 'lr_search.json', 'identical.txt')


class FinishedWorkload(NamedTuple):
  """One finished comparison, as read from its folder.

  Attributes:
    name: the folder's name (a compare.WORKLOADS key when run as one).
    folder: where it lies.
    config: its comparison.json.
    summary: summary.csv's rows as dicts.
    runs: runs.csv's rows as lists (report.runs_header's order).
  """
  name: str
  folder: str
  config: dict[str, Any]
  summary: list[dict[str, str]]
  runs: list[list[str]]

  @property
  def metric(self) -> str:
    """The metric that ranks it (a report.METRICS key)."""
    return self.config.get('metric', 'accuracy')


def find_workloads(studies: Sequence[str]) -> list[FinishedWorkload]:
  """Every finished comparison in the study folders, in the order given.

  Args:
    studies: comparison workdirs; each, and each folder directly in it, is
      a workload if it holds compare.COMPARISON_FILE and summary.csv.

  Returns:
    The workloads, each study's in name order.

  Raises:
    ValueError: naming a study folder that holds no finished comparison, or
      a workload name found twice.
  """
  found, names = [], set()
  for study in studies:
    candidates = []
    if os.path.isdir(study):
      candidates = [study] + sorted(
          os.path.join(study, f) for f in os.listdir(study)
          if os.path.isdir(os.path.join(study, f)))
    folders = [f for f in candidates
               if os.path.exists(os.path.join(f, compare.COMPARISON_FILE))
               and os.path.exists(os.path.join(f, 'summary.csv'))]
    if not folders:
      raise ValueError(
          f'{study}: no finished comparison (a folder with '
          f'{compare.COMPARISON_FILE} and summary.csv) in it or directly '
          'below; run main.py --config=configs/compare.py with '
          '--config.report_only=True on it first.')
    for folder in folders:
      name = os.path.basename(os.path.normpath(folder))
      if name in names:
        raise ValueError(f'workload {name!r} appears twice ({folder}); give '
                         'each study folder once.')
      names.add(name)
      with open(os.path.join(folder, compare.COMPARISON_FILE)) as f:
        config = json.load(f)
      with open(os.path.join(folder, 'summary.csv'), newline='') as f:
        summary = list(csv.DictReader(f))
      with open(os.path.join(folder, 'runs.csv'), newline='') as f:
        runs = list(csv.reader(f))[1:]
      found.append(FinishedWorkload(name, folder, config, summary, runs))
  return found


def final_intervals(workload: FinishedWorkload) -> dict[str, statistics.Interval]:
  """Each optimizer's bootstrap interval of its finished seeds' final metric."""
  column = report.runs_header(workload.metric).index(
      f'final_test_{workload.metric}')
  status = report.RUNS_HEADER.index('status')
  finals: dict[str, list[float]] = {}
  for row in workload.runs:
    if row[status] == 'ok':
      finals.setdefault(row[0], []).append(float(row[column]))
  return {name: statistics.bootstrap_interval(values)
          for name, values in finals.items()}


def _setting(row: dict[str, str]) -> str:
  """'lr 0.00252, b1 0.952, ...': a summary row's chosen setting, 3 digits."""
  parts = [f'lr {float(row["learning_rate"]):.3g}']
  for item in row['hyperparameters'].split():
    key, _, value = item.partition('=')
    try:
      value = f'{float(value):.6g}' if key.startswith('b') else (
          f'{float(value):.3g}')
    except ValueError:
      pass
    parts.append(f'{key} {value}')
  return ', '.join(parts)


def _budget(workload: FinishedWorkload) -> str:
  """The protocol as run, in one sentence."""
  c = workload.config
  trials = (f'{c["lr_search_trials"]} quasi-random trials'
            if c.get('lr_search_trials') else
            f'a {len(c["lr_search_factors"])}-point rate grid')
  return (f'model `{c["model"]}` on {c["dataset"]}, batch {c["batch_size"]}; '
          f'{trials} per optimizer ({c["lr_search_epochs"]} '
          f'epoch{"s" if c["lr_search_epochs"] != 1 else ""} each, '
          f'scored on {c["lr_search_validation_examples"]:,} held-out '
          f'training examples by {c["lr_search_metric"]}), the best rerun on '
          f'{len(c["seeds"])} seeds for {c["num_epochs"]} '
          f'epoch{"s" if c["num_epochs"] != 1 else ""}; target '
          f'{_value(c["target_accuracy"], workload.metric)}.')


def _value(x: float, metric: str) -> str:
  """A metric's value as the tables show it: 99.12% or -104.3 nats."""
  _, scale, unit = report.METRICS[metric]
  return f'{scale * x:.2f}{unit}'


def workload_table(workload: FinishedWorkload,
                   intervals: dict[str, statistics.Interval]
                   ) -> tuple[list[str], list[list[str]]]:
  """The ranked table of one workload for study.md.

  Args:
    workload: the finished comparison.
    intervals: its final_intervals.

  Returns:
    (header, rows), best mean first: rank (shared where the 95% intervals
    overlap), optimizer, chosen setting, final metric with interval, each
    seed's epoch of reaching the target, and the mean seconds to it with
    interval.
  """
  metric = workload.metric
  words, scale, _ = report.METRICS[metric]
  ranks = statistics.significance_ranks(intervals)
  header = ['rank', 'optimizer', 'chosen setting',
            f'final {words}, mean [95% interval]',
            'epoch reaching the target, per seed',
            'seconds to target, mean [95% interval]']
  rows = []
  for row in workload.summary:
    name = row['optimizer']
    interval = intervals.get(name)
    if interval is None:
      rows.append(['—', name, _setting(row), row['seeds'] or 'not run', '',
                   ''])
      continue
    seconds = row['time_to_target_s']
    seconds_ci = row['time_to_target_s_ci95']
    rows.append([
        str(ranks[name]), name, _setting(row),
        f'{_value(interval.mean, metric)} [{scale * interval.low:.2f}, '
        f'{scale * interval.high:.2f}]',
        row['epochs_to_target'].replace('—', '–'),
        f'{seconds} [{seconds_ci}]' if seconds else 'not reached'])
  order = {name: -i.mean for name, i in intervals.items()}
  rows.sort(key=lambda r: order.get(r[1], np.inf))
  return header, rows


def ties(intervals: dict[str, statistics.Interval]) -> str:
  """Which optimizers the seeds cannot separate from the best, in words."""
  ranks = statistics.significance_ranks(intervals)
  first = sorted((n for n, r in ranks.items() if r == 1),
                 key=lambda n: -intervals[n].mean)
  rest = len(ranks) - len(first)
  return (f'Tied for first (no other interval lies wholly above theirs): '
          f'{", ".join(first)}; {rest} other{"s" if rest != 1 else ""} '
          'separated below.')


def profile_rows(workloads: Sequence[FinishedWorkload]
                 ) -> tuple[list[str], list[list[str]], dict[str, np.ndarray]]:
  """compare.profile_table over the optimizers every workload ran."""
  epochs = {w.name: compare.epochs_to_target(w.runs) for w in workloads}
  common = set.intersection(*(set(e) for e in epochs.values()))
  return compare.profile_table(
      {w: {o: e[o] for o in common} for w, e in epochs.items()})


def write_report(studies: Sequence[str], out: str, dpi: int = 120) -> str:
  """Reads the finished comparisons and writes the study's report to `out`.

  Args:
    studies: comparison workdirs (see find_workloads).
    out: the report's folder (created; files in it are replaced).
    dpi: the figures' resolution.

  Returns:
    study.md's text.
  """
  workloads = find_workloads(studies)
  os.makedirs(out, exist_ok=True)
  lines, panels = [], []
  for w in workloads:
    intervals = final_intervals(w)
    header, rows = workload_table(w, intervals)
    lines += [f'### {w.name}', '', _budget(w), '',
              tables.markdown_table(header, rows), ties(intervals), '']
    ranks = statistics.significance_ranks(intervals)
    panels.append((f'{w.name} (final {report.METRICS[w.metric][0]})',
                   w.metric, [(n, i, ranks[n]) for n, i in intervals.items()]))
    os.makedirs(os.path.join(out, w.name), exist_ok=True)
    for name in COPIED:
      if os.path.exists(os.path.join(w.folder, name)):
        shutil.copy(os.path.join(w.folder, name), os.path.join(out, w.name))
  header, rows, profiles = profile_rows(workloads)
  tables.write_table(os.path.join(out, 'profile'), header, rows)
  lines += ['### Performance profiles', '',
            'Median epoch of first reaching each workload\'s target over the '
            'seeds (inf: half or more never did), and the share of workloads '
            'on which each optimizer was the fastest (tau = 1) or within 2x '
            'of the fastest (tau = 2):', '', tables.markdown_table(header, rows)]
  text = '\n'.join(lines)
  with open(os.path.join(out, 'study.md'), 'w') as f:
    f.write(text)
  plotting.save_png(figures.ranking_panels(panels, dpi),
                    os.path.join(out, 'ranking.png'))
  figures.save_profile_figure(profiles, compare.PROFILE_TAUS, dpi,
                              os.path.join(out, 'performance_profile.png'))
  return text


def main(argv: Sequence[str] = tuple(sys.argv[1:])) -> None:
  """Parses the study folders and --out, and writes the report."""
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('studies', nargs='+',
                      help='Comparison workdirs (main.py, configs/compare.py).')
  parser.add_argument('--out', required=True, help="The report's folder.")
  parser.add_argument('--dpi', type=int, default=120)
  args = parser.parse_args(argv)
  try:
    text = write_report(args.studies, args.out, args.dpi)
  except ValueError as e:
    sys.exit(f'Error: {e}')
  print(text)
  print(f'wrote {args.out}/study.md, ranking.png, performance_profile.png, '
        'profile.md')


if __name__ == '__main__':
  main()
