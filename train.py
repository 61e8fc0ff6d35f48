"""Trains and evaluates the CNN: a jitted, donated train step and the loop.

The whole dataset lives on the device as uint8; each epoch's shuffled batch
indices are drawn from the seed, and batches are gathered inside the jitted
step, so the host only dispatches work and reads back metrics. The same code
runs on CPU, GPU and TPU, on one device or data-parallel over a mesh of
devices and processes (distributed.py): the dataset, parameters and optimizer
state are replicated on every device, each global batch is split along the
mesh's 'data' axis, and XLA adds the gradient all-reduce.
"""

import dataclasses
import functools
import math
import operator
import os
import signal
import threading
import time
from typing import Any, Iterator, NamedTuple, Optional

from absl import logging
import flax.linen as nn
from flax.training import train_state
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import tqdm

import checkpointing
import distributed
import errors
import input_pipeline
import metrics_log
import models
import optimizers

Metrics = dict[str, jax.Array]

# An epoch whose mean training loss exceeds this many times the loss of a
# uniform guess, ln(num_classes), has diverged (see _check_divergence).
DIVERGENCE_FACTOR = 10

# Storage dtypes of the parameters (config.param_dtype).
PARAM_DTYPES = ('float32', 'bfloat16', 'float16')


class TrainState(train_state.TrainState):
  """A Flax TrainState plus everything else a run needs to continue exactly.

  The whole object is what a checkpoint holds, so a restored run resumes at
  the next batch of the same data order with the same running metric sums.

  Attributes:
    data_key: the raw (uint32) data of the data-order PRNG key.
    epoch: the 1-based epoch in progress.
    position: how many batches of that epoch are done.
    loss_sum: the float32 sum of those batches' train losses.
    accuracy_sum: the float32 sum of those batches' train accuracies.
    ema_params: the exponential moving average of the parameters, or None
      when the run keeps none (StepOptions.ema_decay).
  """
  data_key: jax.Array
  epoch: jax.Array
  position: jax.Array
  loss_sum: jax.Array
  accuracy_sum: jax.Array
  ema_params: Any = None

  @property
  def eval_params(self) -> Any:
    """The parameters to evaluate: the moving average if there is one."""
    return self.params if self.ema_params is None else self.ema_params

  def next_epoch(self) -> 'TrainState':
    """The state at the start of the following epoch (sums reset)."""
    return self.replace(epoch=self.epoch + 1,
                        position=jnp.zeros_like(self.position),
                        loss_sum=jnp.zeros_like(self.loss_sum),
                        accuracy_sum=jnp.zeros_like(self.accuracy_sum))


def create_train_state(
    rng: jax.Array,
    model: nn.Module,
    tx: optax.GradientTransformation,
    image_shape: tuple[int, ...],
    data_rng: Optional[jax.Array] = None,
    ema: bool = False,
    param_dtype: Any = jnp.float32,
) -> TrainState:
  """Initialises parameters from `rng` and the optimizer state.

  Args:
    rng: PRNG key for the parameter initialisation.
    model: the Flax module.
    tx: the Optax optimizer.
    image_shape: shape of one image, e.g. (28, 28, 1).
    data_rng: the data-order key (default: derived from `rng`).
    ema: keep a moving average of the parameters (starting at them).
    param_dtype: the dtype the parameters are stored in (initialised in
      float32, then cast); the forward pass computes in float32 either way.

  Returns:
    A TrainState at step 0, epoch 1, position 0.
  """
  if data_rng is None:
    data_rng = jax.random.fold_in(rng, 1)
  params = model.init(rng, jnp.zeros((1, *image_shape), jnp.float32))['params']
  params = jax.tree.map(lambda p: p.astype(param_dtype), params)
  return TrainState.create(
      apply_fn=model.apply, params=params, tx=tx,
      data_key=jax.random.key_data(data_rng), epoch=jnp.int32(1),
      position=jnp.int32(0), loss_sum=jnp.float32(0),
      accuracy_sum=jnp.float32(0),
      ema_params=jax.tree.map(jnp.copy, params) if ema else None,
  ).replace(step=jnp.int32(0))


class StepOptions(NamedTuple):
  """The training objective's settings: static under jit, from the config.

  Attributes:
    label_smoothing: mass spread uniformly over the classes in the targets.
    l2: coefficient of the L2 penalty l2/2 * sum(w**2) over all parameters,
      part of the reported training loss (the paper's regularised objective).
    augment_shift: shift each training image by up to this many pixels in x
      and y (uniform, zero fill), on the device.
    ema_decay: keep an exponential moving average of the parameters with
      this decay (evaluation uses it); None: no average.
  """
  label_smoothing: float = 0.0
  l2: float = 0.0
  augment_shift: int = 0
  ema_decay: Optional[float] = None


