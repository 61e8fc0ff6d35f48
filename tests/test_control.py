"""Tests for the stop and divergence rules."""


import numpy as np
import pytest

from adamjax.trainer import control
from adamjax.trainer import objective



def test_divergence_rule_is_ten_times_a_uniform_guess():
  """ln(10) * 10 = 23.03: a mean loss just below passes, just above stops."""
  chance = objective.chance_loss('classify', (28, 28, 1), 10)
  control.check_divergence(23.0, 1, chance)
  with pytest.raises(FloatingPointError, match='epoch 4 mean training loss'):
    control.check_divergence(23.1, 4, chance)


def test_the_elbo_divergence_rule_is_ten_times_a_coin_per_pixel():
  """784 ln 2 * 10 = 5,434 nats: a VAE's 500 nats at step 1 is no divergence."""
  chance = objective.chance_loss('elbo', (28, 28, 1), 10)
  assert chance == pytest.approx(784 * np.log(2))
  control.check_divergence(5434.0, 1, chance)
  with pytest.raises(FloatingPointError, match='above 5.43e\\+03'):
    control.check_divergence(5435.0, 2, chance)

def test_the_non_finite_loss_message_names_the_exact_step():
  """Losses of steps 11, 12, 13 with a NaN third: the message says step 13."""
  control.check_losses(np.array([2.0, 1.5, 1.0], np.float32), 10)
  with pytest.raises(FloatingPointError,
                     match=r'^Training loss is nan at step 13; stopping'):
    control.check_losses(np.array([2.0, 1.5, np.nan, np.inf], np.float32), 10)
