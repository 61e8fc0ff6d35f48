"""The modern Adam family in adam_optax: ADOPT, AdEMAMix, RAdam, Cautious.

ADOPT and AdEMAMix do Optax's arithmetic in Optax's order, so 1,000 jitted
steps are bit for bit those of optax.contrib's. RAdam and the Cautious
optimizers are checked against NumPy implementations of the papers'
algorithms written here from the papers (float64), and RAdam also against
optax.radam. The registry battery (tests/test_registry_battery.py) covers jit,
inject_hyperparams, MultiSteps, bf16, sharding and pytrees for each; the
trainer test below, resume.
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
from optax import contrib
import pytest

import adam_optax
from configs import default
from conftest import without_timings
import train

X = np.asarray(jax.random.normal(jax.random.key(1), (64, 16)))
Y = np.asarray(jax.random.normal(jax.random.key(2), (64, 8)))


def _params():
  return {'w': jax.random.normal(jax.random.key(0), (16, 8)),
          'b': jnp.zeros(8)}


def _grad(params):
  """Gradient of the mean squared error of X @ w + b against Y."""
  return jax.grad(lambda p: jnp.mean((X @ p['w'] + p['b'] - Y)**2))(params)


def _trajectory(tx, steps):
  """Params and state after `steps` jitted steps on the regression."""
  @jax.jit
  def step(params, state):
    updates, state = tx.update(_grad(params), state, params)
    return optax.apply_updates(params, updates), state

  params = _params()
  state = tx.init(params)
  for _ in range(steps):
    params, state = step(params, state)
  return params, state


def _assert_bitwise(got, want):
  assert jax.tree.structure(got) == jax.tree.structure(want)
  for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(got),
                          jax.tree.leaves(want)):
    np.testing.assert_array_equal(a, b, err_msg=jax.tree_util.keystr(path))


@pytest.mark.parametrize('ours, theirs', [
    (adam_optax.adopt(1e-3), contrib.adopt(1e-3)),
    (adam_optax.adopt(1e-3, nesterov=True),
     contrib.adopt(1e-3, nesterov=True)),
    (adam_optax.adopt(3e-3, 0.8, 0.99, use_clipping=False),
     contrib.adopt(3e-3, 0.8, 0.99, use_clipping=False)),
    (adam_optax.ademamix(1e-3), contrib.ademamix(1e-3)),
    (adam_optax.ademamix(1e-3, b3=0.999, alpha=8.0, weight_decay=0.01),
     contrib.ademamix(1e-3, b3=0.999, alpha=8.0, weight_decay=0.01)),
    (adam_optax.ademamix(1e-3, b3=optax.linear_schedule(0.9, 0.9999, 500),
                         alpha=optax.linear_schedule(0.0, 5.0, 500)),
     contrib.ademamix(1e-3, b3=optax.linear_schedule(0.9, 0.9999, 500),
                      alpha=optax.linear_schedule(0.0, 5.0, 500))),
], ids=['adopt', 'adopt_nesterov', 'adopt_unclipped', 'ademamix',
        'ademamix_decay', 'ademamix_schedules'])
def test_bitwise_equal_to_optax_contrib_over_1000_steps(ours, theirs):
  _assert_bitwise(_trajectory(ours, 1000), _trajectory(theirs, 1000))


def test_adopt_first_step_is_zero_and_then_moves():
  """The first step only measures v (clip value 0**0.25 = 0)."""
  tx = adam_optax.adopt(1e-3)
  params = _params()
  state = tx.init(params)
  updates, state = tx.update(_grad(params), state, params)
  assert all(not np.any(u) for u in jax.tree.leaves(updates))
  updates, _ = tx.update(_grad(params), state, params)
  assert all(np.any(u) for u in jax.tree.leaves(updates))


def _numpy_radam(steps, lr, b1, b2, eps, threshold):
  """Liu et al. 2020, Algorithm 2, in float64; the switch at `threshold`."""
  w, b = (np.asarray(x, np.float64) for x in jax.tree.leaves(_params())[::-1])
  params = {'b': b, 'w': w}
  m = {k: np.zeros_like(v) for k, v in params.items()}
  v = {k: np.zeros_like(v) for k, v in params.items()}
  rho_inf = 2 / (1 - b2) - 1
  for t in range(1, steps + 1):
    residual = X.astype(np.float64) @ params['w'] + params['b'] - Y
    scale = 2 / residual.size
    grads = {'w': scale * X.T @ residual, 'b': scale * residual.sum(0)}
    rho = rho_inf - 2 * t * b2**t / (1 - b2**t)
    for k, g in grads.items():
      m[k] = b1 * m[k] + (1 - b1) * g
      v[k] = b2 * v[k] + (1 - b2) * g * g
      m_hat = m[k] / (1 - b1**t)
      if rho >= threshold:
        r = np.sqrt((rho - 4) * (rho - 2) * rho_inf
                    / ((rho_inf - 4) * (rho_inf - 2) * rho))
        v_hat = v[k] / (1 - b2**t)
        params[k] = params[k] - lr * r * m_hat / (np.sqrt(v_hat) + eps)
      else:
        params[k] = params[k] - lr * m_hat
  return params


@pytest.mark.parametrize('b2, threshold', [(0.999, 5.0), (0.99, 4.0),
                                           (0.9, 6.0)])
def test_radam_follows_the_paper(b2, threshold):
  """100 steps (both branches: rho_t passes the threshold early) in float32
  against the float64 reference, and against optax.radam.

  The tolerance is float32's: rho_t = rho_inf - 2 t b2^t / (1 - b2^t)
  subtracts two numbers near 2,000 (b2 = 0.999), so rho_t - 4, and the
  rectification, carry a relative error near 1e-4 in its first steps.
  """
  steps, lr = 100, 1e-2
  params, _ = _trajectory(
      adam_optax.radam(lr, b2=b2, threshold=threshold), steps)
  want = _numpy_radam(steps, lr, 0.9, b2, 1e-8, threshold)
  for k in want:
    np.testing.assert_allclose(params[k], want[k], rtol=1e-3, atol=1e-4)
  theirs, _ = _trajectory(optax.radam(lr, b2=b2, threshold=threshold), steps)
  for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(theirs)):
    # The same algorithm; the rectification multiplies in another order.
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def _numpy_cautious_adamw(steps, lr, b1, b2, eps, weight_decay):
  """C-AdamW as in the paper's code (Liang et al. 2024), in float64."""
  w, b = (np.asarray(x, np.float64) for x in jax.tree.leaves(_params())[::-1])
  params = {'b': b, 'w': w}
  m = {k: np.zeros_like(v) for k, v in params.items()}
  v = {k: np.zeros_like(v) for k, v in params.items()}
  for t in range(1, steps + 1):
    residual = X.astype(np.float64) @ params['w'] + params['b'] - Y
    scale = 2 / residual.size
    grads = {'w': scale * X.T @ residual, 'b': scale * residual.sum(0)}
    for k, g in grads.items():
      decayed = params[k] * (1 - lr * weight_decay)
      m[k] = b1 * m[k] + (1 - b1) * g
      v[k] = b2 * v[k] + (1 - b2) * g * g
      mask = (m[k] * g > 0).astype(np.float64)
      mask *= mask.size / (mask.sum() + 1)
      denom = np.sqrt(v[k] / (1 - b2**t)) + eps
      params[k] = decayed - lr * (m[k] / (1 - b1**t)) * mask / denom
  return params


