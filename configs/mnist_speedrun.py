"""The speedrun: the shortest time to 99.0% MNIST test accuracy on a 2-core CPU.

Run:
  python main.py --config=configs/mnist_speedrun.py --workdir=/tmp/speedrun \
      --config.data_dir=/path/to/mnist

Time it over 10 seeds beside the fast recipe and its PyTorch twin:
  MNIST_DIR=/path/to/mnist python benchmarks/time_to_accuracy.py \
      --recipes configs/mnist_fast.py configs/mnist_speedrun.py \
      --seeds 0 1 2 3 4 5 6 7 8 9 --torch

The fast recipe's schedule (one epoch, our Adam at a peak rate of 2e-2, 100
warm-up steps, cosine decay to zero, label smoothing 0.1, evaluated on a
moving average of the weights with decay 0.99) on a cheaper model, `cnn_fast`:
a stride-2 5x5 first layer (28x28 straight to 12x12, so nothing at full
resolution is pooled), a 3x3 second layer and a 128-unit hidden layer, about
a fifth of the seed CNN's training FLOPs per image; batch 128, in 8 gradient
chunks, two steps per dispatch (10,401 against 9,383 images/s for one step
and 16 chunks, interleaved in one run). The model was chosen by the
validation accuracy of seeds 0-1 (the last 10,000 training images held out)
among 14 variants of width, kernel, hidden layer, batch size, rate and b2:
99.03% and 99.00%, against 99.06% and 99.01% for the fast recipe.

Measured (2-core CPU, jax 0.10.2, 2026-12-07, side by side in one process;
RESULTS.md, "The speedrun"): over seeds 0-9, 99.09% mean test accuracy, the
worst seed 98.95%, in 6.60 s of training on average (6.10-7.56 s; compilation,
3.8 s on average, apart): 0.35 of the fast recipe's 18.84 s in the same run
(which took 9.2 s on 2026-11-26: the machine ran about half as fast that
day). The PyTorch twin took 8.34 s (99.15% mean). The 3-second target is not
met.
"""

from configs import mnist_fast


def get_config():
  """The fast recipe's schedule on the cheaper cnn_fast, at batch 128."""
  config = mnist_fast.get_config()
  config.model = 'cnn_fast'
  config.batch_size = 128
  config.grad_chunks = 8
  config.steps_per_dispatch = 2
  return config
