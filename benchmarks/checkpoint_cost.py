"""What checkpointing costs the seed recipe: runs with and without, one process.

Trains the seed recipe (the CNN, our Adam at 5e-4, batch 64) for --epochs
epochs, --repeats times with the product's checkpointing (a save at the end of
every epoch, and every --every steps if given) and as many times with
`Checkpoints.save` replaced by a no-op, alternating so that background load
hits both alike, after one untimed run that compiles everything. Prints the
median wall time of each, their ratio, and the time the training loop spent
blocked in `save` (copying the state off the device and fingerprinting it;
Orbax writes the files in a background thread).

Usage, from the repository root:

  MNIST_DIR=/path/to/mnist python benchmarks/checkpoint_cost.py \
      [--epochs 2] [--repeats 2] [--every 100]
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

# Run as a script, sys.path[0] is benchmarks/; the project lives one level up.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from adamjax.trainer import checkpointing  # pylint: disable=g-import-not-at-top,wrong-import-position
from configs import default  # pylint: disable=g-import-not-at-top,wrong-import-position
import train  # pylint: disable=g-import-not-at-top,wrong-import-position


def timed_run(config, save_enabled: bool) -> tuple[float, float, int]:
  """Trains in a fresh workdir; returns (wall s, s blocked in save, saves)."""
  real_save = checkpointing.Checkpoints.save
  blocked, saves = [0.0], [0]

  def timed_save(self, state, meta):
    """The real save (or nothing), timed."""
    start = time.perf_counter()
    if save_enabled:
      real_save(self, state, meta)
    blocked[0] += time.perf_counter() - start
    saves[0] += 1

  checkpointing.Checkpoints.save = timed_save
  try:
    with tempfile.TemporaryDirectory() as workdir:
      start = time.perf_counter()
      train.train_and_evaluate(config, workdir)
      wall = time.perf_counter() - start
  finally:
    checkpointing.Checkpoints.save = real_save
  return wall, blocked[0], saves[0]


def main() -> None:
  """Parses flags, runs both variants alternately and prints the table."""
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--data_dir', default=os.environ.get('MNIST_DIR'))
  parser.add_argument('--epochs', type=int, default=2)
  parser.add_argument('--repeats', type=int, default=2)
  parser.add_argument('--every', type=int, default=None,
                      help='Also save every this many steps.')
  args = parser.parse_args()
  if not args.data_dir:
    sys.exit('Error: pass --data_dir or set MNIST_DIR to the MNIST IDX '
             'folder.')
  config = default.get_config()
  config.data_dir = args.data_dir
  config.num_epochs = args.epochs
  config.progress_bar = False
  config.checkpoint_every_steps = args.every
  # Compiles every jitted function once, so no timed run pays for it.
  timed_run(config, save_enabled=False)
  results = {True: [], False: []}
  for _ in range(args.repeats):
    for enabled in (True, False):
      results[enabled].append(timed_run(config, enabled))
  with_s = statistics.median(r[0] for r in results[True])
  without_s = statistics.median(r[0] for r in results[False])
  blocked = statistics.median(r[1] for r in results[True])
  saves = results[True][0][2]
  print(f'seed recipe, {args.epochs} epochs, checkpoint every '
        f'{args.every or "epoch"}; medians of {args.repeats} alternating runs')
  print(f'with checkpoints    {with_s:8.1f} s  ({saves} saves, '
        f'{1000 * blocked / saves:.0f} ms blocked per save)')
  print(f'without checkpoints {without_s:8.1f} s')
  print(f'with / without      {with_s / without_s:8.3f}')


if __name__ == '__main__':
  main()
