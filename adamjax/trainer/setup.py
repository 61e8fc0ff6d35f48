"""The one place a config becomes objects: data, model, optimizer, state, mesh."""

import dataclasses
import math
from typing import Any, Optional

from absl import logging
import jax
import ml_collections

from adamjax import models
from adamjax.common import errors
from adamjax.data import input_pipeline
from adamjax.optim import registry
from adamjax.trainer import checkpointing
from adamjax.trainer import distributed
from adamjax.trainer import objective
from adamjax.trainer import train_state
from adamjax.trainer import xla_cpu


# Storage dtypes of the parameters (config.param_dtype).
PARAM_DTYPES = ('float32', 'bfloat16', 'float16')

@dataclasses.dataclass
class Run:
  """What setup() builds from a config: data, state and where outputs go.

  Attributes:
    config: the experiment config.
    workdir: the run's folder.
    train: the training split, replicated on every device of the mesh.
    test: the split evaluated after each epoch, in host memory (evaluate
      feeds it batch by batch): the test split, or the validation examples
      held out of the training set.
    eval_name: 'test' or 'val', the prefix of the evaluation metrics.
    state: the train_state.TrainState (fresh, or restored from the newest checkpoint).
    steps_per_epoch: optimizer steps per epoch.
    grad_chunks: independent gradient chunks per batch (per device).
    options: the objective's settings for the train step.
    checkpoints: the run's Orbax checkpoints.
    mesh: the devices, of every process, that the batch is split over.
  """
  config: ml_collections.ConfigDict
  workdir: str
  train: input_pipeline.Split
  test: input_pipeline.Split
  eval_name: str
  state: train_state.TrainState
  steps_per_epoch: int
  grad_chunks: int
  options: objective.StepOptions
  checkpoints: checkpointing.Checkpoints
  mesh: jax.sharding.Mesh

  @property
  def step(self) -> int:
    """The state's optimizer step, read from the device."""
    return int(self.state.step)

def _check_int(name: str, value: Any, low: int, high: Optional[int] = None,
               high_reason: str = '') -> None:
  """Raises ConfigError unless `value` is an integer in [low, high]."""
  if (not isinstance(value, int) or isinstance(value, bool) or value < low or
      (high is not None and value > high)):
    accepted = f'an integer >= {low}'
    if high is not None:
      accepted += f' and <= {high}{high_reason}'
    raise errors.ConfigError(f'config.{name}={value!r} is invalid: accepted is '
                             f'{accepted}.')

def _check_fraction(name: str, value: Any, low: float, high: float,
                    upper_open: bool = True) -> None:
  """Raises ConfigError unless `value` is a number in [low, high)."""
  ok = (isinstance(value, (int, float)) and not isinstance(value, bool) and
        low <= value and (value < high if upper_open else value <= high))
  if not ok:
    bracket = ')' if upper_open else ']'
    raise errors.ConfigError(f'config.{name}={value!r} is invalid: accepted is '
                             f'a number in [{low}, {high}{bracket}.')

def validate_config(config: ml_collections.ConfigDict) -> None:
  """Checks the fields that do not depend on the data, before loading it.

  Raises:
    errors.ConfigError: naming the first bad field, its value and what is
      accepted.
  """
  _check_int('num_epochs', config.num_epochs, 1)
  _check_int('batch_size', config.batch_size, 1)
  _check_int('eval_batch_size', config.eval_batch_size, 1)
  _check_int('steps_per_dispatch', config.steps_per_dispatch, 1)
  _check_int('seed', config.seed, 0, 2**32 - 1)
  _check_int('keep_checkpoints', config.keep_checkpoints, 1)
  _check_int('log_every_steps', config.log_every_steps, 0)
  if config.checkpoint_every_steps is not None:
    _check_int('checkpoint_every_steps', config.checkpoint_every_steps, 1)
  if not (isinstance(config.progress_every_s, (int, float)) and
          config.progress_every_s > 0):
    raise errors.ConfigError(
        f'config.progress_every_s={config.progress_every_s!r} is invalid: '
        'accepted is a number of seconds > 0.')
  _check_int('augment_shift', config.augment_shift, 0, 27,
             ' (the image size - 1)')
  _check_int('validation_examples', config.validation_examples, 0)
  _check_fraction('label_smoothing', config.label_smoothing, 0.0, 1.0,
                  upper_open=False)
  _check_fraction('l2', config.l2, 0.0, math.inf)
  if config.param_dtype not in PARAM_DTYPES:
    raise errors.ConfigError(
        f'config.param_dtype={config.param_dtype!r} is invalid; accepted: '
        f'{", ".join(PARAM_DTYPES)}.')
  if config.ema_decay is not None:
    _check_fraction('ema_decay', config.ema_decay, 0.0, 1.0)
  if config.dropout_rate is not None:
    _check_fraction('dropout_rate', config.dropout_rate, 0.0, 1.0)
  if config.get('num_devices') is not None:
    _check_int('num_devices', config.num_devices, 1)
  if not isinstance(config.shard_optimizer_state, bool):
    raise errors.ConfigError(
        'config.shard_optimizer_state='
        f'{config.shard_optimizer_state!r} is invalid: accepted is True or '
        'False.')
  chunks = config.grad_chunks
  if chunks is not None and (not isinstance(chunks, int) or chunks < 1 or
                             config.batch_size % chunks):
    raise errors.ConfigError(
        f'config.grad_chunks={chunks!r} is invalid: accepted is None '
        '(automatic) or a divisor of config.batch_size='
        f'{config.batch_size}.')

