"""Shared defaults for the image-classification configs: the seed's recipe.

Every field, its default, accepted values and meaning is declared once, in
adamjax/schema.py; `python main.py --config=configs/mnist.py --show_config`
lists them. Each dataset's or recipe's config starts here and overrides a few.
"""

import ml_collections

from adamjax import schema


def get_config() -> ml_collections.ConfigDict:
  """The defaults: the seed's MNIST recipe (the CNN, Adam at 5e-4, batch 64)."""
  return schema.default_config('classify')
