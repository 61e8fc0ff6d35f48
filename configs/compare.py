"""Optimizer comparison on MNIST: the seed recipe's CNN under many optimizers.

Run (every registry optimizer, each at its searched learning rate):
  python main.py --config=configs/compare.py --workdir=/tmp/compare \
      --config.data_dir=/path/to/mnist

A few optimizers at rates of your choosing, no search:
  python main.py --config=configs/compare.py --workdir=/tmp/compare \
      --config.data_dir=/path/to/mnist --config.lr_search=False \
      --config.optimizers="('adam','sgd','momentum')" \
      --config.learning_rates.sgd=0.05

Every other field is the seed recipe's (configs/default.py) and applies to
every run: the schedule, batch size, epochs, clipping. The hyperparameters in
`config.optimizer` (b1, momentum, ...; unset by default) apply to each listed
optimizer that takes them; `config.optimizer.name` and `.learning_rate` are
not used (the list and `learning_rates` replace them). The results are in
RESULTS.md; see compare.py for what is written where.
"""

import ml_collections
from ml_collections import config_dict

from configs import default

# The registry's names, in the order the comparison shows them.
ALL_OPTIMIZERS = ('adam', 'optax_adam', 'adamw', 'nadam', 'amsgrad', 'adamax',
                  'sgd', 'momentum', 'nesterov', 'rmsprop', 'adagrad',
                  'adadelta')


def get_config() -> ml_collections.ConfigDict:
  """The comparison: 12 optimizers, searched rates, 5 epochs, 2 seeds."""
  config = default.get_config()
  config.task = 'compare'
  config.num_epochs = 5
  config.optimizers = ALL_OPTIMIZERS
  # One slot per registry optimizer: a number fixes its rate; None takes the
  # searched rate (lr_search=True) or compare.DEFAULT_LEARNING_RATES.
  config.learning_rates = ml_collections.ConfigDict(
      {name: config_dict.placeholder(float) for name in ALL_OPTIMIZERS})
  config.seeds = (0, 1)
  config.target_accuracy = 0.99
  config.lr_search = True
  # The grid: each optimizer's default rate times these factors.
  config.lr_search_factors = (0.3, 1.0, 3.0, 10.0)
  config.lr_search_epochs = 1
  # The last this many training examples (of a seeded permutation) are held
  # out for the search; the search never sees the test split.
  config.lr_search_validation_examples = 10_000
  # What picks the rate (compare.SEARCH_METRICS): 'val_accuracy' (ties: the
  # lower val_loss), 'val_loss', or 'train_loss' (Kingma & Ba's rule).
  config.lr_search_metric = 'val_accuracy'
  # Per-step losses go to TensorBoard, where the loss figure reads them.
  config.log_every_steps = 1
  # Weight of the exponential moving average drawn over the raw loss curve.
  config.loss_smoothing = 0.98
  config.dpi = 120
  # True: train nothing, only write the figures and tables from the runs
  # already in the workdir (unfinished ones show the epochs they logged).
  config.report_only = False
  config.progress_bar = False
  return config
