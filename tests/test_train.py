"""Tests for the CNN, the train/eval steps, the loop and main.py."""

import json
import os
import subprocess
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import default
import adam_optax
from adamjax.data import input_pipeline
from adamjax import models
from adamjax.trainer import control
from adamjax.trainer import evaluation
from adamjax.trainer import objective
from adamjax.data import order
from adamjax.trainer import steps
from adamjax.trainer import train_state
from adamjax.trainer import xla_cpu
import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_config(data_dir, **overrides):
  """The seed recipe shrunk to run in seconds on the tiny dataset."""
  config = default.get_config()
  config.data_dir = data_dir
  config.num_epochs = 2
  config.batch_size = 32
  config.eval_batch_size = 50  # 128 test examples: a short last batch.
  config.optimizer.learning_rate = 1e-3
  config.progress_bar = False
  config.update(overrides)
  return config


def random_data(seed, n):
  """n random uint8 images and int32 labels, as the trainer stores them."""
  rng = np.random.default_rng(seed)
  return (jnp.asarray(rng.integers(0, 256, (n, 28, 28, 1), np.uint8)),
          jnp.asarray(rng.integers(0, 10, n), jnp.int32))


def fresh_state():
  """A CNN TrainState with our Adam at 1e-3, initialised from key 0."""
  return train_state.create_train_state(jax.random.key(0), models.CNN(),
                                  adam_optax.adam(1e-3), (28, 28, 1))


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


@pytest.mark.skipif(jax.default_backend() != 'cpu',
                    reason='the CPU default; other backends use 1 chunk')
def test_default_grad_chunks_divides_the_batch_on_cpu():
  """On CPU: chunks of about 8 examples, at most 16 chunks, a divisor."""
  assert [xla_cpu.default_grad_chunks(b) for b in (1, 8, 32, 64, 100, 256,
                                                 1000)] == [1, 1, 4, 8, 10, 16,
                                                            10]


def test_epoch_batches_is_a_seeded_permutation():
  """Each epoch is a different order of distinct examples, fixed by the seed."""
  rng = jax.random.key(3)
  first = np.asarray(order.epoch_batches(rng, 1, 100, 16))
  assert first.shape == (6, 16)
  assert len(set(first.ravel())) == 96
  np.testing.assert_array_equal(first, order.epoch_batches(rng, 1, 100, 16))
  assert not np.array_equal(first, order.epoch_batches(rng, 2, 100, 16))


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


def test_train_and_evaluate_writes_metrics_and_is_reproducible(
    tiny_mnist_dir, tmp_path):
  """Per-epoch metrics land in metrics.jsonl; the same seed repeats them."""
  runs = []
  for name in ('a', 'b'):
    workdir = tmp_path / name
    train.train_and_evaluate(tiny_config(tiny_mnist_dir), str(workdir))
    lines = (workdir / 'metrics.jsonl').read_text().splitlines()
    runs.append([json.loads(line) for line in lines])
    saved = json.loads((workdir / 'config.json').read_text())
    assert saved['optimizer']['name'] == 'adam'
  assert [m['epoch'] for m in runs[0]] == [1, 2]
  for key in ('train_loss', 'test_loss', 'test_accuracy', 'epoch_time_s',
              'images_per_s'):
    assert all(np.isfinite(m[key]) for m in runs[0])
  for key in ('train_loss', 'test_loss', 'test_accuracy'):
    assert [m[key] for m in runs[0]] == [m[key] for m in runs[1]]
  assert runs[0][1]['train_loss'] < runs[0][0]['train_loss']


def test_non_finite_loss_stops_with_the_step_number(tiny_mnist_dir, tmp_path):
  """An exploding run stops at the first NaN/inf step, naming it."""
  config = tiny_config(tiny_mnist_dir)
  config.optimizer.name = 'sgd'
  config.optimizer.learning_rate = 1e30
  with pytest.raises(FloatingPointError, match=r'at step \d+; stopping'):
    train.train_and_evaluate(config, str(tmp_path))


