"""The one schema of config fields: default, type, accepted values, meaning.

Each task's fields are declared once here. The configs in configs/ start from
`default_config(task)`, `validate` checks every field of a config before any
work starts, and `describe` is what `main.py --show_config` prints. A field
shared by several tasks (the dataset, the seed) is one entry used by each.

The optimizer's hyperparameter slots come from the registry's one table
(registry.HYPERPARAMETERS) and are checked by the registry when it builds
the optimizer from the config's `optimizer` slice; checks that need the data
or the devices (a batch larger than the dataset, chunks that do not divide
the per-device batch) are made where those are known (trainer.setup).
"""

import dataclasses
import functools
from typing import Any, Callable, Optional

import ml_collections
from ml_collections import config_dict

from adamjax import models
from adamjax.common import checks
from adamjax.common import errors
from adamjax.data import input_pipeline
from adamjax.optim import registry
from adamjax.optim import schedules

Check = Callable[[str, Any], Any]


@dataclasses.dataclass(frozen=True)
class Field:
  """One config field.

  Attributes:
    default: the default value; None makes it an optional field of `kind`.
    help: one line of meaning, shown by --show_config.
    check: check(name, value) raising errors.ConfigError, or None for no
      check beyond the ConfigDict's own typing.
    kind: the type of an optional field (its placeholder's type).
  """
  default: Any
  help: str
  check: Optional[Check] = None
  kind: Optional[type] = None


def _number(accepted: checks.Range, integer: bool = False,
            optional: bool = False) -> Check:
  """A check of one number in `accepted`."""
  return functools.partial(checks.number, accepted=accepted, integer=integer,
                           optional=optional)


def _choice(choices: Any) -> Check:
  """A check of one of `choices`."""
  return lambda name, value: checks.choice(name, value, choices)


def _numbers(accepted: checks.Range, example: str,
             integer: bool = False) -> Check:
  """A check of a non-empty tuple of distinct numbers in `accepted`."""
  return lambda name, value: checks.sequence(
      name, value, _number(accepted, integer), example=example)


def _names(name: str, value: Any, distinct: bool = True) -> tuple[str, ...]:
  """A check of a non-empty tuple of registry optimizers."""
  return checks.sequence(name, value, _choice(registry.OPTIMIZERS),
                         example='"(\'adam\', \'sgd\')"', distinct=distinct)


def _or_empty(check: Check) -> Check:
  """`check`, or the empty tuple (meaning: not used)."""
  return lambda name, value: value if value == () else check(name, value)


def _point(name: str, value: Any) -> Any:
  """A check of None or two finite numbers (x, y)."""
  if value is not None and not (isinstance(value, (tuple, list)) and
                                len(value) == 2):
    checks.fail(name, value, "None (the problem's default start) or two "
                'finite numbers, e.g. --config.start="(1.5, -1.0)"')
  return value if value is None else checks.sequence(
      name, value, checks.number, example='"(1.5, -1.0)"', distinct=False)


def _optimizer_slots(name: str, learning_rate: float) -> dict[str, Field]:
  """The `optimizer` group: a registry name, a rate, one slot per knob."""
  slots = {
      'name': Field(name, 'a name from the optimizer registry '
                    '(adamjax/optim/registry.py)',
                    _choice(registry.OPTIMIZERS)),
      'learning_rate': Field(learning_rate, 'the base (peak) learning rate, '
                             f'{schedules.LEARNING_RATE}',
                             _number(schedules.LEARNING_RATE)),
  }
  for field, hyperparameter in registry.HYPERPARAMETERS.items():
    accepted = (f', {hyperparameter.accepted}' if hyperparameter.accepted
                else '')
    # Checked by the registry, which knows which optimizer takes which.
    slots[field] = Field(None, hyperparameter.help + accepted,
                         kind=hyperparameter.kind)
  return slots


def _rate_slots(help_text: str) -> dict[str, Field]:
  """One optional learning rate per registry optimizer."""
  return {name: Field(None, help_text, _number(checks.POSITIVE,
                                               optional=True), kind=float)
          for name in registry.OPTIMIZERS}


