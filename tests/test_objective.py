"""Tests for the objective: augmentation and loss."""


import jax
import jax.numpy as jnp
import numpy as np

from adamjax.trainer import objective



def test_random_shift_moves_each_image_with_zero_fill():
  """Each image is its original moved by one (dy, dx), zeros shifted in; all
  25 shifts in [-2, 2]^2 occur."""
  images = np.random.default_rng(0).integers(1, 256, (300, 28, 28, 1),
                                             np.uint8)
  shifted = np.asarray(objective.random_shift(jax.random.key(0),
                                          jnp.asarray(images), 2))
  seen = set()
  for original, moved in zip(images, shifted):
    matches = []
    for dy in range(-2, 3):
      for dx in range(-2, 3):
        expected = np.zeros_like(original)
        src = original[max(0, dy):28 + min(0, dy), max(0, dx):28 + min(0, dx)]
        expected[max(0, -dy):28 + min(0, -dy),
                 max(0, -dx):28 + min(0, -dx)] = src
        if np.array_equal(expected, moved):
          matches.append((dy, dx))
    assert len(matches) == 1
    seen.add(matches[0])
  assert len(seen) == 25
