"""Tests for the learning-rate schedules."""

import math

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from adamjax.common import errors
from adamjax.optim import schedules


def test_schedules_without_warmup():
  """Each schedule has the documented values at known steps."""
  assert schedules.create_schedule('constant', 0.1, 100) == 0.1
  inv = schedules.create_schedule('inverse_sqrt', 0.1, 100)
  np.testing.assert_allclose([inv(0), inv(3), inv(99)],
                             [0.1, 0.05, 0.01], rtol=1e-6)
  for name in ('cosine', 'warmup_cosine'):
    cos = schedules.create_schedule(name, 0.1, 100)
    np.testing.assert_allclose([cos(0), cos(50), cos(100)], [0.1, 0.05, 0.0],
                               atol=1e-7)

@pytest.mark.parametrize('name, values', [
    # Steps 0, 5, 10 (the peak), 14, 55 and 100 of a 100-step run with a
    # 10-step warm-up; after it each schedule restarts its own count.
    ('constant', [0.0, 0.05, 0.1, 0.1, 0.1, 0.1]),
    ('inverse_sqrt', [0.0, 0.05, 0.1, 0.1 / math.sqrt(5), 0.1 / math.sqrt(46),
                      0.1 / math.sqrt(91)]),
    ('cosine', [0.0, 0.05, 0.1, 0.1 * (1 + math.cos(math.pi * 4 / 90)) / 2,
                0.05, 0.0]),
    ('warmup_cosine', [0.0, 0.05, 0.1,
                       0.1 * (1 + math.cos(math.pi * 4 / 90)) / 2, 0.05, 0.0]),
])
def test_warmup_applies_to_every_schedule(name, values):
  """warmup_steps rises linearly from 0 to the rate, then the schedule runs."""
  schedule = schedules.create_schedule(name, 0.1, 100, warmup_steps=10)
  np.testing.assert_allclose([schedule(s) for s in (0, 5, 10, 14, 55, 100)],
                             values, rtol=1e-5, atol=1e-7)

def test_cosine_with_warmup_is_optax_warmup_cosine():
  """'cosine' with a warm-up is Optax's warmup_cosine_decay_schedule."""
  ours = schedules.create_schedule('cosine', 0.3, 50, warmup_steps=7)
  theirs = optax.warmup_cosine_decay_schedule(0.0, 0.3, 7, 50)
  steps = jnp.arange(60)
  np.testing.assert_allclose(ours(steps), theirs(steps), rtol=1e-6, atol=1e-8)

@pytest.mark.parametrize('name', ['constant', 'cosine', 'inverse_sqrt'])
@pytest.mark.parametrize('warmup', [-1, 100, 101, 2.5])
def test_bad_warmup_is_refused_for_every_schedule(name, warmup):
  """A warm-up that is negative, fractional or not shorter than the run."""
  with pytest.raises(
      errors.ConfigError,
      match=rf'^warmup_steps={warmup} is invalid: it must be an integer in '
      r'\[0, total_steps=100\)\.$'):
    schedules.create_schedule(name, 0.1, 100, warmup)

def test_warmup_of_one_step_less_than_the_run_is_accepted():
  """The longest accepted warm-up ends at the run's last step."""
  schedule = schedules.create_schedule('constant', 0.1, 100, 99)
  np.testing.assert_allclose([schedule(0), schedule(99)], [0.0, 0.1],
                             rtol=1e-6)

def test_unknown_schedule():
  """An unknown schedule is a ConfigError listing the accepted ones."""
  with pytest.raises(
      errors.ConfigError,
      match=r"^schedule='linear' is invalid; accepted: constant, cosine, "
      r'warmup_cosine, inverse_sqrt\.$'):
    schedules.create_schedule('linear', 0.1, 100)

def test_run_of_one_step():
  """The shortest run: one step at the full rate (cosine ends after it)."""
  cos = schedules.create_schedule('cosine', 0.1, 1)
  np.testing.assert_allclose([cos(0), cos(1)], [0.1, 0.0], atol=1e-8)

@pytest.mark.parametrize('total', [0, -5, 10.0])
def test_run_without_steps_is_refused(total):
  """Schedules need a run of at least one step (an integer count)."""
  with pytest.raises(errors.ConfigError,
                     match=rf'^total_steps={total} is invalid: the run must '
                     'have at least one optimizer step'):
    schedules.create_schedule('cosine', 0.1, total)
