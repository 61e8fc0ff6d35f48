"""Training images/s of the seed recipe against the number of CPU devices.

Each device count runs in a fresh process with
XLA_FLAGS=--xla_force_host_platform_device_count=N (JAX fixes its devices at
start-up) and trains as train.py does on a mesh of N devices: data and state
replicated, every global batch split along 'data', the default gradient
chunks of the per-device batch. With one device it also times the same step
without a mesh (mesh=None), in alternating rounds, to show what the mesh
machinery costs on its own. On a CPU the simulated devices share the same
cores, so this measures the cost of splitting, not a speed-up.

Usage, from the repository root:

  [MNIST_DIR=/path/to/mnist] python benchmarks/mesh_throughput.py \
      [--devices 1 2 4 8] [--batch_size 64] [--steps 50] [--rounds 3]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LEARNING_RATE = 5e-4


def child(args: argparse.Namespace) -> dict:
  """Times training on this process's devices; returns the measurements."""
  sys.path.insert(0, ROOT)
  # pylint: disable=g-import-not-at-top
  import jax
  import jax.numpy as jnp
  import numpy as np
  import adam_optax
  from adamjax.trainer import distributed
  from adamjax import models
  from adamjax.trainer import objective
  from adamjax.data import order
  from adamjax.trainer import steps
  from adamjax.trainer import train_state
  from adamjax.trainer import xla_cpu
  import train_throughput  # This folder, sys.path[0] when run as a script.
  # pylint: enable=g-import-not-at-top

  data, _, _ = train_throughput.load_data(args.data_dir)
  n = jax.device_count()
  batch, spd = args.batch_size, args.steps_per_dispatch
  chunks = xla_cpu.default_grad_chunks(batch // n)
  batch_order = np.asarray(order.epoch_batches(jax.random.key(1), 1,
                                         len(data.labels), batch))

  def fresh():
    """The seed recipe's initial state."""
    return train_state.create_train_state(jax.random.key(0), models.CNN(),
                                    adam_optax.adam(LEARNING_RATE),
                                    data.images.shape[1:])

  variants = {}
  mesh = distributed.make_mesh()
  variants['mesh'] = dict(
      state=distributed.place(fresh(), distributed.replicated(mesh)),
      data=distributed.place(tuple(data), distributed.replicated(mesh)),
      indices=distributed.feed(batch_order, mesh, axis=1), mesh=mesh)
  if n == 1:
    variants['no mesh'] = dict(
        state=fresh(), data=(jnp.asarray(data.images), jnp.asarray(data.labels)),
        indices=jnp.asarray(batch_order), mesh=None)

  def run(variant, num_steps):
    """`num_steps` optimizer steps from where the variant stands; waits."""
    metrics = None
    for _ in range(num_steps // spd):
      start = variant.setdefault('cursor', 0)
      if start + spd > len(batch_order):
        start = 0
      variant['cursor'] = start + spd
      variant['state'], metrics = steps.train_steps(
          variant['state'], *variant['data'],
          variant['indices'][start:start + spd], chunks, objective.StepOptions(),
          variant['mesh'])
    jax.block_until_ready(metrics)

  for variant in variants.values():
    run(variant, 3 * spd)  # Compile and warm up.
  rates = {name: [] for name in variants}
  for _ in range(args.rounds):
    for name, variant in variants.items():
      start = time.perf_counter()
      run(variant, args.steps)
      rates[name].append(args.steps * batch / (time.perf_counter() - start))
  return {'devices': n, 'per_device_batch': batch // n, 'grad_chunks': chunks,
          'rates': rates}


def main() -> None:
  """Runs one child per device count and prints the table."""
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--devices', type=int, nargs='+', default=[1, 2, 4, 8])
  parser.add_argument('--batch_size', type=int, default=64)
  parser.add_argument('--steps', type=int, default=50)
  parser.add_argument('--steps_per_dispatch', type=int, default=1)
  parser.add_argument('--rounds', type=int, default=3)
  parser.add_argument('--data_dir', default=os.environ.get('MNIST_DIR'))
  parser.add_argument('--child', action='store_true', help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.child:
    print(json.dumps(child(args)))
    return
  rows = []
  for n in args.devices:
    env = dict(os.environ, JAX_PLATFORMS='cpu',
               XLA_FLAGS=f'--xla_force_host_platform_device_count={n}')
    command = [sys.executable, os.path.abspath(__file__), '--child',
               f'--batch_size={args.batch_size}', f'--steps={args.steps}',
               f'--steps_per_dispatch={args.steps_per_dispatch}',
               f'--rounds={args.rounds}']
    if args.data_dir:
      command.append(f'--data_dir={args.data_dir}')
    result = subprocess.run(command, env=env, capture_output=True, text=True,
                            check=False)
    if result.returncode:
      sys.exit(f'{n} devices failed:\n{result.stderr[-3000:]}')
    rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
    print(f'{n} devices done', file=sys.stderr, flush=True)
  load = os.getloadavg()[0]
  print(f'batch {args.batch_size}, {args.steps} steps x {args.rounds} rounds, '
        f'{os.cpu_count()} CPUs, load average {load:.1f}')
  print('| devices | per-device batch | grad chunks | images/s (median) | '
        'min | max | vs 1 device |')
  print('|---|---|---|---|---|---|---|')
  base = None
  for row in rows:
    for name, rates in row['rates'].items():
      median = statistics.median(rates)
      if base is None:
        base = median
      label = f"{row['devices']}" + (' (no mesh)' if name == 'no mesh' else '')
      print(f"| {label} | {row['per_device_batch']} | {row['grad_chunks']} | "
            f'{median:.0f} | {min(rates):.0f} | {max(rates):.0f} | '
            f'{median / base:.2f} |')


if __name__ == '__main__':
  main()
