"""MNIST test accuracy of the seed recipe with low-memory Adam variants.

Trains the seed's CNN (Adam, lr 5e-4, batch 64) for --epochs epochs with each
variant and each seed, and prints the test accuracy per seed, the mean, and
the difference from float32 Adam, next to the measured bytes of parameters
plus optimizer state:

  float32             float32 params, float32 Adam (adam_lowmem with every
                      leaf below min_8bit_size is plain float32 Adam)
  8-bit               float32 params, lowmem.adam8bit
  bf16                bf16 params, float32 moments, plain rounding
  bf16+kahan          bf16 params, float32 moments, Kahan (bf16 buffer)
  bf16+stochastic     bf16 params, float32 moments, stochastic rounding
  bf16+8-bit+kahan    bf16 params, 8-bit moments, Kahan (bf16 buffer)

bf16 here is the storage of the weights: the forward and backward passes
compute in float32 (Flax promotes bf16 weights and float32 images to
float32) and the gradients come back in bf16. For each seed every variant
starts from the same initial weights (rounded to bf16 where stored so) and
sees the same batches. The loop is this script's own small jitted step, so
it measures the optimizers, not the trainer's extras.

Usage, from the repository root:

  python benchmarks/low_memory_accuracy.py --data_dir=/path/to/mnist \
      [--epochs 2] [--seeds 0 1 2] [--variants float32 8-bit ...]
"""

import argparse
import functools
import os
import statistics
import sys
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

# Run as a script, sys.path[0] is benchmarks/; the modules live one level up.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from adamjax.optim import lowmem  # pylint: disable=g-import-not-at-top,wrong-import-position
from adamjax.data import input_pipeline  # pylint: disable=g-import-not-at-top,wrong-import-position
from adamjax import models  # pylint: disable=g-import-not-at-top,wrong-import-position

LEARNING_RATE = 5e-4
BATCH_SIZE = 64
# Independent gradient chunks per batch: the same mean gradient; XLA:CPU runs
# them in parallel (the trainer's CPU default for batch 64, see README).
GRAD_CHUNKS = 8
FLOAT32_ONLY = 2**62  # A min_8bit_size no leaf reaches: float32 moments.


def variants() -> dict[str, tuple[Any, Callable[[], optax.GradientTransformation]]]:
  """name -> (parameter dtype, optimizer factory)."""
  f32_adam = lambda: lowmem.adam8bit(LEARNING_RATE,
                                          min_8bit_size=FLOAT32_ONLY)
  return {
      'float32': (jnp.float32, f32_adam),
      '8-bit': (jnp.float32, lambda: lowmem.adam8bit(LEARNING_RATE)),
      'bf16': (jnp.bfloat16, f32_adam),
      'bf16+kahan': (jnp.bfloat16, lambda: optax.chain(
          f32_adam(), lowmem.kahan_compensation())),
      'bf16+stochastic': (jnp.bfloat16, lambda: optax.chain(
          f32_adam(), lowmem.stochastic_rounding(seed=0))),
      'bf16+8-bit+kahan': (jnp.bfloat16, lambda: optax.chain(
          lowmem.adam8bit(LEARNING_RATE),
          lowmem.kahan_compensation())),
  }


def make_step(model: Any, tx: optax.GradientTransformation) -> Callable:
  """A jitted, donated step(params, opt_state, images, labels, idx)."""

  def loss_fn(params, images, labels):
    """Mean softmax cross-entropy of one chunk."""
    x = images.astype(jnp.float32) / 255.0
    logits = model.apply({'params': params}, x)
    return optax.softmax_cross_entropy_with_integer_labels(logits,
                                                           labels).mean()

  @functools.partial(jax.jit, donate_argnums=(0, 1))
  def step(params, opt_state, images, labels, idx):
    """One optimizer step on the batch images[idx]."""
    grads = None
    for chunk in jnp.split(idx, GRAD_CHUNKS):
      g = jax.grad(loss_fn)(params, images[chunk], labels[chunk])
      grads = g if grads is None else jax.tree.map(jnp.add, grads, g)
    grads = jax.tree.map(lambda g: g / GRAD_CHUNKS, grads)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  return step


