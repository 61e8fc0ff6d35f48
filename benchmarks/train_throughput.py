"""Training throughput of the seed recipe: our jitted step against PyTorch.

Measures, after warm-up, training images/s of `steps.train_steps` (the CNN,
our Adam at 5e-4, float32) at each --batch_sizes and --grad_chunks, and, when
`torch` is importable, the seed's PyTorch loop (same CNN, CrossEntropyLoss,
torch.optim.Adam; on a CPU a DataLoader over in-memory float tensors,
shuffle=True, as the seed; with CUDA shuffled slices of tensors kept on the
GPU) on the same data in the same process. The variants are timed in interleaved
rounds, so background load hits all of them alike; the table shows medians
over rounds, ours/PyTorch at the same batch size, and achieved GFLOP/s.

FLOPs per image are counted from the model's shapes (multiply-add = 2 FLOPs):
a training step is the forward pass, the input gradients of every layer but
the first (whose input needs none) and the weight gradients, each as costly as
the forward layer. XLA's own count (`compiled.cost_analysis()`, which also
counts the loss, Adam and elementwise work) is printed beside it, and so is
the ceiling: the GFLOP/s of XLA's float32 2048x2048 matmul on this machine.

Then, unless --no-epoch, the wall time of --timed_epochs full epochs each
(ours with the product defaults, and PyTorch, alternating); with --time_to_accuracy, the wall time for the
seed recipe to first reach --target test accuracy (evaluating after every
epoch; needs real MNIST).

Data: real MNIST from --data_dir (default: the MNIST_DIR environment
variable), else synthetic uint8 images and labels of MNIST's shapes, so the
throughput numbers can be taken anywhere.

Usage, from the repository root:

  MNIST_DIR=/path/to/mnist python benchmarks/train_throughput.py \
      [--batch_sizes 64 256] [--grad_chunks 1 8] [--steps_per_dispatch 1] \
      [--eigen_threads on off] \
      [--rounds 5] [--steps 100] [--no-torch] [--no-epoch] \
      [--time_to_accuracy --target 0.99 --max_epochs 10]
"""

import argparse
import importlib.util
import os
import statistics
import sys
import time
from typing import Any, Callable, Iterator

import jax
import jax.numpy as jnp
import numpy as np

# Run as a script, sys.path[0] is benchmarks/; the project lives one level up.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import adam_optax  # pylint: disable=g-import-not-at-top,wrong-import-position
from adamjax.data import input_pipeline  # pylint: disable=g-import-not-at-top,wrong-import-position
from adamjax import models  # pylint: disable=g-import-not-at-top,wrong-import-position
from adamjax.trainer import evaluation
from adamjax.data import order
from adamjax.trainer import steps
from adamjax.trainer import train_state
from adamjax.trainer import xla_cpu

LEARNING_RATE = 5e-4


def load_data(data_dir: str | None) -> tuple[input_pipeline.Split,
                                             input_pipeline.Split, str]:
  """MNIST from `data_dir`, or synthetic data of its shapes; and a label."""
  if data_dir:
    train_split, test_split = input_pipeline.load_dataset('mnist', data_dir)
    return train_split, test_split, 'real MNIST'
  rng = np.random.default_rng(0)
  make = lambda n: input_pipeline.Split(
      rng.integers(0, 256, (n, 28, 28, 1), np.uint8),
      rng.integers(0, 10, n).astype(np.int32))
  return make(60_000), make(10_000), 'synthetic (set MNIST_DIR for real)'


def model_flops_per_image(params: Any, image_shape: tuple[int, ...]) -> float:
  """Training FLOPs per image of the CNN, counted from its parameter shapes.

  Args:
    params: the CNN's parameters (Conv_0, Conv_1, Dense_0).
    image_shape: (H, W, C) of one input image.

  Returns:
    Forward + input gradients (all layers but the first) + weight gradients.
  """
  size, forward = image_shape[0], []
  for name in ('Conv_0', 'Conv_1'):
    k, _, c_in, c_out = params[name]['kernel'].shape
    size -= k - 1  # VALID convolution.
    forward.append(2 * size * size * k * k * c_in * c_out)
    size //= 2  # 2x2 max pooling.
  forward.append(2 * np.prod(params['Dense_0']['kernel'].shape))
  return 3 * sum(forward) - forward[0]