@pytest.mark.parametrize('field, value, message', [
    ('batch_size', 0, r'config.batch_size=0 is invalid'),
    ('batch_size', 10**6, r'<= 256 \(the training-set size\)'),
    ('num_epochs', 0, r'config.num_epochs=0 is invalid'),
    ('grad_chunks', 3, r'config.grad_chunks=3 is invalid: .* divisor of '
     r'config.batch_size=32'),
])
def test_bad_config_values_are_named(tiny_mnist_dir, tmp_path, field, value,
                                     message):
  """Out-of-range config values fail before training, naming the field."""
  with pytest.raises(ValueError, match=message):
    train.train_and_evaluate(tiny_config(tiny_mnist_dir, **{field: value}),
                             str(tmp_path))


def run_main(*flags):
  """Runs main.py in a subprocess and returns the completed process."""
  return subprocess.run(
      [sys.executable, os.path.join(ROOT, 'main.py'), *flags],
      capture_output=True, text=True, cwd=ROOT, timeout=300)


def test_main_end_to_end(tiny_mnist_dir, tmp_path):
  """main.py parses config flags, trains, and writes metrics and config."""
  workdir = tmp_path / 'run'
  result = run_main(
      '--config=configs/mnist.py', f'--workdir={workdir}',
      f'--config.data_dir={tiny_mnist_dir}', '--config.num_epochs=1',
      '--config.batch_size=32', '--config.optimizer.name=adamw',
      '--config.optimizer.weight_decay=0.01', '--config.schedule=cosine')
  assert result.returncode == 0, result.stderr
  (metrics,) = [json.loads(l) for l in
                (workdir / 'metrics.jsonl').read_text().splitlines()]
  assert metrics['epoch'] == 1 and 0 <= metrics['test_accuracy'] <= 1
  config = json.loads((workdir / 'config.json').read_text())
  assert config['optimizer']['name'] == 'adamw'
  assert config['optimizer']['weight_decay'] == 0.01
  assert 'epoch 1: train loss' in result.stderr


@pytest.mark.parametrize('flags, message', [
    (['--config.optimizer.name=adamm'],
     "Error: Unknown optimizer 'adamm'; accepted: adam, adamw"),
    (['--config.optimizer.name=sgd', '--config.optimizer.b1=0.5'],
     "Error: Optimizer 'sgd' does not take b1; it accepts: learning_rate"),
    (['--config.optimizer.b2=1.5'], 'b2=1.5'),
    (['--config.dataset=cifar10'], "Error: Unknown dataset 'cifar10'"),
])
def test_main_bad_input_is_one_clear_line(tiny_mnist_dir, tmp_path, flags,
                                          message):
  """Bad flags end the run with the message, no traceback."""
  result = run_main('--config=configs/mnist.py', f'--workdir={tmp_path}',
                    f'--config.data_dir={tiny_mnist_dir}', *flags)
  assert result.returncode != 0
  assert message in result.stderr
  assert 'Traceback' not in result.stderr


@pytest.mark.slow
@pytest.mark.skipif('MNIST_DIR' not in os.environ,
                    reason='set MNIST_DIR to a folder with the MNIST IDX files')
def test_seed_recipe_on_real_mnist(tmp_path):
  """The seed recipe: >= 97.5% after one epoch, >= 98.5% after three.

  (Measured on the 2-core CPU machine: 98.15% after epoch 1 and 98.88% after
  epoch 3; seeds 1 and 2 gave 97.98% and 98.03% after epoch 1, so 98.5% in
  one epoch is out of this recipe's reach.)
  """
  config = default.get_config()
  config.data_dir = os.environ['MNIST_DIR']
  config.num_epochs = 3
  config.progress_bar = False
  train.train_and_evaluate(config, str(tmp_path))
  accuracies = [json.loads(l)['test_accuracy'] for l in
                (tmp_path / 'metrics.jsonl').read_text().splitlines()]
  assert accuracies[0] >= 0.975
  assert accuracies[-1] >= 0.985