def accuracy(model: Any, params: Any, split: input_pipeline.Split) -> float:
  """Fraction of the split classified correctly (every example once)."""
  predict = jax.jit(lambda p, x: jnp.argmax(model.apply(
      {'params': p}, x.astype(jnp.float32) / 255.0), -1))
  correct = 0
  for start in range(0, len(split.labels), 1000):
    pred = predict(params, split.images[start:start + 1000])
    correct += int(jnp.sum(pred == split.labels[start:start + 1000]))
  return correct / len(split.labels)


def nbytes(tree: Any) -> int:
  """Bytes held by a pytree's array leaves."""
  return sum(x.nbytes for x in jax.tree.leaves(tree))


def run(name: str, seed: int, epochs: int, train: Any,
        test: Any) -> tuple[float, int, float]:
  """(test accuracy, bytes of params + state, seconds) of one run."""
  dtype, make_tx = variants()[name]
  model, tx = models.CNN(), make_tx()
  params = model.init(jax.random.key(seed),
                      jnp.zeros((1, 28, 28, 1)))['params']
  params = jax.tree.map(lambda p: p.astype(dtype), params)
  opt_state = tx.init(params)
  memory = nbytes(params) + nbytes(opt_state)
  step = make_step(model, tx)
  num = len(train.labels)
  steps = num // BATCH_SIZE
  start = time.perf_counter()
  for epoch in range(1, epochs + 1):
    key = jax.random.fold_in(jax.random.key(10_000 + seed), epoch)
    order = jax.random.permutation(key, num)[:steps * BATCH_SIZE]
    for idx in order.reshape(steps, BATCH_SIZE):
      params, opt_state = step(params, opt_state, train.images, train.labels,
                               idx)
  jax.block_until_ready(params)
  return accuracy(model, params, test), memory, time.perf_counter() - start


def main() -> None:
  """Parses flags, trains every variant and seed, prints the table."""
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--data_dir', default=os.environ.get('MNIST_DIR'),
                      help='folder of the MNIST IDX files (default: '
                      '$MNIST_DIR)')
  parser.add_argument('--epochs', type=int, default=2)
  parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
  parser.add_argument('--variants', nargs='+', default=list(variants()),
                      choices=list(variants()))
  args = parser.parse_args()
  if not args.data_dir:
    parser.error('--data_dir (or $MNIST_DIR) is required: a folder of the '
                 'four MNIST IDX files.')

  train, test = jax.device_put(input_pipeline.load_dataset('mnist',
                                                           args.data_dir))
  print(f'jax {jax.__version__}, {jax.devices()[0].device_kind}, '
        f'{os.cpu_count()} CPUs; CNN, Adam lr {LEARNING_RATE}, batch '
        f'{BATCH_SIZE}, {args.epochs} epochs, seeds {args.seeds}', flush=True)
  results = {}
  for name in args.variants:
    accs = []
    for seed in args.seeds:
      acc, memory, seconds = run(name, seed, args.epochs, train, test)
      accs.append(acc)
      print(f'  {name} seed {seed}: {100 * acc:.2f}% ({seconds:.0f} s)',
            flush=True)
    results[name] = (accs, memory)

  base = statistics.mean(results['float32'][0]) if 'float32' in results else None
  header = (f'{"variant":<18} {"params+state B":>14} {"per seed %":>22} '
            f'{"mean %":>7} {"vs float32 pp":>13}')
  print(header)
  print('-' * len(header))
  for name, (accs, memory) in results.items():
    mean = statistics.mean(accs)
    delta = f'{100 * (mean - base):+.3f}' if base is not None else '-'
    per_seed = ' '.join(f'{100 * a:.2f}' for a in accs)
    print(f'{name:<18} {memory:>14,} {per_seed:>22} {100 * mean:>7.3f} '
          f'{delta:>13}')


if __name__ == '__main__':
  main()
