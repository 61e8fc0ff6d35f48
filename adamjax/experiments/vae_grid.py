"""Kingma & Ba (2015) section 6.4: a VAE on MNIST and the bias-correction grid.

  python main.py --config=configs/kingma_ba_vae.py --workdir=/tmp/vae_grid \
      --config.data_dir=/path/to/mnist

Adam with both bias corrections on or both off, for every (b1, b2) in
config.b1s x config.b2s and learning rate 10**config.log10_learning_rates. A
cell's rates train together as one vmapped computation (they live in the
optimizer state, see `optimizer`) from the same parameters, batches and
latent noise, so runs differ only in the optimizer. Into the workdir go:

  cells/<cell>.json  each finished cell's per-epoch losses (a rerun skips
                     the cells whose settings match)
  grid.csv, grid.md  one row per run: the loss after epoch 1 and the last
                     epoch, and whether it diverged
  vae_grid.png       the paper's Figure 4 (see write_figure)
"""

import json
import math
import os
import time
from typing import Any, Optional

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

import adam_optax
from adamjax import models
from adamjax import schema
from adamjax.common import errors
with errors.optional_packages(('matplotlib',), "the VAE grid's figures need",
                              'requirements-dev.txt'):
  from adamjax.common import plotting  # pylint: disable=g-import-not-at-top
from adamjax.common import tables
from adamjax.data import input_pipeline
from adamjax.data import order
from adamjax.trainer import objective

CELLS_DIR = 'cells'
GRID_HEADER = ('bias_correction', 'b1', 'b2', 'log10_learning_rate',
               'learning_rate', 'loss_epoch_1', 'loss_final', 'epochs',
               'status')
# An epoch loss above this (far above an untrained model's) or not finite
# counts as diverged.
DIVERGED_LOSS = 1e4


def flatten(images: jax.Array) -> jax.Array:
  """The images as the VAE's flat float32 inputs (N, 784) in [0, 1].

  Args:
    images: uint8 (N, 28, 28, 1).
  """
  return objective.preprocess(images).reshape(images.shape[0], -1)


def batch_loss(params: Any, model: models.VAE, x: jax.Array,
               rng: jax.Array) -> jax.Array:
  """The minibatch-mean negative ELBO of one sample, in nats per example.

  Args:
    params: the VAE's parameters.
    model: the VAE.
    x: flattened data (N, pixels) in [0, 1].
    rng: the key of the reparameterisation noise.
  """
  noise = jax.random.normal(rng, (x.shape[0], model.latent), x.dtype)
  logits, mean, log_variance = model.apply({'params': params}, x, noise)
  return objective.negative_elbo(logits, x, mean, log_variance).mean()


def init_params(model: models.VAE, seed: int) -> Any:
  """The model's initial parameters, the same for every run of the grid.

  Args:
    model: the VAE.
    seed: config.seed; its first split key initialises the parameters (the
      second orders the data).
  """
  init_key = jax.random.split(jax.random.key(seed))[0]
  x = jnp.zeros((1, model.pixels), jnp.float32)
  return model.init(init_key, x, jnp.zeros((1, model.latent)))['params']


def optimizer(bias_correction: bool,
              eps: float) -> optax.GradientTransformation:
  """Adam with both bias corrections on or off, its numbers in its state.

  Args:
    bias_correction: divide m_t by 1 - b1^t and v_t by 1 - b2^t (the paper's
      Algorithm 1) or not (the ablation of section 6.4).
    eps: Adam's epsilon.

  Returns:
    optax.inject_hyperparams(adam_optax.adam) with learning_rate, b1 and b2
    in its state (set with optax.tree_utils.tree_set), so one compiled
    program serves every rate and decay.
  """
  return optax.inject_hyperparams(
      adam_optax.adam, static_args=('eps', 'bias_correction_mu',
                                    'bias_correction_nu'))(
                                        learning_rate=1e-3, b1=0.9, b2=0.999,
                                        eps=eps,
                                        bias_correction_mu=bias_correction,
                                        bias_correction_nu=bias_correction)