# The PRNG stream of per-step randomness (dropout, augmentation), folded into
# the data-order key; epochs (the shuffling stream) never reach it.
NOISE_STREAM = 2**32 - 1


def step_key(data_key: jax.Array, epoch: jax.Array,
             position: jax.Array) -> jax.Array:
  """The PRNG key of one step: a pure function of (seed, epoch, position)."""
  key = jax.random.fold_in(jax.random.wrap_key_data(data_key), NOISE_STREAM)
  return jax.random.fold_in(jax.random.fold_in(key, epoch), position)


def preprocess(images: jax.Array) -> jax.Array:
  """uint8 pixels -> float32 in [0, 1]."""
  return images.astype(jnp.float32) / 255.0


def random_shift(rng: jax.Array, images: jax.Array, max_shift: int) -> jax.Array:
  """Shifts each image by its own uniform (dy, dx) in [-max_shift, max_shift].

  Args:
    rng: PRNG key.
    images: (N, H, W, C) images.
    max_shift: the largest shift in pixels; vacated pixels become 0.

  Returns:
    The shifted images, same shape and dtype.
  """
  n, h, w, _ = images.shape
  offsets = jax.random.randint(rng, (n, 2), 0, 2 * max_shift + 1)
  padded = jnp.pad(images, ((0, 0), (max_shift, max_shift),
                            (max_shift, max_shift), (0, 0)))
  crop = lambda image, offset: jax.lax.dynamic_slice(
      image, (offset[0], offset[1], 0), (h, w, image.shape[-1]))
  return jax.vmap(crop)(padded, offsets)


def loss_and_logits(
    params: Any, apply_fn: Any, images: jax.Array, labels: jax.Array,
    rng: Optional[jax.Array] = None, label_smoothing: float = 0.0
) -> tuple[jax.Array, jax.Array]:
  """Per-example softmax cross-entropy and the logits.

  Args:
    params: the model parameters.
    apply_fn: the model's apply function.
    images: uint8 images (N, H, W, C).
    labels: int labels (N,).
    rng: the dropout key in training; None evaluates (no dropout).
    label_smoothing: mass spread uniformly over the classes in the targets.

  Returns:
    (losses (N,), logits (N, classes)).
  """
  if rng is None:
    logits = apply_fn({'params': params}, preprocess(images))
  else:
    logits = apply_fn({'params': params}, preprocess(images), train=True,
                      rngs={'dropout': rng})
  if label_smoothing:
    targets = optax.smooth_labels(
        jax.nn.one_hot(labels, logits.shape[-1]), label_smoothing)
    losses = optax.softmax_cross_entropy(logits, targets)
  else:
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
  return losses, logits


def l2_penalty(params: Any) -> jax.Array:
  """sum(w**2) / 2 over every parameter."""
  return sum(jnp.sum(jnp.square(p)) for p in jax.tree.leaves(params)) / 2


def _chunks(x: jax.Array, chunks: int, mesh: Optional[jax.sharding.Mesh]
            ) -> list[jax.Array]:
  """Splits a batch into `chunks` equal parts, each spread over the mesh.

  On one device chunk i is the i-th contiguous block. On a mesh of D devices
  each device's share of the batch is split into `chunks` blocks and chunk i
  is every device's i-th block, so every chunk stays split along 'data' and
  no example moves between devices.
  """
  if mesh is None or mesh.size == 1:
    return jnp.split(x, chunks)
  blocks = x.reshape(mesh.size, chunks, -1, *x.shape[1:])
  return [jax.lax.with_sharding_constraint(
      blocks[:, i].reshape(-1, *x.shape[1:]), distributed.batch_sharding(mesh))
          for i in range(chunks)]


