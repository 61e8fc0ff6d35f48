"""Trains and evaluates the CNN: a jitted, donated train step and the loop.

The whole dataset lives on the device as uint8; each epoch's shuffled batch
indices are drawn on the device from the seed, and batches are gathered inside
the jitted step, so the host only dispatches work and reads back metrics. The
same code runs on CPU, GPU and TPU.
"""

import functools
import json
import operator
import os
import time
from typing import Any, Iterator

from absl import logging
import flax.linen as nn
from flax.training import train_state
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import tqdm

import input_pipeline
import models
import optimizers

Metrics = dict[str, jax.Array]


def create_train_state(
    rng: jax.Array,
    model: nn.Module,
    tx: optax.GradientTransformation,
    image_shape: tuple[int, ...],
) -> train_state.TrainState:
  """Initialises parameters from `rng` and the optimizer state.

  Args:
    rng: PRNG key for the parameter initialisation.
    model: the Flax module.
    tx: the Optax optimizer.
    image_shape: shape of one image, e.g. (28, 28, 1).

  Returns:
    A TrainState at step 0.
  """
  params = model.init(rng, jnp.zeros((1, *image_shape), jnp.float32))['params']
  return train_state.TrainState.create(apply_fn=model.apply, params=params,
                                       tx=tx)


def preprocess(images: jax.Array) -> jax.Array:
  """uint8 pixels -> float32 in [0, 1]."""
  return images.astype(jnp.float32) / 255.0


def loss_and_logits(
    params: Any, apply_fn: Any, images: jax.Array, labels: jax.Array
) -> tuple[jax.Array, jax.Array]:
  """Per-example softmax cross-entropy and the logits."""
  logits = apply_fn({'params': params}, preprocess(images))
  losses = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
  return losses, logits


def train_step(
    state: train_state.TrainState,
    batch: tuple[jax.Array, jax.Array],
    grad_chunks: int = 1,
) -> tuple[train_state.TrainState, Metrics]:
  """One optimizer step on a batch (uint8 images, int labels).

  With grad_chunks > 1 the batch is split into that many equal chunks whose
  gradients are computed independently and summed: the same mean gradient
  over the whole batch, up to float summation order. The chunks' forward and
  backward passes do not depend on each other, so XLA:CPU runs them in
  parallel on its threads, which uses two cores better than one batch-64
  convolution does (see default_grad_chunks).

  Args:
    state: the current TrainState.
    batch: (images (B, H, W, C) uint8, labels (B,) int32).
    grad_chunks: how many chunks to split the batch into; must divide B.

  Returns:
    The new state and {'loss', 'accuracy'} on this batch (before the step).
  """
  images, labels = batch

  def chunk_loss(params, chunk_images, chunk_labels):
    """The chunk's share of the batch-mean loss, and its logits."""
    losses, logits = loss_and_logits(params, state.apply_fn, chunk_images,
                                     chunk_labels)
    # Dividing by 1 (one chunk) is exact, so grad_chunks=1 is bit-identical
    # to the plain batch mean.
    return losses.mean() / grad_chunks, logits

  losses, logits, grads = [], [], []
  for chunk in zip(jnp.split(images, grad_chunks),
                   jnp.split(labels, grad_chunks)):
    (chunk_mean, chunk_logits), chunk_grads = jax.value_and_grad(
        chunk_loss, has_aux=True)(state.params, *chunk)
    losses.append(chunk_mean)
    logits.append(chunk_logits)
    grads.append(chunk_grads)
  add = lambda *xs: functools.reduce(operator.add, xs)
  loss, grads = add(*losses), jax.tree.map(add, *grads)
  accuracy = jnp.mean(jnp.argmax(jnp.concatenate(logits), -1) == labels)
  return state.apply_gradients(grads=grads), {'loss': loss,
                                              'accuracy': accuracy}


