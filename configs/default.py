"""Shared defaults for the image-classification configs (MNIST-style data).

Each dataset's config imports this and overrides a few fields. Every field can
be changed from the command line, e.g. `--config.optimizer.name=sgd`.
"""

import ml_collections
from ml_collections import config_dict

from adamjax.optim import registry


def optimizer_config(name: str, learning_rate: float) -> ml_collections.ConfigDict:
  """The `optimizer` block: a registry name, a learning rate, and slots.

  The slots (None = the optimizer's own default) are the hyperparameters of
  the registered optimizers, with their types (registry.HYPERPARAMETER_TYPES),
  so any of them can be set by flag; setting one the chosen optimizer does not
  take is an error naming what it does take.

  Args:
    name: a name from registry.OPTIMIZERS.
    learning_rate: the base learning rate.

  Returns:
    The ConfigDict for `config.optimizer`.
  """
  opt = ml_collections.ConfigDict()
  opt.name = name
  opt.learning_rate = learning_rate
  for field, kind in registry.HYPERPARAMETER_TYPES.items():
    opt[field] = config_dict.placeholder(kind)
  return opt


def get_config() -> ml_collections.ConfigDict:
  """The defaults: the seed's MNIST recipe."""
  config = ml_collections.ConfigDict()
  config.task = 'classify'
  config.dataset = 'mnist'
  # A folder with the four IDX files; None downloads through TFDS.
  config.data_dir = config_dict.placeholder(str)
  config.num_epochs = 50
  config.batch_size = 64
  config.eval_batch_size = 1000
  # Optimizer steps per jitted call: fewer dispatches, same math.
  config.steps_per_dispatch = 1
  # Split each batch into this many chunks whose gradients are computed
  # independently and summed (same mean gradient up to float summation
  # order), so XLA:CPU can run them in parallel. None picks per backend
  # (xla_cpu.default_grad_chunks): chunks of ~8 on CPU (batch 64: 8 chunks,
  # ~1.8x faster on 2 cores), 1 on GPU/TPU.
  config.grad_chunks = config_dict.placeholder(int)
  config.seed = 0
  # The model (models.MODELS) and its dropout rate (None: its default).
  config.model = 'cnn'
  config.dropout_rate = config_dict.placeholder(float)
  # The objective and its regularisers (objective.StepOptions).
  config.label_smoothing = 0.0
  config.l2 = 0.0
  config.augment_shift = 0
  config.ema_decay = config_dict.placeholder(float)
  # > 0: hold out the last N training examples and evaluate on them instead
  # of the test split (for choosing hyperparameters).
  config.validation_examples = 0
  # Storage dtype of the parameters (setup.PARAM_DTYPES) and how a
  # low-precision parameter absorbs its update: nearest (plain rounding),
  # kahan (compensated) or stochastic (registry.PARAM_ROUNDINGS).
  config.param_dtype = 'float32'
  config.param_rounding = 'nearest'
  config.optimizer = optimizer_config('adam', 5e-4)
  config.schedule = 'constant'
  config.warmup_steps = 0
  config.grad_clip_norm = config_dict.placeholder(float)
  config.progress_bar = True
  # Checkpoints (Orbax, in WORKDIR/checkpoints): every this many steps, None
  # for once per epoch; the run is also saved at the end of every epoch.
  config.checkpoint_every_steps = config_dict.placeholder(int)
  config.keep_checkpoints = 3
  # True: move an existing run in the workdir aside and start afresh.
  config.restart = False
  # The train loss goes to TensorBoard every this many steps (0: never).
  config.log_every_steps = 50
  # A progress line (step, loss, images/s) at most this often, in seconds.
  config.progress_every_s = 10.0
  # Data parallelism (distributed.py): devices per process (None: all local
  # devices), and for several processes the coordinator's 'host:port' (or
  # 'auto' on a cluster scheduler), the process count and this process's id.
  config.num_devices = config_dict.placeholder(int)
  config.coordinator_address = config_dict.placeholder(str)
  config.num_processes = config_dict.placeholder(int)
  config.process_id = config_dict.placeholder(int)
  # True: split the optimizer state over the devices (ZeRO-1) instead of
  # keeping a full copy on each.
  config.shard_optimizer_state = False
  return config