# Fields several tasks share.
_DATASET = Field('mnist', 'mnist or fashion_mnist (also checked against '
                 "data_dir's files)", _choice(input_pipeline.DATASETS))
_DATA_DIR = Field(None, 'folder with the four IDX files (plain or .gz); None '
                  'downloads through TFDS', kind=str)
_SEEDS = checks.Range(0, 2**32 - 1)
_SEED = Field(0, 'seed of the initial parameters and the data order',
              _number(_SEEDS, integer=True))
# Above 300 dpi the playground GIF's frames take gigabytes.
_DPI = Field(120, 'resolution of the figures, 10..300',
             _number(checks.Range(10, 300), integer=True))
_POSITIVE_INT = _number(checks.Range(1), integer=True)
_COUNT = _number(checks.Range(0), integer=True)
_OPTIONAL_POSITIVE_INT = _number(checks.Range(1), integer=True, optional=True)

TRAINING: dict[str, Any] = {
    'dataset': _DATASET,
    'data_dir': _DATA_DIR,
    'num_epochs': Field(50, 'epochs to train; raising it continues a '
                        'finished run', _POSITIVE_INT),
    'batch_size': Field(64, 'training examples per optimizer step (the '
                        'global batch)', _POSITIVE_INT),
    'eval_batch_size': Field(1000, 'examples per evaluation forward pass '
                             '(any size gives the same exact result)',
                             _POSITIVE_INT),
    'steps_per_dispatch': Field(1, 'optimizer steps per jitted call (same '
                                'math, fewer dispatches)', _POSITIVE_INT),
    'grad_chunks': Field(None, 'independent gradient chunks per device batch '
                         '(XLA:CPU speed, trainer/xla_cpu.py); None picks per '
                         'backend', _OPTIONAL_POSITIVE_INT, int),
    'seed': _SEED,
    'model': Field('cnn', 'the model: ' + ', '.join(models.MODELS),
                   _choice(models.MODELS)),
    'dropout_rate': Field(None, "dropout rate of the model's dropout layers; "
                          "None: the model's default",
                          _number(checks.BELOW_ONE, optional=True), float),
    'label_smoothing': Field(0.0, 'target mass spread uniformly over the '
                             'classes, in [0, 1]', _number(checks.UNIT)),
    'l2': Field(0.0, 'L2 penalty l2/2*sum(w^2) added to the training loss, '
                '>= 0', _number(checks.NON_NEGATIVE)),
    'augment_shift': Field(0, 'shift training images by up to this many '
                           'pixels (on the device), 0..27',
                           _number(checks.Range(0, 27), integer=True)),
    'ema_decay': Field(None, 'evaluate an exponential moving average of the '
                       'weights with this decay; None: off',
                       _number(checks.BELOW_ONE, optional=True), float),
    'validation_examples': Field(0, 'hold out the last N training examples '
                                 'and evaluate on them instead of the test '
                                 'split', _COUNT),
    'param_dtype': Field('float32', 'storage dtype of the parameters '
                         '(compute stays float32)',
                         _choice(('float32', 'bfloat16', 'float16'))),
    'param_rounding': Field('nearest', 'how low-precision parameters take '
                            'their updates: nearest, kahan (compensated), '
                            'stochastic', _choice(registry.PARAM_ROUNDINGS)),
    'optimizer': _optimizer_slots('adam', 5e-4),
    'schedule': Field('constant', 'learning-rate schedule: ' +
                      ', '.join(schedules.SCHEDULES),
                      _choice(schedules.SCHEDULES)),
    'warmup_steps': Field(0, 'linear warm-up steps at the start of the '
                          'schedule', _COUNT),
    'grad_clip_norm': Field(None, 'clip gradients to this global norm first; '
                            'None: no clipping',
                            _number(checks.POSITIVE, optional=True), float),
    'progress_bar': Field(True, 'show a tqdm bar on a terminal',
                          checks.boolean),
    'checkpoint_every_steps': Field(None, 'save a checkpoint every this many '
                                    'steps; None: at the end of each epoch '
                                    'only', _OPTIONAL_POSITIVE_INT, int),
    'keep_checkpoints': Field(3, 'how many of the newest checkpoints to keep',
                              _POSITIVE_INT),
    'restart': Field(False, 'move an existing run in the workdir aside and '
                     'start afresh', checks.boolean),
    'log_every_steps': Field(50, 'write the train loss to TensorBoard every '
                             'this many steps (0: never)', _COUNT),
    'progress_every_s': Field(10.0, 'log a progress line (step, loss, '
                              'images/s) at most this often, in seconds',
                              _number(checks.POSITIVE)),
    'num_devices': Field(None, 'devices per process the global batch is '
                         'split over; None: all local devices',
                         _OPTIONAL_POSITIVE_INT, int),
    'coordinator_address': Field(None, "several processes: process 0's "
                                 'host:port, or auto on a cluster scheduler; '
                                 'None: one process', kind=str),
    'num_processes': Field(None, 'several processes: how many take part '
                           '(with coordinator_address)',
                           _OPTIONAL_POSITIVE_INT, int),
    'process_id': Field(None, "several processes: this one's id, 0 to "
                        'num_processes - 1',
                        _number(checks.Range(0), integer=True, optional=True),
                        int),
    'shard_optimizer_state': Field(False, 'split the optimizer state over the '
                                   'devices (ZeRO-1) instead of a copy on '
                                   'each', checks.boolean),
}

