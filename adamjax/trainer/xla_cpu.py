"""XLA:CPU workarounds, each with the measurement that justifies it.

On a 2-core CPU (benchmarks/train_throughput.py, seed CNN):
* `chunks`: independent gradient chunks let XLA:CPU use both cores; batch 64
  in 8 chunks ran ~1.8x faster than one, batch 256 in 8 or 16 ~2.3x. GPUs and
  TPUs fill their cores from one batch, so they use 1 chunk.
* steps.train_steps unrolls a Python loop, not lax.scan: XLA:CPU ran these
  convolutions ~10x slower inside a while loop (even a one-trip one).
* models.max_pool_2x2: select-and-scatter (the max-pool gradient) ran as a
  scalar loop, 11 ms of a 35 ms batch-64 step; elementwise selects give the
  same bits.
"""

from typing import Optional

import jax
import jax.numpy as jnp

from adamjax.trainer import distributed


def chunks(x: jax.Array, chunks: int,
           mesh: Optional[jax.sharding.Mesh]) -> list[jax.Array]:
  """Splits a batch into `chunks` equal parts, each spread over the mesh.

  On a mesh, chunk i is every device's i-th block of its own share, so each
  chunk stays split along 'data' and no example moves between devices.
  """
  if mesh is None or mesh.size == 1:
    return jnp.split(x, chunks)
  blocks = x.reshape(mesh.size, chunks, -1, *x.shape[1:])
  return [jax.lax.with_sharding_constraint(
      blocks[:, i].reshape(-1, *x.shape[1:]), distributed.batch_sharding(mesh))
          for i in range(chunks)]


def default_grad_chunks(batch_size: int) -> int:
  """The grad_chunks that trains fastest here: chunks of ~8 on CPU, else 1.

  Args:
    batch_size: examples per step.

  Returns:
    On CPU the largest divisor of batch_size that is <= min(16,
    batch_size // 8), at least 1 (more chunks mostly add compile time); 1 on
    other backends.
  """
  if jax.default_backend() != 'cpu':
    return 1
  target = max(1, min(16, batch_size // 8))
  return max(d for d in range(1, target + 1) if batch_size % d == 0)
