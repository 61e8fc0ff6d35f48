"""Tests for the optimizer registry and schedules."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from configs import default
import optimizers


@pytest.mark.parametrize('name', list(optimizers.OPTIMIZERS))
def test_every_registered_optimizer_builds_and_descends(name):
  """Each name builds a transformation whose steps lower a quadratic."""
  tx = optimizers.create_optimizer(name, 0.05)
  params = {'w': jnp.array([1.0, -2.0, 3.0])}
  loss = lambda p: jnp.sum(p['w'] ** 2)
  state = tx.init(params)
  for _ in range(20):
    updates, state = tx.update(jax.grad(loss)(params), state, params)
    params = optax.apply_updates(params, updates)
  assert loss(params) < 14.0


def test_unknown_optimizer_lists_the_registry():
  """An unknown name is an error naming it and every accepted name."""
  with pytest.raises(ValueError, match=r"Unknown optimizer 'adamm'.*adam, "
                     r'adamw, nadam, amsgrad, adamax, optax_adam, sgd'):
    optimizers.create_optimizer('adamm', 1e-3)


def test_foreign_hyperparameter_is_rejected_with_the_accepted_list():
  """A hyperparameter the optimizer does not take names what it does take."""
  with pytest.raises(ValueError, match=r"'sgd' does not take b1; it accepts: "
                     r'learning_rate, momentum'):
    optimizers.create_optimizer('sgd', 0.1, b1=0.9)


def test_none_hyperparameters_mean_defaults():
  """Unset config slots (None) are dropped, not passed through."""
  tx = optimizers.create_optimizer('adamax', 1e-3, b1=None, weight_decay=None)
  assert isinstance(tx, optax.GradientTransformation)


@pytest.mark.parametrize('lr', [-0.1, float('nan'), float('inf')])
def test_bad_learning_rate(lr):
  """Negative or non-finite rates are rejected for every optimizer."""
  with pytest.raises(ValueError, match='learning_rate=.* must be a finite'):
    optimizers.create_optimizer('rmsprop', lr)


def test_clipping_is_chained_first():
  """grad_clip_norm clips the global norm before the optimizer sees it."""
  tx = optimizers.create_optimizer('sgd', 1.0, grad_clip_norm=1.0)
  params = jnp.zeros(2)
  updates, _ = tx.update(jnp.array([3.0, 4.0]), tx.init(params), params)
  np.testing.assert_allclose(updates, [-0.6, -0.8], rtol=1e-6)
  with pytest.raises(ValueError, match='grad_clip_norm=0.0'):
    optimizers.create_optimizer('sgd', 1.0, grad_clip_norm=0.0)


def test_schedules():
  """Each schedule has the documented values at known steps."""
  assert optimizers.create_schedule('constant', 0.1, 100) == 0.1
  inv = optimizers.create_schedule('inverse_sqrt', 0.1, 100)
  np.testing.assert_allclose([inv(0), inv(3)], [0.1, 0.05], rtol=1e-6)
  cos = optimizers.create_schedule('cosine', 0.1, 100)
  np.testing.assert_allclose([cos(0), cos(50), cos(100)], [0.1, 0.05, 0.0],
                             atol=1e-7)
  warm = optimizers.create_schedule('warmup_cosine', 0.1, 100, 10)
  np.testing.assert_allclose([warm(0), warm(5), warm(10)], [0.0, 0.05, 0.1],
                             rtol=1e-6)
  with pytest.raises(ValueError, match="Unknown schedule 'linear'.*constant"):
    optimizers.create_schedule('linear', 0.1, 100)
  with pytest.raises(ValueError, match='warmup_steps=100'):
    optimizers.create_schedule('warmup_cosine', 0.1, 100, 100)


def test_from_config_reads_hyperparameters_and_schedule():
  """Config slots reach the optimizer: b1=0 makes Adam's momentum vanish."""
  config = default.get_config()
  config.optimizer.b1 = 0.0
  config.schedule = 'inverse_sqrt'
  tx = optimizers.from_config(config, total_steps=10)
  params = jnp.zeros(2)
  state = tx.init(params)
  updates, state = tx.update(jnp.array([1.0, -1.0]), state, params)
  updates, state = tx.update(jnp.array([-1.0, 1.0]), state, params)
  # With b1 = 0 the second step follows the second gradient alone, at
  # lr / sqrt(2) from the inverse-sqrt schedule.
  np.testing.assert_allclose(updates, [5e-4 / np.sqrt(2), -5e-4 / np.sqrt(2)],
                             rtol=1e-4)


def test_config_slots_cover_every_float_hyperparameter():
  """Every registered hyperparameter a user might set has a config slot."""
  slots = set(default.optimizer_config('adam', 1e-3))
  wanted = {'b1', 'b2', 'eps', 'eps_root', 'weight_decay', 'momentum', 'decay',
            'rho', 'initial_accumulator_value', 'nesterov', 'amsgrad'}
  assert wanted <= slots
  assert isinstance(default.get_config().optimizer, ml_collections.ConfigDict)
