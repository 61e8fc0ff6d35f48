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

from adamjax import schema


def get_config() -> ml_collections.ConfigDict:
  """Adam and SGD at 0.1 on x^2 + y^2, served on 127.0.0.1:8050."""
  return schema.default_config('playground_web')
