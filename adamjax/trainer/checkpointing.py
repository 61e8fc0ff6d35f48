"""Orbax checkpoints of a run's whole state, and the workdir they live in.

Beside each checkpoint a JSON item holds a SHA-256 fingerprint of the state:
Orbax's atomic commit keeps a killed save from looking complete, and the
fingerprint catches later damage (truncation, flipped bytes), so a damaged
checkpoint is reported and the previous one used. The workdir's config.json
refuses a resume whose config differs outside HARMLESS_FIELDS.
"""

import datetime
import gc
import hashlib
import json
import logging as std_logging
import os
import shutil
import sys
from typing import Any, Optional

from absl import logging
import jax
from jax.experimental import multihost_utils
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from adamjax import schema
from adamjax.common import errors

CHECKPOINT_DIR = 'checkpoints'
CONFIG_FILE = 'config.json'
PREVIOUS_DIR = 'previous'
# What a fresh start (config.restart) moves aside, never deletes.
RUN_OUTPUTS = (CHECKPOINT_DIR, CONFIG_FILE, 'metrics.jsonl', 'tensorboard')

# Fields a resume may change and stay exact (or only extend the run): length,
# saving and logging, file locations, the evaluation batch (exact for any
# size), and the devices or processes sharing the work (the same global batch;
# only the float summation order changes).
HARMLESS_FIELDS = frozenset({
    'num_epochs', 'progress_bar', 'restart', 'checkpoint_every_steps',
    'keep_checkpoints', 'log_every_steps', 'progress_every_s',
    'eval_batch_size', 'data_dir', 'num_devices', 'coordinator_address',
    'num_processes', 'process_id', 'shard_optimizer_state',
})


def fingerprint(tree: Any) -> str:
  """SHA-256 over the bytes, shapes and dtypes of every leaf of `tree`."""
  digest = hashlib.sha256()
  for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
    if not (getattr(leaf, 'is_fully_addressable', True) or
            leaf.is_fully_replicated):
      # Split over processes (a sharded optimizer state): gather it whole.
      leaf = multihost_utils.process_allgather(leaf, tiled=True)
    array = np.asarray(jax.device_get(leaf))
    digest.update(f'{jax.tree_util.keystr(path)}:{array.dtype}:'
                  f'{array.shape};'.encode())
    digest.update(np.ascontiguousarray(array).tobytes())
  return digest.hexdigest()


