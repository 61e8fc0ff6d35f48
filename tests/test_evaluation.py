"""Tests for exact evaluation."""


import jax.numpy as jnp
import numpy as np
import pytest

from adamjax.data import input_pipeline
from adamjax.trainer import evaluation
from adamjax.trainer import objective

from conftest import fresh_state
from conftest import random_data


def test_evaluate_counts_every_example_exactly_once():
  """Padded, masked batches give the exact full-set mean."""
  split = input_pipeline.Split(*random_data(2, 23))
  state = fresh_state()
  losses, logits = objective.loss_and_logits(state.params, state.apply_fn,
                                         split.images, split.labels)
  expected_acc = float(jnp.mean(jnp.argmax(logits, -1) == split.labels))
  for batch_size in (5, 23, 64):
    result = evaluation.evaluate(state, split, batch_size)
    np.testing.assert_allclose(result['loss'], float(losses.mean()), rtol=1e-5)
    assert result['accuracy'] == pytest.approx(expected_acc)
