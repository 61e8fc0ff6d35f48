"""Tests for the Kingma & Ba (2015) reproductions: configs, models, the VAE."""

import csv
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import kingma_ba_logreg
from configs import kingma_ba_mlp
from configs import kingma_ba_vae
import adam_optax
from adamjax.experiments import compare
from adamjax.common import errors
import main
from adamjax.trainer import metrics_log
from adamjax import models
from adamjax.optim import registry
from adamjax.optim import schedules
from adamjax.data import order
from adamjax.experiments import vae_grid
from adamjax.trainer import objective


def parameter_count(tree):
  """The number of scalars in a pytree of arrays."""
  return sum(x.size for x in jax.tree.leaves(tree))


@pytest.mark.parametrize('name, options, expected', [
    # The formulas, so the expected numbers are not just copied from a run.
    ('logreg', {}, 784 * 10 + 10),
    ('mlp', {'dropout_rate': 0.5},
     (784 * 1000 + 1000) + (1000 * 1000 + 1000) + (1000 * 10 + 10)),
])
def test_paper_model_parameter_counts(name, options, expected):
  """Section 6.1's 784x10+10 and section 6.2's 784-1000-1000-10."""
  model = models.create_model(name, **options)
  params = model.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))
  assert parameter_count(params) == expected


def test_vae_parameter_count_and_shapes():
  """784-500-(50, 50) encoder and 50-500-784 decoder, each with biases."""
  model = models.VAE()
  params = vae_grid.init_params(model, 0)
  shapes = jax.tree.map(jnp.shape, params)
  assert shapes == {
      'encoder_hidden': {'kernel': (784, 500), 'bias': (500,)},
      'encoder_mean': {'kernel': (500, 50), 'bias': (50,)},
      'encoder_log_variance': {'kernel': (500, 50), 'bias': (50,)},
      'decoder_hidden': {'kernel': (50, 500), 'bias': (500,)},
      'decoder_logits': {'kernel': (500, 784), 'bias': (784,)},
  }
  expected = ((784 * 500 + 500) + 2 * (500 * 50 + 50) + (50 * 500 + 500) +
              (500 * 784 + 784))
  assert parameter_count(params) == expected == 860_884


def test_inverse_sqrt_schedule_is_alpha_over_sqrt_t():
  """Optax's count 0 is the paper's t = 1: alpha, alpha/sqrt(2), ..."""
  schedule = schedules.create_schedule('inverse_sqrt', 0.5, 1000)
  counts = np.array([0, 1, 3, 8, 99, 999])
  got = np.array([float(schedule(c)) for c in counts])
  np.testing.assert_allclose(got, 0.5 / np.sqrt(counts + 1), rtol=1e-6)
  np.testing.assert_allclose(got[[0, 2, 4]], [0.5, 0.25, 0.05], rtol=1e-6)


def softplus(x):
  """log(1 + e^x), stably, in NumPy."""
  return np.logaddexp(0.0, x)


def numpy_negative_elbo(params, x, noise):
  """The per-example negative ELBO written out in float64 NumPy."""
  p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)

  def dense(name, h):
    """The named Dense layer applied to h."""
    return h @ p[name]['kernel'] + p[name]['bias']

  h = softplus(dense('encoder_hidden', x))
  mean, log_var = dense('encoder_mean', h), dense('encoder_log_variance', h)
  z = mean + np.exp(log_var / 2) * noise
  probs = 1 / (1 + np.exp(-dense('decoder_logits',
                                 softplus(dense('decoder_hidden', z)))))
  log_likelihood = np.sum(x * np.log(probs) + (1 - x) * np.log(1 - probs), 1)
  # KL(N(m, s^2) || N(0, 1)) = (s^2 + m^2 - 1 - log s^2) / 2 per dimension.
  kl = 0.5 * np.sum(np.exp(log_var) + mean**2 - 1 - log_var, 1)
  return -log_likelihood + kl


