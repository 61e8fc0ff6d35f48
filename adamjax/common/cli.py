"""Command-line helpers for main.py: config files, overrides, quiet logs.

A user's mistake on the command line ends in `usage_exit`: one line saying
what is wrong, one saying where to look, exit status 2.
"""

import importlib.util
import json
import logging as std_logging
import os
import sys
import traceback
from typing import Any, Callable, NoReturn, Optional, Sequence

from absl import flags
from absl import logging
import ml_collections

from adamjax.common import checks
from adamjax.common import errors

EXIT_USER_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130
# Where a mistake's message sends the user.
HELP_HINT = ('See python main.py --help for the flags, and --config=FILE '
             '--show_config for every config field.')

# Loggers whose INFO lines are noise on a user's terminal (JAX probing for a
# TPU, Orbax's per-save bookkeeping, matplotlib's writer choice); their
# warnings and errors still show.
QUIET_LOGGERS = ('jax._src.xla_bridge', 'orbax', 'matplotlib', 'absl.orbax')
QUIET_PATHS = (os.sep + 'orbax' + os.sep, 'xla_bridge.py',
               os.sep + 'matplotlib' + os.sep)


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
  logging.get_absl_handler().addFilter(_QuietFilter())
  std_logging.getLogger('absl').addFilter(_QuietFilter())


def usage_exit(message: str) -> NoReturn:
  """Prints a command-line mistake in one line and exits with status 2."""
  print(f'Error: {message}', file=sys.stderr)
  print(HELP_HINT, file=sys.stderr)
  sys.exit(EXIT_USAGE)


def resolve_config_path(argv: Sequence[str],
                        root: str) -> tuple[list[str], Optional[str]]:
  """Finds --config's file, falling back to `root`'s configs/.

  A relative path that does not exist from the current folder is tried
  relative to `root` (main.py's folder), so `python path/to/main.py
  --config=configs/mnist.py` works from anywhere.

  Args:
    argv: the command line.
    root: the folder to try relative paths from.

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
    if not os.path.exists(value) and os.path.exists(os.path.join(root, value)):
      value = os.path.join(root, value)
    if arg == '--config':
      argv[i + 1] = value
    else:
      argv[i] = '--config=' + value
    path = value
  return argv, path


def load_config_file(path: str) -> ml_collections.ConfigDict:
  """Loads a config file's get_config(); its problems exit in one line."""
  if os.path.isdir(path):
    usage_exit(f'--config={path} is a folder; accepted: a config file such '
               'as configs/mnist.py.')
  if not os.path.isfile(path):
    usage_exit(f'--config={path}: no such file.')
  spec = importlib.util.spec_from_file_location('_config_probe', path)
  if spec is None or not path.endswith('.py'):
    usage_exit(f'--config={path} is not a Python config file; accepted: a '
               '.py file defining get_config(), such as configs/mnist.py.')
  module = importlib.util.module_from_spec(spec)
  try:
    spec.loader.exec_module(module)
  except SyntaxError as e:
    usage_exit(f'--config={path}: syntax error at line {e.lineno}: {e.msg}.')
  except ImportError as e:
    usage_exit(f'--config={path}: cannot be loaded: {e}.')
  except Exception as e:  # pylint: disable=broad-except
    # The file is the user's input, so its failure is theirs to fix.
    usage_exit(f'--config={path} failed while loading{_where(e, path)}: '
               f'{type(e).__name__}: {e}')
  if not callable(getattr(module, 'get_config', None)):
    usage_exit(f'--config={path} defines no get_config(); a config file '
               'must define get_config() returning a ConfigDict.')
  try:
    config = module.get_config()
  except Exception as e:  # pylint: disable=broad-except
    usage_exit(f'--config={path}: get_config() failed{_where(e, path)}: '
               f'{type(e).__name__}: {e}')
  if not isinstance(config, ml_collections.ConfigDict):
    usage_exit(f'--config={path}: get_config() returned a '
               f'{type(config).__name__}; accepted: an '
               'ml_collections.ConfigDict.')
  return config


def _where(error: BaseException, path: str) -> str:
  """' at line N' of the config file where `error` was raised, if there."""
  lines = [frame.lineno for frame in traceback.extract_tb(error.__traceback__)
           if os.path.abspath(frame.filename) == os.path.abspath(path)]
  return f' at line {lines[-1]}' if lines else ''


