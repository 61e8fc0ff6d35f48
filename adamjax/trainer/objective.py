"""The training objectives (classification, the VAE's ELBO): preprocessing,
augmentation, per-example losses, the L2 penalty."""

from typing import Any, NamedTuple, Optional

import math

import jax
import jax.numpy as jnp
import optax

# What the trainer minimises, by models.OBJECTIVES' names.
OBJECTIVES = ('classify', 'elbo')
# The key of the reparameterisation noise in evaluation: every epoch scores
# the same draw, so epochs compare the model, not the noise.
_EVAL_NOISE_SEED = 0


class StepOptions(NamedTuple):
  """The training objective's settings, static under jit.

  Attributes:
    label_smoothing: mass spread uniformly over the classes in the targets.
    l2: coefficient of the penalty l2/2 * sum(w**2), part of the reported
      train loss (the paper's regularised objective).
    augment_shift: max random shift of training images in pixels, on device.
    ema_decay: decay of the parameters' moving average that evaluation uses,
      or None.
    objective: 'classify' (softmax cross-entropy) or 'elbo' (the VAE's
      negative ELBO, one latent sample per example).
  """
  label_smoothing: float = 0.0
  l2: float = 0.0
  augment_shift: int = 0
  ema_decay: Optional[float] = None
  objective: str = 'classify'


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


def negative_elbo(logits: jax.Array, x: jax.Array, mean: jax.Array,
                  log_variance: jax.Array) -> jax.Array:
  """Per-example -log p(x|z) + KL(q(z|x) || N(0, I)), in nats.

  Args:
    logits: Bernoulli logits (N, pixels) of p(x|z) at the sampled z.
    x: the data (N, pixels) in [0, 1].
    mean: q(z|x)'s mean (N, latent).
    log_variance: q(z|x)'s log-variance (N, latent).
  """
  reconstruction = optax.sigmoid_binary_cross_entropy(logits, x).sum(-1)
  kl = -0.5 * jnp.sum(1 + log_variance - mean**2 - jnp.exp(log_variance), -1)
  return reconstruction + kl


def example_losses(
    params: Any, apply_fn: Any, images: jax.Array, labels: jax.Array,
    rng: Optional[jax.Array] = None,
    options: StepOptions = StepOptions()) -> tuple[jax.Array, jax.Array]:
  """Per-example losses and whether each is classified right.

  Args:
    params: the model parameters.
    apply_fn: the model's apply function.
    images: uint8 (N, H, W, C).
    labels: int (N,); unused by the ELBO.
    rng: the step's key (dropout, or the ELBO's latent noise); None
      evaluates (no dropout, the ELBO at a fixed noise draw).
    options: options.objective picks the loss; label_smoothing is used.

  Returns:
    (losses (N,), correct (N,) bool; all False for the ELBO, which has no
    accuracy).
  """
  if options.objective == 'classify':
    losses, logits = loss_and_logits(params, apply_fn, images, labels, rng,
                                     options.label_smoothing)
    return losses, jnp.argmax(logits, -1) == labels
  x = preprocess(images).reshape(images.shape[0], -1)
  latent = params['encoder_mean']['bias'].shape[-1]
  key = jax.random.key(_EVAL_NOISE_SEED) if rng is None else rng
  noise = jax.random.normal(key, (x.shape[0], latent), x.dtype)
  logits, mean, log_variance = apply_fn({'params': params}, x, noise)
  return (negative_elbo(logits, x, mean, log_variance),
          jnp.zeros(x.shape[0], bool))


def chance_loss(objective: str, image_shape: tuple[int, ...],
                num_classes: int) -> float:
  """The loss of a model that knows nothing: a uniform guess.

  Args:
    objective: one of OBJECTIVES.
    image_shape: one image's shape.
    num_classes: the classes of 'classify'.

  Returns:
    ln(num_classes); for the ELBO, ln 2 per pixel (p = 1/2 everywhere, the
    posterior at the prior).
  """
  if objective == 'classify':
    return math.log(num_classes)
  return math.prod(image_shape) * math.log(2)
