"""Entry point: parse the config from flags, then run its task.

  python main.py --config=configs/mnist.py --workdir=/tmp/mnist \
      --config.optimizer.name=sgd --config.optimizer.learning_rate=0.1
"""

from absl import app
from absl import flags
from ml_collections import config_flags

import importlib

FLAGS = flags.FLAGS
flags.DEFINE_string('workdir', None, 'Folder for metrics, config and plots.')
config_flags.DEFINE_config_file('config', None, 'Path to a config file.',
                                lock_config=True)
flags.mark_flags_as_required(['config', 'workdir'])

# config.task -> 'module:function(config, workdir)'. Imported only when its
# task runs, so training never imports the playground's plotting stack.
TASKS = {
    'classify': 'train:train_and_evaluate',
    'playground': 'playground:run',
}


def task_function(task: str):
  """Imports and returns the function that runs `task`."""
  module, function = TASKS[task].split(':')
  return getattr(importlib.import_module(module), function)


def main(argv):
  """Runs config.task; bad input ends the run with its message, no traceback."""
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {" ".join(argv[1:])}')
  config = FLAGS.config
  if config.task not in TASKS:
    raise app.UsageError(
        f'config.task={config.task!r}; accepted: {", ".join(TASKS)}.')
  try:
    task_function(config.task)(config, FLAGS.workdir)
  except (ValueError, OSError, FloatingPointError) as e:
    # Our own checks raise these with a message that says what to change.
    raise SystemExit(f'Error: {e}') from e


if __name__ == '__main__':
  app.run(main)