def train_step(
    state: TrainState,
    batch: tuple[jax.Array, jax.Array],
    grad_chunks: int = 1,
    options: StepOptions = StepOptions(),
    mesh: Optional[jax.sharding.Mesh] = None,
) -> tuple[TrainState, Metrics]:
  """One optimizer step on a batch (uint8 images, int labels).

  With grad_chunks > 1 the batch is split into that many equal chunks whose
  gradients are computed independently and summed: the same mean gradient
  over the whole batch, up to float summation order. The chunks' forward and
  backward passes do not depend on each other, so XLA:CPU runs them in
  parallel on its threads, which uses two cores better than one batch-64
  convolution does (see default_grad_chunks). Each chunk draws its own
  dropout masks, so with dropout the chunking changes which masks are drawn.
  On a mesh each chunk takes an equal part of every device's share (see
  _chunks), so the devices all work on every chunk.

  Args:
    state: the current TrainState.
    batch: (images (B, H, W, C) uint8, labels (B,) int32).
    grad_chunks: how many chunks to split the batch into; must divide B (on
      a mesh: B / devices).
    options: the objective's settings (label smoothing, L2, augmentation,
      weight averaging).
    mesh: the mesh whose 'data' axis splits the batch; None: no constraint
      (one device, or whatever sharding the inputs carry).

  Returns:
    The new state (one batch further into the epoch, its metric sums
    updated) and {'loss', 'accuracy'} on this batch (before the step; the
    loss includes the L2 term).
  """
  images, labels = batch
  rng = step_key(state.data_key, state.epoch, state.position)
  augment_rng, dropout_rng = jax.random.split(rng)
  if options.augment_shift:
    images = random_shift(augment_rng, images, options.augment_shift)

  def chunk_loss(params, chunk_images, chunk_labels, chunk_rng):
    """The chunk's share of the batch-mean loss, and its logits."""
    losses, logits = loss_and_logits(params, state.apply_fn, chunk_images,
                                     chunk_labels, chunk_rng,
                                     options.label_smoothing)
    # Dividing by 1 (one chunk) is exact, so grad_chunks=1 is bit-identical
    # to the plain batch mean.
    return losses.mean() / grad_chunks, logits

  losses, logits, label_chunks, grads = [], [], [], []
  for i, (chunk_images, chunk_labels) in enumerate(zip(
      _chunks(images, grad_chunks, mesh), _chunks(labels, grad_chunks, mesh))):
    (chunk_mean, chunk_logits), chunk_grads = jax.value_and_grad(
        chunk_loss, has_aux=True)(state.params, chunk_images, chunk_labels,
                                  jax.random.fold_in(dropout_rng, i))
    losses.append(chunk_mean)
    logits.append(chunk_logits)
    label_chunks.append(chunk_labels)
    grads.append(chunk_grads)
  add = lambda *xs: functools.reduce(operator.add, xs)
  loss, grads = add(*losses), jax.tree.map(add, *grads)
  if options.l2:
    penalty, penalty_grads = jax.value_and_grad(l2_penalty)(state.params)
    loss = loss + options.l2 * penalty
    grads = jax.tree.map(lambda g, p: g + options.l2 * p, grads,
                         penalty_grads)
  # Logits and labels in the same (chunk) order; on one device that is the
  # batch order, and XLA folds the concatenation of the labels away.
  accuracy = jnp.mean(jnp.argmax(jnp.concatenate(logits), -1) ==
                      jnp.concatenate(label_chunks))
  state = state.apply_gradients(grads=grads)
  if options.ema_decay is not None:
    state = state.replace(ema_params=optax.incremental_update(
        state.params, state.ema_params, 1 - options.ema_decay))
  # The epoch's running sums live in the state, so a resumed epoch reports
  # the same mean as an uninterrupted one.
  state = state.replace(position=state.position + 1,
                        loss_sum=state.loss_sum + loss,
                        accuracy_sum=state.accuracy_sum + accuracy)
  return state, {'loss': loss, 'accuracy': accuracy}


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


@functools.partial(jax.jit, donate_argnums=0,
                   static_argnames=('grad_chunks', 'options', 'mesh',
                                    'shard_optimizer_state'))
