"""Tests for the stop and divergence rules."""


import numpy as np
import pytest

from adamjax.trainer import control



def test_divergence_rule_is_ten_times_a_uniform_guess():
  """ln(10) * 10 = 23.03: a mean loss just below passes, just above stops."""
  control.check_divergence(23.0, 1, 10)
  with pytest.raises(FloatingPointError, match='epoch 4 mean training loss'):
    control.check_divergence(23.1, 4, 10)

def test_the_non_finite_loss_message_names_the_exact_step():
  """Losses of steps 11, 12, 13 with a NaN third: the message says step 13."""
  control.check_losses(np.array([2.0, 1.5, 1.0], np.float32), 10)
  with pytest.raises(FloatingPointError,
                     match=r'^Training loss is nan at step 13; stopping'):
    control.check_losses(np.array([2.0, 1.5, np.nan, np.inf], np.float32), 10)
