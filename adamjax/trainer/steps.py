"""The jitted, donated train step and its multi-step dispatch."""

import functools
import operator
from typing import Optional

import jax
import jax.numpy as jnp
import optax

from adamjax.data import order
from adamjax.trainer import distributed
from adamjax.trainer import objective
from adamjax.trainer import xla_cpu
from adamjax.trainer.train_state import TrainState

Metrics = dict[str, jax.Array]


def train_step(
    state: TrainState,
    batch: tuple[jax.Array, jax.Array],
    grad_chunks: int = 1,
    options: objective.StepOptions = objective.StepOptions(),
    mesh: Optional[jax.sharding.Mesh] = None,
) -> tuple[TrainState, Metrics]:
  """One optimizer step on a batch.

  With grad_chunks > 1 the gradient is the sum of independent chunk gradients
  (see xla_cpu): the same mean up to float summation order, but each chunk
  draws its own dropout masks.

  Args:
    state: the current TrainState.
    batch: (images (B, H, W, C) uint8, labels (B,) int32).
    grad_chunks: must divide B (on a mesh: B / devices).
    options: the objective's settings.
    mesh: its 'data' axis splits the batch; None: no sharding constraint.

  Returns:
    The new state (one batch further, metric sums updated) and this batch's
    {'loss', 'accuracy'} from before the step; the loss includes the L2 term
    (the ELBO's accuracy is 0: it has none).
  """
  images, labels = batch
  rng = order.step_key(state.data_key, state.epoch, state.position)
  augment_rng, dropout_rng = jax.random.split(rng)
  if options.augment_shift:
    images = objective.random_shift(augment_rng, images, options.augment_shift)

  def chunk_loss(params, chunk_images, chunk_labels, chunk_rng):
    """The chunk's share of the batch-mean loss, and which it got right."""
    losses, correct = objective.example_losses(
        params, state.apply_fn, chunk_images, chunk_labels, chunk_rng,
        options)
    # Dividing by 1 (one chunk) is exact, so grad_chunks=1 is bit-identical
    # to the plain batch mean.
    return losses.mean() / grad_chunks, correct

  losses, correct, grads = [], [], []
  for i, (chunk_images, chunk_labels) in enumerate(zip(
      xla_cpu.chunks(images, grad_chunks, mesh),
      xla_cpu.chunks(labels, grad_chunks, mesh))):
    (chunk_mean, chunk_correct), chunk_grads = jax.value_and_grad(
        chunk_loss, has_aux=True)(state.params, chunk_images, chunk_labels,
                                  jax.random.fold_in(dropout_rng, i))
    losses.append(chunk_mean)
    correct.append(chunk_correct)
    grads.append(chunk_grads)
  add = lambda *xs: functools.reduce(operator.add, xs)
  loss, grads = add(*losses), jax.tree.map(add, *grads)
  if options.l2:
    penalty, penalty_grads = jax.value_and_grad(objective.l2_penalty)(
        state.params)
    loss = loss + options.l2 * penalty
    grads = jax.tree.map(lambda g, p: g + options.l2 * p, grads,
                         penalty_grads)
  accuracy = jnp.mean(jnp.concatenate(correct))
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


@functools.partial(jax.jit, donate_argnums=0,
                   static_argnames=('grad_chunks', 'options', 'mesh',
                                    'shard_optimizer_state'))
def train_steps(
    state: TrainState,
    images: jax.Array,
    labels: jax.Array,
    batch_indices: jax.Array,
    grad_chunks: int = 1,
    options: objective.StepOptions = objective.StepOptions(),
    mesh: Optional[jax.sharding.Mesh] = None,
    shard_optimizer_state: bool = False,
) -> tuple[TrainState, Metrics]:
  """Runs train_step over several batches in one dispatch.

  On a mesh, `images` and `labels` are replicated and `batch_indices` split
  along 'data', so each device gathers its share of every batch locally.

  Args:
    state: donated: its buffers are reused.
    images: the whole training set on the device, uint8 (N, H, W, C).
    labels: int32 (N,).
    batch_indices: (steps, batch_size) indices into the training set.
    grad_chunks: see train_step.
    options: the objective's settings.
    mesh: the data-parallel mesh, or None.
    shard_optimizer_state: split the optimizer state along 'data'.

  Returns:
    The new state and per-step {'loss', 'accuracy'} of shape (steps,).
  """

  # Unrolled at trace time, not lax.scan: see xla_cpu.
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
