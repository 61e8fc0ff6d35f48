"""Time to a target test accuracy: the seed recipe beside the speedrun, over seeds.

Trains each recipe (a config file) with `train.train_and_evaluate`, one
after the other in this process, for every seed, and reports per run the
training time until the test accuracy first reaches --target: the epochs'
wall time minus the part JAX spent compiling (`compile_time_s`, reported on
its own), without the evaluation after each epoch. Then, per recipe, the mean
and the worst final accuracy, how many seeds reached the target and the mean
time to it, and the ratio to the first recipe's.

With --torch, the speedrun's PyTorch twin runs beside it, seed by seed: the
same model (`models.FastCNN` written in torch.nn), batch size, Adam with the
same warm-up and cosine schedule, label smoothing and moving average of the
weights, read from --speedrun's config; the data stays in memory as tensors
and each epoch slices a seeded permutation, as our loop gathers on the
device. Its time is the training loop's wall time.

Usage, from the repository root:

  MNIST_DIR=/path/to/mnist python benchmarks/time_to_accuracy.py \
      [--recipes configs/mnist.py configs/mnist_speedrun.py] \
      [--seeds 0 1 2] [--target 0.99] [--max_epochs 6] [--torch]

A recipe's epochs are capped at --max_epochs (the seed recipe's constant rate
makes its first epochs the same whatever num_epochs is; a scheduled recipe
should fit in the cap, as the one-epoch recipes do).
"""

import argparse
import dataclasses
import os
import statistics
import sys
import tempfile
import time
from typing import Any, Optional

import numpy as np

# Run as a script, sys.path[0] is benchmarks/; the project lives one level up.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from adamjax.common import cli  # pylint: disable=g-import-not-at-top,wrong-import-position
from adamjax.data import input_pipeline  # pylint: disable=g-import-not-at-top,wrong-import-position
from adamjax.experiments import report  # pylint: disable=g-import-not-at-top,wrong-import-position
from adamjax.trainer import metrics_log  # pylint: disable=g-import-not-at-top,wrong-import-position
import train  # pylint: disable=g-import-not-at-top,wrong-import-position


@dataclasses.dataclass
class Run:
  """One recipe and seed: the final accuracy and the time to the target."""
  recipe: str
  seed: int
  accuracy: float
  epoch: Optional[int]
  seconds: Optional[float]
  compile_s: float
  epochs: int


def load_recipe(path: str, args: argparse.Namespace, seed: int) -> Any:
  """The config at `path` for one timed run of `seed`."""
  config = cli.load_config_file(path if os.path.exists(path) else
                                os.path.join(ROOT, path))
  config.data_dir = args.data_dir
  config.seed = seed
  config.num_epochs = min(config.num_epochs, args.max_epochs)
  config.progress_bar = False
  config.log_every_steps = 0
  config.restart = True
  return config


def run_ours(path: str, seed: int, args: argparse.Namespace,
             workdir: str) -> Run:
  """Trains a recipe for one seed and reads its times from metrics.jsonl."""
  name = os.path.splitext(os.path.basename(path))[0]
  run_dir = os.path.join(workdir, f'{name}_seed{seed}')
  train.train_and_evaluate(load_recipe(path, args, seed), run_dir)
  rows = metrics_log.read_metrics(run_dir)
  epoch, seconds = report.time_to_target(rows, args.target)
  return Run(name, seed, rows[-1]['test_accuracy'], epoch, seconds,
             sum(r['compile_time_s'] for r in rows), len(rows))


def run_torch(config: Any, seed: int, data: tuple[Any, ...],
              target: float) -> Run:
  """The speedrun's PyTorch twin for one seed (see the module docstring)."""
  import torch  # pylint: disable=g-import-not-at-top
  from torch import nn  # pylint: disable=g-import-not-at-top
  images, labels, test_images, test_labels = data
  torch.manual_seed(seed)
  model = nn.Sequential(
      nn.Conv2d(1, 24, 5, stride=2), nn.ReLU(), nn.Conv2d(24, 48, 3),
      nn.MaxPool2d(2), nn.ReLU(), nn.Flatten(), nn.Linear(5 * 5 * 48, 128),
      nn.ReLU(), nn.Linear(128, 10))
  decay = config.ema_decay
  average = torch.optim.swa_utils.AveragedModel(
      model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(decay))
  optimizer = torch.optim.Adam(model.parameters(),
                               lr=config.optimizer.learning_rate)
  steps = len(labels) // config.batch_size
  total, warmup = steps * config.num_epochs, config.warmup_steps
  # Our schedule at optimizer step t (from 0): a linear rise, then a cosine
  # to zero over the remaining steps (adamjax.optim.schedules).
  rate = lambda t: (t / warmup if t < warmup else
                    0.5 * (1 + np.cos(np.pi * (t - warmup) / (total - warmup))))
  schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, rate)
  loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
  generator = torch.Generator().manual_seed(seed)
  start = time.perf_counter()
  for _ in range(config.num_epochs):
    order = torch.randperm(len(labels), generator=generator)
    for i in range(steps):
      index = order[i * config.batch_size:(i + 1) * config.batch_size]
      optimizer.zero_grad()
      loss_fn(model(images[index]), labels[index]).backward()
      optimizer.step()
      schedule.step()
      average.update_parameters(model)
  seconds = time.perf_counter() - start
  with torch.no_grad():
    correct = sum(int((average(test_images[i:i + 1000]).argmax(1) ==
                       test_labels[i:i + 1000]).sum())
                  for i in range(0, len(test_labels), 1000))
  accuracy = correct / len(test_labels)
  reached = accuracy >= target
  return Run('PyTorch twin', seed, accuracy, config.num_epochs if reached
             else None, seconds if reached else None, 0.0, config.num_epochs)


