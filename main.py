"""Entry point: parse the config from flags, then run its task.

  python main.py --config=configs/mnist.py --workdir=/tmp/mnist \
      --config.optimizer.name=sgd --config.optimizer.learning_rate=0.1
  python main.py --config=configs/mnist.py --workdir=/tmp/mnist --mode=eval
  python main.py --config=configs/mnist.py --show_config

--mode=eval evaluates on the data_dir saved in the workdir's config.json
unless --config.data_dir is given. A mistake in the input ends the run with a
one- or two-line message and exit status 2 (command line) or 1 (anything
else); any other exception is a bug and keeps its traceback.
"""

import os
import sys
from typing import Any, Callable, Sequence

from absl import app
from absl import flags
from ml_collections import config_flags

from adamjax import schema
from adamjax.common import checks
from adamjax.common import cli
from adamjax.common import console

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


def task_function(task: str, mode: str) -> Callable[[Any, str], Any]:
  """The function that runs `task` in `mode`, imported only now.

  So training never imports the playground's plotting and web stack.
  """
  checks.choice('config.task', task, schema.TASKS)
  checks.choice('--mode', mode, ('train', 'eval') if task == 'classify' else
                ('train',))
  # pylint: disable=g-import-not-at-top
  if task == 'classify':
    import train
    return train.train_and_evaluate if mode == 'train' else train.evaluate_saved
  if task == 'compare':
    from adamjax.experiments import compare
    return compare.run
  if task == 'playground':
    from adamjax.playground import task as playground
    return playground.run
  if task == 'playground_web':
    from adamjax.playground import web
    return web.serve
  from adamjax.experiments import vae_grid
  return vae_grid.run


def parse_flags(argv: Sequence[str]) -> list[str]:
  """Parses flags; a bad flag, config file or field exits in one line."""
  return cli.parse_flags(FLAGS, argv, os.path.dirname(os.path.abspath(
      __file__)))


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
  workdir = cli.workdir_folder(FLAGS.workdir)
  cli.quiet_logs()
  console.setup(FLAGS)

  def run():
    """Picks the task's function and runs it on the config and workdir."""
    task = task_function(config.task, FLAGS.mode)
    if FLAGS.mode == 'eval' and not cli.sets_field(sys.argv, 'data_dir'):
      # Evaluated on the data it was trained on, unless told otherwise.
      cli.use_saved_field(config, workdir, 'data_dir')
    task(config, workdir)

  cli.run_task(run)


if __name__ == '__main__':
  app.run(main, flags_parser=parse_flags)
