"""Optimizer comparison on MNIST: the seed recipe's CNN under many optimizers.

Run (every registry optimizer, each at its searched learning rate):
  python main.py --config=configs/compare.py --workdir=/tmp/compare \
      --config.data_dir=/path/to/mnist

A few optimizers at rates of your choosing, no search:
  python main.py --config=configs/compare.py --workdir=/tmp/compare \
      --config.data_dir=/path/to/mnist --config.lr_search=False \
      --config.optimizers="('adam','sgd','momentum')" \
      --config.learning_rates.sgd=0.05

The tuning protocol of AlgoPerf and Schmidt et al. (2021): the same budget of
quasi-random trials for every optimizer (rate log-uniform over 0.1x-10x its
default; its own b1, b2, momentum, weight decay), chosen on validation
examples, then rerun on 10 seeds; summary.md gives 95% bootstrap intervals
and ranks that tie where the intervals overlap, ranking.png draws them:
  python main.py --config=configs/compare.py --workdir=/tmp/protocol \
      --config.data_dir=/path/to/mnist --config.lr_search_trials=16 \
      --config.seeds="(0,1,2,3,4,5,6,7,8,9)"

The five workloads (the seed CNN on MNIST and on Fashion-MNIST, the paper's
MLP, logistic regression and VAE), each into WORKDIR/<workload>, with
AlgoPerf's performance profiles across them; then the study's report from
any finished comparisons, also ones run with different budgets:
  python main.py --config=configs/compare.py --workdir=/tmp/study \
      --config.data_dir=/path/to/mnist --config.fashion_mnist_dir=/path/to/fashion \
      --config.workloads="('mnist_cnn','fashion_cnn','mnist_mlp','mnist_logreg','mnist_vae')" \
      --config.lr_search_trials=6 --config.seeds="(0,1,2,3,4,5,6,7,8,9)"
  python -m adamjax.experiments.study --out=results/protocol /tmp/study

Every other field is the seed recipe's (configs/default.py) and applies to
every run: the schedule, batch size, epochs, clipping. The hyperparameters in
`config.optimizer` (b1, momentum, ...; unset by default) apply to each listed
optimizer that takes them; `config.optimizer.name` and `.learning_rate` are
not used (the list and `learning_rates` replace them). The results are in
RESULTS.md; see compare.py for what is written where.
"""

import ml_collections

from adamjax import schema


def get_config() -> ml_collections.ConfigDict:
  """The comparison: every registry optimizer, searched rates, 5 epochs, 2 seeds."""
  config = schema.default_config('compare')
  config.num_epochs = 5
  # Per-step losses go to TensorBoard, where the loss figure reads them.
  config.log_every_steps = 1
  config.progress_bar = False
  return config