def _names(config: ml_collections.ConfigDict, prefix: str = '') -> list[str]:
  """The dotted name of every leaf of `config` ('optimizer.b1')."""
  names = []
  for key, value in config.items():
    if isinstance(value, ml_collections.ConfigDict):
      names.extend(_names(value, f'{prefix}{key}.'))
    else:
      names.append(prefix + key)
  return names


def sets_field(argv: Sequence[str], field: str) -> bool:
  """Whether the command line sets --config.FIELD (either flag form)."""
  flag = f'--config.{field}'
  return any(arg == flag or arg.startswith(flag + '=') for arg in argv)


def use_saved_field(config: ml_collections.ConfigDict, workdir: str,
                    field: str) -> None:
  """Sets config.FIELD to its value in workdir/config.json, if that has one.

  --mode=eval evaluates the run where it was trained (its data_dir) unless
  the command line says otherwise. A missing or unreadable config.json
  changes nothing here; the workdir's own checks report a damaged one.
  """
  try:
    with open(os.path.join(workdir, 'config.json'), 'rb') as f:
      saved = json.loads(f.read().decode('utf-8'))
  except (OSError, ValueError):
    return
  if isinstance(saved, dict) and field in saved and field in config:
    config[field] = saved[field]


def check_overrides(config: ml_collections.ConfigDict,
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
        hint = checks.close_field(path, _names(config), '--config.')
        fields = (', '.join(sorted(node.keys()))
                  if isinstance(node, ml_collections.ConfigDict) else
                  'none (it is not a group)')
        # A likely meaning says more than the whole list.
        usage_exit(f'--config.{path}: {where} has no field {part!r}.{hint}'
                   if hint else f'--config.{path}: {where} has no field '
                   f'{part!r}; its fields: {fields}.')
      node = node[part]
      walked.append(part)


def parse_flags(flag_values: flags.FlagValues, argv: Sequence[str],
                root: str) -> list[str]:
  """Parses main.py's flags; a bad flag, config file or field exits in one line.

  Args:
    flag_values: main.py's FLAGS (with its --config file flag).
    argv: the command line.
    root: the checkout, whose configs/ a relative --config falls back to.

  Returns:
    The arguments left after the flags, as absl's parser returns them.
  """
  if any(arg in ('--help', '-h', '-?', '--helpshort') for arg in argv[1:]):
    print(flag_values.main_module_help())
    print('\nEvery config field, with its value and meaning: python main.py '
          '--config=configs/mnist.py --show_config')
    sys.exit(0)
  argv, path = resolve_config_path(argv, root)
  if path is not None:
    check_overrides(load_config_file(path), argv)
  try:
    return flag_values(argv)
  except flags.Error as e:
    usage_exit(str(e))
  except (AttributeError, KeyError, TypeError, ValueError) as e:
    # ml_collections raises these for an override it cannot apply.
    usage_exit(f'a --config field could not be set: {e}')


def workdir_folder(workdir: Optional[str]) -> str:
  """--workdir with ~ expanded; exits in one line if missing or a file."""
  if not workdir:
    usage_exit('--workdir is required: the folder for checkpoints, metrics '
               'and plots.')
  # The shell does not expand ~ after '=', so --workdir=~/x would otherwise
  # create a folder named '~'.
  workdir = os.path.expanduser(workdir)
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    usage_exit(f'--workdir={workdir} is a file; accepted: a folder (it is '
               'created if missing).')
  return workdir


def run_task(run: Callable[[], Any]) -> None:
  """Calls run(); a user's mistake or a stop exits with its message.

  errors.UserError prints 'Error: ...' (with HELP_HINT for a config error)
  and exits with EXIT_USER_ERROR; an interrupted run or Ctrl-C exits with
  EXIT_INTERRUPTED. Any other exception is a bug and keeps its traceback.
  """
  try:
    run()
  except errors.InterruptedRun as e:
    print(e, file=sys.stderr)
    sys.exit(EXIT_INTERRUPTED)
  except errors.UserError as e:
    print(f'Error: {e}', file=sys.stderr)
    if isinstance(e, errors.ConfigError):
      print(HELP_HINT, file=sys.stderr)
    sys.exit(EXIT_USER_ERROR)
  except KeyboardInterrupt:
    print('Stopped by Ctrl-C.', file=sys.stderr)
    sys.exit(EXIT_INTERRUPTED)
