"""Wall-clock time to a target test accuracy: the seed recipe beside the fast one.

Trains each recipe (a config file) with `train.train_and_evaluate`, one after
the other in this process, per seed, and reports the training time until the
test accuracy first reaches --target: the sum of the epochs' `epoch_time_s`
up to that epoch (epoch 1 includes compilation; the evaluation after each
epoch, about a second on MNIST, is not counted for either recipe), and the
ratio of the fast recipe's time to the seed recipe's.

Usage, from the repository root:

  MNIST_DIR=/path/to/mnist python benchmarks/time_to_accuracy.py \
      [--recipes configs/mnist.py configs/mnist_fast.py] [--seeds 0] \
      [--target 0.99] [--max_epochs 6] [--workdir /tmp/tta]

A recipe's epochs are capped at --max_epochs (the seed recipe's constant rate
makes its first epochs the same whatever num_epochs is; a scheduled recipe
should fit in the cap, as configs/mnist_fast.py does).
"""

import argparse
import os
import sys
import tempfile

# Run as a script, sys.path[0] is benchmarks/; the project lives one level up.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from adamjax.experiments import report  # pylint: disable=g-import-not-at-top,wrong-import-position
from adamjax.common import cli  # pylint: disable=g-import-not-at-top,wrong-import-position
from adamjax.trainer import metrics_log  # pylint: disable=g-import-not-at-top,wrong-import-position
import train  # pylint: disable=g-import-not-at-top,wrong-import-position


def main() -> None:
  """Trains every recipe for every seed and prints the times side by side."""
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--data_dir', default=os.environ.get('MNIST_DIR'))
  parser.add_argument('--recipes', nargs='+',
                      default=['configs/mnist.py', 'configs/mnist_fast.py'])
  parser.add_argument('--seeds', nargs='+', type=int, default=[0])
  parser.add_argument('--target', type=float, default=0.99)
  parser.add_argument('--max_epochs', type=int, default=6)
  parser.add_argument('--workdir', default=None,
                      help='Where the runs go (default: a temporary folder).')
  args = parser.parse_args()
  if not args.data_dir:
    sys.exit('Set MNIST_DIR or pass --data_dir (a folder of MNIST IDX files).')
  workdir = args.workdir or tempfile.mkdtemp(prefix='time_to_accuracy_')
  print(f'load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; '
        f'runs in {workdir}', flush=True)
  results = []
  for seed in args.seeds:
    for path in args.recipes:
      config = cli.load_config_file(os.path.join(ROOT, path)
                                    if not os.path.exists(path) else path)
      config.data_dir = args.data_dir
      config.seed = seed
      config.num_epochs = min(config.num_epochs, args.max_epochs)
      config.progress_bar = False
      config.log_every_steps = 0
      config.restart = True
      name = os.path.splitext(os.path.basename(path))[0]
      run_dir = os.path.join(workdir, f'{name}_seed{seed}')
      train.train_and_evaluate(config, run_dir)
      rows = metrics_log.read_metrics(run_dir)
      epoch, seconds = report.time_to_target(rows, args.target)
      results.append((name, seed, epoch, seconds,
                      max(r['test_accuracy'] for r in rows), len(rows)))
      print(f'{name} seed {seed}: ' + (
          f'{args.target:.3f} at epoch {epoch}, {seconds:.1f} s of training'
          if epoch else f'{args.target:.3f} not reached in {len(rows)} '
          'epochs') + ', accuracy per epoch ' + ', '.join(
              f'{r["test_accuracy"]:.4f}' for r in rows), flush=True)
  print(f'\n| recipe | seed | epoch reaching {args.target:.1%} | training time '
        'to it (s) | vs the first recipe |')
  print('| --- | ---: | ---: | ---: | ---: |')
  base = {seed: seconds for name, seed, _, seconds, _, _ in results
          if name == os.path.splitext(os.path.basename(args.recipes[0]))[0]}
  for name, seed, epoch, seconds, _, epochs in results:
    ratio = (f'{seconds / base[seed]:.2f}' if seconds and base.get(seed)
             else '—')
    print(f'| {name} | {seed} | {epoch or f"not in {epochs}"} | '
          f'{f"{seconds:.1f}" if seconds else "—"} | {ratio} |')


if __name__ == '__main__':
  main()
