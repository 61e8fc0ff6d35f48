"""Times one jitted Adam step, ours against optax.adam, and a memory floor.

One step is `update` + `apply_updates` in a single jitted function with the
params and optimizer state donated, as in a training loop. Adam is memory
bound: it reads p, g, m, v and writes p, m, v. The floor is a jitted, donated
function that does exactly that with trivial arithmetic, so ours/floor says how
close the step is to the machine's bandwidth. "floor GB/s" counts those 7
float32 arrays; XLA:CPU splits both Adam and the floor into three loops (m, v,
then p), which move 10.

The three functions are timed interleaved, in an order that rotates every
round, and their buffers are reallocated every --block rounds in a rotating
order too (placement in memory alone moved a step by ~3% here), so that load
from elsewhere and memory layout hit all of them alike; the table shows
medians. "same HLO" says whether ours and Optax compile to the same program
up to names and metadata, in which case any gap between them is noise.

With --lowmem (on by default; --no-lowmem leaves it out) the same rounds
also time adam_lowmem's variants: 8-bit and 4-bit Adam on float32 params, and
8-bit Adam with Kahan compensation or stochastic rounding on bf16 params (bf16
gradients). A second table gives each against our float32 Adam and against
its own floor: the measured floor time scaled by the bytes the variant must
move per parameter (8-bit: 16, 4-bit: 14, bf16 + 8-bit + Kahan: 14, bf16 +
8-bit + stochastic rounding: 10, against float32 Adam's 28), i.e. at the
bandwidth the floor reached. The quantised steps write their update into the
gradient's buffer; here the gradient is an argument of the jitted step, which
XLA does not let them overwrite, so their times include one copy of it (in a
training step the gradient is a temporary of the same program and is reused).

Usage, from the repository root:

  python benchmarks/adam_step.py [--repeats 60] [--workloads array pytree]
"""

import argparse
import os
import re
import statistics
import sys
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

# Run as a script, sys.path[0] is benchmarks/; adam_optax lives one level up.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from adamjax.optim import lowmem  # pylint: disable=g-import-not-at-top,wrong-import-position
import adam_optax  # pylint: disable=g-import-not-at-top,wrong-import-position

# Low-memory variants: name -> (param dtype, optimizer factory, bytes a step
# must read + write per parameter: p, g, the codes (+ the Kahan buffer) in,
# and p, the codes (+ buffer) out; the per-block scales add a little more).
LOWMEM = {
    '8-bit': (jnp.float32, lambda: lowmem.adam8bit(1e-3), 16),
    '4-bit': (jnp.float32, lambda: lowmem.adam4bit(1e-3), 14),
    'bf16 8-bit kahan': (jnp.bfloat16, lambda: optax.chain(
        lowmem.adam8bit(1e-3), lowmem.kahan_compensation()), 14),
    'bf16 8-bit stoch.': (jnp.bfloat16, lambda: optax.chain(
        lowmem.adam8bit(1e-3), lowmem.stochastic_rounding()), 10),
}


def one_array(size: int) -> dict[str, jax.Array]:
  """A single float32 array of `size` elements."""
  return {'w': jnp.full((size,), 0.5, jnp.float32)}


def transformer_pytree() -> dict[str, Any]:
  """200 leaves shaped like a 12-layer, d=384 transformer (25.2M params)."""
  d, mlp, vocab, max_len, classes = 384, 1536, 8192, 512, 1000
  leaf = lambda *shape: jnp.full(shape, 0.5, jnp.float32)
  params = {
      'token_embed': leaf(vocab, d),
      'pos_embed': leaf(max_len, d),
      'final_norm': {'scale': leaf(d), 'bias': leaf(d)},
      'pooler': {'w': leaf(d, d), 'b': leaf(d)},
      'head': {'w': leaf(d, classes), 'b': leaf(classes)},
  }
  for i in range(12):
    params[f'layer_{i:02d}'] = {
        'norm1': {'scale': leaf(d), 'bias': leaf(d)},
        'norm2': {'scale': leaf(d), 'bias': leaf(d)},
        **{name: {'w': leaf(d, d), 'b': leaf(d)}
           for name in ('query', 'key', 'value', 'out')},
        'mlp_in': {'w': leaf(d, mlp), 'b': leaf(mlp)},
        'mlp_out': {'w': leaf(mlp, d), 'b': leaf(d)},
    }
  return params