def test_model_registry_parameter_counts_and_bad_names():
  """logreg 7,850, the paper's MLP 1,796,010; unknown names are refused."""
  counts = {}
  for name in ('cnn', 'mlp', 'logreg'):
    variables = models.create_model(name).init(jax.random.key(0),
                                               jnp.zeros((1, 28, 28, 1)))
    counts[name] = sum(x.size for x in jax.tree.leaves(variables))
  assert counts == {'cnn': 62_346, 'mlp': 1_796_010, 'logreg': 7_850}
  with pytest.raises(ValueError, match="Unknown model 'resnet'"):
    models.create_model('resnet')
  with pytest.raises(ValueError, match="'logreg' does not take dropout_rate"):
    models.create_model('logreg', dropout_rate=0.5)


def test_step_key_is_a_pure_function_of_seed_epoch_position():
  """Same (key, epoch, position): same key; any change: another key."""
  data_key = jax.random.key_data(jax.random.key(3))
  keys = {(e, p): jax.random.key_data(order.step_key(data_key, e, p))
          for e in (1, 2) for p in (0, 1)}
  np.testing.assert_array_equal(keys[1, 0], jax.random.key_data(
      order.step_key(data_key, 1, 0)))
  values = [tuple(np.asarray(k).tolist()) for k in keys.values()]
  assert len(set(values)) == 4


def test_random_shift_moves_each_image_with_zero_fill():
  """Each image is its original moved by one (dy, dx), zeros shifted in; all
  25 shifts in [-2, 2]^2 occur."""
  images = np.random.default_rng(0).integers(1, 256, (300, 28, 28, 1),
                                             np.uint8)
  shifted = np.asarray(objective.random_shift(jax.random.key(0),
                                          jnp.asarray(images), 2))
  seen = set()
  for original, moved in zip(images, shifted):
    matches = []
    for dy in range(-2, 3):
      for dx in range(-2, 3):
        expected = np.zeros_like(original)
        src = original[max(0, dy):28 + min(0, dy), max(0, dx):28 + min(0, dx)]
        expected[max(0, -dy):28 + min(0, -dy),
                 max(0, -dx):28 + min(0, -dx)] = src
        if np.array_equal(expected, moved):
          matches.append((dy, dx))
    assert len(matches) == 1
    seen.add(matches[0])
  assert len(seen) == 25


def test_divergence_rule_is_ten_times_a_uniform_guess():
  """ln(10) * 10 = 23.03: a mean loss just below passes, just above stops."""
  control.check_divergence(23.0, 1, 10)
  with pytest.raises(FloatingPointError, match='epoch 4 mean training loss'):
    control.check_divergence(23.1, 4, 10)


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


def test_dropout_and_shifts_resume_exactly_mid_epoch():
  """Randomness comes from (seed, epoch, position): 4 steps == 2 + 2 steps."""
  images, labels = random_data(6, 128)
  indices = jnp.arange(128).reshape(4, 32)
  options = objective.StepOptions(augment_shift=2)

  def fresh():
    """A CNN with dropout."""
    return train_state.create_train_state(
        jax.random.key(0), models.CNN(dropout_rate=0.5),
        adam_optax.adam(1e-3), (28, 28, 1), jax.random.key(1))

  whole, _ = steps.train_steps(fresh(), images, labels, indices, 1, options)
  half, _ = steps.train_steps(fresh(), images, labels, indices[:2], 1, options)
  half, _ = steps.train_steps(half, images, labels, indices[2:], 1, options)
  for a, b in zip(jax.tree.leaves(whole), jax.tree.leaves(half)):
    np.testing.assert_array_equal(a, b)
  other, _ = steps.train_steps(
      train_state.create_train_state(jax.random.key(0), models.CNN(dropout_rate=0.5),
                               adam_optax.adam(1e-3), (28, 28, 1),
                               jax.random.key(2)),
      images, labels, indices, 1, options)
  assert not np.array_equal(other.params['Dense_0']['kernel'],
                            whole.params['Dense_0']['kernel'])


def test_validation_split_is_evaluated_and_the_test_split_never(
    tiny_mnist_dir, tmp_path, monkeypatch):
  """validation_examples: val_* metrics on held-out training examples only."""
  sizes = []
  original = evaluation.evaluate

  def recording_evaluate(state, split, batch_size):
    """Records the size of every split evaluated."""
    sizes.append(len(split.labels))
    return original(state, split, batch_size)

  monkeypatch.setattr(train, 'evaluate', recording_evaluate)
  train.train_and_evaluate(
      tiny_config(tiny_mnist_dir, validation_examples=64, num_epochs=1),
      str(tmp_path))
  (row,) = [json.loads(l) for l in
            (tmp_path / 'metrics.jsonl').read_text().splitlines()]
  assert 'val_accuracy' in row and 'test_accuracy' not in row
  assert sizes == [64]  # 256 - 64 examples trained on, 64 evaluated.