def setup(config: ml_collections.ConfigDict, workdir: str,
          resume: bool = True) -> Run:
  """Builds everything a run needs: data, optimizer, state, checkpoints.

  Every config check that does not need the data runs first, so a bad field
  fails in about a second. With `resume`, the newest intact checkpoint in
  workdir replaces the fresh state. A multi-process run joins its processes
  first (distributed.initialize; main.py has already done so).

  Args:
    config: the experiment config (see configs/default.py).
    workdir: the run's folder.
    resume: restore the newest checkpoint if there is one.

  Returns:
    The Run.

  Raises:
    errors.UserError: on a bad config, dataset or workdir.
  """
  distributed.initialize(config)
  validate_config(config)
  try:
    model = models.create_model(config.model,
                                dropout_rate=config.dropout_rate)
  except ValueError as e:
    raise errors.ConfigError(f'config.model={config.model!r}: {e}') from e
  options = objective.StepOptions(label_smoothing=float(config.label_smoothing),
                        l2=float(config.l2),
                        augment_shift=config.augment_shift,
                        ema_decay=config.ema_decay)
  train, test = input_pipeline.load_dataset(config.dataset, config.data_dir)
  eval_name = 'test'
  if config.validation_examples:
    _check_int('validation_examples', config.validation_examples, 0,
               len(train.labels) - 1, ' (the training-set size - 1)')
    # The last examples of the training files, the same for every seed, so
    # runs compared on them are compared on the same examples; the test split
    # is dropped here and never evaluated.
    keep = len(train.labels) - config.validation_examples
    train, test = (input_pipeline.Split(train.images[:keep],
                                        train.labels[:keep]),
                   input_pipeline.Split(train.images[keep:],
                                        train.labels[keep:]))
    eval_name = 'val'
  num_train = len(train.labels)
  _check_int('batch_size', config.batch_size, 1, num_train,
             ' (the training-set size)')
  steps_per_epoch = num_train // config.batch_size
  mesh = distributed.make_mesh(config.get('num_devices'))
  if config.batch_size % mesh.size:
    raise errors.ConfigError(
        f'config.batch_size={config.batch_size} does not divide over the '
        f'{mesh.size} devices of the mesh ({jax.process_count()} process(es) x '
        f'{mesh.size // jax.process_count()}): accepted is a multiple of '
        f'{mesh.size}, or set config.num_devices.')
  per_device = config.batch_size // mesh.size
  grad_chunks = config.grad_chunks or xla_cpu.default_grad_chunks(per_device)
  if per_device % grad_chunks:
    raise errors.ConfigError(
        f'config.grad_chunks={grad_chunks} is invalid on {mesh.size} devices: '
        f'accepted is None (automatic) or a divisor of the per-device batch '
        f'{per_device} (config.batch_size={config.batch_size} / {mesh.size}).')
  tx = registry.from_config(config, config.num_epochs * steps_per_epoch)
  checkpointing.check_workdir(config, workdir)

  init_rng, data_rng = jax.random.split(jax.random.key(config.seed))
  state = train_state.create_train_state(init_rng, model, tx, train.images.shape[1:],
                             data_rng, ema=config.ema_decay is not None,
                             param_dtype=config.param_dtype)
  # Every process computed the same state from the seed; each places its
  # devices' copies (or pieces).
  state = distributed.place(state, distributed.state_shardings(
      state, mesh, config.shard_optimizer_state))
  checkpoints = checkpointing.Checkpoints(workdir, config.keep_checkpoints)
  if resume:
    restored = checkpoints.restore_latest(state)
    if restored is not None:
      state, meta = restored
      if meta.get('num_train') != num_train:
        raise errors.WorkdirError(
            f'{workdir} was trained on {meta.get("num_train")} examples, '
            f'this data has {num_train}; pass --config.restart=True to start '
            'afresh.')
      logging.info('resuming from step %d (epoch %d, batch %d) in %s',
                   int(state.step), int(state.epoch), int(state.position),
                   checkpoints.directory)
  train = distributed.place(train, distributed.replicated(mesh))
  return Run(config=config, workdir=workdir, train=train, test=test,
             eval_name=eval_name, state=state,
             steps_per_epoch=steps_per_epoch, grad_chunks=grad_chunks,
             options=options, checkpoints=checkpoints, mesh=mesh)