def _as_json_dict(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """The config as the plain JSON dict config.json holds."""
  return json.loads(config.to_json_best_effort())


def config_differences(saved: dict[str, Any], current: dict[str, Any],
                       defaults: Optional[dict[str, Any]] = None) -> list[str]:
  """Names the fields, outside HARMLESS_FIELDS, that differ, with both values.

  A field missing from `saved` was added after that run started, when the
  code behaved as its default does, so it counts as its value in `defaults`.

  Args:
    saved: the config the workdir's run started with, as a JSON dict.
    current: this run's config, as a JSON dict.
    defaults: the default config, as a JSON dict.

  Returns:
    Sorted 'field (saved X, now Y)' strings; empty if the run may resume.
  """
  saved, current = schema.flatten(saved), schema.flatten(current)
  defaults = schema.flatten(defaults or {})
  differences = []
  for field in sorted(set(saved) | set(current)):
    if field.split('.')[0] in HARMLESS_FIELDS:
      continue
    before = saved.get(field, defaults.get(field, '<absent>'))
    after = current.get(field, '<absent>')
    if before != after:
      differences.append(f'{field} (saved {before!r}, now {after!r})')
  return differences


def check_folder(path: str, what: str) -> None:
  """Refuses a path that exists but is not a folder.

  Args:
    path: the folder.
    what: what it should be, for the message ("the run's checkpoints
      folder").

  Raises:
    errors.WorkdirError: naming the path and what to do.
  """
  if os.path.lexists(path) and not os.path.isdir(path):
    raise errors.WorkdirError(
        f'{path} is a file, not {what}; remove or rename it, or use another '
        '--workdir.')


def _read_saved_config(path: str) -> dict[str, Any]:
  """workdir/config.json as a dict; a damaged one is a WorkdirError."""
  fix = ('pass --config.restart=True to move the old run aside and start '
         'afresh.')
  if os.path.isdir(path):
    raise errors.WorkdirError(f'{path} is a folder, not the saved config; '
                              f'{fix}')
  try:
    with open(path, 'rb') as f:
      saved = json.loads(f.read().decode('utf-8'))
  except OSError as e:
    raise errors.WorkdirError(f'cannot read {path}: {e.strerror}.') from e
  except ValueError as e:  # JSONDecodeError, UnicodeDecodeError
    raise errors.WorkdirError(f'{path} is not valid JSON ({e}); {fix}') from e
  if not isinstance(saved, dict):
    raise errors.WorkdirError(f'{path} is not a config (a JSON object); {fix}')
  return saved


def move_aside(workdir: str) -> Optional[str]:
  """Moves a previous run's outputs into workdir/previous/<time>/.

  Args:
    workdir: the run's folder.

  Returns:
    The folder they were moved to, or None if there was nothing to move.
  """
  present = [name for name in RUN_OUTPUTS
             if os.path.exists(os.path.join(workdir, name))]
  if not present:
    return None
  stamp = datetime.datetime.now().strftime('%Y%m%d-%H%M%S-%f')
  target = os.path.join(workdir, PREVIOUS_DIR, stamp)
  os.makedirs(target)
  for name in present:
    shutil.move(os.path.join(workdir, name), os.path.join(target, name))
  return target


def check_workdir(config: ml_collections.ConfigDict, workdir: str) -> None:
  """Refuses a workdir whose saved run the config would not continue exactly.

  With config.restart the old outputs are moved aside first. Writes the
  config to config.json.

  Args:
    config: this run's config.
    workdir: created if missing.

  Raises:
    errors.WorkdirError: naming the differing fields and how to start afresh.
  """
  check_folder(workdir, 'a folder (--workdir)')
  try:
    os.makedirs(workdir, exist_ok=True)
  except OSError as e:
    raise errors.WorkdirError(
        f'cannot create the workdir {workdir}: {e.strerror}; choose another '
        '--workdir.') from e
  if config.get('restart', False) and jax.process_index() == 0:
    moved = move_aside(workdir)
    if moved:
      logging.info('restart: moved the previous run in %s to %s', workdir,
                   moved)
  if jax.process_count() > 1:
    # Only process 0 moves the old run aside; the others wait for it.
    multihost_utils.sync_global_devices('checkpointing.check_workdir')
  path = os.path.join(workdir, CONFIG_FILE)
  current = _as_json_dict(config)
  if os.path.lexists(os.path.join(workdir, CHECKPOINT_DIR)) and (
      os.path.lexists(path)):
    saved = _read_saved_config(path)
    differences = config_differences(
        saved, current, _as_json_dict(schema.default_config('classify')))
    if differences:
      raise errors.WorkdirError(
          f'{workdir} holds a run with a different config: '
          f'{"; ".join(differences)}. Rerun with the saved values, use '
          'another --workdir, or pass --config.restart=True to move the old '
          'run aside and start afresh.')
  text = config.to_json_best_effort(indent=2)
  if jax.process_index() == 0 and not _holds(path, text):
    # Replaced in one step: the other processes of a multi-process run may be
    # reading it above at this moment, and must never see it half written.
    try:
      if os.path.isdir(path):
        raise IsADirectoryError(21, 'it is a folder')
      with open(path + '.tmp', 'w') as f:
        f.write(text)
      os.replace(path + '.tmp', path)
    except OSError as e:
      if os.path.isfile(path) and not isinstance(e, IsADirectoryError):
        # The saved config is compatible (checked above) and stays: a
        # read-only workdir can still be evaluated; training stops at its
        # first write with its own message.
        logging.warning('Cannot update %s (%s); keeping the saved one.', path,
                        e.strerror)
        return
      raise errors.WorkdirError(
          f'cannot write {path}: {e.strerror}; make {workdir} writable '
          '(or remove that entry), or use another --workdir.') from e


def _holds(path: str, text: str) -> bool:
  """Whether the file at `path` holds exactly `text`."""
  try:
    with open(path) as f:
      return f.read() == text
  except (OSError, ValueError):
    return False



# Damaged checkpoint folders whose abandoned reads are kept off the console.
_ABANDONED: set[str] = set()


def _is_abandoned_read(error: BaseException) -> bool:
  """Whether `error` comes from Orbax's unfinished reads of a damaged one."""
  text = f'{error}'
  return (any(where in text for where in _ABANDONED) or
          (isinstance(error, RuntimeError) and text == 'Event loop is closed'))


def _silence_abandoned_reads() -> None:
  """Filters _is_abandoned_read's errors out of the hooks that print them."""
  # Orbax stops a restore at its first unreadable array and leaves the other
  # reads unfinished; they print long tracebacks at random later moments,
  # through sys.excepthook (a TensorStore thread finding the event loop
  # closed), sys.unraisablehook ("Exception ignored in ...") or asyncio's
  # logger ("exception was never retrieved"). The damage is reported in one
  # line already; every other error still reaches the hooks and the log.
  if getattr(sys.excepthook, 'drops_abandoned_reads', False):
    return
  excepthook, unraisablehook = sys.excepthook, sys.unraisablehook

  def on_exception(kind, error, traceback):
    if not _is_abandoned_read(error):
      excepthook(kind, error, traceback)

  def on_unraisable(unraisable):
    if not _is_abandoned_read(unraisable.exc_value):
      unraisablehook(unraisable)

  on_exception.drops_abandoned_reads = True
  sys.excepthook, sys.unraisablehook = on_exception, on_unraisable
  std_logging.getLogger('asyncio').addFilter(
      lambda record: not (record.exc_info and
                          _is_abandoned_read(record.exc_info[1])))


class Checkpoints:
  """Saves and restores a run's TrainState in workdir/checkpoints with Orbax.

  Saves are asynchronous: `save` returns once the state is copied off the
  device, and the files are written while training goes on. `close` waits
  for the last save.
  """

  def __init__(self, workdir: str, keep: int):
    """Opens (or creates) workdir/checkpoints.

    Args:
      workdir: the run's folder.
      keep: how many of the newest checkpoints to keep.
    """
    self.directory = os.path.abspath(os.path.join(workdir, CHECKPOINT_DIR))
    check_folder(self.directory, "the run's checkpoints folder")
    # Saves a kill left half written (tmp folders, never seen as steps) are
    # removed when the manager opens.
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                           enable_async_checkpointing=True,
                                           cleanup_tmp_directories=True)
    try:
      self._manager = ocp.CheckpointManager(self.directory, options=options,
                                            item_names=('state', 'meta'))
    except OSError as e:
      raise errors.WorkdirError(
          f'cannot open {self.directory}: {e.strerror}; make {workdir} '
          'writable or use another --workdir.') from e
    # Steps restore_latest found damaged: a save at one of them replaces it.
    self._damaged: set[int] = set()

  def steps(self) -> list[int]:
    """The steps of the committed checkpoints, newest first."""
    return sorted(self._manager.all_steps(), reverse=True)

  def save(self, state: Any, meta: dict[str, Any]) -> None:
    """Starts saving `state` at its step (returns before the disk write).

    Args:
      state: the TrainState; copied first, so the train step may donate its
        buffers during the write.
      meta: JSON-able facts about the run to keep beside it.
    """
    step = int(state.step)
    if step in self._damaged:
      # Retrained from an earlier checkpoint: the damaged one is replaced.
      self._manager.wait_until_finished()
      self._manager.delete(step)
      self._damaged.discard(step)
      logging.warning('Replacing the damaged checkpoint at step %d.', step)
    elif step in self._manager.all_steps():
      return  # Already saved (e.g. the end of an epoch that was the end).
    state = jax.tree.map(lambda x: jnp.array(x, copy=True), state)
    meta = dict(meta, fingerprint=fingerprint(state))
    self._manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)))

  def restore_latest(self, target: Any) -> tuple[Any, dict[str, Any]] | None:
    """Restores the newest checkpoint that is intact.

    A damaged checkpoint (unreadable, or not matching its fingerprint) is
    reported by name, and the one before it tried.

    Args:
      target: a TrainState giving the structure, shapes, dtypes, shardings.

    Returns:
      (state, meta) of the newest intact checkpoint, or None if there is none.

    Raises:
      errors.WorkdirError: if checkpoints exist but none is intact.
    """
    steps = self.steps()
    if not steps:
      return None
    _silence_abandoned_reads()
    problems = []
    for step in steps:
      where = os.path.join(self.directory, str(step))
      try:
        restored = self._manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(target),
            meta=ocp.args.JsonRestore()))
        state, meta = restored['state'], restored['meta']
        # Damage shows up as any of many exception types from Orbax,
        # TensorStore or the JSON reader; all mean "this one is unusable".
      except Exception as e:  # pylint: disable=broad-except
        problem = f'{where}: cannot be read ({type(e).__name__}: ' \
                  f'{str(e).splitlines()[0][:200] if str(e) else ""})'
      else:
        if meta.get('fingerprint') == fingerprint(state):
          if problems:
            logging.warning('Using the checkpoint at step %d instead.', step)
          return state, meta
        problem = f'{where}: its bytes do not match its fingerprint'
      logging.warning('Damaged checkpoint %s', problem)
      _ABANDONED.add(where)
      gc.collect()  # Lets the abandoned reads go now, silenced.
      problems.append(problem)
      self._damaged.add(step)
    raise errors.WorkdirError(
        f'No intact checkpoint in {self.directory}: {"; ".join(problems)}. '
        'Pass --config.restart=True to move it aside and start afresh.')

  def wait(self) -> None:
    """Blocks until every save started so far is on disk."""
    self._manager.wait_until_finished()

  def close(self) -> None:
    """Waits for pending saves and releases the manager."""
    self._manager.wait_until_finished()
    self._manager.close()
