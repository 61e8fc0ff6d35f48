"""Kingma & Ba (2015) section 6.4, Figure 4: bias correction in Adam, on a VAE.

  python main.py --config=configs/kingma_ba_vae.py --workdir=/tmp/vae_grid \
      --config.data_dir=/path/to/mnist

The paper's grid: Adam with and without bias correction, b1 in {0, 0.9}, b2
in {0.99, 0.999, 0.9999}, log10(alpha) in [-5, -1], the loss after 10 epochs
(and 100). The defaults here are the paper's grid on the whole training
split; the run reported in RESULTS.md used fewer examples (see there), e.g.
--config.train_examples=10000. See vae_grid.py for what is written where.
"""

import ml_collections
from ml_collections import config_dict


def get_config() -> ml_collections.ConfigDict:
  """The section 6.4 grid: 2 corrections x 2 b1 x 3 b2 x 5 rates, 10 epochs."""
  config = ml_collections.ConfigDict()
  config.task = 'vae_grid'
  config.dataset = 'mnist'
  config.data_dir = config_dict.placeholder(str)
  # None: the whole training split; N: its first N examples.
  config.train_examples = config_dict.placeholder(int)
  config.batch_size = 100
  config.num_epochs = 10
  config.seed = 0
  config.hidden = 500
  config.latent = 50
  config.eps = 1e-8
  config.bias_corrections = (True, False)
  config.b1s = (0.0, 0.9)
  config.b2s = (0.99, 0.999, 0.9999)
  config.log10_learning_rates = (-5.0, -4.0, -3.0, -2.0, -1.0)
  config.dpi = 120
  return config
