"""Where a config becomes objects: data, model, optimizer, state, mesh."""

import dataclasses

import jax
import ml_collections

from adamjax import models
from adamjax import schema
from adamjax.common import checks
from adamjax.common import errors
from adamjax.data import input_pipeline
from adamjax.optim import registry
from adamjax.trainer import checkpointing
from adamjax.trainer import distributed
from adamjax.trainer import objective
from adamjax.trainer import train_state
from adamjax.trainer import xla_cpu


@dataclasses.dataclass
class Run:
  """What setup() builds from a config: data, state and where outputs go.

  Attributes:
    config: the experiment config.
    workdir: the run's folder.
    train: the training split, replicated on every device of the mesh.
    test: the split evaluated each epoch, in host memory: the test split or
      the validation examples held out of the training set.
    eval_name: 'test' or 'val', the evaluation metrics' prefix.
    state: fresh, or restored from the newest checkpoint.
    steps_per_epoch: optimizer steps per epoch.
    grad_chunks: independent gradient chunks per batch (per device).
    options: the objective's settings.
    checkpoints: the run's Orbax checkpoints.
    mesh: all processes' devices; the batch is split over them.
    resumed: whether `state` was restored from a checkpoint.
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
  resumed: bool = False

  @property
  def step(self) -> int:
    """The state's optimizer step, read from the device."""
    return int(self.state.step)


def _check_before_data(config: ml_collections.ConfigDict) -> None:
  """The schema's checks, and the cross-field ones that need no data."""
  schema.validate(config)
  if config.grad_chunks is not None and config.batch_size % config.grad_chunks:
    checks.fail('config.grad_chunks', config.grad_chunks,
                'None (automatic) or a divisor of config.batch_size='
                f'{config.batch_size}')
  # Rounding modes act on low-precision parameters only; asked of others
  # they would silently do nothing (or fail deep inside init).
  rounds = {'kahan': ('bfloat16', 'float16'), 'stochastic': ('bfloat16',),
            'nearest': ('float32', 'bfloat16', 'float16')}
  if config.param_dtype not in rounds[config.param_rounding]:
    checks.fail('config.param_rounding', config.param_rounding,
                f'nearest with config.param_dtype={config.param_dtype!r}; '
                f'{config.param_rounding} needs param_dtype '
                f'{" or ".join(rounds[config.param_rounding])}')


def _check_at_most(name: str, value: int, most: int, what: str) -> None:
  """Refuses an integer field above a bound the data sets."""
  if value > most:
    checks.fail(f'config.{name}', value, f'at most {most} ({what})')


def setup(config: ml_collections.ConfigDict, workdir: str,
          resume: bool = True) -> Run:
  """Builds everything a run needs: data, optimizer, state, checkpoints.

  Config checks that need no data run first, so a bad field fails fast.

  Args:
    config: the experiment config (see configs/default.py).
    workdir: the run's folder.
    resume: restore the newest intact checkpoint if there is one.

  Raises:
    errors.UserError: on a bad config, dataset or workdir.
  """
  distributed.initialize(config)
  _check_before_data(config)
  try:
    model = models.create_model(config.model,
                                dropout_rate=config.dropout_rate)
  except ValueError as e:
    raise errors.ConfigError(f'config.model={config.model!r}: {e}') from e
  options = objective.StepOptions(
      label_smoothing=float(config.label_smoothing), l2=float(config.l2),
      augment_shift=config.augment_shift, ema_decay=config.ema_decay,
      objective=models.OBJECTIVES.get(config.model, 'classify'))
  train, test = input_pipeline.load_dataset(config.dataset, config.data_dir)
  eval_name = 'test'
  if config.validation_examples:
    _check_at_most('validation_examples', config.validation_examples,
                   len(train.labels) - 1, 'the training-set size - 1')
    # The last training examples, the same for every seed, so runs compare on
    # the same examples; the test split is never evaluated.
    keep = len(train.labels) - config.validation_examples
    train, test = (input_pipeline.Split(train.images[:keep],
                                        train.labels[:keep]),
                   input_pipeline.Split(train.images[keep:],
                                        train.labels[keep:]))
    eval_name = 'val'
  num_train = len(train.labels)
  _check_at_most('batch_size', config.batch_size, num_train,
                 'the training-set size')
  steps_per_epoch = num_train // config.batch_size
  mesh = distributed.make_mesh(config.get('num_devices'))
  if config.batch_size % mesh.size:
    checks.fail('config.batch_size', config.batch_size,
                f'a multiple of the {mesh.size} devices of the mesh '
                f'({jax.process_count()} process(es) x '
                f'{mesh.size // jax.process_count()}), or set '
                'config.num_devices')
  per_device = config.batch_size // mesh.size
  grad_chunks = config.grad_chunks or xla_cpu.default_grad_chunks(per_device)
  if per_device % grad_chunks:
    checks.fail('config.grad_chunks', grad_chunks,
                f'None (automatic) or a divisor of the per-device batch '
                f'{per_device} (config.batch_size={config.batch_size} / '
                f'{mesh.size} devices)')
  tx = registry.from_config(
      config.optimizer, total_steps=config.num_epochs * steps_per_epoch,
      schedule=config.schedule, warmup_steps=config.warmup_steps,
      grad_clip_norm=config.grad_clip_norm,
      param_rounding=config.param_rounding, seed=config.seed)
  checkpointing.check_workdir(config, workdir)

  init_rng, data_rng = jax.random.split(jax.random.key(config.seed))
  state = train_state.create_train_state(
      init_rng, model, tx, train.images.shape[1:], data_rng,
      ema=config.ema_decay is not None, param_dtype=config.param_dtype)
  # Every process computed the same state from the seed.
  state = distributed.place(state, distributed.state_shardings(
      state, mesh, config.shard_optimizer_state))
  checkpoints = checkpointing.Checkpoints(workdir, config.keep_checkpoints)
  restored = checkpoints.restore_latest(state) if resume else None
  if restored is not None:
    state, meta = restored
    if meta.get('num_train') != num_train:
      raise errors.WorkdirError(
          f'{workdir} was trained on {meta.get("num_train")} examples, '
          f'this data has {num_train}; pass --config.restart=True to start '
          'afresh.')
  train = distributed.place(train, distributed.replicated(mesh))
  return Run(config=config, workdir=workdir, train=train, test=test,
             eval_name=eval_name, state=state,
             steps_per_epoch=steps_per_epoch, grad_chunks=grad_chunks,
             options=options, checkpoints=checkpoints, mesh=mesh,
             resumed=restored is not None)
