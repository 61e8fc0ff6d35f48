"""The optimizer playground in the browser: move a knob, watch it converge.

Run:
  python main.py --config=configs/playground_web.py --workdir=/tmp/web

It prints the page's URL (http://127.0.0.1:8050/) and serves until Ctrl-C.
Every field can be set by flag, for example:
  --config.port=0                 # any free port (the URL says which)
  --config.host=0.0.0.0           # reachable from other machines
  --config.problem=rosenbrock --config.optimizers="('adam', 'momentum')"

The fields below are the page's first settings; everything else (rates, b1,
b2, eps, options, the start point, more optimizers) is set on the page.
Downloads from the page also save a copy in the workdir.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  """Adam and SGD at 0.1 on x^2 + y^2, served on 127.0.0.1:8050."""
  config = ml_collections.ConfigDict()
  config.task = 'playground_web'
  config.host = '127.0.0.1'  # Only this machine; 0.0.0.0 for every address.
  config.port = 8050  # 0 picks a free port.
  # The first page: a problem (see playground.PROBLEMS), up to five registry
  # optimizers at one learning rate, from the problem's default start.
  config.problem = 'quadratic'
  config.optimizers = ('adam', 'sgd')
  config.learning_rate = 0.1
  config.steps = 2000  # At most 10,000 on the page.
  config.tolerance = 1e-6
  return config