def test_divergence_without_nan_is_stopped(tiny_mnist_dir, tmp_path):
  """A finite but exploding loss (lr 1e6) ends in DivergedError, not success."""
  config = tiny_config(tiny_mnist_dir, num_epochs=1)
  config.optimizer.learning_rate = 1e6
  with pytest.raises(FloatingPointError,
                     match=r'Training diverged: epoch 1 mean training loss|'
                     r'Training loss is (nan|inf) at step \d+'):
    train.train_and_evaluate(config, str(tmp_path))


def test_bfloat16_parameters_with_kahan_compensation_train(tiny_mnist_dir,
                                                           tmp_path):
  """param_dtype=bfloat16: bf16 weights; Kahan's buffer changes the result."""
  finals = {}
  for rounding in ('nearest', 'kahan'):
    config = tiny_config(tiny_mnist_dir, param_dtype='bfloat16',
                         param_rounding=rounding)
    state = train.train_and_evaluate(config, str(tmp_path / rounding))
    assert {p.dtype for p in jax.tree.leaves(state.params)} == {
        jnp.dtype(jnp.bfloat16)}
    rows = [json.loads(l) for l in
            (tmp_path / rounding / 'metrics.jsonl').read_text().splitlines()]
    assert rows[1]['train_loss'] < rows[0]['train_loss']
    finals[rounding] = np.asarray(state.params['Dense_0']['kernel'],
                                  np.float32)
  assert not np.array_equal(finals['nearest'], finals['kahan'])


def test_bad_param_dtype_and_rounding_are_named(tiny_mnist_dir, tmp_path):
  """Unknown storage dtypes and rounding modes list what is accepted."""
  with pytest.raises(ValueError, match=r"param_dtype='int8' is invalid; "
                     r'accepted: float32, bfloat16, float16'):
    train.train_and_evaluate(
        tiny_config(tiny_mnist_dir, param_dtype='int8'), str(tmp_path))
  with pytest.raises(ValueError, match=r"param_rounding='up' is invalid; "
                     r'accepted: nearest, kahan, stochastic'):
    train.train_and_evaluate(
        tiny_config(tiny_mnist_dir, param_rounding='up'), str(tmp_path))


def test_a_stop_requested_during_the_last_evaluation_is_not_lost(
    tiny_mnist_dir, tmp_path, monkeypatch):
  """SIGTERM while the final epoch is evaluated: saved, then InterruptedRun."""
  from adamjax.common import errors  # pylint: disable=g-import-not-at-top
  import signal  # pylint: disable=g-import-not-at-top
  original = evaluation.evaluate

  def evaluate_then_signal(state, split, batch_size):
    """Evaluates, with a SIGTERM arriving meanwhile."""
    signal.raise_signal(signal.SIGTERM)
    return original(state, split, batch_size)

  monkeypatch.setattr(train, 'evaluate', evaluate_then_signal)
  with pytest.raises(errors.InterruptedRun,
                     match=r'Stopped by SIGTERM after epoch 1 \(step 8\)'):
    train.train_and_evaluate(tiny_config(tiny_mnist_dir, num_epochs=1),
                             str(tmp_path))
  assert (tmp_path / 'checkpoints' / '8').is_dir()
  assert len((tmp_path / 'metrics.jsonl').read_text().splitlines()) == 1


def test_the_non_finite_loss_message_names_the_exact_step():
  """Losses of steps 11, 12, 13 with a NaN third: the message says step 13."""
  control.check_losses(np.array([2.0, 1.5, 1.0], np.float32), 10)
  with pytest.raises(FloatingPointError,
                     match=r'^Training loss is nan at step 13; stopping'):
    control.check_losses(np.array([2.0, 1.5, np.nan, np.inf], np.float32), 10)
