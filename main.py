"""Entry point: parse the config from flags, then run its task.

  python main.py --config=configs/mnist.py --workdir=/tmp/mnist \
      --config.optimizer.name=sgd --config.optimizer.learning_rate=0.1
  python main.py --config=configs/mnist.py --workdir=/tmp/mnist --mode=eval
  python main.py --config=configs/mnist.py --show_config

A mistake in the input (a flag, a config file or field, a data file, a
workdir) ends the run with a one- or two-line message and exit status 2
(command line) or 1 (everything else); any other exception is a bug and keeps
its traceback.
"""

import importlib
import importlib.util
import logging as std_logging
import os
import sys
from typing import Any, Callable, Sequence

from absl import app
from absl import flags
from absl import logging
import ml_collections
from ml_collections import config_flags

from adamjax.common import errors

FLAGS = flags.FLAGS
flags.DEFINE_string('workdir', None,
                    'Folder for checkpoints, metrics, config and plots; '
                    'rerunning with the same folder resumes the run.')
config_flags.DEFINE_config_file(
    'config', None, 'Path to a config file (see configs/); any field can be '
    'set with --config.FIELD=VALUE (list them with --show_config).',
    lock_config=True)
flags.DEFINE_enum('mode', 'train', ['train', 'eval'],
                  'train: train (or resume) the run in --workdir; eval: '
                  'evaluate its newest checkpoint on the test split.')
flags.DEFINE_bool('show_config', False,
                  'Print every config field with its value and meaning, '
                  'then exit.')

# (config.task, mode) -> 'module:function(config, workdir)'. Imported only
# when its task runs, so training never imports the playground's plotting
# stack.
TASKS = {
    ('classify', 'train'): 'train:train_and_evaluate',
    ('classify', 'eval'): 'train:evaluate_saved',
    ('compare', 'train'): 'adamjax.experiments.compare:run',
    ('playground', 'train'): 'adamjax.playground:run',
    ('playground_web', 'train'): 'adamjax.playground.web:serve',
    ('vae_grid', 'train'): 'adamjax.experiments.vae_grid:run',
}

# Loggers whose INFO lines are noise on a user's terminal (JAX probing for a
# TPU, Orbax's per-save bookkeeping, matplotlib's writer choice); their
# warnings and errors still show.
QUIET_LOGGERS = ('jax._src.xla_bridge', 'orbax', 'matplotlib', 'absl.orbax')
QUIET_PATHS = (os.sep + 'orbax' + os.sep, 'xla_bridge.py',
               os.sep + 'matplotlib' + os.sep)
EXIT_USER_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130


class _QuietFilter(std_logging.Filter):
  """Drops INFO-and-below records logged from noisy libraries' files."""

  def filter(self, record: std_logging.LogRecord) -> bool:
    """Keeps warnings, errors and everything from the project itself."""
    return record.levelno >= std_logging.WARNING or not any(
        part in record.pathname for part in QUIET_PATHS)


def quiet_logs() -> None:
  """Silences the INFO chatter of JAX, Orbax and matplotlib."""
  for name in QUIET_LOGGERS:
    std_logging.getLogger(name).setLevel(std_logging.WARNING)
  # Orbax logs through absl's single logger, so filter by source file.
  for handler in (logging.get_absl_handler(),):
    handler.addFilter(_QuietFilter())
  std_logging.getLogger('absl').addFilter(_QuietFilter())


def task_function(task: str, mode: str) -> Callable[[Any, str], Any]:
  """Imports and returns the function that runs `task` in `mode`."""
  if (task, mode) not in TASKS:
    modes = sorted(m for t, m in TASKS if t == task)
    if modes:
      raise errors.ConfigError(
          f'--mode={mode} is not available for config.task={task!r}; '
          f'accepted: {", ".join(modes)}.')
    tasks = sorted({t for t, _ in TASKS})
    raise errors.ConfigError(
        f'config.task={task!r} is invalid; accepted: {", ".join(tasks)}.')
  module, function = TASKS[task, mode].split(':')
  return getattr(importlib.import_module(module), function)


def _usage_exit(message: str) -> None:
  """Prints a command-line mistake in one line and exits with status 2."""
  print(f'Error: {message}', file=sys.stderr)
  print('Run with --helpfull for every flag, or --config=FILE --show_config '
        'for every config field.', file=sys.stderr)
  sys.exit(EXIT_USAGE)


def _config_path(argv: Sequence[str]) -> tuple[list[str], str | None]:
  """Finds --config's file, falling back to this checkout's configs/.

  A relative path that does not exist from the current folder is tried
  relative to main.py's folder, so `python path/to/main.py
  --config=configs/mnist.py` works from anywhere.

  Returns:
    argv with --config's value made absolute where that was needed, and the
    path (or None if --config is absent).
  """
  argv, path = list(argv), None
  for i, arg in enumerate(argv):
    if arg.startswith('--config='):
      value = arg[len('--config='):]
    elif arg == '--config' and i + 1 < len(argv):
      value = argv[i + 1]
    else:
      continue
    here = os.path.dirname(os.path.abspath(__file__))
    if not os.path.exists(value) and os.path.exists(os.path.join(here, value)):
      value = os.path.join(here, value)
    if arg == '--config':
      argv[i + 1] = value
    else:
      argv[i] = '--config=' + value
    path = value
  return argv, path


