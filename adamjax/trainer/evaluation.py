"""Exact evaluation: every example once, padded batches masked out."""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from adamjax.data import input_pipeline
from adamjax.trainer import distributed
from adamjax.trainer import objective
from adamjax.trainer.train_state import TrainState


@functools.partial(jax.jit, static_argnames='kind')
def eval_step(
    state: TrainState, images: jax.Array, labels: jax.Array,
    mask: jax.Array, kind: str = 'classify'
) -> tuple[jax.Array, jax.Array]:
  """Summed loss and number correct over the examples where `mask` is True."""
  # Only the objective: the evaluated loss is never label-smoothed.
  losses, correct = objective.example_losses(
      state.eval_params, state.apply_fn, images, labels,
      options=objective.StepOptions(objective=kind))
  return jnp.sum(losses, where=mask), jnp.sum(correct, where=mask)


def evaluate(
    state: TrainState, split: input_pipeline.Split,
    batch_size: int, kind: str = 'classify') -> dict[str, float]:
  """Loss and accuracy over every example exactly once.

  The last batch is padded to full size (one compiled shape) and the padding
  masked out, so the mean is exact. On a mesh, batch_size is rounded up to a
  multiple of the device count and each process feeds only its own rows.

  Args:
    state: the TrainState to evaluate.
    split: NumPy arrays or arrays on the device.
    batch_size: examples per forward pass.
    kind: the objective, one of objective.OBJECTIVES.

  Returns:
    {'loss': mean loss, 'accuracy': fraction correct}; the ELBO's accuracy
    is 0 (it has none).
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
        (images, labels, np.arange(batch_size) < valid), mesh),
                                          kind=kind)
    loss_sum, correct = loss_sum + batch_loss, correct + batch_correct
  return {'loss': float(loss_sum) / n, 'accuracy': int(correct) / n}
