"""When a run stops: signals (save, then stop) and divergence rules."""

import signal
import threading

from absl import logging
import numpy as np

from adamjax.common import errors


# Times the loss of a uniform guess (see check_divergence).
DIVERGENCE_FACTOR = 10


class StopRequest:
  """Turns SIGINT (Ctrl-C) and SIGTERM into a flag the loop checks.

  The loop finishes the steps already queued, saves a checkpoint and stops.
  A second Ctrl-C stops at once (KeyboardInterrupt), without saving.
  """

  SIGNALS = (signal.SIGINT, signal.SIGTERM)

  def __init__(self):
    """Nothing is requested yet."""
    self.signal_name = None
    self._previous = {}

  def _handle(self, signum, frame):
    """Records the first signal; a second one interrupts at once."""
    del frame
    if self.signal_name is not None:
      raise KeyboardInterrupt
    self.signal_name = signal.Signals(signum).name
    logging.info('%s received: stopping after the current steps and saving '
                 'a checkpoint (press Ctrl-C again to stop at once).',
                 self.signal_name)

  def __enter__(self) -> 'StopRequest':
    """Installs the handlers (only possible in the main thread)."""
    if threading.current_thread() is threading.main_thread():
      for sig in self.SIGNALS:
        self._previous[sig] = signal.signal(sig, self._handle)
    return self

  def __exit__(self, *exc_info) -> None:
    """Restores the previous handlers."""
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)


def check_losses(losses: np.ndarray, first_step: int) -> None:
  """Raises DivergedError naming the step of the first non-finite loss."""
  bad = np.flatnonzero(~np.isfinite(losses))
  if bad.size:
    raise errors.DivergedError(
        f'Training loss is {losses[bad[0]]} at step '
        f'{first_step + int(bad[0]) + 1}; stopping instead of training on '
        'NaN/inf. Try a smaller learning rate or --config.grad_clip_norm.')


def check_divergence(train_loss: float, epoch: int, chance_loss: float) -> None:
  """Raises DivergedError if train_loss > DIVERGENCE_FACTOR * chance_loss.

  chance_loss is a uniform guess's (objective.chance_loss: ln(classes) for a
  classifier). This catches divergence with finite losses (a learning rate of
  1e6 gives losses around 1e20).
  """
  limit = DIVERGENCE_FACTOR * chance_loss
  if train_loss > limit:
    raise errors.DivergedError(
        f'Training diverged: epoch {epoch} mean training loss {train_loss:.4g}'
        f' is above {limit:.3g} ({DIVERGENCE_FACTOR}x the loss of a uniform '
        'guess). Try a smaller learning rate or --config.grad_clip_norm.')