def train_steps(
    state: TrainState,
    images: jax.Array,
    labels: jax.Array,
    batch_indices: jax.Array,
    grad_chunks: int = 1,
    options: StepOptions = StepOptions(),
    mesh: Optional[jax.sharding.Mesh] = None,
    shard_optimizer_state: bool = False,
) -> tuple[TrainState, Metrics]:
  """Runs train_step over several batches in one dispatch.

  On a mesh, `images` and `labels` are replicated on every device and
  `batch_indices` split along 'data' on its batch dimension, so each device
  gathers its own share of every batch from its copy of the data; the state
  stays replicated, or with shard_optimizer_state its optimizer state split
  along 'data' (distributed.state_shardings).

  Args:
    state: the TrainState (donated: its buffers are reused).
    images: the whole training set on the device, uint8 (N, H, W, C).
    labels: the training labels, int32 (N,).
    batch_indices: (steps, batch_size) indices into the training set.
    grad_chunks: independent gradient chunks per batch (see train_step).
    options: the objective's settings (see StepOptions).
    mesh: the data-parallel mesh, or None (one device, no constraints).
    shard_optimizer_state: keep the optimizer state split over the mesh.

  Returns:
    The new state and per-step {'loss', 'accuracy'} of shape (steps,).
  """

  # A Python loop, unrolled at trace time, not lax.scan: XLA:CPU runs these
  # convolutions inside a while loop (even a one-trip one) about ten times
  # slower than at top level.
  metrics = []
  for idx in batch_indices:
    batch = (images[idx], labels[idx])
    if mesh is not None:
      batch = jax.lax.with_sharding_constraint(
          batch, distributed.batch_sharding(mesh))
    state, step_metrics = train_step(state, batch, grad_chunks, options, mesh)
    metrics.append(step_metrics)
  if mesh is not None:
    # Pins the outputs where the inputs were, so the next dispatch reuses
    # this compilation and its donated buffers.
    state = jax.lax.with_sharding_constraint(state, distributed.state_shardings(
        state, mesh, shard_optimizer_state))
  return state, jax.tree.map(lambda *m: jnp.stack(m), *metrics)


@jax.jit
def eval_step(
    state: TrainState, images: jax.Array, labels: jax.Array,
    mask: jax.Array
) -> tuple[jax.Array, jax.Array]:
  """Summed loss and number correct over the examples where `mask` is True."""
  losses, logits = loss_and_logits(state.eval_params, state.apply_fn, images,
                                   labels)
  correct = jnp.argmax(logits, -1) == labels
  return jnp.sum(losses, where=mask), jnp.sum(correct, where=mask)


def evaluate(
    state: TrainState, split: input_pipeline.Split,
    batch_size: int
) -> dict[str, float]:
  """Loss and accuracy over every example exactly once.

  The last batch is padded to full size (one compiled shape) and the padding
  is masked out, so the result is the exact mean over the examples, not a
  mean of per-batch means biased by a short last batch. When the state lives
  on a mesh, each batch is split along 'data' (batch_size rounded up to a
  multiple of the device count) and each process feeds only its own rows.

  Args:
    state: the TrainState to evaluate.
    split: the examples (NumPy, or arrays on the device).
    batch_size: examples per forward pass.

  Returns:
    {'loss': mean loss, 'accuracy': fraction correct} over the split.
  """
  mesh = distributed.mesh_of(state)
  if mesh is not None:
    batch_size = -(-batch_size // mesh.size) * mesh.size
  all_images, all_labels = np.asarray(split.images), np.asarray(split.labels)
  n = len(all_labels)
  loss_sum, correct = 0.0, 0
  for start in range(0, n, batch_size):
    images = all_images[start:start + batch_size]
    labels = all_labels[start:start + batch_size]
    valid = len(labels)
    pad = batch_size - valid
    images = np.pad(images, [(0, pad)] + [(0, 0)] * (images.ndim - 1))
    labels = np.pad(labels, (0, pad))
    batch_loss, batch_correct = eval_step(state, *distributed.feed(
        (images, labels, np.arange(batch_size) < valid), mesh))
    loss_sum, correct = loss_sum + batch_loss, correct + batch_correct
  return {'loss': float(loss_sum) / n, 'accuracy': int(correct) / n}


def _dispatch_groups(batch_indices: jax.Array,
                     size: int) -> Iterator[jax.Array]:
  """Splits (steps, B) indices into consecutive (<= size, B) groups."""
  for start in range(0, batch_indices.shape[0], size):
    yield batch_indices[start:start + size]


class StopRequest:
  """Turns SIGINT (Ctrl-C) and SIGTERM into a flag the loop checks.

  The loop finishes the steps already queued, saves a checkpoint and stops.
  A second Ctrl-C stops at once (KeyboardInterrupt), without saving.
  """

  SIGNALS = (signal.SIGINT, signal.SIGTERM)

  def __init__(self):
    """Nothing is requested yet."""
    self.signal_name = None
    self._previous = {}

  def _handle(self, signum, frame):
    """Records the first signal; a second one interrupts at once."""
    del frame
    if self.signal_name is not None:
      raise KeyboardInterrupt
    self.signal_name = signal.Signals(signum).name
    logging.warning('%s received: stopping after the current steps and saving '
                    'a checkpoint (press Ctrl-C again to stop at once).',
                    self.signal_name)

  def __enter__(self) -> 'StopRequest':
    """Installs the handlers (only possible in the main thread)."""
    if threading.current_thread() is threading.main_thread():
      for sig in self.SIGNALS:
        self._previous[sig] = signal.signal(sig, self._handle)
    return self

  def __exit__(self, *exc_info) -> None:
    """Restores the previous handlers."""
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)


