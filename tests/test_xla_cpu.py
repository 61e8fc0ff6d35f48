"""Tests for the XLA:CPU workarounds."""


import jax
import pytest

from adamjax.trainer import xla_cpu



@pytest.mark.skipif(jax.default_backend() != 'cpu',
                    reason='the CPU default; other backends use 1 chunk')
def test_default_grad_chunks_divides_the_batch_on_cpu():
  """On CPU: chunks of about 8 examples, at most 16 chunks, a divisor."""
  assert [xla_cpu.default_grad_chunks(b) for b in (1, 8, 32, 64, 100, 256,
                                                 1000)] == [1, 1, 4, 8, 10, 16,
                                                            10]
