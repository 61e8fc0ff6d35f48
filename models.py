"""The seed's CNN for 28x28 grey-scale digits, in Flax."""

import flax.linen as nn
import jax


class CNN(nn.Module):
  """Conv5x5(32)-ReLU-MaxPool2 -> Conv5x5(64)-ReLU-MaxPool2 -> Dense(10).

  Both convolutions are VALID, so a 28x28 input becomes 24 -> 12 -> 8 -> 4,
  and the classifier sees 4*4*64 = 1024 features (62,346 parameters).
  """

  num_classes: int = 10

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """Maps images (N, 28, 28, 1) in [0, 1] to logits (N, num_classes)."""
    x = nn.Conv(32, (5, 5), padding='VALID')(x)
    x = nn.max_pool(nn.relu(x), (2, 2), strides=(2, 2))
    x = nn.Conv(64, (5, 5), padding='VALID')(x)
    x = nn.max_pool(nn.relu(x), (2, 2), strides=(2, 2))
    x = x.reshape((x.shape[0], -1))
    return nn.Dense(self.num_classes)(x)
