"""Where a run's numbers go: metrics.jsonl, TensorBoard and progress lines.

metrics.jsonl is append-only, one JSON row per epoch; a resumed run never
logs an epoch twice, even one it retrains after a kill between logging and
checkpointing. Only process 0 writes.
"""

import json
import os
import time
from typing import Any, Sequence

from absl import logging
import jax
import numpy as np

from adamjax.common import errors

METRICS_FILE = 'metrics.jsonl'
TENSORBOARD_DIR = 'tensorboard'


def _parse(path: str) -> tuple[list[dict[str, Any]], int | None]:
  """The complete rows of a metrics.jsonl, and where a cut last row starts.

  A kill while a row is appended can leave its beginning without the final
  newline: that row is left out, and its byte offset returned (else None).

  Raises:
    errors.WorkdirError: if the path is not a readable file, or a line other
      than such a cut last row is not a metrics row.
  """
  fix = ('Mend or delete that line, or pass --config.restart=True to move '
         'the old run aside and start afresh.')
  if os.path.isdir(path):
    raise errors.WorkdirError(
        f'{path} is a folder, not the run\'s metrics file; remove it, or '
        'pass --config.restart=True to move the old run aside.')
  try:
    with open(path, 'rb') as f:
      data = f.read()
  except OSError as e:
    raise errors.WorkdirError(f'cannot read {path}: {e.strerror}.') from e
  rows, offset, cut = [], 0, None
  for number, line in enumerate(data.splitlines(keepends=True), 1):
    start, offset = offset, offset + len(line)
    if not line.strip():
      continue
    try:
      row = json.loads(line.decode('utf-8'))
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError
      if not line.endswith(b'\n') and line.lstrip().startswith(b'{'):
        cut = start  # The last row, cut short by a kill mid-write.
        logging.warning('%s line %d is a row cut short (the run was killed '
                        'while writing it); ignoring it.', path, number)
        break
      raise errors.WorkdirError(
          f'{path} line {number} is not valid JSON ({e}). {fix}') from e
    if not (isinstance(row, dict) and isinstance(row.get('epoch'), int)):
      raise errors.WorkdirError(
          f'{path} line {number} is not a metrics row (a JSON object with '
          f'an integer "epoch"). {fix}')
    if not line.endswith(b'\n'):
      cut = offset  # Complete, but the next row must start on a new line.
    rows.append(row)
  return rows, cut


def read_metrics(workdir: str) -> list[dict[str, Any]]:
  """The rows of workdir/metrics.jsonl (empty if there is none).

  A last row cut short by a kill is left out, with a warning.

  Raises:
    errors.WorkdirError: naming the file and line that is not a metrics row.
  """
  path = os.path.join(workdir, METRICS_FILE)
  if not os.path.lexists(path):
    return []
  return _parse(path)[0]


def _repair(path: str, rows: list[dict[str, Any]], cut: int) -> None:
  """Rewrites metrics.jsonl as its complete rows (in one atomic replace)."""
  with open(path, 'rb') as f:
    kept = f.read(cut)
  if kept and not kept.endswith(b'\n'):
    kept += b'\n'
  with open(path + '.tmp', 'wb') as f:
    f.write(kept)
    f.flush()
    os.fsync(f.fileno())
  os.replace(path + '.tmp', path)
  logging.warning('Repaired %s: kept its %d complete rows.', path, len(rows))


def _check_tensorboard(workdir: str) -> str:
  """workdir's TensorBoard folder; refuses a file in its place."""
  tensorboard = os.path.join(workdir, TENSORBOARD_DIR)
  if os.path.lexists(tensorboard) and not os.path.isdir(tensorboard):
    raise errors.WorkdirError(
        f'{tensorboard} is a file, not the run\'s TensorBoard folder; '
        'remove it, or pass --config.restart=True to move the old run '
        'aside.')
  return tensorboard


def check_logs(workdir: str) -> None:
  """What RunLog would refuse in workdir, checked without writing anything.

  For a run with nothing left to train: its damaged logs are still named.

  Raises:
    errors.WorkdirError: on a metrics.jsonl that is not metrics rows, or a
      file where the TensorBoard folder should be.
  """
  read_metrics(workdir)
  _check_tensorboard(workdir)