def load_config_file(path: str) -> ml_collections.ConfigDict:
  """Loads a config file's get_config(); its problems exit in one line."""
  if not os.path.isfile(path):
    _usage_exit(f'--config={path}: no such file.')
  spec = importlib.util.spec_from_file_location('_config_probe', path)
  module = importlib.util.module_from_spec(spec)
  try:
    spec.loader.exec_module(module)
  except SyntaxError as e:
    _usage_exit(f'--config={path}: syntax error at line {e.lineno}: {e.msg}.')
  except ImportError as e:
    _usage_exit(f'--config={path}: cannot be loaded: {e}.')
  if not callable(getattr(module, 'get_config', None)):
    _usage_exit(f'--config={path} defines no get_config(); a config file '
                'must define get_config() returning a ConfigDict.')
  return module.get_config()


def _check_overrides(config: ml_collections.ConfigDict,
                     argv: Sequence[str]) -> None:
  """Exits naming the first --config.FIELD that the config does not have."""
  for arg in argv:
    if not arg.startswith('--config.'):
      continue
    path = arg[len('--config.'):].split('=', 1)[0]
    node, walked = config, []
    for part in path.split('.'):
      if not isinstance(node, ml_collections.ConfigDict) or part not in node:
        where = 'config' + ''.join(f'.{w}' for w in walked)
        fields = (', '.join(sorted(node.keys()))
                  if isinstance(node, ml_collections.ConfigDict) else
                  'none (it is not a group)')
        _usage_exit(f'--config.{path}: {where} has no field {part!r}; its '
                    f'fields: {fields}.')
      node = node[part]
      walked.append(part)


def parse_flags(argv: Sequence[str]) -> list[str]:
  """Parses flags; a bad flag, config file or field exits in one line."""
  if any(arg in ('--help', '-h', '-?', '--helpshort') for arg in argv[1:]):
    print(FLAGS.main_module_help())
    print('\nEvery config field, with its value and meaning: python main.py '
          '--config=configs/mnist.py --show_config')
    sys.exit(0)
  argv, path = _config_path(argv)
  if path is not None:
    _check_overrides(load_config_file(path), argv)
  try:
    return FLAGS(argv)
  except flags.Error as e:
    _usage_exit(str(e))
  except (AttributeError, KeyError, TypeError, ValueError) as e:
    # ml_collections raises these for an override it cannot apply.
    _usage_exit(f'a --config field could not be set: {e}')


def show_config(config: ml_collections.ConfigDict) -> str:
  """Every field of `config` with its value and the line that explains it."""
  from adamjax.common import fields  # pylint: disable=g-import-not-at-top
  lines = []
  for name, value in sorted(_flatten(config).items()):
    lines.append(f'{name} = {value!r}')
    lines.append(f'    {fields.describe(name)}')
  return '\n'.join(lines)


def _flatten(config: ml_collections.ConfigDict,
             prefix: str = '') -> dict[str, Any]:
  """{'a.b': value} for every leaf field of `config`."""
  flat = {}
  for key, value in config.items():
    if isinstance(value, ml_collections.ConfigDict):
      flat.update(_flatten(value, f'{prefix}{key}.'))
    else:
      flat[f'{prefix}{key}'] = value
  return flat


def main(argv: Sequence[str]) -> None:
  """Runs config.task; a user's mistake ends the run with its message."""
  if len(argv) > 1:
    _usage_exit(f'unexpected arguments: {" ".join(argv[1:])} (flags take '
                'the form --name=value).')
  if FLAGS.config is None:
    _usage_exit('--config is required, e.g. --config=configs/mnist.py.')
  config = FLAGS.config
  if FLAGS.show_config:
    print(show_config(config))
    return
  if not FLAGS.workdir:
    _usage_exit('--workdir is required: the folder for checkpoints, metrics '
                'and plots.')
  # The shell does not expand ~ after '=', so --workdir=~/x would otherwise
  # create a folder named '~'.
  workdir = os.path.expanduser(FLAGS.workdir)
  quiet_logs()
  try:
    if 'coordinator_address' in config:
      # Joins a multi-process run (a no-op for one process) before anything
      # touches a device, as jax.distributed.initialize requires.
      from adamjax.trainer import distributed  # pylint: disable=g-import-not-at-top
      distributed.initialize(config)
    task_function(config.task, FLAGS.mode)(config, workdir)
  except errors.InterruptedRun as e:
    print(f'Stopped: {e}', file=sys.stderr)
    sys.exit(EXIT_INTERRUPTED)
  except errors.UserError as e:
    print(f'Error: {e}', file=sys.stderr)
    sys.exit(EXIT_USER_ERROR)
  except KeyboardInterrupt:
    print('Stopped by Ctrl-C.', file=sys.stderr)
    sys.exit(EXIT_INTERRUPTED)


if __name__ == '__main__':
  app.run(main, flags_parser=parse_flags)
