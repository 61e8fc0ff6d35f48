"""MNIST test accuracy with the low-memory Adam variants, beside float32 Adam.

Trains a model with each variant and each seed and prints the test accuracy
per seed, the mean, and the difference from float32 Adam, next to the
measured bytes of parameters plus optimizer state. Models (--model):

  cnn    the seed recipe: its CNN, Adam lr 5e-4, batch 64
  mlp    Kingma & Ba's MLP 784-1000-1000-10 with dropout 0.5, lr 1e-3,
         batch 128

Variants:

  float32             float32 params, float32 Adam (adam_lowmem with every
                      leaf below the quantisation threshold is plain Adam)
  8-bit               float32 params, lowmem.adam8bit
  4-bit               float32 params, lowmem.adam4bit
  4-bit, v with 0     4-bit, but the second moment on the linear map that
                      contains 0 (Li et al.'s contrast: it should fail)
  bf16                bf16 params, float32 moments, plain rounding
  bf16+kahan          bf16 params, float32 moments, Kahan (bf16 buffer)
  bf16+stochastic     bf16 params, float32 moments, stochastic rounding
  bf16+8-bit+kahan    bf16 params, 8-bit moments, Kahan (bf16 buffer)

bf16 here is the storage of the weights: the forward and backward passes
compute in float32 (Flax promotes bf16 weights and float32 images to
float32) and the gradients come back in bf16. For each seed every variant
starts from the same initial weights (rounded to bf16 where stored so) and
sees the same batches (and dropout masks). The loop is this script's own
small jitted step, so it measures the optimizers, not the trainer's extras.

Usage, from the repository root:

  python benchmarks/low_memory_accuracy.py --data_dir=/path/to/mnist \
      [--model cnn] [--epochs 2] [--seeds 0 1 2] [--variants float32 8-bit ...]
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

# name -> (model, learning rate, batch size, gradient chunks: independent
# pieces of a batch with the same mean gradient, which XLA:CPU runs in
# parallel, as the trainer's CPU default does for the CNN).
MODELS = {
    'cnn': (models.CNN(), 5e-4, 64, 8),
    'mlp': (models.MLP(dropout_rate=0.5, input_dropout_rate=0.0), 1e-3, 128,
            1),
}
FLOAT32_ONLY = 2**62  # A min_8bit_size no leaf reaches: float32 moments.


def variants(lr: float) -> dict[str, tuple[Any, Callable[[], Any]]]:
  """name -> (parameter dtype, optimizer factory) at learning rate `lr`."""
  f32_adam = lambda: lowmem.adam8bit(lr, min_8bit_size=FLOAT32_ONLY)
  return {
      'float32': (jnp.float32, f32_adam),
      '8-bit': (jnp.float32, lambda: lowmem.adam8bit(lr)),
      '4-bit': (jnp.float32, lambda: lowmem.adam4bit(lr)),
      '4-bit, v with 0': (jnp.float32, lambda: optax.chain(
          lowmem.scale_by_adam_4bit(nu_map='linear_with_zero'),
          optax.scale_by_learning_rate(lr))),
      'bf16': (jnp.bfloat16, f32_adam),
      'bf16+kahan': (jnp.bfloat16, lambda: optax.chain(
          f32_adam(), lowmem.kahan_compensation())),
      'bf16+stochastic': (jnp.bfloat16, lambda: optax.chain(
          f32_adam(), lowmem.stochastic_rounding(seed=0))),
      'bf16+8-bit+kahan': (jnp.bfloat16, lambda: optax.chain(
          lowmem.adam8bit(lr), lowmem.kahan_compensation())),
  }


def make_step(model: Any, tx: optax.GradientTransformation,
              chunks: int) -> Callable:
  """A jitted, donated step(params, opt_state, images, labels, idx, key)."""

  def loss_fn(params, images, labels, key):
    """Mean softmax cross-entropy of one chunk (dropout from `key`)."""
    x = images.astype(jnp.float32) / 255.0
    logits = model.apply({'params': params}, x, train=True,
                         rngs={'dropout': key})
    return optax.softmax_cross_entropy_with_integer_labels(logits,
                                                           labels).mean()

  @functools.partial(jax.jit, donate_argnums=(0, 1))
  def step(params, opt_state, images, labels, idx, key):
    """One optimizer step on the batch images[idx]."""
    grads = None
    for i, chunk in enumerate(jnp.split(idx, chunks)):
      g = jax.grad(loss_fn)(params, images[chunk], labels[chunk],
                            jax.random.fold_in(key, i))
      grads = g if grads is None else jax.tree.map(jnp.add, grads, g)
    grads = jax.tree.map(lambda g: g / chunks, grads)
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


def run(model_name: str, name: str, seed: int, epochs: int, train: Any,
        test: Any) -> tuple[float, int, float]:
  """(test accuracy, bytes of params + state, seconds) of one run."""
  model, lr, batch_size, chunks = MODELS[model_name]
  dtype, make_tx = variants(lr)[name]
  tx = make_tx()
  params = model.init(jax.random.key(seed),
                      jnp.zeros((1, 28, 28, 1)))['params']
  params = jax.tree.map(lambda p: p.astype(dtype), params)
  opt_state = tx.init(params)
  memory = nbytes(params) + nbytes(opt_state)
  step = make_step(model, tx, chunks)
  num = len(train.labels)
  steps = num // batch_size
  start = time.perf_counter()
  for epoch in range(1, epochs + 1):
    key = jax.random.fold_in(jax.random.key(10_000 + seed), epoch)
    order = jax.random.permutation(key, num)[:steps * batch_size]
    for i, idx in enumerate(order.reshape(steps, batch_size)):
      params, opt_state = step(params, opt_state, train.images, train.labels,
                               idx, jax.random.fold_in(key, i))
  jax.block_until_ready(params)
  return accuracy(model, params, test), memory, time.perf_counter() - start


def main() -> None:
  """Parses flags, trains every variant and seed, prints the table."""
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--data_dir', default=os.environ.get('MNIST_DIR'),
                      help='folder of the MNIST IDX files (default: '
                      '$MNIST_DIR)')
  parser.add_argument('--model', default='cnn', choices=list(MODELS))
  parser.add_argument('--epochs', type=int, default=2)
  parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
  names = list(variants(1e-3))
  parser.add_argument('--variants', nargs='+', default=names, choices=names)
  args = parser.parse_args()
  if not args.data_dir:
    parser.error('--data_dir (or $MNIST_DIR) is required: a folder of the '
                 'four MNIST IDX files.')

  train, test = jax.device_put(input_pipeline.load_dataset('mnist',
                                                           args.data_dir))
  _, lr, batch_size, _ = MODELS[args.model]
  print(f'jax {jax.__version__}, {jax.devices()[0].device_kind}, '
        f'{os.cpu_count()} CPUs; {args.model}, Adam lr {lr}, batch '
        f'{batch_size}, {args.epochs} epochs, seeds {args.seeds}', flush=True)
  results = {}
  for name in args.variants:
    accs = []
    for seed in args.seeds:
      acc, memory, seconds = run(args.model, name, seed, args.epochs, train,
                                 test)
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