# What picks a searched rate, by the search run's last epoch.
SEARCH_METRICS = ('val_accuracy', 'val_loss', 'train_loss')
# A comparison's workloads (experiments/compare.py's WORKLOADS defines them).
WORKLOADS = ('mnist_cnn', 'fashion_cnn', 'mnist_mlp', 'mnist_logreg',
             'mnist_vae')

COMPARISON: dict[str, Any] = {
    'optimizers': Field(tuple(registry.OPTIMIZERS), 'compare: the registry '
                        'optimizers to run, each once per seed', _names),
    'learning_rates': _rate_slots(
        "compare: this optimizer's fixed learning rate, > 0; None: searched "
        '(lr_search) or the registry\'s default rate'),
    'seeds': Field((0, 1), 'compare: one run per optimizer and seed; figures '
                   'show the mean and spread',
                   _numbers(_SEEDS, '"(0, 1)"',
                            integer=True)),
    'metric': Field('accuracy', 'compare: what ranks the optimizers: the '
                    'final test accuracy, or elbo (the test ELBO in nats, '
                    'minus the loss of the VAE, model vae)',
                    _choice(('accuracy', 'elbo'))),
    'target_accuracy': Field(0.99, "compare: the table's epoch and time to "
                             'first reach this value of the test metric: an '
                             'accuracy in (0, 1], an ELBO in nats (< 0)',
                             _number(checks.Range(high=1))),
    'lr_search': Field(True, 'compare: pick each unset rate on a validation '
                       'split first', checks.boolean),
    'lr_search_factors': Field((0.3, 1.0, 3.0, 10.0), 'compare: the search '
                               "grid, multiples of each optimizer's default "
                               'rate', _numbers(checks.POSITIVE,
                                                '"(0.3, 1.0, 3.0)"')),
    'lr_search_trials': Field(0, 'compare: 0 searches the rate grid '
                              '(lr_search_factors); N > 0 runs N quasi-random '
                              'trials per optimizer, the same N for each, over '
                              'its rate (lr_search_range) and its own b1, b2, '
                              'momentum and weight decay', _COUNT),
    'lr_search_range': Field((0.1, 10.0), 'compare: the trials\' learning '
                             "rates, log-uniform between these multiples of "
                             "each optimizer's default rate",
                             _numbers(checks.POSITIVE, '"(0.1, 10.0)"')),
    'lr_search_epochs': Field(1, 'compare: epochs per search run',
                              _POSITIVE_INT),
    'lr_search_validation_examples': Field(
        10_000, 'compare: training examples held out to score the search '
        '(never the test split)', _POSITIVE_INT),
    'lr_search_metric': Field('val_accuracy', 'compare: what picks the '
                              'searched rate: val_accuracy (ties: lower '
                              "val_loss), val_loss or train_loss (the paper's "
                              'rule)', _choice(SEARCH_METRICS)),
    'loss_smoothing': Field(0.98, 'compare: EMA weight of the smoothed loss '
                            'curve, in [0, 1)', _number(checks.BELOW_ONE)),
    'dpi': _DPI,
    'report_only': Field(False, 'compare: train nothing; write figures and '
                         'tables from the runs already in the workdir',
                         checks.boolean),
    'workloads': Field((), 'compare: run the comparison on each of '
                       + ', '.join(WORKLOADS) + ' into workdir/<workload> '
                       'and draw performance profiles across them; (): the '
                       "config's own model and dataset", _or_empty(
                           lambda name, value: checks.sequence(
                               name, value, _choice(WORKLOADS),
                               example='"(\'mnist_cnn\', \'mnist_mlp\')"'))),
    'fashion_mnist_dir': Field(None, "compare: the fashion_cnn workload's "
                               'IDX folder (data_dir is MNIST\'s); None '
                               'downloads through TFDS', kind=str),
}

