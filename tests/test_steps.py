"""Tests for the jitted train step and its multi-step dispatch."""


import jax
import jax.numpy as jnp
import numpy as np

import adam_optax
from adamjax import models
from adamjax.trainer import objective
from adamjax.trainer import steps
from adamjax.trainer import train_state

from conftest import fresh_state
from conftest import random_data


def test_train_step_lowers_the_loss_on_a_fixed_batch():
  """Repeated steps on one batch drive its loss down."""
  images, labels = random_data(0, 32)
  state = fresh_state()
  step = jax.jit(steps.train_step, donate_argnums=0)
  state, first = step(state, (images, labels))
  for _ in range(30):
    state, last = step(state, (images, labels))
  assert int(state.step) == 31
  assert float(last['loss']) < 0.5 * float(first['loss'])

def test_train_steps_equals_single_steps():
  """Several steps per dispatch give the same state as one at a time."""
  images, labels = random_data(1, 96)
  indices = jnp.arange(96).reshape(3, 32)
  fused, fused_metrics = steps.train_steps(fresh_state(), images, labels, indices)
  single = fresh_state()
  losses = []
  for i in range(3):
    single, metrics = steps.train_steps(single, images, labels, indices[i:i + 1])
    losses.append(float(metrics['loss'][0]))
  np.testing.assert_allclose(fused_metrics['loss'], losses, rtol=1e-5)
  for a, b in zip(jax.tree.leaves(fused.params), jax.tree.leaves(single.params)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)

def test_grad_chunks_give_the_same_steps():
  """Chunked gradients equal whole-batch ones up to summation order."""
  images, labels = random_data(5, 96)
  indices = jnp.arange(96).reshape(3, 32)
  whole, whole_metrics = steps.train_steps(fresh_state(), images, labels, indices)
  chunked, chunked_metrics = steps.train_steps(fresh_state(), images, labels,
                                               indices, grad_chunks=4)
  for key in ('loss', 'accuracy'):
    np.testing.assert_allclose(chunked_metrics[key], whole_metrics[key],
                               rtol=1e-5)
  for a, b in zip(jax.tree.leaves(chunked.params),
                  jax.tree.leaves(whole.params)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)

def test_l2_enters_the_gradient():
  """With SGD at rate 1, one step moves w by -(grad of cross-entropy + l2 w)."""
  import optax  # pylint: disable=g-import-not-at-top
  images, labels = random_data(7, 16)
  state = train_state.create_train_state(jax.random.key(0), models.CNN(),
                                   optax.sgd(1.0), (28, 28, 1))
  grads = jax.grad(lambda p: objective.loss_and_logits(
      p, state.apply_fn, images, labels)[0].mean())(state.params)
  new, _ = steps.train_step(state, (images, labels), 1,
                            objective.StepOptions(l2=0.5))
  expected = jax.tree.map(lambda p, g: p - (g + 0.5 * p), state.params, grads)
  for got, want in zip(jax.tree.leaves(new.params), jax.tree.leaves(expected)):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)

def test_l2_and_label_smoothing_enter_the_loss_as_stated():
  """The step's loss equals cross-entropy with smoothed targets plus l2/2|w|^2."""
  images, labels = random_data(4, 32)
  state = fresh_state()
  options = objective.StepOptions(label_smoothing=0.1, l2=0.01)
  _, metrics = steps.train_step(state, (images, labels), 1, options)
  logits = state.apply_fn({'params': state.params},
                          np.asarray(images, np.float32) / 255)
  log_probs = np.asarray(jax.nn.log_softmax(logits), np.float64)
  targets = np.full((32, 10), 0.1 / 10) + 0.9 * np.eye(10)[np.asarray(labels)]
  cross_entropy = -(targets * log_probs).sum(-1).mean()
  penalty = sum(float(np.sum(np.square(np.asarray(p, np.float64))))
                for p in jax.tree.leaves(state.params)) / 2
  np.testing.assert_allclose(float(metrics['loss']),
                             cross_entropy + 0.01 * penalty, rtol=1e-5)

def test_ema_follows_the_parameters_with_its_decay():
  """After each step, ema = d * ema + (1 - d) * params."""
  images, labels = random_data(5, 32)
  state = train_state.create_train_state(jax.random.key(0), models.CNN(),
                                   adam_optax.adam(1e-2), (28, 28, 1),
                                   ema=True)
  options = objective.StepOptions(ema_decay=0.9)
  ema = state.params
  for _ in range(3):
    state, _ = steps.train_step(state, (images, labels), 1, options)
    ema = jax.tree.map(lambda e, p: 0.9 * e + 0.1 * p, ema, state.params)
  for got, want in zip(jax.tree.leaves(state.ema_params),
                       jax.tree.leaves(ema)):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
  assert not np.allclose(jax.tree.leaves(state.ema_params)[0],
                         jax.tree.leaves(state.params)[0])
