"""The memory of one training step, float32 Adam against the low-memory Adams.

Every number is XLA's own: each variant's whole training step (gradient,
optimizer update, parameter update; parameters and optimizer state donated)
is compiled from abstract shapes, nothing allocated, and
``compiled.memory_analysis()`` gives its argument bytes (parameters, state,
inputs) and temporary bytes. The peak of a step is arguments + temporaries
(the outputs reuse the donated arguments). Gradients are temporaries of the
step; so that they are materialised as in any real model (and the same for
every variant), they come from a linear stand-in for the model: each weight
W, seen as a matrix, contributes sum((x @ W) * y) with x and y a batch of
ROWS rows, so its gradient is x^T y, computed by a dot (with one row XLA
would turn the dot into a product and fuse it into the optimizer).

Per model and variant the table gives, in bytes per parameter: parameters
and optimizer state (of the arguments), gradients (the gradient arrays'
bytes), temporaries beyond the gradients (XLA's temporaries minus those),
and the peak, also as a ratio to float32 Adam's. Then, for the GPT-2 family
(small, medium, large, XL: the same shapes, more and wider layers), which
compiled step fits in a 16 GiB device.

Models: the seed recipe's CNN (62,346 parameters), the paper's MLP
784-1000-1000-10 (1.8M), GPT-2 small's parameter shapes (124M, 148 leaves).

Usage, from the repository root:

  python benchmarks/adam_memory.py [--skip_family] [--family_variants ...]
"""

import argparse
import math
import os
import sys
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

# Run as a script, sys.path[0] is benchmarks/; the modules live one level up.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import adam_optax  # pylint: disable=g-import-not-at-top,wrong-import-position
from adamjax import models  # pylint: disable=g-import-not-at-top,wrong-import-position
from adamjax.optim import lowmem  # pylint: disable=g-import-not-at-top,wrong-import-position

DEVICE_BYTES = 16 * 2**30
ROWS = 8
GPT2 = {  # name: (layers, width, heads are irrelevant to the shapes)
    'GPT-2 small': (12, 768),
    'GPT-2 medium': (24, 1024),
    'GPT-2 large': (36, 1280),
    'GPT-2 XL': (48, 1600),
}


def cnn() -> Any:
  """The seed recipe's CNN parameter shapes."""
  return jax.eval_shape(lambda: models.CNN().init(
      jax.random.key(0), jnp.zeros((1, 28, 28, 1)))['params'])


def mlp() -> Any:
  """The paper's MLP: 784-1000-1000-10, weights and biases."""
  sizes = (784, 1000, 1000, 10)
  return {f'dense_{i}': {'kernel': jax.ShapeDtypeStruct((a, b), jnp.float32),
                         'bias': jax.ShapeDtypeStruct((b,), jnp.float32)}
          for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))}


def gpt2(layers: int = 12, d: int = 768, vocab: int = 50257,
         positions: int = 1024) -> Any:
  """GPT-2's parameter shapes (tied embedding): 124,439,808 at 12 x 768."""
  leaf = lambda *shape: jax.ShapeDtypeStruct(shape, jnp.float32)
  norm = lambda: {'scale': leaf(d), 'bias': leaf(d)}
  params = {'wte': leaf(vocab, d), 'wpe': leaf(positions, d), 'ln_f': norm()}
  for i in range(layers):
    params[f'h{i:02d}'] = {
        'ln_1': norm(), 'ln_2': norm(),
        'attn': {'c_attn': {'kernel': leaf(d, 3 * d), 'bias': leaf(3 * d)},
                 'c_proj': {'kernel': leaf(d, d), 'bias': leaf(d)}},
        'mlp': {'c_fc': {'kernel': leaf(d, 4 * d), 'bias': leaf(4 * d)},
                'c_proj': {'kernel': leaf(4 * d, d), 'bias': leaf(d)}}}
  return params


def variants() -> dict[str, tuple[Any, Callable[[], Any]]]:
  """name -> (parameter dtype, optimizer)."""
  lr = 1e-3
  return {
      'float32 Adam': (jnp.float32, lambda: adam_optax.adam(lr)),
      '8-bit Adam': (jnp.float32, lambda: lowmem.adam8bit(lr)),
      '4-bit Adam': (jnp.float32, lambda: lowmem.adam4bit(lr)),
      'bf16 + Kahan + 8-bit': (jnp.bfloat16, lambda: optax.chain(
          lowmem.adam8bit(lr), lowmem.kahan_compensation())),
  }


def _matrix(shape: tuple[int, ...]) -> tuple[int, int]:
  """A leaf seen as a matrix: (everything but the last axis, the last)."""
  return (math.prod(shape[:-1]), shape[-1]) if shape else (1, 1)