def optimizer_step(tx: optax.GradientTransformation) -> Callable[..., Any]:
  """step(params, state, grads) -> (params, state), params/state donated."""

  def step(params, state, grads):
    """One update, applied."""
    updates, state = tx.update(grads, state, params)
    return optax.apply_updates(params, updates), state

  return jax.jit(step, donate_argnums=(0, 1))


def floor_step() -> Callable[..., Any]:
  """step(p, (m, v), g) -> (p, (m, v)) like an optimizer step, donated.

  Reads p, g, m, v and writes p, m, v with trivial arithmetic: the memory
  traffic of Adam without its math, in the same three loops that XLA makes of
  Adam (m, v, then p from the new m and v). Each loop is a multiply-add, not
  a bare add: XLA:CPU runs a lone elementwise op as its own, slower kernel
  (~20% here), which would put the floor above Adam itself.
  """

  def step(params, state, grads):
    """The memory-bandwidth floor of one Adam step."""
    m, v = state
    m = jax.tree.map(lambda m, g: 0.5 * m + g, m, grads)
    v = jax.tree.map(lambda v, g: 0.5 * v - g, v, grads)
    params = jax.tree.map(lambda p, m, v: p + m * v, params, m, v)
    return params, (m, v)

  return jax.jit(step, donate_argnums=(0, 1))


def _program(fn: Callable[..., Any], *args: Any) -> list[str]:
  """The compiled HLO of fn(*args), without names, metadata or debug tables.

  Two steps with equal programs run the same machine code, so any gap in
  their timings is noise.
  """
  lines = fn.lower(*args).compile().as_text().splitlines()
  # The computations; before them come the module line and source tables.
  first = next(i for i, line in enumerate(lines)
               if line.startswith(('%', 'ENTRY')))
  text = '\n'.join(lines[first:])
  text = re.sub(r', metadata=\{[^}]*\}', '', text)
  text = re.sub(r'%[\w.\-]+', '%', text)
  return sorted(text.splitlines())


def _rotated(names: list[str], k: int) -> list[str]:
  """`names` rotated left by k."""
  k %= len(names)
  return names[k:] + names[:k]


