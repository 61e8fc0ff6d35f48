"""The optimizer playground: our Adam on f(x, y) = x^2 + y^2, and more.

Run:
  python main.py --config=configs/quadratic.py --workdir=/tmp/playground

Every field can be set by flag, for example:
  --config.optimizer.learning_rate=0.5 --config.optimizer.b1=0.5
  --config.start="(1.5, -1.0)" --config.max_steps=200
  --config.learning_rates="(0.01, 0.1, 0.5)"    # one panel per rate
  --config.problem=ill_conditioned --config.compare=True
  --config.compare_learning_rates.sgd=0.009     # one optimizer's own rate
  --config.compare_optimizers="('adam', 'sgd')"  # compare these only

Problems: quadratic, ill_conditioned, rosenbrock, beale, saddle (see
playground.PROBLEMS).
"""

import ml_collections
from ml_collections import config_dict

from configs import default
from adamjax.optim import registry


def get_config() -> ml_collections.ConfigDict:
  """Adam at 0.1 on x^2 + y^2 until the loss is below 1e-6."""
  config = ml_collections.ConfigDict()
  config.task = 'playground'
  config.problem = 'quadratic'
  # (x, y); None starts from the problem's default start point.
  config.start = config_dict.placeholder(tuple)
  # The optimizer and its hyperparameters (None: its default), as in training.
  config.optimizer = default.optimizer_config('adam', 0.1)
  # Non-empty: run config.optimizer at each of these rates instead of its
  # learning_rate, vmapped in one computation, and draw one panel per rate.
  config.learning_rates = ()
  # Run every registry optimizer (or those in compare_optimizers) at its
  # default hyperparameters and optimizer.learning_rate, except where
  # compare_learning_rates sets its own rate.
  config.compare = False
  config.compare_optimizers = ()
  config.compare_learning_rates = ml_collections.ConfigDict(
      {name: config_dict.placeholder(float) for name in registry.OPTIMIZERS})
  # A run stops at its first step with loss < tolerance, or at max_steps.
  config.tolerance = 1e-6
  config.max_steps = 2000
  config.dpi = 100
  config.animate = True
  return config