def test_vae_loss_matches_an_independent_numpy_elbo():
  """The model's loss on a tiny batch equals the ELBO computed by hand."""
  model = models.VAE(hidden=7, latent=3, pixels=12)
  params = vae_grid.init_params(model, 1)
  # Larger biases than the initialiser's zeros, so every term matters.
  params = jax.tree.map(
      lambda a: a + 0.3 * jax.random.normal(jax.random.key(a.size), a.shape),
      params)
  rng = np.random.default_rng(0)
  x = rng.uniform(size=(5, 12)).astype(np.float32)
  x[0] = 0.0  # Edge pixels: exactly 0 and 1.
  x[1] = 1.0
  noise = rng.standard_normal((5, 3)).astype(np.float32)
  logits, mean, log_var = model.apply({'params': params}, x, noise)
  got = objective.negative_elbo(logits, x, mean, log_var)
  want = numpy_negative_elbo(params, x.astype(np.float64), noise)
  np.testing.assert_allclose(np.asarray(got), want, rtol=2e-5)
  # batch_loss draws its noise from the key: the same noise, the same mean.
  key = jax.random.key(3)
  drawn = np.asarray(jax.random.normal(key, (5, 3), jnp.float32))
  np.testing.assert_allclose(
      float(vae_grid.batch_loss(params, model, jnp.asarray(x), key)),
      numpy_negative_elbo(params, x.astype(np.float64), drawn).mean(),
      rtol=2e-5)


def sequential_adam(model, params, images, batch_indices, data_key, rate,
                    b1, b2, correction, eps):
  """One learning rate trained step by step with a plain adam_optax.adam."""
  tx = adam_optax.adam(rate, b1=b1, b2=b2, eps=eps,
                       bias_correction_mu=correction,
                       bias_correction_nu=correction)

  @jax.jit
  def step(params, state, x, rng):
    """One plain (unbatched) Adam step; the loss is before it."""
    loss, grads = jax.value_and_grad(vae_grid.batch_loss)(params, model, x, rng)
    updates, state = tx.update(grads, state, params)
    return optax.apply_updates(params, updates), state, loss

  state, losses = tx.init(params), []
  for position, indices in enumerate(batch_indices):
    rng = order.step_key(data_key, jnp.int32(1), jnp.int32(position))
    params, state, loss = step(params, state, vae_grid.flatten(images[indices]),
                               rng)
    losses.append(float(loss))
  return params, losses


@pytest.mark.parametrize('correction', [True, False])
def test_vmapped_lanes_equal_separate_runs(correction):
  """Each lane of a cell is exactly the run of its rate on its own."""
  model = models.VAE(hidden=8, latent=2)
  params = vae_grid.init_params(model, 0)
  images = jnp.asarray(np.random.default_rng(0).integers(
      0, 256, (40, 28, 28, 1), np.uint8))
  data_key = jax.random.key(5)
  batch_indices = order.epoch_batches(data_key, 1, 40, 8)
  # Rates at which neither variant diverges (chaos would amplify the
  # float rounding differences between the vmapped and the plain program).
  rates = [1e-4, 3e-3]
  b1, b2, eps = 0.0, 0.999, 1e-8
  tx = vae_grid.optimizer(correction, eps)
  lanes, opt_state = vae_grid.init_lanes(tx, params, jnp.asarray(rates), b1, b2)
  train_epoch = vae_grid.make_train_epoch(model, tx)
  lanes, opt_state, losses = train_epoch(
      lanes, opt_state, images, batch_indices, jax.random.key_data(data_key),
      jnp.int32(1))
  assert losses.shape == (5, 2)
  for lane, rate in enumerate(rates):
    want_params, want_losses = sequential_adam(
        model, params, images, batch_indices,
        jax.random.key_data(data_key), rate, b1, b2, correction, eps)
    # Float32 summation order differs between the batched and the plain
    # program, and an uncorrected run's early jumps amplify it a little.
    np.testing.assert_allclose(np.asarray(losses[:, lane]), want_losses,
                               rtol=1e-4)
    jax.tree.map(lambda got, want: np.testing.assert_allclose(
        got[lane], want, rtol=1e-3, atol=1e-4), lanes, want_params)
  # The rates really differ per lane, and training lowers the loss.
  assert not np.allclose(losses[-1, 0], losses[-1, 1])