def _check_losses(losses: np.ndarray, first_step: int) -> None:
  """Raises DivergedError naming the step of the first non-finite loss."""
  bad = np.flatnonzero(~np.isfinite(losses))
  if bad.size:
    raise errors.DivergedError(
        f'Training loss is {losses[bad[0]]} at step '
        f'{first_step + int(bad[0]) + 1}; stopping instead of training on '
        'NaN/inf. Try a smaller learning rate or --config.grad_clip_norm.')


def _check_divergence(train_loss: float, epoch: int, num_classes: int) -> None:
  """Raises DivergedError if an epoch's mean loss is far above chance level.

  The rule: a model that predicts every class with equal probability has
  loss ln(num_classes) (2.30 for 10 classes); an epoch whose mean training
  loss is DIVERGENCE_FACTOR times that has diverged, even if every loss was
  finite (e.g. a learning rate of 1e6 gives losses around 1e20).
  """
  limit = DIVERGENCE_FACTOR * math.log(num_classes)
  if train_loss > limit:
    raise errors.DivergedError(
        f'Training diverged: epoch {epoch} mean training loss {train_loss:.4g}'
        f' is above {limit:.3g} ({DIVERGENCE_FACTOR}x the loss of a uniform '
        'guess). Try a smaller learning rate or --config.grad_clip_norm.')


@dataclasses.dataclass
class Run:
  """What setup() builds from a config: data, state and where outputs go.

  Attributes:
    config: the experiment config.
    workdir: the run's folder.
    train: the training split, replicated on every device of the mesh.
    test: the split evaluated after each epoch, in host memory (evaluate
      feeds it batch by batch): the test split, or the validation examples
      held out of the training set.
    eval_name: 'test' or 'val', the prefix of the evaluation metrics.
    state: the TrainState (fresh, or restored from the newest checkpoint).
    steps_per_epoch: optimizer steps per epoch.
    grad_chunks: independent gradient chunks per batch (per device).
    options: the objective's settings for the train step.
    checkpoints: the run's Orbax checkpoints.
    mesh: the devices, of every process, that the batch is split over.
  """
  config: ml_collections.ConfigDict
  workdir: str
  train: input_pipeline.Split
  test: input_pipeline.Split
  eval_name: str
  state: TrainState
  steps_per_epoch: int
  grad_chunks: int
  options: StepOptions
  checkpoints: checkpointing.Checkpoints
  mesh: jax.sharding.Mesh

  @property
  def step(self) -> int:
    """The state's optimizer step, read from the device."""
    return int(self.state.step)


def _check_int(name: str, value: Any, low: int, high: Optional[int] = None,
               high_reason: str = '') -> None:
  """Raises ConfigError unless `value` is an integer in [low, high]."""
  if (not isinstance(value, int) or isinstance(value, bool) or value < low or
      (high is not None and value > high)):
    accepted = f'an integer >= {low}'
    if high is not None:
      accepted += f' and <= {high}{high_reason}'
    raise errors.ConfigError(f'config.{name}={value!r} is invalid: accepted is '
                             f'{accepted}.')


def _check_fraction(name: str, value: Any, low: float, high: float,
                    upper_open: bool = True) -> None:
  """Raises ConfigError unless `value` is a number in [low, high)."""
  ok = (isinstance(value, (int, float)) and not isinstance(value, bool) and
        low <= value and (value < high if upper_open else value <= high))
  if not ok:
    bracket = ')' if upper_open else ']'
    raise errors.ConfigError(f'config.{name}={value!r} is invalid: accepted is '
                             f'a number in [{low}, {high}{bracket}.')