def init_lanes(tx: optax.GradientTransformation, params: Any,
               learning_rates: jax.Array, b1: float,
               b2: float) -> tuple[Any, Any]:
  """Stacked parameters and optimizer states, one lane per learning rate.

  Args:
    tx: from `optimizer`.
    params: the shared initial parameters.
    learning_rates: (lanes,) the rates.
    b1: the cell's first-moment decay.
    b2: the cell's second-moment decay.

  Returns:
    (params, opt_state), each leaf with a leading lanes axis.
  """
  def lane(rate):
    """One lane: the shared parameters and a state holding `rate`."""
    state = optax.tree_utils.tree_set(
        tx.init(params), learning_rate=rate, b1=jnp.float32(b1),
        b2=jnp.float32(b2))
    return params, state
  return jax.vmap(lane)(learning_rates)


def make_train_epoch(model: models.VAE, tx: optax.GradientTransformation):
  """Builds the jitted epoch: lax.scan over steps, vmap over lanes.

  Args:
    model: the VAE.
    tx: from `optimizer` (its static arguments fix the compiled program).

  Returns:
    train_epoch(params, opt_state, images, batch_indices, data_key, epoch)
    -> (params, opt_state, losses (steps, lanes)), jitted with params and
    opt_state donated.
  """
  def step(params, opt_state, x, rng):
    """One Adam step of one lane; the loss is before the step."""
    loss, grads = jax.value_and_grad(batch_loss)(params, model, x, rng)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  # Lanes share the batch and the latent noise (common random numbers).
  lanes_step = jax.vmap(step, in_axes=(0, 0, None, None))

  def train_epoch(params, opt_state, images, batch_indices, data_key, epoch):
    """Trains every lane through this epoch's batches."""
    def body(carry, scanned):
      """One step of every lane on the batch at `scanned`'s position."""
      params, opt_state = carry
      position, indices = scanned
      rng = order.step_key(data_key, epoch, position)
      params, opt_state, loss = lanes_step(params, opt_state,
                                           flatten(images[indices]), rng)
      return (params, opt_state), loss
    positions = jnp.arange(batch_indices.shape[0], dtype=jnp.int32)
    (params, opt_state), losses = jax.lax.scan(
        body, (params, opt_state), (positions, batch_indices))
    return params, opt_state, losses

  return jax.jit(train_epoch, donate_argnums=(0, 1))


def train_cell(config: ml_collections.ConfigDict, images: jax.Array,
               params: Any, bias_correction: bool, b1: float, b2: float,
               train_epoch: Any, tx: optax.GradientTransformation
               ) -> list[list[float]]:
  """Trains one cell's learning rates together for config.num_epochs.

  Args:
    config: the grid config.
    images: the training images on the device, uint8 (N, 28, 28, 1).
    params: the shared initial parameters.
    bias_correction: the cell's Adam variant.
    b1: the cell's first-moment decay.
    b2: the cell's second-moment decay.
    train_epoch: from make_train_epoch (for this bias_correction).
    tx: the optimizer train_epoch was built with.

  Returns:
    losses[epoch][lane]: each epoch's mean minibatch loss per learning rate
    (NaN or inf where a lane diverged).
  """
  rates = jnp.asarray([10.0**e for e in config.log10_learning_rates],
                      jnp.float32)
  lane_params, opt_state = init_lanes(tx, params, rates, b1, b2)
  data_key = jax.random.split(jax.random.key(config.seed))[1]
  per_epoch = []
  for epoch in range(1, config.num_epochs + 1):
    start = time.perf_counter()
    batch_indices = order.epoch_batches(data_key, epoch, images.shape[0],
                                        config.batch_size)
    lane_params, opt_state, losses = train_epoch(
        lane_params, opt_state, images, batch_indices,
        jax.random.key_data(data_key), jnp.int32(epoch))
    means = np.asarray(losses, np.float64).mean(0)
    per_epoch.append([float(v) for v in means])
    logging.info('bias_correction=%s b1=%g b2=%g epoch %d (%.1f s): %s',
                 bias_correction, b1, b2, epoch, time.perf_counter() - start,
                 ' '.join(f'{v:.1f}' for v in means))
  return per_epoch


