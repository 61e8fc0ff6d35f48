"""Measures the bytes of parameters and Adam state, float32 against low-memory.

For each model the parameters are really allocated, each optimizer's state
is really initialised, and the bytes are the sum of the leaves' ``nbytes``
(what the device holds). ``jax.eval_shape`` of the same ``init`` is checked
to give the same count, and XLA's ``memory_analysis`` of the compiled,
donated step gives its temporary buffers (the working memory a step needs
on top of parameters, state and gradients).

Models: the seed's CNN (62,346 params); an MLP 784-1000-1000-10 (1.8M); a
12-layer, d=768 transformer with a 20,000-token vocabulary (101M params, 150
leaves; --skip_large leaves it out).

Usage, from the repository root:

  python benchmarks/adam_memory.py [--skip_large]
"""

import argparse
import os
import sys
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

# Run as a script, sys.path[0] is benchmarks/; the modules live one level up.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from adamjax.optim import lowmem  # pylint: disable=g-import-not-at-top,wrong-import-position
from adamjax import models  # pylint: disable=g-import-not-at-top,wrong-import-position

FLOAT32_ONLY = 2**62  # A min_8bit_size no leaf reaches: float32 moments.


def cnn() -> Any:
  """The seed's CNN, initialised."""
  return models.CNN().init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))[
      'params']


def mlp() -> Any:
  """A 784-1000-1000-10 MLP's weights and biases."""
  sizes = (784, 1000, 1000, 10)
  return {f'dense_{i}': {'kernel': jnp.full((a, b), 0.01),
                         'bias': jnp.zeros((b,))}
          for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))}


def transformer() -> Any:
  """12 layers, d=768, MLP 3072, vocabulary 20,000, 1,024 positions."""
  d, hidden, vocab, positions = 768, 3072, 20_000, 1024
  leaf = lambda *shape: jnp.full(shape, 0.01)
  params = {'token_embed': leaf(vocab, d), 'pos_embed': leaf(positions, d),
            'final_norm': {'scale': leaf(d), 'bias': leaf(d)}}
  for i in range(12):
    params[f'layer_{i:02d}'] = {
        'norm1': {'scale': leaf(d), 'bias': leaf(d)},
        'norm2': {'scale': leaf(d), 'bias': leaf(d)},
        'attention': {'qkv': {'kernel': leaf(d, 3 * d), 'bias': leaf(3 * d)},
                      'out': {'kernel': leaf(d, d), 'bias': leaf(d)}},
        'mlp_in': {'kernel': leaf(d, hidden), 'bias': leaf(hidden)},
        'mlp_out': {'kernel': leaf(hidden, d), 'bias': leaf(d)},
    }
  return params


def variants() -> dict[str, tuple[Any, Callable[[], optax.GradientTransformation]]]:
  """name -> (parameter dtype, optimizer)."""
  lr = 1e-3
  return {
      'float32 Adam': (jnp.float32, lambda: optax.adam(lr)),
      '8-bit Adam': (jnp.float32, lambda: lowmem.adam8bit(lr)),
      'bf16 + f32 Adam + Kahan': (jnp.bfloat16, lambda: optax.chain(
          lowmem.adam8bit(lr, min_8bit_size=FLOAT32_ONLY),
          lowmem.kahan_compensation())),
      'bf16 + 8-bit + Kahan': (jnp.bfloat16, lambda: optax.chain(
          lowmem.adam8bit(lr), lowmem.kahan_compensation())),
      'bf16 + 8-bit + stoch.': (jnp.bfloat16, lambda: optax.chain(
          lowmem.adam8bit(lr), lowmem.stochastic_rounding())),
  }


def nbytes(tree: Any) -> int:
  """Bytes of a pytree's leaves (arrays or ShapeDtypeStructs)."""
  return sum(x.size * jnp.dtype(x.dtype).itemsize
             for x in jax.tree.leaves(tree))


def step_temp_bytes(tx: optax.GradientTransformation, params: Any,
                    state: Any) -> int:
  """XLA's temporary bytes for one jitted, donated update + apply."""

  def step(params, state, grads):
    """One optimizer step."""
    updates, state = tx.update(grads, state, params)
    return optax.apply_updates(params, updates), state

  compiled = jax.jit(step, donate_argnums=(0, 1)).lower(
      params, state, params).compile()
  return compiled.memory_analysis().temp_size_in_bytes


def measure(params32: Any) -> dict[str, tuple[int, int, int]]:
  """name -> (param bytes, state bytes, step temp bytes), all measured."""
  out = {}
  for name, (dtype, make_tx) in variants().items():
    tx = make_tx()
    params = jax.tree.map(lambda p, d=dtype: p.astype(d), params32)
    state = tx.init(params)
    state_bytes = sum(x.nbytes for x in jax.tree.leaves(state))
    # The abstract evaluation must agree with what was allocated.
    assert nbytes(jax.eval_shape(tx.init, params)) == state_bytes, name
    out[name] = (sum(x.nbytes for x in jax.tree.leaves(params)), state_bytes,
                 step_temp_bytes(tx, params, state))
    del state, params
  return out


def main() -> None:
  """Measures every model and prints one table per model."""
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--skip_large', action='store_true',
                      help='leave out the 101M-parameter transformer')
  args = parser.parse_args()
  workloads = {'CNN': cnn, 'MLP 784-1000-1000-10': mlp}
  if not args.skip_large:
    workloads['transformer 12 x 768'] = transformer
  print(f'jax {jax.__version__}, optax {optax.__version__}, '
        f'{jax.devices()[0].device_kind}; bytes of real arrays')
  for label, make in workloads.items():
    params = make()
    n = sum(x.size for x in jax.tree.leaves(params))
    print(f'\n{label}: {n:,} parameters in {len(jax.tree.leaves(params))} '
          'leaves')
    header = (f'{"variant":<24} {"params B":>13} {"state B":>13} '
              f'{"state/f32":>9} {"total/f32":>9} {"B/param":>7} '
              f'{"step temp B":>12}')
    print(header)
    print('-' * len(header))
    rows = measure(params)
    p32, s32, _ = rows['float32 Adam']
    for name, (p, s, temp) in rows.items():
      print(f'{name:<24} {p:>13,} {s:>13,} {s / s32:>9.3f} '
            f'{(p + s) / (p32 + s32):>9.3f} {(p + s) / n:>7.2f} {temp:>12,}')
    del params


if __name__ == '__main__':
  main()
