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
