"""The seed's MNIST recipe: the CNN, our Adam at 5e-4, batch 64, 50 epochs.

Run:
  python main.py --config=configs/mnist.py --workdir=/tmp/mnist \
      --config.data_dir=/path/to/mnist

Measured: see the README's results table (filled from a real run).
"""

from configs import default


def get_config():
  """The seed recipe is the shared default."""
  return default.get_config()