def _inputs(params: Any) -> Any:
  """Per leaf, the stand-in's (x, y): ROWS rows each."""
  return jax.tree.map(
      lambda p: (jax.ShapeDtypeStruct((ROWS, _matrix(p.shape)[0]), p.dtype),
                 jax.ShapeDtypeStruct((ROWS, _matrix(p.shape)[1]), p.dtype)),
      params)


def _loss(params: Any, inputs: Any) -> jax.Array:
  """The linear stand-in: sum over leaves of sum((x @ W) * y)."""
  terms = jax.tree.map(
      lambda p, xy: jnp.sum((xy[0] @ p.reshape(_matrix(p.shape))) * xy[1]),
      params, inputs, is_leaf=lambda x: isinstance(x, jax.ShapeDtypeStruct))
  return sum(t.astype(jnp.float32) for t in jax.tree.leaves(terms))


def measure(params: Any, dtype: Any, tx: Any) -> dict[str, int]:
  """Bytes of one compiled, donated training step (nothing allocated)."""
  params = jax.tree.map(lambda p: jax.ShapeDtypeStruct(p.shape, dtype),
                        params)
  state = jax.eval_shape(tx.init, params)
  inputs = _inputs(params)

  def step(params, state, inputs):
    """Gradient, optimizer update, parameter update."""
    grads = jax.grad(_loss)(params, inputs)
    updates, state = tx.update(grads, state, params)
    return optax.apply_updates(params, updates), state

  analysis = jax.jit(step, donate_argnums=(0, 1)).lower(
      params, state, inputs).compile().memory_analysis()
  nbytes = lambda tree: sum(x.size * jnp.dtype(x.dtype).itemsize
                            for x in jax.tree.leaves(tree))
  return {'params': nbytes(params), 'state': nbytes(state),
          'inputs': nbytes(inputs), 'grads': nbytes(params),
          'arguments': analysis.argument_size_in_bytes,
          'temp': analysis.temp_size_in_bytes,
          'peak': analysis.argument_size_in_bytes
                  + analysis.temp_size_in_bytes}


def table(label: str, params: Any) -> dict[str, dict[str, int]]:
  """Prints one model's table; returns its measurements."""
  n = sum(x.size for x in jax.tree.leaves(params))
  print(f'\n{label}: {n:,} parameters in {len(jax.tree.leaves(params))} '
        'leaves; bytes per parameter')
  header = (f'{"variant":<22} {"params":>7} {"grads":>7} {"state":>7} '
            f'{"temp":>7} {"peak":>7} {"peak/f32":>9} {"peak MB":>10}')
  print(header)
  print('-' * len(header))
  rows = {}
  for name, (dtype, make_tx) in variants().items():
    rows[name] = m = measure(params, dtype, make_tx())
    # The arguments are exactly parameters + state + inputs: nothing hidden.
    assert m['arguments'] == m['params'] + m['state'] + m['inputs'], m
    print(f'{name:<22} {m["params"] / n:>7.2f} {m["grads"] / n:>7.2f} '
          f'{m["state"] / n:>7.2f} {(m["temp"] - m["grads"]) / n:>7.3f} '
          f'{m["peak"] / n:>7.2f} '
          f'{m["peak"] / rows["float32 Adam"]["peak"]:>9.3f} '
          f'{m["peak"] / 1e6:>10.2f}')
  return rows


def main() -> None:
  """Measures every model, then the GPT-2 family against 16 GiB."""
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--skip_family', action='store_true',
                      help='leave out GPT-2 medium, large and XL')
  parser.add_argument('--family_variants', nargs='+', default=list(variants()),
                      choices=list(variants()),
                      help='the variants compiled for the GPT-2 family')
  args = parser.parse_args()
  print(f'jax {jax.__version__}, optax {optax.__version__}, '
        f'{jax.devices()[0].device_kind}; XLA memory_analysis of compiled '
        'steps')
  table('seed CNN', cnn())
  table("the paper's MLP 784-1000-1000-10", mlp())
  table('GPT-2 small shapes', gpt2())
  if args.skip_family:
    return
  print(f'\nThe GPT-2 family: compiled step peak in GB, and whether it fits '
        f'in {DEVICE_BYTES / 2**30:.0f} GiB')
  names = args.family_variants
  print(f'{"model":<14} {"params":>14} ' + ' '.join(
      f'{v:>22}' for v in names))
  for model, (layers, width) in GPT2.items():
    params = gpt2(layers, width)
    n = sum(x.size for x in jax.tree.leaves(params))
    cells = []
    for name in names:
      dtype, make_tx = variants()[name]
      peak = measure(params, dtype, make_tx())['peak']
      cells.append(f'{peak / 1e9:>9.2f} '
                   f'{"fits" if peak <= DEVICE_BYTES else "too big":>12}')
    print(f'{model:<14} {n:>14,} ' + ' '.join(f'{c:>22}' for c in cells))


if __name__ == '__main__':
  main()