def test_uncorrected_adam_takes_larger_early_steps():
  """Without correction the first step is (1-b1)/sqrt(1-b2) times alpha.

  The instability the paper reports: with b1=0 and b2=0.9999, the first
  uncorrected step is 100x the corrected one.
  """
  params = {'w': jnp.zeros(3)}
  grads = {'w': jnp.array([0.5, -2.0, 1e-3])}
  steps = {}
  for correction in (True, False):
    tx = vae_grid.optimizer(correction, 0.0)
    state = optax.tree_utils.tree_set(tx.init(params), learning_rate=1e-3,
                                      b1=jnp.float32(0.0),
                                      b2=jnp.float32(0.9999))
    steps[correction], _ = tx.update(grads, state, params)
  np.testing.assert_allclose(steps[True]['w'], -1e-3 * np.sign(grads['w']),
                             rtol=1e-4)
  np.testing.assert_allclose(steps[False]['w'], -0.1 * np.sign(grads['w']),
                             rtol=1e-4)


def tiny_compare_config(module, data_dir):
  """A paper config shrunk to one tiny epoch on the synthetic dataset."""
  config = module.get_config()
  config.data_dir = data_dir
  config.num_epochs = 1
  config.lr_search_factors = config.lr_search_factors[:1]
  config.lr_search_epochs = 1
  config.lr_search_validation_examples = 64
  config.batch_size = 32
  config.eval_batch_size = 64
  # One compiled step per optimizer (the tiny epoch has 6 or 8 steps).
  config.steps_per_dispatch = 1
  config.dpi = 40
  return config


# The MLP's 1.8M parameters make each compile slow on a CPU: its tiny run
# skips the search (the logreg run and tests/test_compare.py cover it).
@pytest.mark.parametrize('module, search', [(kingma_ba_logreg, True),
                                            (kingma_ba_mlp, False)])
def test_classification_configs_run_one_tiny_epoch(module, search,
                                                   tiny_mnist_dir, tmp_path):
  """Each paper config trains every optimizer with its model and objective."""
  config = tiny_compare_config(module, tiny_mnist_dir)
  config.lr_search = search
  result = compare.run(config, str(tmp_path))
  assert set(result['learning_rates']) == set(config.optimizers)
  for name in config.optimizers:
    workdir = os.path.join(tmp_path, compare.RUNS_DIR, name, 'seed_0')
    rows = metrics_log.read_metrics(workdir)
    assert [r['epoch'] for r in rows] == [1]
    assert np.isfinite(rows[0]['train_loss'])
    with open(os.path.join(workdir, 'config.json')) as f:
      saved = json.load(f)
    assert saved['model'] == config.model
    assert saved['schedule'] == config.schedule
    assert saved['l2'] == config.l2
    assert saved['dropout_rate'] == config.dropout_rate
  assert os.path.getsize(os.path.join(tmp_path, 'loss.png')) > 1000
  assert os.path.exists(os.path.join(tmp_path, 'lr_search.md')) == search


def test_paper_configs_state_the_paper_settings():
  """The settings the paper states, so an edit that drops one fails here."""
  logreg = kingma_ba_logreg.get_config()
  assert (logreg.model, logreg.batch_size, logreg.schedule) == (
      'logreg', 128, 'inverse_sqrt')
  assert logreg.l2 > 0
  assert set(logreg.optimizers) == {'adam', 'nesterov', 'adagrad'}
  mlp = kingma_ba_mlp.get_config()
  assert (mlp.model, mlp.batch_size) == ('mlp', 128)
  assert mlp.dropout_rate > 0
  assert set(mlp.optimizers) == {'adam', 'adagrad', 'rmsprop', 'nesterov',
                                 'adadelta'}
  grid = kingma_ba_vae.get_config()
  assert (grid.hidden, grid.latent) == (500, 50)
  assert tuple(grid.b1s) == (0.0, 0.9)
  assert tuple(grid.b2s) == (0.99, 0.999, 0.9999)
  assert min(grid.log10_learning_rates) == -5
  assert max(grid.log10_learning_rates) == -1
  assert set(grid.bias_corrections) == {True, False}
  assert grid.num_epochs == 10