@pytest.mark.parametrize('weight_decay', [0.0, 0.1])
def test_cautious_adamw_follows_the_paper(weight_decay):
  steps, lr = 200, 1e-2
  tx = (adam_optax.cautious_adamw(lr, weight_decay=weight_decay)
        if weight_decay else adam_optax.cautious_adam(lr))
  params, _ = _trajectory(tx, steps)
  want = _numpy_cautious_adamw(steps, lr, 0.9, 0.999, 1e-8, weight_decay)
  for k in want:
    np.testing.assert_allclose(params[k], want[k], rtol=2e-4, atol=2e-5)
  # And it is not Adam: the mask changed the trajectory.
  plain, _ = _trajectory(adam_optax.adamw(lr, weight_decay=weight_decay),
                         steps)
  assert not np.allclose(params['w'], plain['w'], rtol=1e-3, atol=1e-4)


def test_cautious_drops_disagreeing_components_and_keeps_the_state():
  """One leaf [+, -, +, +] against gradient [+, +, +, -]: two agree."""
  inner = optax.GradientTransformation(
      lambda params: optax.EmptyState(),
      lambda updates, state, params=None: (
          jnp.array([1.0, -2.0, 3.0, 4.0]), state))
  tx = adam_optax.cautious(inner)
  grads = jnp.array([0.5, 0.5, 0.5, -0.5])
  updates, state = tx.update(grads, tx.init(grads))
  np.testing.assert_allclose(updates, np.array([1.0, 0.0, 3.0, 0.0]) * 4 / 3)
  assert state == optax.EmptyState()


@pytest.mark.parametrize('build, message', [
    (lambda: adam_optax.ademamix(1e-3, b3=1.0), r'b3=1.0 .* in \[0, 1\)'),
    (lambda: adam_optax.ademamix(1e-3, alpha=-1.0), r'alpha=-1.0 .* >= 0'),
    (lambda: adam_optax.radam(1e-3, threshold=3.0), r'threshold=3.0 .* >= 4'),
    (lambda: adam_optax.adopt(1e-3, b2=1.0), r'b2=1.0 .* in \[0, 1\)'),
    (lambda: adam_optax.adopt(1e-3, use_clipping='no'),
     r"use_clipping='no' .* True or False"),
    (lambda: adam_optax.cautious_adamw(-1e-3), r'learning_rate=-0.001'),
    (lambda: adam_optax.adopt(1e-3, mu_dtype='int8'), r"mu_dtype='int8'"),
])
def test_bad_arguments_are_named_at_construction(build, message):
  with pytest.raises(ValueError, match=message):
    build()


@pytest.mark.parametrize('name', ['adopt', 'ademamix', 'cautious_adamw'])
def test_a_resumed_run_is_the_uninterrupted_one(tiny_mnist_dir, tmp_path,
                                                name):
  """1 epoch, then 1 more from the checkpoint = 2 epochs straight."""
  def config(epochs):
    c = default.get_config()
    c.update(dict(data_dir=tiny_mnist_dir, num_epochs=epochs, batch_size=32,
                  eval_batch_size=64, progress_bar=False))
    c.optimizer.name = name
    return c

  train.train_and_evaluate(config(2), str(tmp_path / 'straight'))
  train.train_and_evaluate(config(1), str(tmp_path / 'resumed'))
  train.train_and_evaluate(config(2), str(tmp_path / 'resumed'))
  rows = {}
  for run in ('straight', 'resumed'):
    lines = (tmp_path / run / 'metrics.jsonl').read_text().splitlines()
    rows[run] = without_timings([json.loads(line) for line in lines])
  assert len(rows['straight']) == 2
  assert rows['resumed'] == rows['straight']
