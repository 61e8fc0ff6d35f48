"""Seconds JAX spends tracing, lowering and compiling, read from its events.

An epoch's wall time includes the compilation of its first dispatch (seconds
on a CPU, against a fraction of a second per step): a speedrun's training
time must leave it out, and a throughput must not be diluted by it. JAX
reports each stage as a duration event (`jax.monitoring`); one listener,
registered once per process, adds them up.
"""

import threading
import time

import jax

# The stages of a cache miss, as jax._src.dispatch names their events.
COMPILE_EVENTS = frozenset({
    '/jax/core/compile/jaxpr_trace_duration',
    '/jax/core/compile/jaxpr_to_mlir_module_duration',
    '/jax/core/compile/backend_compile_duration',
})

_lock = threading.Lock()
_total_s = 0.0
_registered = False


def _listen(event: str, duration_secs: float, **kwargs) -> None:
  """Adds a compilation stage's duration to the process total."""
  del kwargs
  global _total_s
  if event in COMPILE_EVENTS:
    with _lock:
      _total_s += duration_secs


def total_compile_s() -> float:
  """Seconds spent compiling in this process since the first call."""
  global _registered
  with _lock:
    if not _registered:
      jax.monitoring.register_event_duration_secs_listener(_listen)
      _registered = True
    return _total_s


class Stopwatch:
  """Wall seconds of a block and the part of them spent compiling.

  Usage: `with Stopwatch() as watch: ...`, then `watch.seconds` and
  `watch.compile_s`. Compilation in other threads during the block counts
  too (the trainer compiles in its own thread only).
  """

  def __enter__(self) -> 'Stopwatch':
    """Starts both clocks."""
    self._compiled = total_compile_s()
    self._start = time.perf_counter()
    self.seconds = self.compile_s = 0.0
    return self

  def __exit__(self, *exc_info) -> None:
    """Stops both clocks."""
    self.seconds = time.perf_counter() - self._start
    self.compile_s = min(total_compile_s() - self._compiled, self.seconds)
