"""Statistics that can tell optimizers apart: intervals and ranks with ties.

A comparison's numbers are means over a handful of seeds; whether one
optimizer beats another is a statement about those seeds' spread. Here the
spread becomes a bootstrap confidence interval of the mean, and the ranking
counts only differences whose intervals do not overlap, so optimizers that
the seeds cannot separate share a rank.
"""

from typing import Mapping, NamedTuple, Sequence

import numpy as np


class Interval(NamedTuple):
  """A mean over seeds and its confidence interval.

  Attributes:
    mean: the mean of the values.
    low: the interval's lower end.
    high: its upper end.
    count: how many values (seeds) it rests on.
  """
  mean: float
  low: float
  high: float
  count: int


def bootstrap_interval(values: Sequence[float], confidence: float = 0.95,
                       resamples: int = 10_000, seed: int = 0) -> Interval:
  """The percentile-bootstrap confidence interval of the mean of `values`.

  The values (one per seed) are resampled with replacement `resamples`
  times; the interval holds the central `confidence` of the resampled means.
  One value gives the zero-width interval at that value: one seed cannot
  show a spread, and the ranking then separates only distinct values.

  Args:
    values: one number per seed, at least one, all finite.
    confidence: the interval's coverage, in (0, 1).
    resamples: bootstrap resamples, >= 1.
    seed: the resampling's seed (the same seed, the same interval).

  Returns:
    An Interval.

  Raises:
    ValueError: on no values, a non-finite value, or confidence outside
      (0, 1).
  """
  data = np.asarray(values, np.float64)
  if data.ndim != 1 or data.size == 0:
    raise ValueError(f'values={values!r}: need one number per seed, at '
                     'least one.')
  if not np.all(np.isfinite(data)):
    raise ValueError(f'values={values!r}: every value must be finite.')
  if not 0 < confidence < 1:
    raise ValueError(f'confidence={confidence!r} is invalid: it must be in '
                     '(0, 1).')
  if resamples < 1:
    raise ValueError(f'resamples={resamples!r} is invalid: it must be >= 1.')
  rng = np.random.default_rng(seed)
  picks = rng.integers(0, data.size, size=(resamples, data.size))
  means = data[picks].mean(axis=1)
  tail = (1 - confidence) / 2 * 100
  low, high = np.percentile(means, [tail, 100 - tail])
  return Interval(float(data.mean()), float(low), float(high), int(data.size))


def significance_ranks(intervals: Mapping[str, Interval],
                       higher_is_better: bool = True) -> dict[str, int]:
  """Ranks that count only separated intervals: 1 + how many are surely better.

  An optimizer's rank is 1 plus the number of others whose whole interval
  lies beyond its own (above it, if higher is better). So optimizers whose
  intervals overlap the best one's all rank 1, and a rank says how many
  optimizers the seeds show to be better, not the order of the means.

  Args:
    intervals: {name: its Interval}.
    higher_is_better: accuracy (True) or a loss or a time (False).

  Returns:
    {name: rank}, ranks from 1.
  """
  def better(a: Interval, b: Interval) -> bool:
    """Whether a's interval lies wholly beyond b's."""
    return a.low > b.high if higher_is_better else a.high < b.low

  return {name: 1 + sum(better(other, mine) for other in intervals.values())
          for name, mine in intervals.items()}


class SearchRange(NamedTuple):
  """One hyperparameter's search range.

  Attributes:
    low: the smallest value.
    high: the largest value.
    scale: 'log' (log-uniform, e.g. a learning rate), 'linear', or
      'one_minus_log' (1 - value log-uniform, for decays near 1 such as b2,
      as AlgoPerf's search spaces do).
  """
  low: float
  high: float
  scale: str = 'log'


SCALES = ('log', 'linear', 'one_minus_log')