_TOLERANCE = Field(1e-6, 'a path stops at its first step with loss below '
                   'this', _number(checks.POSITIVE))
_PROBLEM = Field('quadratic', '2-D test function: quadratic, '
                 'ill_conditioned, rosenbrock, beale, saddle')

PLAYGROUND: dict[str, Any] = {
    'problem': _PROBLEM,
    'start': Field(None, "start point (x, y); None: the problem's default",
                   _point, tuple),
    'optimizer': _optimizer_slots('adam', 0.1),
    'learning_rates': Field(
        (), 'playground: run the optimizer at each of these rates (vmapped), '
        'one panel per rate', _or_empty(
            lambda name, value: checks.sequence(
                name, value, checks.number, distinct=False,
                example='--config.learning_rates="(0.01, 0.1, 0.5)"'))),
    'compare': Field(False, 'playground: run every registry optimizer (or '
                     'compare_optimizers) from the same start',
                     checks.boolean),
    'compare_optimizers': Field(
        (), 'playground: the optimizers to compare; (): all',
        _or_empty(functools.partial(_names, distinct=False))),
    'compare_learning_rates': _rate_slots(
        "playground: this optimizer's own learning rate in a comparison; "
        'None: optimizer.learning_rate'),
    'tolerance': _TOLERANCE,
    # Its buffers are (runs, steps + 1, 2) float32.
    'max_steps': Field(2000, 'playground: the most steps a path takes',
                       _number(checks.Range(1, 1_000_000), integer=True)),
    'dpi': dataclasses.replace(_DPI, default=100),
    'animate': Field(True, 'playground: also write an animated GIF of the '
                     'paths', checks.boolean),
}

PLAYGROUND_WEB: dict[str, Any] = {
    'host': Field('127.0.0.1', 'address to serve on (127.0.0.1: this machine '
                  'only)'),
    'port': Field(8050, 'port to serve on; 0 picks a free one',
                  _number(checks.Range(0, 65535), integer=True)),
    'problem': _PROBLEM,
    'optimizers': Field(('adam', 'sgd'), "the first page's optimizers",
                        _names),
    'learning_rate': Field(0.1, "the first page's learning rate"),
    'steps': Field(2000, "the first page's number of steps (<= 10,000)"),
    'tolerance': _TOLERANCE,
}

VAE_GRID: dict[str, Any] = {
    'dataset': _DATASET,
    'data_dir': _DATA_DIR,
    'train_examples': Field(None, 'train on the first N training examples; '
                            'None: all of them', _OPTIONAL_POSITIVE_INT, int),
    'batch_size': Field(100, 'examples per Adam step', _POSITIVE_INT),
    'num_epochs': Field(10, 'epochs per run', _POSITIVE_INT),
    'seed': _SEED,
    'hidden': Field(500, "softplus units in the VAE's hidden layers",
                    _POSITIVE_INT),
    'latent': Field(50, "dimensions of the VAE's latent variable",
                    _POSITIVE_INT),
    'eps': Field(1e-8, "Adam's epsilon, >= 0", _number(checks.NON_NEGATIVE)),
    'bias_corrections': Field(
        (True, False), 'Adam variants to run: True (bias-corrected moments), '
        'False (uncorrected)', lambda name, value: checks.sequence(
            name, value, checks.boolean, example='"(True, False)"')),
    'b1s': Field((0.0, 0.9), 'first-moment decays of the grid',
                 _numbers(checks.BELOW_ONE, '"(0.0, 0.9)"')),
    'b2s': Field((0.99, 0.999, 0.9999), 'second-moment decays of the grid',
                 _numbers(checks.BELOW_ONE, '"(0.99, 0.999)"')),
    'log10_learning_rates': Field(
        (-5.0, -4.0, -3.0, -2.0, -1.0), "log10 of the grid's learning rates "
        '(one vmapped run each)', _numbers(checks.Range(-10, 1),
                                           '"(-4.0, -3.0)"')),
    'dpi': _DPI,
}