class Ours:
  """Our jitted, donated train_steps at one batch size and configuration."""

  def __init__(self, data: input_pipeline.Split, batch_size: int,
               grad_chunks: int, steps_per_dispatch: int, eigen: str):
    """Builds the state and the batch order, then compiles and warms up."""
    self.data, self.batch_size = data, batch_size
    self.spd = steps_per_dispatch
    self.name = (f'ours B={batch_size} chunks={grad_chunks} '
                 f'spd={steps_per_dispatch} eigen={eigen}')
    self.state = train_state.create_train_state(
        jax.random.key(0), models.CNN(), adam_optax.adam(LEARNING_RATE),
        data.images.shape[1:])
    self.indices = order.epoch_batches(jax.random.key(1), 1,
                                       len(data.labels), batch_size)
    self.cursor = 0
    first = self._next_chunk()
    start = time.perf_counter()
    self.compiled = steps.train_steps.lower(
        self.state, data.images, data.labels, first,
        grad_chunks=grad_chunks).compile(
            {'xla_cpu_multi_thread_eigen': eigen == 'on'})
    self.compile_s = time.perf_counter() - start
    cost = self.compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    self.xla_flops_per_image = cost['flops'] / (batch_size * self.spd)
    self.run(2 * self.spd)

  def _next_chunk(self) -> jax.Array:
    """The next steps_per_dispatch batches of indices, wrapping around."""
    if self.cursor + self.spd > len(self.indices):
      self.cursor = 0
    chunk = self.indices[self.cursor:self.cursor + self.spd]
    self.cursor += self.spd
    return chunk

  def run(self, steps: int) -> None:
    """Runs `steps` optimizer steps and waits for them."""
    metrics = None
    for _ in range(steps // self.spd):
      self.state, metrics = self.compiled(
          self.state, self.data.images, self.data.labels, self._next_chunk())
    jax.block_until_ready(metrics)


class Torch:
  """The seed's PyTorch training loop at one batch size, on a GPU if present.

  On a CPU it is the seed's loop: a DataLoader over in-memory tensors. With
  CUDA the data lives on the GPU and each epoch slices a `torch.randperm`
  (a DataLoader would gather 64 single images per step), as our loop keeps
  the data on the device too.
  """

  def __init__(self, data: input_pipeline.Split, batch_size: int):
    """Builds the model, optimizer and batches, then warms up."""
    import torch  # pylint: disable=g-import-not-at-top
    self.torch, self.batch_size = torch, batch_size
    self.device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    where = (torch.cuda.get_device_name() if self.device.type == 'cuda' else
             f'{torch.get_num_threads()} threads')
    self.name = f'PyTorch B={batch_size} ({where})'
    nn = torch.nn
    torch.manual_seed(0)
    self.model = nn.Sequential(
        nn.Conv2d(1, 32, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(1024, 10)).to(self.device)
    self.loss = nn.CrossEntropyLoss()
    self.optimizer = torch.optim.Adam(self.model.parameters(),
                                      lr=LEARNING_RATE)
    x = torch.from_numpy(np.asarray(data.images, np.float32) / 255.0)
    self.images = x.permute(0, 3, 1, 2).contiguous().to(self.device)
    self.labels = torch.from_numpy(np.asarray(data.labels,
                                              np.int64)).to(self.device)
    self.batches = iter(self._epoch_batches())
    self.run(5)

  def _epoch_batches(self) -> Iterator[tuple[Any, Any]]:
    """One shuffled pass over the training data, in (images, labels) batches."""
    torch = self.torch
    if self.device.type == 'cpu':
      yield from torch.utils.data.DataLoader(
          torch.utils.data.TensorDataset(self.images, self.labels),
          batch_size=self.batch_size, shuffle=True)
      return
    order = torch.randperm(len(self.labels), device=self.device)
    for start in range(0, len(order), self.batch_size):
      index = order[start:start + self.batch_size]
      yield self.images[index], self.labels[index]

  def _sync(self) -> None:
    """Waits for the GPU's queued work, so that timers see it done."""
    if self.device.type == 'cuda':
      self.torch.cuda.synchronize()

  def step(self, images: Any, labels: Any) -> None:
    """One optimizer step of the seed's loop."""
    self.optimizer.zero_grad()
    self.loss(self.model(images), labels).backward()
    self.optimizer.step()

  def run(self, steps: int) -> None:
    """Runs `steps` optimizer steps, starting a new epoch when one ends."""
    for _ in range(steps):
      try:
        images, labels = next(self.batches)
      except StopIteration:
        self.batches = iter(self._epoch_batches())
        images, labels = next(self.batches)
      self.step(images, labels)
    self._sync()

  def epoch(self) -> None:
    """One full pass over the training data."""
    for images, labels in self._epoch_batches():
      self.step(images, labels)
    self._sync()

  def accuracy(self, test: input_pipeline.Split) -> float:
    """Test accuracy, in batches of 1000."""
    x = self.torch.from_numpy(np.asarray(test.images, np.float32) / 255.0)
    x = x.permute(0, 3, 1, 2).to(self.device)
    y = self.torch.from_numpy(np.asarray(test.labels, np.int64)).to(self.device)
    with self.torch.no_grad():
      correct = sum(int((self.model(x[i:i + 1000]).argmax(1)
                         == y[i:i + 1000]).sum())
                    for i in range(0, len(y), 1000))
    return correct / len(y)


def matmul_ceiling(size: int = 2048, repeats: int = 10) -> float:
  """GFLOP/s of XLA's float32 (size x size) matmul here: the compute ceiling.

  The training step's GFLOP/s below are read against it: a convolution can
  at best run as fast as the machine's best dense kernel.
  """
  a = jnp.ones((size, size), jnp.float32)
  matmul = jax.jit(lambda x: x @ x)
  matmul(a).block_until_ready()
  best = min(timed(lambda: matmul(a).block_until_ready())
             for _ in range(repeats))
  return 2 * size ** 3 / best / 1e9


def timed(fn: Callable[[], Any]) -> float:
  """Wall seconds of fn()."""
  start = time.perf_counter()
  fn()
  return time.perf_counter() - start


def throughput(args: argparse.Namespace, data: input_pipeline.Split,
               use_torch: bool) -> None:
  """Prints the interleaved images/s table, ratios and GFLOP/s."""
  variants = []
  for batch_size in args.batch_sizes:
    for chunks in args.grad_chunks:
      for spd in args.steps_per_dispatch:
        for eigen in args.eigen_threads:
          if batch_size % chunks == 0:
            variants.append(Ours(data, batch_size, chunks, spd, eigen))
    if use_torch:
      variants.append(Torch(data, batch_size))
  rates = {v.name: [] for v in variants}
  for _ in range(args.rounds):
    for v in variants:
      # About the same number of images per variant and round.
      steps = max(1, args.steps * 64 // v.batch_size)
      if isinstance(v, Ours):
        steps = max(v.spd, steps // v.spd * v.spd)
      rates[v.name].append(steps * v.batch_size / timed(lambda: v.run(steps)))

  flops = model_flops_per_image(variants[0].state.params,
                                data.images.shape[1:])
  print(f'model FLOPs per training image: {flops / 1e6:.2f} M '
        f'(3 x forward = {(flops + 2 * 24 * 24 * 25 * 32) / 1e6:.2f} M); '
        f'ceiling: a 2048x2048 float32 matmul at {matmul_ceiling():.1f} '
        'GFLOP/s')
  print(f'{"variant":44s} {"images/s":>9s} {"min":>6s} {"max":>6s} '
        f'{"vs torch":>8s} {"GFLOP/s":>7s} {"XLA MFLOP/img":>13s} '
        f'{"compile s":>9s}')
  medians = {n: statistics.median(r) for n, r in rates.items()}
  for v in variants:
    rate = medians[v.name]
    torch_name = [n for n in medians
                  if n.startswith(f'PyTorch B={v.batch_size} ')]
    ratio = (f'{rate / medians[torch_name[0]]:8.2f}'
             if torch_name and isinstance(v, Ours) else f'{"":8s}')
    extra = (f'{rate * flops / 1e9:7.1f} {v.xla_flops_per_image / 1e6:13.2f} '
             f'{v.compile_s:9.2f}' if isinstance(v, Ours) else
             f'{rate * flops / 1e9:7.1f}')
    print(f'{v.name:44s} {rate:9.0f} {min(rates[v.name]):6.0f} '
          f'{max(rates[v.name]):6.0f} {ratio} {extra}')


def product_config_epoch(state: Any, data: input_pipeline.Split,
                         batch_size: int, epoch: int) -> tuple[Any, float]:
  """One epoch as the trainer runs it; returns the state and wall time.

  One step per dispatch (the product default), with each step's loss read on
  the host while the next step runs, as train.train_epoch does.
  """
  indices = order.epoch_batches(jax.random.key(1), epoch, len(data.labels),
                                batch_size)
  chunks = xla_cpu.default_grad_chunks(batch_size)
  start = time.perf_counter()
  pending = None
  for step in range(indices.shape[0]):
    state, metrics = steps.train_steps(state, data.images, data.labels,
                                       indices[step:step + 1], chunks)
    if pending is not None:
      np.asarray(pending['loss'])
    pending = metrics
  np.asarray(pending['loss'])
  return state, time.perf_counter() - start


def main() -> None:
  """Parses flags and runs the requested measurements."""
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--data_dir', default=os.environ.get('MNIST_DIR'),
                      help='MNIST IDX folder (default: $MNIST_DIR).')
  parser.add_argument('--batch_sizes', type=int, nargs='+', default=[64, 256])
  parser.add_argument('--grad_chunks', type=int, nargs='+', default=[1, 8, 16])
  parser.add_argument('--steps_per_dispatch', type=int, nargs='+',
                      default=[1])
  parser.add_argument('--eigen_threads', nargs='+', choices=['on', 'off'],
                      default=['on'],
                      help="XLA:CPU's multi-threaded Eigen ops (XLA's "
                      'default: on).')
  parser.add_argument('--rounds', type=int, default=5)
  parser.add_argument('--steps', type=int, default=100,
                      help='Timed steps per round at batch 64 (scaled to '
                      'keep the images per round equal).')
  parser.add_argument('--torch', action=argparse.BooleanOptionalAction,
                      default=None,
                      help='Time PyTorch too (default: if importable).')
  parser.add_argument('--epoch', action=argparse.BooleanOptionalAction,
                      default=True, help='Time full epochs at batch 64.')
  parser.add_argument('--timed_epochs', type=int, default=2,
                      help='Epochs timed per framework, alternating.')
  parser.add_argument('--time_to_accuracy', action='store_true',
                      help='Time the seed recipe to --target test accuracy.')
  parser.add_argument('--target', type=float, default=0.99)
  parser.add_argument('--max_epochs', type=int, default=10)
  args = parser.parse_args()

  use_torch = args.torch
  if use_torch is None:
    use_torch = importlib.util.find_spec('torch') is not None
  train_split, test_split, source = load_data(args.data_dir)
  train_split, test_split = jax.device_put((train_split, test_split))
  print(f'data: {source}; jax {jax.__version__} on {jax.devices()}; '
        f'{os.cpu_count()} CPUs; load average '
        f'{os.getloadavg()[0]:.2f}')
  throughput(args, train_split, use_torch)

  if args.epoch or args.time_to_accuracy:
    seed_batch = 64
    state = train_state.create_train_state(
        jax.random.key(0), models.CNN(), adam_optax.adam(LEARNING_RATE),
        train_split.images.shape[1:])
    torch_run = Torch(train_split, seed_batch) if use_torch else None
    # Compile, so the epoch below times training only.
    state, _ = steps.train_steps(
        state, train_split.images, train_split.labels,
        jnp.zeros((1, seed_batch), jnp.int32),
        grad_chunks=xla_cpu.default_grad_chunks(seed_batch))
    if args.epoch:
      # Alternating, so drifting load hits both alike.
      times = {'ours': [], 'PyTorch': []}
      for epoch in range(1, args.timed_epochs + 1):
        state, seconds = product_config_epoch(state, train_split, seed_batch,
                                              epoch)
        times['ours'].append(seconds)
        if torch_run:
          times['PyTorch'].append(timed(torch_run.epoch))
      for name, seconds in times.items():
        if seconds:
          print(f'epoch wall time at batch {seed_batch}, {name}: '
                + ', '.join(f'{t:.1f}' for t in seconds) + ' s (median '
                f'{statistics.median(seconds):.1f} s)')
  if args.time_to_accuracy:
    for name in ['ours'] + (['PyTorch'] if use_torch else []):
      state = train_state.create_train_state(
          jax.random.key(0), models.CNN(), adam_optax.adam(LEARNING_RATE),
          train_split.images.shape[1:])
      torch_run = Torch(train_split, seed_batch) if name == 'PyTorch' else None
      start, reached = time.perf_counter(), None
      for epoch in range(1, args.max_epochs + 1):
        if torch_run:
          torch_run.epoch()
          accuracy = torch_run.accuracy(test_split)
        else:
          state, _ = product_config_epoch(state, train_split, seed_batch,
                                          epoch)
          accuracy = evaluation.evaluate(state, test_split, 1000)['accuracy']
        elapsed = time.perf_counter() - start
        print(f'  {name} epoch {epoch}: test accuracy {accuracy:.4f} at '
              f'{elapsed:.1f} s', flush=True)
        if accuracy >= args.target:
          reached = (epoch, elapsed)
          break
      print(f'{name}: ' + (f'reached {args.target:.3f} after epoch '
                           f'{reached[0]}, {reached[1]:.1f} s (train + eval)'
                           if reached else
                           f'did not reach {args.target:.3f} in '
                           f'{args.max_epochs} epochs'))


if __name__ == '__main__':
  main()