def validate_config(config: ml_collections.ConfigDict) -> None:
  """Checks the fields that do not depend on the data, before loading it.

  Raises:
    errors.ConfigError: naming the first bad field, its value and what is
      accepted.
  """
  _check_int('num_epochs', config.num_epochs, 1)
  _check_int('batch_size', config.batch_size, 1)
  _check_int('eval_batch_size', config.eval_batch_size, 1)
  _check_int('steps_per_dispatch', config.steps_per_dispatch, 1)
  _check_int('seed', config.seed, 0, 2**32 - 1)
  _check_int('keep_checkpoints', config.keep_checkpoints, 1)
  _check_int('log_every_steps', config.log_every_steps, 0)
  if config.checkpoint_every_steps is not None:
    _check_int('checkpoint_every_steps', config.checkpoint_every_steps, 1)
  if not (isinstance(config.progress_every_s, (int, float)) and
          config.progress_every_s > 0):
    raise errors.ConfigError(
        f'config.progress_every_s={config.progress_every_s!r} is invalid: '
        'accepted is a number of seconds > 0.')
  _check_int('augment_shift', config.augment_shift, 0, 27,
             ' (the image size - 1)')
  _check_int('validation_examples', config.validation_examples, 0)
  _check_fraction('label_smoothing', config.label_smoothing, 0.0, 1.0,
                  upper_open=False)
  _check_fraction('l2', config.l2, 0.0, math.inf)
  if config.param_dtype not in PARAM_DTYPES:
    raise errors.ConfigError(
        f'config.param_dtype={config.param_dtype!r} is invalid; accepted: '
        f'{", ".join(PARAM_DTYPES)}.')
  if config.ema_decay is not None:
    _check_fraction('ema_decay', config.ema_decay, 0.0, 1.0)
  if config.dropout_rate is not None:
    _check_fraction('dropout_rate', config.dropout_rate, 0.0, 1.0)
  if config.get('num_devices') is not None:
    _check_int('num_devices', config.num_devices, 1)
  if not isinstance(config.shard_optimizer_state, bool):
    raise errors.ConfigError(
        'config.shard_optimizer_state='
        f'{config.shard_optimizer_state!r} is invalid: accepted is True or '
        'False.')
  chunks = config.grad_chunks
  if chunks is not None and (not isinstance(chunks, int) or chunks < 1 or
                             config.batch_size % chunks):
    raise errors.ConfigError(
        f'config.grad_chunks={chunks!r} is invalid: accepted is None '
        '(automatic) or a divisor of config.batch_size='
        f'{config.batch_size}.')


def setup(config: ml_collections.ConfigDict, workdir: str,
          resume: bool = True) -> Run:
  """Builds everything a run needs: data, optimizer, state, checkpoints.

  Every config check that does not need the data runs first, so a bad field
  fails in about a second. With `resume`, the newest intact checkpoint in
  workdir replaces the fresh state. A multi-process run joins its processes
  first (distributed.initialize; main.py has already done so).

  Args:
    config: the experiment config (see configs/default.py).
    workdir: the run's folder.
    resume: restore the newest checkpoint if there is one.

  Returns:
    The Run.

  Raises:
    errors.UserError: on a bad config, dataset or workdir.
  """
  distributed.initialize(config)
  validate_config(config)
  try:
    model = models.create_model(config.model,
                                dropout_rate=config.dropout_rate)
  except ValueError as e:
    raise errors.ConfigError(f'config.model={config.model!r}: {e}') from e
  options = StepOptions(label_smoothing=float(config.label_smoothing),
                        l2=float(config.l2),
                        augment_shift=config.augment_shift,
                        ema_decay=config.ema_decay)
  train, test = input_pipeline.load_dataset(config.dataset, config.data_dir)
  eval_name = 'test'
  if config.validation_examples:
    _check_int('validation_examples', config.validation_examples, 0,
               len(train.labels) - 1, ' (the training-set size - 1)')
    # The last examples of the training files, the same for every seed, so
    # runs compared on them are compared on the same examples; the test split
    # is dropped here and never evaluated.
    keep = len(train.labels) - config.validation_examples
    train, test = (input_pipeline.Split(train.images[:keep],
                                        train.labels[:keep]),
                   input_pipeline.Split(train.images[keep:],
                                        train.labels[keep:]))
    eval_name = 'val'
  num_train = len(train.labels)
  _check_int('batch_size', config.batch_size, 1, num_train,
             ' (the training-set size)')
  steps_per_epoch = num_train // config.batch_size
  mesh = distributed.make_mesh(config.get('num_devices'))
  if config.batch_size % mesh.size:
    raise errors.ConfigError(
        f'config.batch_size={config.batch_size} does not divide over the '
        f'{mesh.size} devices of the mesh ({jax.process_count()} process(es) x '
        f'{mesh.size // jax.process_count()}): accepted is a multiple of '
        f'{mesh.size}, or set config.num_devices.')
  per_device = config.batch_size // mesh.size
  grad_chunks = config.grad_chunks or default_grad_chunks(per_device)
  if per_device % grad_chunks:
    raise errors.ConfigError(
        f'config.grad_chunks={grad_chunks} is invalid on {mesh.size} devices: '
        f'accepted is None (automatic) or a divisor of the per-device batch '
        f'{per_device} (config.batch_size={config.batch_size} / {mesh.size}).')
  tx = optimizers.from_config(config, config.num_epochs * steps_per_epoch)
  checkpointing.check_workdir(config, workdir)

  init_rng, data_rng = jax.random.split(jax.random.key(config.seed))
  state = create_train_state(init_rng, model, tx, train.images.shape[1:],
                             data_rng, ema=config.ema_decay is not None,
                             param_dtype=config.param_dtype)
  # Every process computed the same state from the seed; each places its
  # devices' copies (or pieces).
  state = distributed.place(state, distributed.state_shardings(
      state, mesh, config.shard_optimizer_state))
  checkpoints = checkpointing.Checkpoints(workdir, config.keep_checkpoints)
  if resume:
    restored = checkpoints.restore_latest(state)
    if restored is not None:
      state, meta = restored
      if meta.get('num_train') != num_train:
        raise errors.WorkdirError(
            f'{workdir} was trained on {meta.get("num_train")} examples, '
            f'this data has {num_train}; pass --config.restart=True to start '
            'afresh.')
      logging.info('resuming from step %d (epoch %d, batch %d) in %s',
                   int(state.step), int(state.epoch), int(state.position),
                   checkpoints.directory)
  train = distributed.place(train, distributed.replicated(mesh))
  return Run(config=config, workdir=workdir, train=train, test=test,
             eval_name=eval_name, state=state,
             steps_per_epoch=steps_per_epoch, grad_chunks=grad_chunks,
             options=options, checkpoints=checkpoints, mesh=mesh)