def cell_name(bias_correction: bool, b1: float, b2: float) -> str:
  """A cell's file stem under CELLS_DIR, e.g. 'corrected_b1_0.9_b2_0.999'.

  Args:
    bias_correction: the cell's Adam variant.
    b1: the cell's first-moment decay.
    b2: the cell's second-moment decay.
  """
  return (f'{"corrected" if bias_correction else "uncorrected"}_b1_{b1:g}'
          f'_b2_{b2:g}')


def cell_settings(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """The fields a cell's result depends on; a saved cell must match them.

  Args:
    config: the grid config.

  Returns:
    {field: value}, tuples as lists (as the cell's JSON holds them).
  """
  return {k: (list(config[k]) if isinstance(config[k], (tuple, list))
              else config[k])
          for k in ('dataset', 'train_examples', 'batch_size', 'num_epochs',
                    'seed', 'eps', 'hidden', 'latent',
                    'log10_learning_rates')}


def load_images(config: ml_collections.ConfigDict) -> np.ndarray:
  """The first config.train_examples training images (all if None), uint8.

  Args:
    config: the grid config (dataset, data_dir, train_examples, batch_size).

  Raises:
    errors.ConfigError: if train_examples or batch_size exceeds the split.
  """
  train_split, _ = input_pipeline.load_dataset(config.dataset,
                                               config.data_dir)
  images = train_split.images
  if config.train_examples is not None:
    if config.train_examples > len(images):
      raise errors.ConfigError(
          f'config.train_examples={config.train_examples} is invalid: the '
          f'training split has {len(images)} examples.')
    images = images[:config.train_examples]
  if config.batch_size > len(images):
    raise errors.ConfigError(
        f'config.batch_size={config.batch_size} is invalid: accepted is at '
        f'most the {len(images)} training examples.')
  return images


def is_diverged(loss: float) -> bool:
  """Whether an epoch's mean loss is not finite or above DIVERGED_LOSS.

  Args:
    loss: the epoch's mean minibatch loss.
  """
  return not math.isfinite(loss) or loss > DIVERGED_LOSS


def grid_rows(config: ml_collections.ConfigDict,
              cells: dict[tuple[bool, float, float], list[list[float]]]
              ) -> list[list[Any]]:
  """The grid table in GRID_HEADER's order: one row per run.

  Args:
    config: the grid config.
    cells: {(bias_correction, b1, b2): losses[epoch][lane]}.
  """
  rows = []
  for (correction, b1, b2), per_epoch in cells.items():
    for lane, exponent in enumerate(config.log10_learning_rates):
      first, last = per_epoch[0][lane], per_epoch[-1][lane]
      diverged = [e + 1 for e, losses in enumerate(per_epoch)
                  if is_diverged(losses[lane])]
      if not diverged:
        status = 'ok'
      elif is_diverged(last):
        status = f'diverged in epoch {diverged[0]}'
      else:
        status = f'blew up in epoch {diverged[0]}, then recovered'
      rows.append([correction, b1, b2, exponent, 10.0**exponent,
                   f'{first:.2f}', f'{last:.2f}', len(per_epoch), status])
  return rows


def write_figure(config: ml_collections.ConfigDict,
                 cells: dict[tuple[bool, float, float], list[list[float]]],
                 path: str) -> None:
  """The paper's Figure 4: loss vs log10(alpha), corrected vs uncorrected.

  One panel per (b1, b2); a row for the loss after the last epoch and one
  after epoch 1 (the early instability). A diverged run is an x at the top.

  Args:
    config: the grid config.
    cells: {(bias_correction, b1, b2): losses[epoch][lane]}.
    path: the PNG file to write.
  """
  pairs = [(b1, b2) for b1 in config.b1s for b2 in config.b2s]
  epochs = sorted({len(v) for v in cells.values()})
  shown = [epochs[-1]] + ([1] if epochs[-1] != 1 else [])
  fig = plotting.new_figure(
      (max(3.0 * len(pairs), 6.0), 3.0 * len(shown)), config.dpi)
  axes = fig.subplots(len(shown), len(pairs), squeeze=False, sharey='row')
  x = np.asarray(config.log10_learning_rates, float)
  colours = {True: 'tab:red', False: 'tab:green'}
  for row, epoch in enumerate(shown):
    finite = [v[epoch - 1][i] for v in cells.values() if len(v) >= epoch
              for i in range(len(x)) if not is_diverged(v[epoch - 1][i])]
    low = min(finite) if finite else 0.0
    # The top of the panel: a little above the worst finite loss, capped so
    # that one near-diverged run does not flatten every other curve.
    top = min(max(finite), 3.0 * low) if finite else 1.0
    top = low + 1.1 * (top - low) + 1.0
    for col, (b1, b2) in enumerate(pairs):
      ax = axes[row][col]
      for correction in config.bias_corrections:
        per_epoch = cells.get((correction, b1, b2))
        if per_epoch is None or len(per_epoch) < epoch:
          continue
        y = np.asarray(per_epoch[epoch - 1], float)
        bad = np.array([is_diverged(v) for v in y]) | (y > top)
        label = 'bias correction' if correction else 'no bias correction'
        ax.plot(x, np.where(bad, np.nan, y), marker='o',
                color=colours[correction], label=label)
        # Side by side, so two x's at one rate do not hide each other.
        shift = 0.08 if correction else -0.08
        ax.plot(x[bad] + shift, np.full(bad.sum(), top), linestyle='none',
                marker='x', markersize=9, color=colours[correction])
      ax.set_ylim(low - 0.05 * (top - low), top * 1.02)
      ax.set_title(f'b1={b1:g}, b2={b2:g}, epoch {epoch}', fontsize='small')
      ax.set_xlabel('log10(alpha)')
      ax.grid(True, alpha=0.3)
    axes[row][0].set_ylabel('loss (negative ELBO, nats)')
  axes[0][0].legend(fontsize='x-small')
  fig.suptitle('VAE on MNIST: Adam with (red) and without (green) bias '
               'correction\nx: off the scale or diverged', fontsize='small')
  plotting.save_png(fig, path)


def run(config: ml_collections.ConfigDict,
        workdir: str) -> dict[tuple[bool, float, float], list[list[float]]]:
  """Runs the whole grid (resuming finished cells) and writes it up.

  Args:
    config: the grid config (see configs/kingma_ba_vae.py).
    workdir: the output folder; rerunning with it skips finished cells.

  Returns:
    {(bias_correction, b1, b2): losses[epoch][lane]} for every cell.

  Raises:
    errors.ConfigError: before any training, on a bad field.
  """
  schema.validate(config)
  images = jax.device_put(load_images(config))
  os.makedirs(os.path.join(workdir, CELLS_DIR), exist_ok=True)
  model = models.VAE(hidden=config.hidden, latent=config.latent,
              pixels=int(np.prod(images.shape[1:])))
  params = init_params(model, config.seed)
  settings = cell_settings(config)
  cells, start = {}, time.perf_counter()
  for correction in config.bias_corrections:
    tx = optimizer(correction, config.eps)
    train_epoch = make_train_epoch(model, tx)
    for b1 in config.b1s:
      for b2 in config.b2s:
        path = os.path.join(workdir, CELLS_DIR,
                            cell_name(correction, b1, b2) + '.json')
        saved = _read_cell(path, settings)
        if saved is None:
          saved = train_cell(config, images, params, correction, b1, b2,
                             train_epoch, tx)
          with open(path + '.tmp', 'w') as f:
            json.dump({'settings': settings, 'losses': saved}, f)
          os.replace(path + '.tmp', path)
        cells[correction, b1, b2] = saved
  tables.write_table(os.path.join(workdir, 'grid'), GRID_HEADER,
                     grid_rows(config, cells))
  write_figure(config, cells, os.path.join(workdir, 'vae_grid.png'))
  print(f'VAE grid: {len(cells)} cells x {len(config.log10_learning_rates)} '
        f'learning rates x {config.num_epochs} epochs in '
        f'{time.perf_counter() - start:.0f} s; wrote grid.md, grid.csv, '
        f'vae_grid.png in {workdir}', flush=True)
  return cells


def _read_cell(path: str,
               settings: dict[str, Any]) -> Optional[list[list[float]]]:
  """A saved cell's losses if it exists and was run with `settings`."""
  if not os.path.exists(path):
    return None
  with open(path) as f:
    saved = json.load(f)
  if saved.get('settings') != settings:
    logging.warning('%s was run with other settings; training it again.',
                    path)
    return None
  return saved['losses']
