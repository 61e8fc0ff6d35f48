"""XLA:CPU workarounds, each with the measurement that justifies it."""

from typing import Optional

import jax
import jax.numpy as jnp

from adamjax.trainer import distributed


def chunks(x: jax.Array, chunks: int, mesh: Optional[jax.sharding.Mesh]
            ) -> list[jax.Array]:
  """Splits a batch into `chunks` equal parts, each spread over the mesh.

  On one device chunk i is the i-th contiguous block. On a mesh of D devices
  each device's share of the batch is split into `chunks` blocks and chunk i
  is every device's i-th block, so every chunk stays split along 'data' and
  no example moves between devices.
  """
  if mesh is None or mesh.size == 1:
    return jnp.split(x, chunks)
  blocks = x.reshape(mesh.size, chunks, -1, *x.shape[1:])
  return [jax.lax.with_sharding_constraint(
      blocks[:, i].reshape(-1, *x.shape[1:]), distributed.batch_sharding(mesh))
          for i in range(chunks)]

def default_grad_chunks(batch_size: int) -> int:
  """The grad_chunks that trains fastest here: chunks of ~8 on CPU, else 1.

  On a 2-core CPU, chunks of 8 to 32 examples ran fastest (batch 64: 8
  chunks, ~1.8x one chunk; batch 256: 8 or 16 chunks, ~2.3x; measured with
  benchmarks/train_throughput.py); more chunks mostly add compile time. GPUs
  and TPUs fill their cores from one large batch, so there chunks only add
  work.

  Args:
    batch_size: examples per step.

  Returns:
    The largest divisor of batch_size that is <= min(16, batch_size // 8) on
    CPU (at least 1); 1 on other backends.
  """
  if jax.default_backend() != 'cpu':
    return 1
  target = max(1, min(16, batch_size // 8))
  return max(d for d in range(1, target + 1) if batch_size % d == 0)
