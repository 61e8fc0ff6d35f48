"""Tests for the objective: augmentation and loss."""


import jax
import jax.numpy as jnp
import numpy as np

from adamjax import models
from adamjax.experiments import vae_grid
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


def test_the_elbo_objective_is_the_vae_grids_loss_on_the_same_key():
  """The trainer's per-example ELBO (model 'vae') and vae_grid's batch loss:
  the same noise from the same key, the same mean; evaluation fixes the
  noise, so it is repeatable, and no example counts as correct."""
  model = models.VAE(hidden=16, latent=4)
  params = vae_grid.init_params(model, 0)
  images = np.random.default_rng(1).integers(0, 256, (6, 28, 28, 1),
                                             np.uint8)
  key = jax.random.key(7)
  options = objective.StepOptions(objective='elbo')
  losses, correct = objective.example_losses(params, model.apply, images,
                                             np.zeros(6, int), key, options)
  assert losses.shape == (6,) and not np.asarray(correct).any()
  np.testing.assert_allclose(
      float(losses.mean()),
      float(vae_grid.batch_loss(params, model, vae_grid.flatten(images), key)),
      rtol=1e-6)
  evaluated = [objective.example_losses(params, model.apply, images,
                                        np.zeros(6, int), None, options)[0]
               for _ in range(2)]
  np.testing.assert_array_equal(evaluated[0], evaluated[1])
  assert not np.allclose(evaluated[0], losses)  # Another noise draw.


def test_classify_objective_counts_argmax_hits():
  """example_losses' 'classify' is loss_and_logits' loss and argmax == label."""
  model = models.create_model('logreg')
  params = model.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))['params']
  images = np.random.default_rng(2).integers(0, 256, (9, 28, 28, 1), np.uint8)
  labels = np.arange(9) % 10
  losses, correct = objective.example_losses(params, model.apply, images,
                                             labels)
  want, logits = objective.loss_and_logits(params, model.apply, images, labels)
  np.testing.assert_array_equal(losses, want)
  np.testing.assert_array_equal(correct, np.argmax(logits, -1) == labels)
