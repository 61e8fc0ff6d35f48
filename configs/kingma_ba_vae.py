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

from adamjax import schema


def get_config() -> ml_collections.ConfigDict:
  """The section 6.4 grid: 2 corrections x 2 b1 x 3 b2 x 5 rates, 10 epochs."""
  return schema.default_config('vae_grid')
