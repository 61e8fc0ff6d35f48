"""The models for 28x28 grey-scale images, in Flax, and their registry.

Every classifier maps images (N, 28, 28, 1) in [0, 1] to logits and takes
`train`, which turns dropout on (its PRNG stream is 'dropout'). The VAE maps
them and the reparameterisation noise to its decoder's logits and q(z|x);
OBJECTIVES says which loss the trainer gives each model.
"""

import functools
from typing import Any, Callable, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


@jax.custom_vjp
def max_pool_2x2(x: jax.Array) -> jax.Array:
  """2x2, stride-2 max pooling, bit-identical to nn.max_pool.

  The gradient goes to each window's first maximum in row-major order, as in
  XLA's select-and-scatter, but through elementwise selects (see xla_cpu).

  Args:
    x: activations (N, H, W, C) with H and W even.

  Returns:
    (N, H / 2, W / 2, C).
  """
  n, h, w, c = x.shape
  return x.reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def _max_pool_2x2_fwd(x: jax.Array) -> tuple[jax.Array, tuple[jax.Array,
                                                             jax.Array]]:
  """The pooled output, saving the input and output for the backward pass."""
  y = max_pool_2x2(x)
  return y, (x, y)


def _max_pool_2x2_bwd(
    residuals: tuple[jax.Array, jax.Array], g: jax.Array
) -> tuple[jax.Array]:
  """Sends each window's gradient to its first maximum (row-major order)."""
  x, y = residuals
  n, h, w, c = x.shape
  windows = x.reshape(n, h // 2, 2, w // 2, 2, c)
  zero = jnp.zeros_like(g)
  taken = jnp.zeros(g.shape, bool)
  rows = []
  for i in range(2):
    cols = []
    for j in range(2):
      # The last position takes whatever is left, so a window whose max does
      # not compare equal to any element (NaN) still passes its gradient on.
      pick = ~taken if (i, j) == (1, 1) else ~taken & (windows[:, :, i, :, j]
                                                       == y)
      taken |= pick
      cols.append(jnp.where(pick, g, zero))
    rows.append(jnp.stack(cols, axis=3))
  return (jnp.stack(rows, axis=2).reshape(n, h, w, c),)


max_pool_2x2.defvjp(_max_pool_2x2_fwd, _max_pool_2x2_bwd)


def max_pool(x: jax.Array) -> jax.Array:
  """2x2, stride-2 max pooling: max_pool_2x2 on CPU, nn.max_pool elsewhere.

  Both are bit-identical; the custom gradient is only known to be faster on
  XLA:CPU.
  """
  if jax.default_backend() == 'cpu':
    return max_pool_2x2(x)
  return nn.max_pool(x, (2, 2), strides=(2, 2))


class CNN(nn.Module):
  """Conv5x5(f1)-ReLU-MaxPool2 -> Conv5x5(f2)-ReLU-MaxPool2 -> Dropout-Dense.

  The default is the seed's CNN: VALID convolutions take 28x28 to 24 -> 12 ->
  8 -> 4, so the classifier sees 1024 features (62,346 parameters).
  """

  num_classes: int = 10
  features: Sequence[int] = (32, 64)
  dropout_rate: float = 0.0

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    """Maps images (N, 28, 28, 1) in [0, 1] to logits (N, num_classes)."""
    x = nn.Conv(self.features[0], (5, 5), padding='VALID')(x)
    x = max_pool(nn.relu(x))
    x = nn.Conv(self.features[1], (5, 5), padding='VALID')(x)
    x = max_pool(nn.relu(x))
    x = x.reshape((x.shape[0], -1))
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    return nn.Dense(self.num_classes)(x)


class FastCNN(nn.Module):
  """Conv5x5/2(f1)-ReLU -> Conv3x3(f2)-MaxPool2-ReLU -> Dense(hidden)-ReLU -> Dense.

  The speedrun's model (configs/mnist_speedrun.py): a stride-2 first layer
  takes 28x28 straight to 12x12, so no full-resolution activations are
  pooled, and a 3x3 second layer takes 12 -> 10 -> 5. The default has 166,058
  parameters and about a fifth of the seed CNN's training FLOPs per image.
  """

  num_classes: int = 10
  features: Sequence[int] = (24, 48)
  hidden: int = 128
  dropout_rate: float = 0.0

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    """Maps images (N, 28, 28, 1) in [0, 1] to logits (N, num_classes)."""
    x = nn.relu(nn.Conv(self.features[0], (5, 5), strides=2,
                        padding='VALID')(x))
    x = nn.Conv(self.features[1], (3, 3), padding='VALID')(x)
    # ReLU after pooling is the same function with a quarter of the work.
    x = nn.relu(max_pool(x))
    x = x.reshape((x.shape[0], -1))
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    x = nn.relu(nn.Dense(self.hidden)(x))
    return nn.Dense(self.num_classes)(x)


class MLP(nn.Module):
  """Fully connected ReLU layers with dropout, as in Kingma & Ba section 6.2.

  The default, 784-1000-1000-10, has 1,796,010 parameters. Dropout acts on the
  input and after each hidden layer.
  """

  num_classes: int = 10
  hidden: Sequence[int] = (1000, 1000)
  dropout_rate: float = 0.0
  input_dropout_rate: float = 0.0

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    """Maps images (N, 28, 28, 1) to logits (N, num_classes)."""
    x = x.reshape((x.shape[0], -1))
    x = nn.Dropout(self.input_dropout_rate, deterministic=not train)(x)
    for width in self.hidden:
      x = nn.relu(nn.Dense(width)(x))
      x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    return nn.Dense(self.num_classes)(x)


class LogisticRegression(nn.Module):
  """Multiclass logistic regression on the 784 pixels (7,850 parameters)."""

  num_classes: int = 10

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    """Maps images (N, 28, 28, 1) to logits (N, num_classes)."""
    del train  # Nothing random.
    return nn.Dense(self.num_classes)(x.reshape((x.shape[0], -1)))


class VAE(nn.Module):
  """Kingma & Ba (2015) section 6.4's VAE: 784-500-(50, 50) encoder, 50-500-784 decoder.

  The latent prior is N(0, I); the decoder is Bernoulli over the pixels; the
  hidden layers are softplus. Trained on the negative ELBO
  (objective.negative_elbo), by the trainer (model 'vae') or by
  experiments/vae_grid.py's vmapped grid.

  Attributes:
    hidden: softplus units in the encoder's and the decoder's hidden layer.
    latent: dimensions of the Gaussian latent variable.
    pixels: dimensions of the (flattened) data.
  """
  hidden: int = 500
  latent: int = 50
  pixels: int = 784

  def setup(self):
    """The five dense layers (named so the parameter tree reads clearly)."""
    self.encoder_hidden = nn.Dense(self.hidden)
    self.encoder_mean = nn.Dense(self.latent)
    self.encoder_log_variance = nn.Dense(self.latent)
    self.decoder_hidden = nn.Dense(self.hidden)
    self.decoder_logits = nn.Dense(self.pixels)

  def encode(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """q(z|x): the mean and log-variance (N, latent) of flattened x (N, 784)."""
    h = nn.softplus(self.encoder_hidden(x))
    return self.encoder_mean(h), self.encoder_log_variance(h)

  def decode(self, z: jax.Array) -> jax.Array:
    """p(x|z): the Bernoulli logits (N, pixels) of latent samples z."""
    return self.decoder_logits(nn.softplus(self.decoder_hidden(z)))

  def __call__(self, x: jax.Array, noise: Optional[jax.Array] = None
               ) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Encodes x, samples z = mean + sigma * noise, decodes.

    Args:
      x: the data (N, pixels), or images (N, 28, 28, 1), in [0, 1].
      noise: standard normal draws (N, latent), the reparameterisation
        noise; None decodes the posterior mean (z = mean).

    Returns:
      (logits (N, pixels), mean (N, latent), log_variance (N, latent)).
    """
    mean, log_variance = self.encode(x.reshape((x.shape[0], -1)))
    z = mean if noise is None else mean + jnp.exp(0.5 * log_variance) * noise
    return self.decode(z), mean, log_variance


MODELS: dict[str, Callable[..., nn.Module]] = {
    'cnn': CNN,
    'cnn_wide': functools.partial(CNN, features=(64, 128)),
    'cnn_fast': FastCNN,
    'mlp': MLP,
    'logreg': LogisticRegression,
    'vae': VAE,
}
# The loss the trainer gives each model (objective.py); 'classify' if absent.
OBJECTIVES = {'vae': 'elbo'}


def create_model(name: str, **options: Any) -> nn.Module:
  """Builds a registered model.

  Args:
    name: a key of MODELS.
    **options: module fields, e.g. dropout_rate; None keeps the default.

  Raises:
    ValueError: on an unknown name or an option the model does not have.
  """
  if name not in MODELS:
    raise ValueError(f'Unknown model {name!r}; accepted: '
                     f'{", ".join(MODELS)}.')
  options = {k: v for k, v in options.items() if v is not None}
  model_class = MODELS[name]
  model_class = getattr(model_class, 'func', model_class)
  fields = set(model_class.__dataclass_fields__) - {'parent', 'name'}
  unknown = sorted(set(options) - fields)
  if unknown:
    raise ValueError(f'Model {name!r} does not take {", ".join(unknown)}; it '
                     f'takes: {", ".join(sorted(fields))}.')
  return MODELS[name](**options)