class RunLog:
  """Appends epoch metrics and step losses; prints progress while training."""

  def __init__(self, workdir: str, first_step: int, log_every_steps: int,
               progress_every_s: float):
    """Opens the run's logs.

    Args:
      workdir: the run's folder.
      first_step: the step training starts (or resumes) from; TensorBoard
        hides events a killed run wrote after it.
      log_every_steps: TensorBoard train-loss interval (0: never).
      progress_every_s: least seconds between progress lines.
    """
    self._writes = jax.process_index() == 0
    self._path = os.path.join(workdir, METRICS_FILE)
    rows, cut = (_parse(self._path) if os.path.lexists(self._path) else
                 ([], None))
    self.logged_epochs = {row['epoch'] for row in rows}
    self._log_every_steps = log_every_steps
    self._progress_every_s = progress_every_s
    self._last_progress = time.perf_counter()
    self._images_since = 0
    self._writer = None
    if self._writes:
      tensorboard = _check_tensorboard(workdir)
      try:
        if cut is not None:
          _repair(self._path, rows, cut)
      except OSError as e:
        raise errors.WorkdirError(
            f'cannot write {self._path}: {e.strerror}; make {workdir} '
            'writable or use another --workdir.') from e
      # Imported here: only a run that writes needs it.
      import tensorboardX  # pylint: disable=g-import-not-at-top
      # TensorBoard drops the events at steps >= purge_step; those up to
      # first_step (its loss, an epoch's metrics) were written for good.
      try:
        self._writer = tensorboardX.SummaryWriter(tensorboard,
                                                  purge_step=first_step + 1)
      except OSError as e:
        raise errors.WorkdirError(
            f'cannot write {tensorboard}: {e.strerror}; make {workdir} '
            'writable or use another --workdir.') from e

  def write_epoch(self, metrics: dict[str, Any], step: int) -> bool:
    """Appends one epoch's metrics unless that epoch is already logged.

    Args:
      metrics: JSON-able values, with an integer 'epoch'.
      step: the optimizer step at the end of the epoch (TensorBoard's x).

    Returns:
      Whether the row was written (False if the epoch was logged before).
    """
    epoch = metrics['epoch']
    if epoch in self.logged_epochs:
      logging.info('epoch %d is already in %s; not logging it again', epoch,
                   self._path)
      return False
    self.logged_epochs.add(epoch)
    if not self._writes:
      return True
    try:
      with open(self._path, 'a') as f:
        f.write(json.dumps(metrics) + '\n')
        f.flush()
        os.fsync(f.fileno())
    except OSError as e:
      raise errors.WorkdirError(
          f'cannot write {self._path}: {e.strerror}; make its folder '
          'writable or use another --workdir.') from e
    for key, value in metrics.items():
      if key != 'epoch' and isinstance(value, (int, float)):
        self._writer.add_scalar(f'epoch/{key}', value, step)
    self._writer.flush()
    return True

  def write_steps(self, first_step: int, losses: Sequence[float],
                  batch_size: int, epoch: int, position: int,
                  steps_per_epoch: int) -> None:
    """Logs the losses of steps first_step+1... and, now and then, progress.

    Args:
      first_step: the step before the first of `losses`.
      losses: the train loss of each step, in order.
      batch_size: examples per step (for images/s).
      epoch: the epoch these steps belong to.
      position: batches of the epoch done after these steps.
      steps_per_epoch: batches per epoch.
    """
    self._images_since += len(losses) * batch_size
    if self._writer is not None and self._log_every_steps:
      for i, loss in enumerate(losses):
        step = first_step + i + 1
        if step % self._log_every_steps == 0:
          self._writer.add_scalar('train/loss', float(loss), step)
    now = time.perf_counter()
    if now - self._last_progress >= self._progress_every_s:
      logging.info('step %d (epoch %d, batch %d/%d): loss %.4f, %.0f images/s',
                   first_step + len(losses), epoch, position, steps_per_epoch,
                   float(np.mean(losses)),
                   self._images_since / (now - self._last_progress))
      self._last_progress, self._images_since = now, 0

  def close(self) -> None:
    """Flushes and closes the TensorBoard writer."""
    if self._writer is not None:
      self._writer.close()
      self._writer = None


def format_epoch(metrics: dict[str, Any]) -> str:
  """One human line for an epoch's metrics (test or validation)."""
  split = 'val' if 'val_loss' in metrics else 'test'
  name = 'validation' if split == 'val' else 'test'
  accuracy = (f", {name} accuracy {100 * metrics[split + '_accuracy']:.2f}%"
              if split + '_accuracy' in metrics else '')
  return (f"epoch {metrics['epoch']}: train loss {metrics['train_loss']:.4f}, "
          f"{name} loss {metrics[split + '_loss']:.4f}{accuracy}, "
          f"{metrics['epoch_time_s']:.1f} s{_compiling(metrics)}, "
          f"{metrics['images_per_s']:.0f} images/s")


def _compiling(metrics: dict[str, Any]) -> str:
  """' (2.1 s compiling)' when the epoch compiled for 0.05 s or more."""
  seconds = metrics.get('compile_time_s', 0.0)
  return f' ({seconds:.1f} s compiling)' if seconds >= 0.05 else ''