def torch_data(data_dir: str) -> tuple[Any, ...]:
  """MNIST as NCHW float tensors in [0, 1] and int64 labels."""
  import torch  # pylint: disable=g-import-not-at-top
  tensors = []
  for split in input_pipeline.load_dataset('mnist', data_dir):
    images = np.asarray(split.images, np.float32).transpose(0, 3, 1, 2) / 255
    tensors += [torch.from_numpy(np.ascontiguousarray(images)),
                torch.from_numpy(np.asarray(split.labels, np.int64))]
  return tuple(tensors)


def summary(runs: list[Run], target: float) -> None:
  """Prints each run, then each recipe's mean, worst and time to target."""
  print(f'\n| recipe | seed | final test accuracy | epoch reaching '
        f'{target:.1%} | training time to it (s) | compilation (s) |')
  print('| --- | ---: | ---: | ---: | ---: | ---: |')
  for r in runs:
    print(f'| {r.recipe} | {r.seed} | {r.accuracy:.2%} | '
          f'{r.epoch or f"not in {r.epochs}"} | '
          f'{"—" if r.seconds is None else f"{r.seconds:.2f}"} | '
          f'{r.compile_s:.1f} |')
  recipes = list(dict.fromkeys(r.recipe for r in runs))
  means = {}
  print(f'\n| recipe | seeds | mean test accuracy | worst | seeds reaching '
        f'{target:.1%} | mean time to it (s) | mean compilation (s) | '
        f'time vs {recipes[0]} |')
  print('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |')
  for name in recipes:
    mine = [r for r in runs if r.recipe == name]
    times = [r.seconds for r in mine if r.seconds is not None]
    means[name] = statistics.mean(times) if times else None
    ratio = (f'{means[name] / means[recipes[0]]:.2f}'
             if means[name] and means[recipes[0]] else '—')
    print(f'| {name} | {len(mine)} | '
          f'{statistics.mean(r.accuracy for r in mine):.2%} | '
          f'{min(r.accuracy for r in mine):.2%} | {len(times)}/{len(mine)} | '
          f'{"—" if means[name] is None else f"{means[name]:.2f}"} | '
          f'{statistics.mean(r.compile_s for r in mine):.1f} | {ratio} |')


def main() -> None:
  """Trains every recipe (and the twin) for every seed; prints the tables."""
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--data_dir', default=os.environ.get('MNIST_DIR'))
  parser.add_argument('--recipes', nargs='+',
                      default=['configs/mnist.py', 'configs/mnist_speedrun.py'])
  parser.add_argument('--seeds', nargs='+', type=int, default=[0])
  parser.add_argument('--target', type=float, default=0.99)
  parser.add_argument('--max_epochs', type=int, default=6)
  parser.add_argument('--torch', action='store_true',
                      help="Also run --speedrun's PyTorch twin per seed.")
  parser.add_argument('--speedrun', default='configs/mnist_speedrun.py',
                      help='The recipe whose settings the twin copies.')
  parser.add_argument('--workdir', default=None,
                      help='Where the runs go (default: a temporary folder).')
  args = parser.parse_args()
  if not args.data_dir:
    sys.exit('Set MNIST_DIR or pass --data_dir (a folder of MNIST IDX files).')
  workdir = args.workdir or tempfile.mkdtemp(prefix='time_to_accuracy_')
  data = torch_data(args.data_dir) if args.torch else None
  print(f'load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; '
        f'runs in {workdir}', flush=True)
  runs = []
  for seed in args.seeds:
    for path in args.recipes:
      runs.append(run_ours(path, seed, args, workdir))
      print(runs[-1], flush=True)
    if args.torch:
      runs.append(run_torch(load_recipe(args.speedrun, args, seed), seed,
                            data, args.target))
      print(runs[-1], flush=True)
  names = list(dict.fromkeys(r.recipe for r in runs))
  runs.sort(key=lambda r: (names.index(r.recipe), r.seed))
  summary(runs, args.target)


if __name__ == '__main__':
  main()