def default_grad_chunks(batch_size: int) -> int:
  """The grad_chunks that trains fastest here: chunks of ~8 on CPU, else 1.

  On a 2-core CPU, chunks of 8 to 32 examples ran fastest (batch 64: 8
  chunks, ~1.8x one chunk; batch 256: 8 or 16 chunks, ~2.3x; measured with
  benchmarks/train_throughput.py); more chunks mostly add compile time. GPUs
  and TPUs fill their cores from one large batch, so there chunks only add
  work.

  Args:
    batch_size: examples per step.

  Returns:
    The largest divisor of batch_size that is <= min(16, batch_size // 8) on
    CPU (at least 1); 1 on other backends.
  """
  if jax.default_backend() != 'cpu':
    return 1
  target = max(1, min(16, batch_size // 8))
  return max(d for d in range(1, target + 1) if batch_size % d == 0)


@functools.partial(jax.jit, static_argnums=(2, 3))
def epoch_batches(
    rng: jax.Array, epoch: int, num_examples: int, batch_size: int
) -> jax.Array:
  """This epoch's shuffled batch indices (steps, batch_size), from the seed.

  The order depends only on (rng, epoch), so a run is reproducible and can
  resume mid-way. The last partial batch is dropped so shapes stay static;
  each epoch drops a different random remainder.

  Args:
    rng: the data-order key.
    epoch: the epoch number (1-based).
    num_examples: the training-set size.
    batch_size: examples per step.

  Returns:
    int32 indices of shape (num_examples // batch_size, batch_size).
  """
  perm = jax.random.permutation(jax.random.fold_in(rng, epoch), num_examples)
  steps = num_examples // batch_size
  return perm[:steps * batch_size].reshape(steps, batch_size)


@functools.partial(jax.jit, donate_argnums=0, static_argnames='grad_chunks')
def train_steps(
    state: train_state.TrainState,
    images: jax.Array,
    labels: jax.Array,
    batch_indices: jax.Array,
    grad_chunks: int = 1,
) -> tuple[train_state.TrainState, Metrics]:
  """Runs train_step over several batches in one dispatch.

  Args:
    state: the TrainState (donated: its buffers are reused).
    images: the whole training set on the device, uint8 (N, H, W, C).
    labels: the training labels, int32 (N,).
    batch_indices: (steps, batch_size) indices into the training set.
    grad_chunks: independent gradient chunks per batch (see train_step).

  Returns:
    The new state and per-step {'loss', 'accuracy'} of shape (steps,).
  """

  # A Python loop, unrolled at trace time, not lax.scan: XLA:CPU runs these
  # convolutions inside a while loop (even a one-trip one) about ten times
  # slower than at top level.
  metrics = []
  for idx in batch_indices:
    state, step_metrics = train_step(state, (images[idx], labels[idx]),
                                     grad_chunks)
    metrics.append(step_metrics)
  return state, jax.tree.map(lambda *m: jnp.stack(m), *metrics)


@jax.jit
def eval_step(
    state: train_state.TrainState, images: jax.Array, labels: jax.Array,
    mask: jax.Array
) -> tuple[jax.Array, jax.Array]:
  """Summed loss and number correct over the examples where `mask` is True."""
  losses, logits = loss_and_logits(state.params, state.apply_fn, images,
                                   labels)
  correct = jnp.argmax(logits, -1) == labels
  return jnp.sum(losses, where=mask), jnp.sum(correct, where=mask)


def evaluate(
    state: train_state.TrainState, split: input_pipeline.Split,
    batch_size: int
) -> dict[str, float]:
  """Loss and accuracy over every example exactly once.

  The last batch is padded to full size (one compiled shape) and the padding
  is masked out, so the result is the exact mean over the examples, not a
  mean of per-batch means biased by a short last batch.

  Args:
    state: the TrainState to evaluate.
    split: the examples, on the device.
    batch_size: examples per forward pass.

  Returns:
    {'loss': mean loss, 'accuracy': fraction correct} over the split.
  """
  n = len(split.labels)
  loss_sum, correct = 0.0, 0
  for start in range(0, n, batch_size):
    images = split.images[start:start + batch_size]
    labels = split.labels[start:start + batch_size]
    valid = len(labels)
    pad = batch_size - valid
    images = jnp.pad(images, [(0, pad)] + [(0, 0)] * (images.ndim - 1))
    labels = jnp.pad(labels, (0, pad))
    batch_loss, batch_correct = eval_step(state, images, labels,
                                          jnp.arange(batch_size) < valid)
    loss_sum, correct = loss_sum + batch_loss, correct + batch_correct
  return {'loss': float(loss_sum) / n, 'accuracy': int(correct) / n}


def _dispatch_groups(batch_indices: jax.Array,
                     size: int) -> Iterator[jax.Array]:
  """Splits (steps, B) indices into consecutive (<= size, B) groups."""
  for start in range(0, batch_indices.shape[0], size):
    yield batch_indices[start:start + size]


def train_epoch(
    state: train_state.TrainState,
    train: input_pipeline.Split,
    batch_indices: jax.Array,
    steps_per_dispatch: int,
    progress: tqdm.tqdm,
    grad_chunks: int = 1,
) -> tuple[train_state.TrainState, dict[str, float]]:
  """Trains one epoch; stops with the step number on a non-finite loss.

  Groups of `steps_per_dispatch` steps are queued back to back; while group
  i runs, the host reads group i-1's losses (already computed) to check them
  and advance the progress bar, so the device never waits on the host.

  Args:
    state: the TrainState (donated group by group).
    train: the training set, already on the device.
    batch_indices: this epoch's (steps, B) batch indices.
    steps_per_dispatch: optimizer steps per jitted call.
    progress: the progress bar to advance.
    grad_chunks: independent gradient chunks per batch (see train_step).

  Returns:
    The new state and the epoch's mean train loss and accuracy.

  Raises:
    FloatingPointError: on the first non-finite training loss.
  """
  first_step = int(state.step)
  pending, losses, accuracies = None, [], []

  def collect(metrics):
    """Reads a finished group's metrics on the host and checks them."""
    loss = np.asarray(metrics['loss'])
    bad = np.flatnonzero(~np.isfinite(loss))
    if bad.size:
      step = first_step + sum(map(len, losses)) + int(bad[0]) + 1
      raise FloatingPointError(
          f'Training loss is {loss[bad[0]]} at step {step}; stopping instead '
          'of training on NaN/inf. Try a smaller learning rate or '
          '--config.grad_clip_norm.')
    losses.append(loss)
    accuracies.append(np.asarray(metrics['accuracy']))
    progress.update(len(loss))

  for group in _dispatch_groups(batch_indices, steps_per_dispatch):
    state, metrics = train_steps(state, train.images, train.labels, group,
                                 grad_chunks)
    if pending is not None:
      collect(pending)
    pending = metrics
  collect(pending)
  return state, {'train_loss': float(np.concatenate(losses).mean()),
                 'train_accuracy': float(np.concatenate(accuracies).mean())}


def _validate(config: ml_collections.ConfigDict, num_train: int) -> None:
  """Raises a ValueError naming any config value outside its accepted range."""
  checks = [
      ('num_epochs', config.num_epochs, 1, None),
      ('batch_size', config.batch_size, 1, num_train),
      ('eval_batch_size', config.eval_batch_size, 1, None),
      ('steps_per_dispatch', config.steps_per_dispatch, 1, None),
  ]
  for name, value, low, high in checks:
    if not isinstance(value, int) or value < low or (high and value > high):
      accepted = f'an integer >= {low}' + (f' and <= {high} (the training-set'
                                           ' size)' if high else '')
      raise ValueError(f'config.{name}={value!r} is invalid: accepted is '
                       f'{accepted}.')
  chunks = config.grad_chunks
  if chunks is not None and (not isinstance(chunks, int) or chunks < 1 or
                             config.batch_size % chunks):
    raise ValueError(f'config.grad_chunks={chunks!r} is invalid: accepted is '
                     f'None (automatic) or a divisor of config.batch_size='
                     f'{config.batch_size}.')


def train_and_evaluate(
    config: ml_collections.ConfigDict, workdir: str
) -> train_state.TrainState:
  """Trains for config.num_epochs, evaluating and logging after each epoch.

  Writes `workdir/config.json` (the resolved config) and appends one JSON
  object per epoch to `workdir/metrics.jsonl`.

  Args:
    config: the experiment config (see configs/default.py).
    workdir: the output folder (created if missing).

  Returns:
    The final TrainState.
  """
  train, test = input_pipeline.load_dataset(config.dataset, config.data_dir)
  num_train = len(train.labels)
  _validate(config, num_train)
  steps_per_epoch = num_train // config.batch_size
  grad_chunks = config.grad_chunks or default_grad_chunks(config.batch_size)
  tx = optimizers.from_config(config, config.num_epochs * steps_per_epoch)

  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, 'config.json'), 'w') as f:
    f.write(config.to_json_best_effort(indent=2))

  init_rng, data_rng = jax.random.split(jax.random.key(config.seed))
  state = create_train_state(init_rng, models.CNN(), tx,
                             train.images.shape[1:])
  train, test = jax.device_put((train, test))
  logging.info('Training on %s (%d train / %d test examples), %d steps per '
               'epoch, %d gradient chunks per batch, devices: %s',
               config.dataset, num_train, len(test.labels), steps_per_epoch,
               grad_chunks, jax.devices())

  metrics_path = os.path.join(workdir, 'metrics.jsonl')
  open(metrics_path, 'w').close()
  for epoch in range(1, config.num_epochs + 1):
    batch_indices = epoch_batches(data_rng, epoch, num_train,
                                  config.batch_size)
    start = time.perf_counter()
    with tqdm.tqdm(total=steps_per_epoch, desc=f'epoch {epoch}', unit='step',
                   disable=None if config.progress_bar else True,
                   leave=False) as progress:
      state, metrics = train_epoch(state, train, batch_indices,
                                   config.steps_per_dispatch, progress,
                                   grad_chunks)
    epoch_time = time.perf_counter() - start
    evaluation = evaluate(state, test, config.eval_batch_size)
    metrics.update(
        epoch=epoch,
        test_loss=evaluation['loss'],
        test_accuracy=evaluation['accuracy'],
        epoch_time_s=epoch_time,
        images_per_s=steps_per_epoch * config.batch_size / epoch_time,
    )
    logging.info(
        'epoch %d: train loss %.4f, test loss %.4f, test accuracy %.2f%%, '
        '%.1f s, %.0f images/s', epoch, metrics['train_loss'],
        metrics['test_loss'], 100 * metrics['test_accuracy'], epoch_time,
        metrics['images_per_s'])
    with open(metrics_path, 'a') as f:
      f.write(json.dumps(metrics) + '\n')
  return state
