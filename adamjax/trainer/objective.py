"""The classifier's objective: preprocessing, augmentation, loss, L2 penalty."""

from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax


class StepOptions(NamedTuple):
  """The training objective's settings, static under jit.

  Attributes:
    label_smoothing: mass spread uniformly over the classes in the targets.
    l2: coefficient of the penalty l2/2 * sum(w**2), part of the reported
      train loss (the paper's regularised objective).
    augment_shift: max random shift of training images in pixels, on device.
    ema_decay: decay of the parameters' moving average that evaluation uses,
      or None.
  """
  label_smoothing: float = 0.0
  l2: float = 0.0
  augment_shift: int = 0
  ema_decay: Optional[float] = None


def preprocess(images: jax.Array) -> jax.Array:
  """uint8 pixels -> float32 in [0, 1]."""
  return images.astype(jnp.float32) / 255.0


def random_shift(rng: jax.Array, images: jax.Array,
                 max_shift: int) -> jax.Array:
  """Shifts each image by its own uniform (dy, dx) in [-max_shift, max_shift].

  Args:
    rng: PRNG key.
    images: (N, H, W, C).
    max_shift: in pixels; vacated pixels become 0.
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
    images: uint8 (N, H, W, C).
    labels: int (N,).
    rng: the dropout key in training; None evaluates (no dropout).
    label_smoothing: as in StepOptions.

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
