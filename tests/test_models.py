"""Tests for the classifiers and their registry."""


import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from adamjax import models



def test_cnn_parameter_count_and_output_shape():
  """The seed's CNN: 62,346 parameters, logits (N, 10)."""
  model = models.CNN()
  variables = model.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))
  shapes = jax.tree.map(jnp.shape, variables['params'])
  assert shapes == {
      'Conv_0': {'kernel': (5, 5, 1, 32), 'bias': (32,)},
      'Conv_1': {'kernel': (5, 5, 32, 64), 'bias': (64,)},
      'Dense_0': {'kernel': (1024, 10), 'bias': (10,)},
  }
  assert sum(x.size for x in jax.tree.leaves(variables)) == 62_346
  assert model.apply(variables, jnp.zeros((7, 28, 28, 1))).shape == (7, 10)

def test_fast_cnn_shapes_and_pooling_before_relu():
  """The speedrun's CNN: 28 -> 12 (5x5, stride 2) -> 10 (3x3) -> 5 (pool).

  Its ReLU after the pool is the same function as before it.
  """
  model = models.FastCNN()
  variables = model.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))
  shapes = jax.tree.map(jnp.shape, variables['params'])
  assert shapes == {
      'Conv_0': {'kernel': (5, 5, 1, 24), 'bias': (24,)},
      'Conv_1': {'kernel': (3, 3, 24, 48), 'bias': (48,)},
      'Dense_0': {'kernel': (5 * 5 * 48, 128), 'bias': (128,)},
      'Dense_1': {'kernel': (128, 10), 'bias': (10,)},
  }
  x = jax.random.uniform(jax.random.key(1), (3, 28, 28, 1))
  layer = lambda module, name, y: module.apply(
      {'params': variables['params'][name]}, y)
  hidden = layer(nn.Conv(48, (3, 3), padding='VALID'), 'Conv_1', nn.relu(
      layer(nn.Conv(24, (5, 5), strides=2, padding='VALID'), 'Conv_0', x)))
  relu_first = models.max_pool(nn.relu(hidden)).reshape(3, -1)
  logits = layer(nn.Dense(10), 'Dense_1',
                 nn.relu(layer(nn.Dense(128), 'Dense_0', relu_first)))
  np.testing.assert_array_equal(model.apply(variables, x), logits)


def test_max_pool_2x2_is_bit_identical_to_flax_max_pool():
  """Same output and gradient as nn.max_pool, ties included (first max wins)."""
  rng = np.random.default_rng(4)
  # Few distinct values, so most windows hold ties (as blank MNIST areas do).
  x = jnp.asarray(rng.integers(-2, 3, (3, 8, 6, 5)), jnp.float32)
  weights = jnp.asarray(rng.normal(size=(3, 4, 3, 5)), jnp.float32)
  flax_pool = lambda x: nn.max_pool(x, (2, 2), strides=(2, 2))
  for pool in (flax_pool, models.max_pool_2x2):
    np.testing.assert_array_equal(pool(x), flax_pool(x))
  grad = lambda pool: jax.grad(lambda x: jnp.sum(pool(x) * weights))(x)
  np.testing.assert_array_equal(grad(models.max_pool_2x2), grad(flax_pool))

def test_model_registry_parameter_counts_and_bad_names():
  """logreg 7,850, the paper's MLP 1,796,010; unknown names are refused."""
  counts = {}
  for name in ('cnn', 'cnn_fast', 'mlp', 'logreg'):
    variables = models.create_model(name).init(jax.random.key(0),
                                               jnp.zeros((1, 28, 28, 1)))
    counts[name] = sum(x.size for x in jax.tree.leaves(variables))
  assert counts == {'cnn': 62_346, 'cnn_fast': 166_058, 'mlp': 1_796_010,
                    'logreg': 7_850}
  with pytest.raises(ValueError, match="Unknown model 'resnet'"):
    models.create_model('resnet')
  with pytest.raises(ValueError, match="'logreg' does not take dropout_rate"):
    models.create_model('logreg', dropout_rate=0.5)
