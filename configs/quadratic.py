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

from adamjax import schema


def get_config() -> ml_collections.ConfigDict:
  """Adam at 0.1 on x^2 + y^2 until the loss is below 1e-6."""
  return schema.default_config('playground')