def _save(run: Run, state: TrainState) -> None:
  """Starts an asynchronous checkpoint of `state`."""
  run.checkpoints.save(state, {'num_train': len(run.train.labels),
                               'epoch': int(state.epoch),
                               'position': int(state.position)})


def _stopped(run: Run, stop: StopRequest, where: str) -> None:
  """Waits for the saved checkpoint, then raises InterruptedRun saying `where`."""
  run.checkpoints.wait()
  raise errors.InterruptedRun(
      f'Stopped by {stop.signal_name} {where}; checkpoint saved in '
      f'{run.checkpoints.directory}. Rerun the same command to resume.')


def train_epoch(
    run: Run,
    state: TrainState,
    log: metrics_log.RunLog,
    stop: StopRequest,
    progress: tqdm.tqdm,
) -> TrainState:
  """Trains from the state's position to the end of its epoch.

  Groups of `steps_per_dispatch` steps are queued back to back; while group
  i runs, the host reads group i-1's losses (already computed) to check and
  log them, so the device never waits on the host. A checkpoint is saved
  every config.checkpoint_every_steps steps (at the end of a group).

  Args:
    run: the Run (data, config, checkpoints).
    state: the TrainState, anywhere within an epoch (donated group by group).
    log: where step losses and progress lines go.
    stop: checked after each group; if set, a checkpoint is saved and the
      run stops.
    progress: the progress bar to advance.

  Returns:
    The state at the end of the epoch (position == steps_per_epoch).

  Raises:
    errors.DivergedError: on the first non-finite training loss.
    errors.InterruptedRun: after saving, when a stop was requested.
  """
  config = run.config
  epoch, position, step = int(state.epoch), int(state.position), int(
      state.step)
  every = config.checkpoint_every_steps
  # Every process draws the whole order from the seed on its own device (a
  # few kB), then feeds only its devices' columns of each batch.
  order = epoch_batches(jax.random.wrap_key_data(np.asarray(state.data_key)),
                        epoch, len(run.train.labels), config.batch_size)
  batch_indices = distributed.feed(np.asarray(order)[position:], run.mesh,
                                   axis=1)
  pending = None
  # Steps and batch position dispatched so far; the device may still be
  # running the last group.
  dispatched_step, dispatched_position = step, position

  def collect(metrics):
    """Reads a finished group's losses on the host, checks and logs them."""
    nonlocal position, step
    losses = np.asarray(metrics['loss'])
    _check_losses(losses, step)
    position += len(losses)
    log.write_steps(step, losses, config.batch_size, epoch, position,
                    run.steps_per_epoch)
    step += len(losses)
    progress.update(len(losses))

  for group in _dispatch_groups(batch_indices, config.steps_per_dispatch):
    state, metrics = train_steps(state, run.train.images, run.train.labels,
                                 group, run.grad_chunks, run.options,
                                 run.mesh,
                                 config.shard_optimizer_state)
    if pending is not None:
      collect(pending)
    pending = metrics
    group_start, dispatched_step = dispatched_step, dispatched_step + len(group)
    dispatched_position += len(group)
    if stop.signal_name is not None:
      collect(pending)
      _save(run, state)
      _stopped(run, stop, f'at step {step} (epoch {epoch}, batch {position} '
               f'of {run.steps_per_epoch})')
    # A multiple of `every` passed within this group; the end of an epoch is
    # saved after its evaluation instead.
    if (every and dispatched_step // every > group_start // every and
        dispatched_position < run.steps_per_epoch):
      _save(run, state)
  collect(pending)
  return state


