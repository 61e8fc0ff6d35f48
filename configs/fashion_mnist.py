"""The MNIST recipe on Fashion-MNIST (same format; TFDS `fashion_mnist`).

Run:
  python main.py --config=configs/fashion_mnist.py --workdir=/tmp/fashion \
      --config.data_dir=/usr/share/datasets/fashion-mnist
"""

from configs import default


def get_config():
  """The shared default with the dataset swapped."""
  config = default.get_config()
  config.dataset = 'fashion_mnist'
  config.num_epochs = 20
  return config