def tiny_vae_config(data_dir):
  """The section 6.4 grid on the synthetic data: one epoch, two rates."""
  config = kingma_ba_vae.get_config()
  config.data_dir = data_dir
  config.num_epochs = 1
  config.batch_size = 64
  config.hidden = 16
  config.latent = 4
  config.log10_learning_rates = (-3.0, -1.0)
  config.dpi = 40
  return config


def test_vae_config_runs_one_tiny_epoch_and_resumes(tiny_mnist_dir, tmp_path,
                                                    monkeypatch):
  """The whole grid through main.py's task table; a rerun trains nothing."""
  config = tiny_vae_config(tiny_mnist_dir)
  run = main.task_function(config.task, 'train')
  assert run is vae_grid.run
  cells = run(config, str(tmp_path))
  assert len(cells) == 2 * 2 * 3
  with open(os.path.join(tmp_path, 'grid.csv')) as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == 2 * 2 * 3 * 2
  assert {(r['bias_correction'], r['b1'], r['b2']) for r in rows} == {
      (str(c), str(b1), str(b2)) for c in (True, False)
      for b1 in (0.0, 0.9) for b2 in (0.99, 0.999, 0.9999)}
  for row in rows:
    assert float(row['loss_final']) > 0 or row['status'] != 'ok'
  # An untrained decoder (logits near 0) costs about 784 * ln 2 = 543 nats
  # per image; four steps on the synthetic images stay of that order.
  losses = [float(r['loss_epoch_1']) for r in rows
            if r['bias_correction'] == 'True' and
            r['log10_learning_rate'] == '-3.0']
  assert len(losses) == 6 and all(400 < v < 900 for v in losses), losses
  assert os.path.getsize(os.path.join(tmp_path, 'vae_grid.png')) > 1000
  assert len(os.listdir(os.path.join(tmp_path, vae_grid.CELLS_DIR))) == 12

  def no_training(*args, **kwargs):
    """Stands in for train_cell: a finished cell must not reach it."""
    raise AssertionError('a finished cell was trained again')

  monkeypatch.setattr(vae_grid, 'train_cell', no_training)
  assert run(config, str(tmp_path)) == cells
  # Other settings are not mixed with the saved cells.
  config.seed = 1
  with pytest.raises(AssertionError, match='trained again'):
    run(config, str(tmp_path))


@pytest.mark.parametrize('field, value', [
    ('b2s', (0.99, 1.0)),
    ('b1s', ()),
    ('log10_learning_rates', (-3.0, -3.0)),
    ('bias_corrections', (True, 'no')),
    ('num_epochs', 0),
    ('train_examples', 0),
    ('eps', -1.0),
])
def test_vae_bad_config_is_named(field, value, tiny_mnist_dir, tmp_path):
  """A bad grid field fails before any data is read, naming the field."""
  config = tiny_vae_config(tiny_mnist_dir)
  config[field] = value
  with pytest.raises(errors.ConfigError, match=rf'^config\.{field}(\[\d+\])?='):
    vae_grid.run(config, str(tmp_path))
  assert not os.path.exists(os.path.join(tmp_path, 'grid.csv'))


def test_vae_train_examples_beyond_the_data_is_named(tiny_mnist_dir,
                                                     tmp_path):
  """Asking for more examples than the split has is a ConfigError."""
  config = tiny_vae_config(tiny_mnist_dir)
  config.train_examples = 10_000
  with pytest.raises(errors.ConfigError, match='256 examples'):
    vae_grid.run(config, str(tmp_path))