def quasi_random_trials(space: Mapping[str, SearchRange], count: int,
                        seed: int = 0) -> list[dict[str, float]]:
  """`count` settings from a scrambled Halton sequence over `space`.

  Quasi-random points cover a box more evenly than random ones and, unlike a
  grid, give every trial a distinct value in every dimension (AlgoPerf's
  external tuning uses them). The same (space, count, seed) gives the same
  trials, and a larger count extends a smaller one's list.

  Args:
    space: {hyperparameter: its SearchRange}; dimensions in sorted name
      order.
    count: trials, >= 1.
    seed: scrambles the sequence.

  Returns:
    `count` dicts {hyperparameter: value}, values (for one_minus_log,
    1 - value) to 4 significant digits (they name the trials' folders).

  Raises:
    ValueError: on an empty space, count < 1, or a range that is empty,
      not positive where its scale needs it, or of an unknown scale.
  """
  from scipy.stats import qmc  # pylint: disable=g-import-not-at-top
  if not space:
    raise ValueError('space is empty: give at least one hyperparameter.')
  if count < 1:
    raise ValueError(f'count={count!r} is invalid: it must be >= 1.')
  for name, r in space.items():
    if r.scale not in SCALES:
      raise ValueError(f'{name}: scale={r.scale!r} is invalid; accepted: '
                       f'{", ".join(SCALES)}.')
    if not r.low < r.high:
      raise ValueError(f'{name}: low={r.low!r} must be below high={r.high!r}.')
    if r.scale == 'log' and r.low <= 0:
      raise ValueError(f'{name}: a log range needs low > 0, got {r.low!r}.')
    if r.scale == 'one_minus_log' and not 0 <= r.low < r.high < 1:
      raise ValueError(f'{name}: a one_minus_log range needs 0 <= low < '
                       f'high < 1, got ({r.low!r}, {r.high!r}).')
  names = sorted(space)
  points = qmc.Halton(len(names), scramble=True, seed=seed).random(count)
  trials = []
  for point in points:
    trial = {}
    for name, u in zip(names, point):
      r = space[name]
      if r.scale == 'log':
        value = float(np.exp(np.log(r.low) + u * np.log(r.high / r.low)))
      elif r.scale == 'linear':
        value = r.low + u * (r.high - r.low)
      else:
        # u = 0 gives `low`, u = 1 `high`: 1 - value runs log-uniformly,
        # and is what keeps 4 significant digits (0.99987, not 0.9999).
        rest = float(np.exp(np.log(1 - r.low) + u * np.log(
            (1 - r.high) / (1 - r.low))))
        # Printed as 0.98196, not 0.9819599999999999.
        trial[name] = float(f'{1 - float(f"{rest:.4g}"):.12g}')
        continue
      trial[name] = float(f'{value:.4g}')
    trials.append(trial)
  return trials


def performance_profiles(times: Mapping[str, Mapping[str, float]],
                         taus: Sequence[float]) -> dict[str, np.ndarray]:
  """AlgoPerf's performance profiles from times to target per workload.

  For workload w and optimizer o, r(w, o) is o's time to the target over
  the fastest optimizer's on w (inf where o never reached it); the profile
  of o at tau is the fraction of workloads with r(w, o) <= tau. So its value
  at tau = 1 is how often o was the fastest, and how fast it rises says how
  far behind the fastest o is elsewhere.

  Args:
    times: {workload: {optimizer: time to target, math.inf if not
      reached}}; every workload names the same optimizers.
    taus: the ratios (>= 1) to evaluate at.

  Returns:
    {optimizer: array of len(taus) fractions in [0, 1]}.

  Raises:
    ValueError: on no workloads, workloads naming different optimizers, or
      a time that is negative or NaN.
  """
  if not times:
    raise ValueError('times is empty: give at least one workload.')
  optimizers = sorted(next(iter(times.values())))
  ratios = []
  for workload, row in times.items():
    if sorted(row) != optimizers:
      raise ValueError(f'workload {workload!r} names {sorted(row)}, not '
                       f'{optimizers} as the first one does.')
    values = np.array([row[o] for o in optimizers], np.float64)
    if np.any(np.isnan(values)) or np.any(values < 0):
      raise ValueError(f'workload {workload!r}: times must be >= 0 or inf, '
                       f'got {row}.')
    best = values.min()
    # Nobody reached the target: no optimizer is within any ratio.
    ratios.append(values / best if np.isfinite(best) else
                  np.full_like(values, np.inf))
  ratios = np.array(ratios)  # (workloads, optimizers)
  taus = np.asarray(taus, np.float64)
  return {o: (ratios[:, i][None, :] <= taus[:, None]).mean(axis=1)
          for i, o in enumerate(optimizers)}
