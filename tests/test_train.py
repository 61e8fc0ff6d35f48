"""Tests for the training loop (train.py): metrics, stops, resumes, errors."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import default
import adam_optax
from adamjax import models
from adamjax.trainer import evaluation
from adamjax.trainer import objective
from adamjax.trainer import steps
from adamjax.trainer import train_state
from conftest import random_data
from conftest import without_timings
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
              'compile_time_s', 'images_per_s'):
    assert all(np.isfinite(m[key]) for m in runs[0])
  # The first epoch compiles the step; the second reuses it, in both runs.
  for rows in runs:
    assert 0 < rows[0]['compile_time_s'] < rows[0]['epoch_time_s']
    assert rows[1]['compile_time_s'] < 0.05 * rows[0]['compile_time_s']
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
    ('batch_size', 10**6, r'config.batch_size=1000000 is invalid; accepted: '
     r'at most 256 \(the training-set size\)'),
    ('num_epochs', 0, r'config.num_epochs=0 is invalid'),
    ('grad_chunks', 3, r'config.grad_chunks=3 is invalid; accepted: .* divisor '
     r'of config.batch_size=32'),
    ('param_rounding', 'kahan', r"config.param_rounding='kahan' is invalid; "
     r"accepted: nearest with config.param_dtype='float32'; kahan needs "
     r'param_dtype bfloat16 or float16'),
])
def test_bad_config_values_are_named(tiny_mnist_dir, tmp_path, field, value,
                                     message):
  """Out-of-range config values fail before training, naming the field."""
  with pytest.raises(ValueError, match=message):
    train.train_and_evaluate(tiny_config(tiny_mnist_dir, **{field: value}),
                             str(tmp_path))


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


def test_speedrun_recipe_repeats_exactly(tiny_mnist_dir, tmp_path):
  """configs/mnist_speedrun.py: the same seed gives the same metrics."""
  from configs import mnist_speedrun  # pylint: disable=g-import-not-at-top
  rows = []
  for name in ('a', 'b'):
    config = mnist_speedrun.get_config()
    # Its model, chunks, dispatch and schedule, at a size the tiny set fits.
    config.update(data_dir=tiny_mnist_dir, batch_size=32, num_epochs=3,
                  warmup_steps=2, progress_bar=False)
    train.train_and_evaluate(config, str(tmp_path / name))
    rows.append([json.loads(line) for line in
                 (tmp_path / name / 'metrics.jsonl').read_text().splitlines()])
  assert [row['epoch'] for row in rows[0]] == [1, 2, 3]
  assert rows[0][-1]['test_accuracy'] > 0.5
  assert without_timings(rows[0]) == without_timings(rows[1])


@pytest.mark.slow
@pytest.mark.skipif('MNIST_DIR' not in os.environ,
                    reason='set MNIST_DIR to a folder with the MNIST IDX files')
def test_speedrun_recipe_on_real_mnist(tmp_path):
  """The speedrun reaches 99.0% test accuracy in its one epoch (seed 0)."""
  from configs import mnist_speedrun  # pylint: disable=g-import-not-at-top
  config = mnist_speedrun.get_config()
  config.update(data_dir=os.environ['MNIST_DIR'], progress_bar=False)
  train.train_and_evaluate(config, str(tmp_path))
  row = json.loads((tmp_path / 'metrics.jsonl').read_text())
  assert row['test_accuracy'] >= 0.99


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

  def recording_evaluate(state, split, batch_size, *args):
    """Records the size of every split evaluated."""
    sizes.append(len(split.labels))
    return original(state, split, batch_size, *args)

  monkeypatch.setattr(evaluation, 'evaluate', recording_evaluate)
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
  # Stochastic rounding is bfloat16's only: float16 is refused up front.
  with pytest.raises(ValueError, match=r"param_rounding='stochastic' is "
                     r".*stochastic needs param_dtype bfloat16\.$"):
    train.train_and_evaluate(
        tiny_config(tiny_mnist_dir, param_dtype='float16',
                    param_rounding='stochastic'), str(tmp_path))


def test_a_stop_requested_during_the_last_evaluation_is_not_lost(
    tiny_mnist_dir, tmp_path, monkeypatch):
  """SIGTERM while the final epoch is evaluated: saved, then InterruptedRun."""
  from adamjax.common import errors  # pylint: disable=g-import-not-at-top
  import signal  # pylint: disable=g-import-not-at-top
  original = evaluation.evaluate

  def evaluate_then_signal(state, split, batch_size, *args):
    """Evaluates, with a SIGTERM arriving meanwhile."""
    signal.raise_signal(signal.SIGTERM)
    return original(state, split, batch_size, *args)

  monkeypatch.setattr(evaluation, 'evaluate', evaluate_then_signal)
  with pytest.raises(errors.InterruptedRun,
                     match=r'Stopped by SIGTERM after epoch 1 \(step 8\)'):
    train.train_and_evaluate(tiny_config(tiny_mnist_dir, num_epochs=1),
                             str(tmp_path))
  assert (tmp_path / 'checkpoints' / '8').is_dir()
  assert len((tmp_path / 'metrics.jsonl').read_text().splitlines()) == 1