def benchmark(params: Any, repeats: int, warmup: int,
              block: int, lowmem: bool = False) -> tuple[dict[str, float],
                                                          bool]:
  """Median ms per step of ours, optax.adam and the floor (and with
  `lowmem`, of the LOWMEM variants); equal programs?"""
  grads = jax.tree.map(lambda x: jnp.full_like(x, 1e-3), params)
  copy = lambda tree: jax.tree.map(jnp.copy, tree)
  ours, theirs = adam_optax.adam(1e-3), optax.adam(1e-3)
  steps = {'ours': optimizer_step(ours), 'optax': optimizer_step(theirs),
           'floor': floor_step()}
  inits = {'ours': ours.init, 'optax': theirs.init,
           'floor': lambda p: (copy(p), copy(p))}
  same = (_program(steps['ours'], params, ours.init(params), grads)
          == _program(steps['optax'], params, theirs.init(params), grads))
  # Each function's params dtype (its grads have the same dtype).
  dtypes = {name: jnp.float32 for name in steps}
  for name, (dtype, make_tx, _) in (LOWMEM.items() if lowmem else ()):
    tx = make_tx()
    steps[name], inits[name], dtypes[name] = optimizer_step(tx), tx.init, dtype
  # Fresh buffers (donation consumes them), in the given dtype.
  cast = lambda tree, dtype: jax.tree.map(
      lambda x: jnp.array(x, dtype=dtype, copy=True), tree)
  grads_of = {name: grads if dtypes[name] == jnp.float32 else cast(
      grads, dtypes[name]) for name in steps}
  names = list(steps)

  def fresh_buffers(k):
    """New params and state for each function, allocated in rotated order.

    Donation consumes a function's inputs, so each has its own. Where they
    land in memory shifts a step by a few percent (whichever set was
    allocated first ran ~3% faster here), so the order rotates per block.
    """
    carries = {}
    for name in _rotated(names, k):
      p = cast(params, dtypes[name])
      carries[name] = [p, inits[name](p)]
    return carries

  times = {name: [] for name in names}
  carries = fresh_buffers(0)
  for rep in range(-warmup, repeats):
    if rep >= 0 and rep % block == 0:
      carries = None  # Free the old buffers first.
      carries = fresh_buffers(rep // block)
    # Interleaved, the order rotated every round, so that drift in the
    # machine's load and the position in the round hit all functions alike.
    for name in _rotated(names, rep):
      start = time.perf_counter()
      out = steps[name](*carries[name], grads_of[name])
      jax.block_until_ready(out)
      elapsed = time.perf_counter() - start
      carries[name] = list(out)
      if rep >= 0:
        times[name].append(elapsed * 1e3)
  return {name: statistics.median(t) for name, t in times.items()}, same


def main() -> None:
  """Parses flags, runs the workloads, prints the table."""
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--repeats', type=int, default=60,
                      help='timed steps per function and workload')
  parser.add_argument('--block', type=int, default=10,
                      help='timed steps between reallocations of buffers')
  parser.add_argument('--warmup', type=int, default=3,
                      help='untimed steps first (compilation, page faults)')
  parser.add_argument('--size', type=int, default=25_000_000,
                      help='elements of the single-array workload')
  parser.add_argument('--workloads', nargs='+', default=['array', 'pytree'],
                      choices=['array', 'pytree'])
  parser.add_argument('--lowmem', action=argparse.BooleanOptionalAction,
                      default=True, help='also time the adam_lowmem variants')
  args = parser.parse_args()
  lowmem_rows = []

  workloads = {'array': lambda: one_array(args.size),
               'pytree': transformer_pytree}
  print(f'jax {jax.__version__}, optax {optax.__version__}, '
        f'{jax.devices()[0].device_kind}, {os.cpu_count()} CPUs, '
        f'median of {args.repeats} interleaved steps')
  header = (f'{"workload":<27} {"ours ms":>8} {"optax ms":>8} {"floor ms":>8}'
            f' {"floor GB/s":>10} {"ours/optax":>10} {"ours/floor":>10}'
            f' {"same HLO":>8}')
  print(header)
  print('-' * len(header))
  for name in args.workloads:
    params = workloads[name]()
    leaves = jax.tree.leaves(params)
    n = sum(x.size for x in leaves)
    ms, same = benchmark(params, args.repeats, args.warmup, args.block,
                         args.lowmem)
    # What the floor must move: 4 reads + 3 writes of float32.
    gbps = 7 * 4 * n / (ms['floor'] * 1e-3) / 1e9
    label = f'{name} ({len(leaves)} leaves, {n / 1e6:.1f}M)'
    print(f'{label:<27} {ms["ours"]:>8.2f} {ms["optax"]:>8.2f} '
          f'{ms["floor"]:>8.2f} {gbps:>10.1f} {ms["ours"] / ms["optax"]:>10.3f}'
          f' {ms["ours"] / ms["floor"]:>10.3f} {"yes" if same else "NO":>8}')
    for variant, (_, _, moved) in (LOWMEM.items() if args.lowmem else ()):
      # The variant's floor: the measured floor at the bytes it must move.
      floor = ms['floor'] * moved / 28
      lowmem_rows.append(
          f'{label:<27} {variant:<18} {ms[variant]:>8.2f} '
          f'{ms[variant] / ms["ours"]:>9.3f} {moved:>7} {floor:>8.2f} '
          f'{ms[variant] / floor:>8.2f}')
  if lowmem_rows:
    header = (f'{"workload":<27} {"variant":<18} {"ms":>8} {"x f32 Adam":>9}'
              f' {"B/param":>7} {"floor ms":>8} {"x floor":>8}')
    print('\nadam_lowmem variants (same rounds; floor = measured floor '
          'scaled to the bytes each moves)')
    print(header)
    print('-' * len(header))
    print('\n'.join(lowmem_rows))


if __name__ == '__main__':
  main()