def train_and_evaluate(
    config: ml_collections.ConfigDict, workdir: str
) -> TrainState:
  """Trains for config.num_epochs, evaluating, logging and checkpointing.

  Resumes from the newest checkpoint in workdir if there is one (see
  checkpointing.py). Writes workdir/config.json, appends one JSON object per
  epoch to workdir/metrics.jsonl, TensorBoard events to workdir/tensorboard
  and checkpoints to workdir/checkpoints.

  Args:
    config: the experiment config (see configs/default.py).
    workdir: the output folder (created if missing).

  Returns:
    The final TrainState.
  """
  run = setup(config, workdir)
  state = run.state
  log = metrics_log.RunLog(workdir, run.step, config.log_every_steps,
                           config.progress_every_s)
  logging.info('Training on %s (%d train / %d test examples), %d steps per '
               'epoch, %d gradient chunks per device batch, %d devices in %d '
               'process(es): %s', config.dataset, len(run.train.labels),
               len(run.test.labels), run.steps_per_epoch, run.grad_chunks,
               run.mesh.size, jax.process_count(), run.mesh.devices.tolist())
  try:
    with StopRequest() as stop:
      while int(state.epoch) <= config.num_epochs:
        epoch = int(state.epoch)
        start = time.perf_counter()
        done_before = int(state.position)
        with tqdm.tqdm(total=run.steps_per_epoch, initial=done_before,
                       desc=f'epoch {epoch}', unit='step',
                       disable=(None if config.progress_bar and
                                jax.process_index() == 0 else True),
                       leave=False) as progress:
          state = train_epoch(run, state, log, stop, progress)
        epoch_time = time.perf_counter() - start
        steps = run.steps_per_epoch
        train_loss = float(state.loss_sum) / steps
        _check_divergence(train_loss, epoch, input_pipeline.NUM_CLASSES)
        evaluation = evaluate(state, run.test,
                              min(config.eval_batch_size, len(run.test.labels)))
        metrics = {
            'train_loss': train_loss,
            'train_accuracy': float(state.accuracy_sum) / steps,
            'epoch': epoch,
            f'{run.eval_name}_loss': evaluation['loss'],
            f'{run.eval_name}_accuracy': evaluation['accuracy'],
            'epoch_time_s': epoch_time,
            'images_per_s': ((steps - done_before) * config.batch_size /
                             epoch_time),
        }
        if log.write_epoch(metrics, int(state.step)):
          logging.info(metrics_log.format_epoch(metrics))
        # The row is written first: a kill between the two repeats the
        # epoch's training exactly but never its row (see metrics_log).
        state = state.next_epoch()
        _save(run, state)
        if stop.signal_name is not None:
          # Asked to stop during an evaluation: the end of the epoch is
          # saved, so stop here rather than start the next epoch (or let a
          # caller such as compare.py start its next run).
          _stopped(run, stop, f'after epoch {epoch} (step {int(state.step)})')
  finally:
    log.close()
    run.checkpoints.close()
  return state


def evaluate_saved(config: ml_collections.ConfigDict,
                   workdir: str) -> dict[str, float]:
  """Evaluates the newest checkpoint in workdir on the test split.

  Args:
    config: the config the run was trained with.
    workdir: the run's folder.

  Returns:
    {'loss', 'accuracy'} on the test split, also logged.

  Raises:
    errors.WorkdirError: if workdir holds no checkpoint.
  """
  directory = os.path.join(workdir, checkpointing.CHECKPOINT_DIR)
  if not os.path.isdir(directory):
    raise errors.WorkdirError(
        f'No checkpoint to evaluate in {workdir} (no {directory}); train '
        'first with the same --config and --workdir.')
  run = setup(config, workdir)
  try:
    if not run.checkpoints.steps():
      raise errors.WorkdirError(f'No checkpoint to evaluate in {directory}.')
    result = evaluate(run.state, run.test,
                      min(config.eval_batch_size, len(run.test.labels)))
  finally:
    run.checkpoints.close()
  print(f'step {run.step}: test loss {result["loss"]:.4f}, test accuracy '
        f'{100 * result["accuracy"]:.2f}% ({len(run.test.labels)} examples)',
        flush=True)
  return result
