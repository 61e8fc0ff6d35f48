"""Entry point: parse the config from flags, then run its task.

  python main.py --config=configs/mnist.py --workdir=/tmp/mnist \
      --config.optimizer.name=sgd --config.optimizer.learning_rate=0.1
  python main.py --config=configs/mnist.py --workdir=/tmp/mnist --mode=eval
  python main.py --config=configs/mnist.py --show_config

--mode=eval evaluates on the data_dir saved in the workdir's config.json
unless --config.data_dir is given. Log lines reach the terminal as plain
messages, above the progress bar; --log_dir=DIR also writes absl's
timestamped lines to files in DIR.

A mistake in the input (a flag, a config file or field, a data file, a
workdir) ends the run with a one- or two-line message and exit status 2
(command line) or 1 (everything else); any other exception is a bug and keeps
its traceback.
"""

import os
import sys
from typing import Any, Callable, Sequence

from absl import app
from absl import flags
from ml_collections import config_flags

from adamjax import schema
from adamjax.common import cli
from adamjax.common import console
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

Task = Callable[[Any, str], Any]


# Each task's entry point is imported only when it runs, so training never
# imports the playground's plotting and web stack.
def _train() -> Task:
  import train  # pylint: disable=g-import-not-at-top
  return train.train_and_evaluate


def _evaluate() -> Task:
  import train  # pylint: disable=g-import-not-at-top
  return train.evaluate_saved


def _compare() -> Task:
  from adamjax.experiments import compare  # pylint: disable=g-import-not-at-top
  return compare.run


def _playground() -> Task:
  from adamjax.playground import task  # pylint: disable=g-import-not-at-top
  return task.run


def _playground_web() -> Task:
  from adamjax.playground import web  # pylint: disable=g-import-not-at-top
  return web.serve


def _vae_grid() -> Task:
  from adamjax.experiments import vae_grid  # pylint: disable=g-import-not-at-top
  return vae_grid.run


TASKS: dict[tuple[str, str], Callable[[], Task]] = {
    ('classify', 'train'): _train,
    ('classify', 'eval'): _evaluate,
    ('compare', 'train'): _compare,
    ('playground', 'train'): _playground,
    ('playground_web', 'train'): _playground_web,
    ('vae_grid', 'train'): _vae_grid,
}


def task_function(task: str, mode: str) -> Task:
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
  return TASKS[task, mode]()


def parse_flags(argv: Sequence[str]) -> list[str]:
  """Parses flags; a bad flag, config file or field exits in one line."""
  if any(arg in ('--help', '-h', '-?', '--helpshort') for arg in argv[1:]):
    print(FLAGS.main_module_help())
    print('\nEvery config field, with its value and meaning: python main.py '
          '--config=configs/mnist.py --show_config')
    sys.exit(0)
  argv, path = cli.resolve_config_path(
      argv, os.path.dirname(os.path.abspath(__file__)))
  if path is not None:
    cli.check_overrides(cli.load_config_file(path), argv)
  try:
    return FLAGS(argv)
  except flags.Error as e:
    cli.usage_exit(str(e))
  except (AttributeError, KeyError, TypeError, ValueError) as e:
    # ml_collections raises these for an override it cannot apply.
    cli.usage_exit(f'a --config field could not be set: {e}')


def main(argv: Sequence[str]) -> None:
  """Runs config.task; a user's mistake ends the run with its message."""
  if len(argv) > 1:
    cli.usage_exit(f'unexpected arguments: {" ".join(argv[1:])} (flags take '
                   'the form --name=value).')
  if FLAGS.config is None:
    cli.usage_exit('--config is required, e.g. --config=configs/mnist.py.')
  config = FLAGS.config
  if FLAGS.show_config:
    print(schema.describe(config))
    return
  if not FLAGS.workdir:
    cli.usage_exit('--workdir is required: the folder for checkpoints, '
                   'metrics and plots.')
  # The shell does not expand ~ after '=', so --workdir=~/x would otherwise
  # create a folder named '~'.
  workdir = os.path.expanduser(FLAGS.workdir)
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    cli.usage_exit(f'--workdir={workdir} is a file; accepted: a folder (it is '
                   'created if missing).')
  cli.quiet_logs()
  console.setup(FLAGS)
  try:
    task = task_function(config.task, FLAGS.mode)
    if FLAGS.mode == 'eval' and not cli.sets_field(sys.argv, 'data_dir'):
      # Evaluated on the data it was trained on, unless told otherwise.
      cli.use_saved_field(config, workdir, 'data_dir')
    task(config, workdir)
  except errors.InterruptedRun as e:
    print(e, file=sys.stderr)
    sys.exit(cli.EXIT_INTERRUPTED)
  except errors.UserError as e:
    print(f'Error: {e}', file=sys.stderr)
    if isinstance(e, errors.ConfigError):
      print(cli.HELP_HINT, file=sys.stderr)
    sys.exit(cli.EXIT_USER_ERROR)
  except KeyboardInterrupt:
    print('Stopped by Ctrl-C.', file=sys.stderr)
    sys.exit(cli.EXIT_INTERRUPTED)


if __name__ == '__main__':
  app.run(main, flags_parser=parse_flags)
