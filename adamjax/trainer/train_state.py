"""The state a run needs to continue exactly: params, optimizer, data order."""

from typing import Any, Optional

import flax.linen as nn
from flax.training import train_state
import jax
import jax.numpy as jnp
import optax


class TrainState(train_state.TrainState):
  """A Flax TrainState plus what a checkpoint needs to resume at the next batch.

  Attributes:
    data_key: the raw (uint32) data of the data-order PRNG key.
    epoch: the 1-based epoch in progress.
    position: batches of that epoch done.
    loss_sum: float32 sum of those batches' train losses.
    accuracy_sum: float32 sum of their train accuracies.
    ema_params: moving average of the parameters, or None (no ema_decay).
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
    rng: key for the parameter initialisation.
    model: the Flax module.
    tx: the Optax optimizer.
    image_shape: shape of one image, e.g. (28, 28, 1).
    data_rng: the data-order key (default: derived from `rng`).
    ema: keep a moving average of the parameters, starting at them.
    param_dtype: storage dtype (initialised in float32, then cast); the
      forward pass computes in float32 either way.

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
