"""The data order: a pure function of (seed, epoch, position)."""

import functools

import jax


# The PRNG stream of per-step randomness (dropout, augmentation), folded into
# the data-order key; epochs (the shuffling stream) never reach it.
NOISE_STREAM = 2**32 - 1


def step_key(data_key: jax.Array, epoch: jax.Array,
             position: jax.Array) -> jax.Array:
  """The PRNG key of one step: a pure function of (seed, epoch, position)."""
  key = jax.random.fold_in(jax.random.wrap_key_data(data_key), NOISE_STREAM)
  return jax.random.fold_in(jax.random.fold_in(key, epoch), position)


@functools.partial(jax.jit, static_argnums=(2, 3))
def epoch_batches(
    rng: jax.Array, epoch: int, num_examples: int, batch_size: int
) -> jax.Array:
  """This epoch's shuffled batch indices, a function of (rng, epoch) only.

  The last partial batch is dropped so shapes stay static; each epoch drops a
  different random remainder.

  Args:
    rng: the data-order key.
    epoch: 1-based.
    num_examples: the training-set size.
    batch_size: examples per step.

  Returns:
    int32 indices of shape (num_examples // batch_size, batch_size).
  """
  perm = jax.random.permutation(jax.random.fold_in(rng, epoch), num_examples)
  steps = num_examples // batch_size
  return perm[:steps * batch_size].reshape(steps, batch_size)