TASKS: dict[str, tuple[dict[str, Any], ...]] = {
    'classify': (TRAINING,),
    'compare': (TRAINING, COMPARISON),
    'playground': (PLAYGROUND,),
    'playground_web': (PLAYGROUND_WEB,),
    'vae_grid': (VAE_GRID,),
}
_TASK_HELP = ('what main.py runs: classify (train a model), compare '
              '(optimizers side by side), playground (2-D optimizer paths), '
              'playground_web (the same in the browser), vae_grid (Kingma & '
              'Ba 6.4)')


def fields(task: str) -> dict[str, Field]:
  """Every field of `task`, by dotted name ('optimizer.b1'), 'task' first."""
  checks.choice('config.task', task, TASKS)
  flat = {'task': Field(task, _TASK_HELP)}

  def add(group: dict[str, Any], prefix: str) -> None:
    """Adds a (possibly nested) group of fields under `prefix`."""
    for name, field in group.items():
      if isinstance(field, dict):
        add(field, f'{prefix}{name}.')
      else:
        flat[prefix + name] = field

  for group in TASKS[task]:
    add(group, '')
  return flat


def default_config(task: str) -> ml_collections.ConfigDict:
  """A ConfigDict with every field of `task` at its default."""
  config = ml_collections.ConfigDict()
  for name, field in fields(task).items():
    *groups, leaf = name.split('.')
    node = config
    for group in groups:
      if group not in node:
        node[group] = ml_collections.ConfigDict()
      node = node[group]
    node[leaf] = (config_dict.placeholder(field.kind)
                  if field.default is None else field.default)
  return config


def flatten(config: Any, prefix: str = '') -> dict[str, Any]:
  """{'a.b': value} for every leaf of a ConfigDict or a nested dict."""
  flat = {}
  for key, value in config.items():
    if isinstance(value, (dict, ml_collections.ConfigDict)):
      flat.update(flatten(value, f'{prefix}{key}.'))
    else:
      flat[f'{prefix}{key}'] = value
  return flat


def validate(config: ml_collections.ConfigDict) -> None:
  """Checks every field of `config` against its task's schema.

  Args:
    config: a config of any task (config.task says which).

  Raises:
    errors.ConfigError: naming the first bad or unknown field, its value and
      what is accepted.
  """
  schema = fields(config.get('task'))
  values = flatten(config)
  for name in values:
    if name not in schema:
      raise errors.ConfigError(
          f'config.{name} is not a field of task {config.task!r}; its fields '
          f'are listed by --show_config.'
          f'{checks.close_field(name, schema, "config.")}')
  for name, field in schema.items():
    if name not in values:
      raise errors.ConfigError(
          f'config.{name} is missing; a config of task {config.task!r} starts '
          f'from adamjax.schema.default_config({config.task!r}).')
    if field.check is not None:
      field.check(f'config.{name}', values[name])


def describe(config: ml_collections.ConfigDict) -> str:
  """Every field of `config` with its value and the line that explains it."""
  schema = fields(config.get('task', 'classify'))
  lines = []
  for name, value in sorted(flatten(config).items()):
    field = schema.get(name)
    lines.append(f'{name} = {value!r}')
    lines.append('    ' + (field.help if field else
                             '(no description: see the config file)'))
  return '\n'.join(lines)
