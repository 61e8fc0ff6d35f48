"""Tests for the data order: a pure function of (seed, epoch, position)."""


import jax
import numpy as np

from adamjax.data import order



def test_epoch_batches_is_a_seeded_permutation():
  """Each epoch is a different order of distinct examples, fixed by the seed."""
  rng = jax.random.key(3)
  first = np.asarray(order.epoch_batches(rng, 1, 100, 16))
  assert first.shape == (6, 16)
  assert len(set(first.ravel())) == 96
  np.testing.assert_array_equal(first, order.epoch_batches(rng, 1, 100, 16))
  assert not np.array_equal(first, order.epoch_batches(rng, 2, 100, 16))

def test_step_key_is_a_pure_function_of_seed_epoch_position():
  """Same (key, epoch, position): same key; any change: another key."""
  data_key = jax.random.key_data(jax.random.key(3))
  keys = {(e, p): jax.random.key_data(order.step_key(data_key, e, p))
          for e in (1, 2) for p in (0, 1)}
  np.testing.assert_array_equal(keys[1, 0], jax.random.key_data(
      order.step_key(data_key, 1, 0)))
  values = [tuple(np.asarray(k).tolist()) for k in keys.values()]
  assert len(set(values)) == 4
