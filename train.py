"""Trains and evaluates a classifier: the loop, reading top to bottom.

  python main.py --config=configs/mnist.py --workdir=/tmp/mnist

`trainer.setup` turns the config into data, model, optimizer and state (the
newest checkpoint's, if the workdir has one). Each epoch dispatches the jitted
steps, evaluates every held-out example once, appends a row to metrics.jsonl
and checkpoints the whole state. Ctrl-C or SIGTERM saves and stops; the same
command resumes exactly.
"""

import os
from typing import Any, Iterator

from absl import logging
import jax
import ml_collections
import numpy as np
import tqdm

from adamjax.common import errors
from adamjax.data import input_pipeline
from adamjax.data import order
from adamjax.trainer import checkpointing
from adamjax.trainer import compile_clock
from adamjax.trainer import control
from adamjax.trainer import distributed
from adamjax.trainer import evaluation
from adamjax.trainer import metrics_log
from adamjax.trainer import objective
from adamjax.trainer import setup as setup_lib
from adamjax.trainer import steps as steps_lib
from adamjax.trainer.train_state import TrainState


def train_and_evaluate(config: ml_collections.ConfigDict,
                       workdir: str) -> TrainState:
  """Trains for config.num_epochs, evaluating, logging and checkpointing.

  Resumes from the newest intact checkpoint in workdir if there is one.
  Writes workdir/config.json, one JSON row per epoch to metrics.jsonl,
  TensorBoard events to tensorboard/ and checkpoints to checkpoints/.

  Args:
    config: the experiment config (see configs/default.py).
    workdir: the output folder (created if missing).

  Returns:
    The final TrainState.

  Raises:
    errors.UserError: on a bad config, dataset or workdir, a divergence, or
      an interruption (after saving).
  """
  run = setup_lib.setup(config, workdir)
  state = run.state
  trained = int(state.epoch) - 1
  if trained >= config.num_epochs:
    run.checkpoints.close()
    metrics_log.check_logs(workdir)  # Damaged logs are named even so.
    logging.info('%s: already trained %d/%d epochs; nothing to do (use '
                 '--mode=eval to evaluate, or a larger --config.num_epochs to '
                 'train on)', workdir, trained, config.num_epochs)
    return state
  if run.resumed:
    logging.info('resuming from step %d (%s) in %s', run.step,
                 _position(run, state), run.checkpoints.directory)
  log = metrics_log.RunLog(workdir, run.step, config.log_every_steps,
                           config.progress_every_s)
  logging.info('Training on %s (%d train / %d test examples), %d steps per '
               'epoch, %d gradient chunks per device batch, %d devices in %d '
               'process(es): %s', config.dataset, len(run.train.labels),
               len(run.test.labels), run.steps_per_epoch, run.grad_chunks,
               run.mesh.size, jax.process_count(), run.mesh.devices.tolist())
  try:
    with control.StopRequest() as stop:
      while int(state.epoch) <= config.num_epochs:
        epoch, done_before = int(state.epoch), int(state.position)
        with compile_clock.Stopwatch() as watch, _progress_bar(
            run, epoch, done_before) as progress:
          state = train_epoch(run, state, log, stop, progress)
        metrics = _epoch_metrics(run, state, watch, done_before)
        if log.write_epoch(metrics, int(state.step)):
          logging.info(metrics_log.format_epoch(metrics))
        # The row is written first: a kill between the two repeats the
        # epoch's training exactly but never its row (see metrics_log).
        state = state.next_epoch()
        _save(run, state)
        if stop.signal_name is not None:
          # Asked to stop during the evaluation: the epoch is saved, so stop
          # here rather than start the next one (or let compare start its
          # next run).
          _stopped(run, stop, f'after epoch {epoch} (step {int(state.step)})')
  finally:
    log.close()
    run.checkpoints.close()
  return state


def train_epoch(run: setup_lib.Run, state: TrainState,
                log: metrics_log.RunLog, stop: control.StopRequest,
                progress: tqdm.tqdm) -> TrainState:
  """Trains from the state's position to the end of its epoch.

  Groups of `steps_per_dispatch` steps are queued back to back; while group
  i runs, the host reads group i-1's losses to check and log them, so the
  device never waits on the host. A checkpoint is saved every
  config.checkpoint_every_steps steps (at the end of a group).

  Args:
    run: the data, config and checkpoints (trainer.setup).
    state: the TrainState, anywhere within an epoch (donated group by group).
    log: where step losses and progress lines go.
    stop: checked after each group; if set, the state is saved and the run
      stops.
    progress: the progress bar to advance.

  Returns:
    The state at the end of the epoch (position == steps_per_epoch).

  Raises:
    errors.DivergedError: on the first non-finite training loss.
    errors.InterruptedRun: after saving, when a stop was requested.
  """
  config = run.config
  epoch, position, step = (int(state.epoch), int(state.position),
                           int(state.step))
  every = config.checkpoint_every_steps
  # Every process draws the whole order from the seed (a few kB), then feeds
  # only its own devices' columns of each batch.
  batches = order.epoch_batches(
      jax.random.wrap_key_data(np.asarray(state.data_key)), epoch,
      len(run.train.labels), config.batch_size)
  batch_indices = distributed.feed(np.asarray(batches)[position:], run.mesh,
                                   axis=1)
  pending = None
  # What has been dispatched; the device may still be running the last group.
  dispatched_step, dispatched_position = step, position

  def collect(metrics):
    """Reads a finished group's losses on the host, checks and logs them."""
    nonlocal position, step
    losses = np.asarray(metrics['loss'])
    control.check_losses(losses, step)
    position += len(losses)
    log.write_steps(step, losses, config.batch_size, epoch, position,
                    run.steps_per_epoch)
    step += len(losses)
    progress.update(len(losses))

  for group in _dispatch_groups(batch_indices, config.steps_per_dispatch):
    state, metrics = steps_lib.train_steps(
        state, run.train.images, run.train.labels, group, run.grad_chunks,
        run.options, run.mesh, config.shard_optimizer_state)
    if pending is not None:
      collect(pending)
    pending = metrics
    group_start, dispatched_step = dispatched_step, dispatched_step + len(group)
    dispatched_position += len(group)
    if stop.signal_name is not None:
      collect(pending)
      _save(run, state)
      _stopped(run, stop, f'at step {step} (epoch {epoch}, batch {position}/'
               f'{run.steps_per_epoch})')
    # A multiple of `every` passed within this group; the end of an epoch is
    # saved after its evaluation instead.
    if (every and dispatched_step // every > group_start // every and
        dispatched_position < run.steps_per_epoch):
      _save(run, state)
  collect(pending)
  return state


def evaluate_saved(config: ml_collections.ConfigDict,
                   workdir: str) -> dict[str, float]:
  """Evaluates the newest checkpoint in workdir on the test split.

  Args:
    config: the config the run was trained with.
    workdir: the run's folder.

  Returns:
    {'loss', 'accuracy'} on the test split, also printed.

  Raises:
    errors.WorkdirError: if workdir holds no intact checkpoint, or it or its
      checkpoints folder is a file.
  """
  directory = os.path.join(workdir, checkpointing.CHECKPOINT_DIR)
  checkpointing.check_folder(workdir, 'a folder (--workdir)')
  checkpointing.check_folder(directory, "the run's checkpoints folder")
  if not os.path.isdir(directory):
    raise errors.WorkdirError(
        f'No checkpoint to evaluate in {workdir} (no {directory}); train '
        'first with the same --config and --workdir.')
  run = setup_lib.setup(config, workdir)
  try:
    if not run.checkpoints.steps():
      raise errors.WorkdirError(f'No checkpoint to evaluate in {directory}.')
    logging.info('evaluating checkpoint of step %d (%s) in %s on %s',
                 run.step, _position(run, run.state), directory,
                 config.data_dir or config.dataset)
    result = _evaluate(run, run.state)
  finally:
    run.checkpoints.close()
  print(f'step {run.step}: test loss {result["loss"]:.4f}, test accuracy '
        f'{100 * result["accuracy"]:.2f}% ({len(run.test.labels)} examples)',
        flush=True)
  return result


def _position(run: setup_lib.Run, state: TrainState) -> str:
  """Where in training `state` is: 'after epoch 2' or 'epoch 3, batch 5/8'."""
  epoch, position = int(state.epoch), int(state.position)
  if position == 0:
    return f'after epoch {epoch - 1}' if epoch > 1 else 'before training'
  return f'epoch {epoch}, batch {position}/{run.steps_per_epoch}'


def _evaluate(run: setup_lib.Run, state: TrainState) -> dict[str, float]:
  """Loss and accuracy on the run's held-out split."""
  return evaluation.evaluate(
      state, run.test, min(run.config.eval_batch_size, len(run.test.labels)),
      run.options.objective)


def _epoch_metrics(run: setup_lib.Run, state: TrainState,
                   watch: compile_clock.Stopwatch,
                   done_before: int) -> dict[str, Any]:
  """The epoch's metrics.jsonl row; refuses an epoch that diverged.

  epoch_time_s is the epoch's wall time, compile_time_s the part of it spent
  compiling; images_per_s counts the rest.
  """
  steps = run.steps_per_epoch
  train_loss = float(state.loss_sum) / steps
  control.check_divergence(train_loss, int(state.epoch), objective.chance_loss(
      run.options.objective, run.train.images.shape[1:],
      input_pipeline.NUM_CLASSES))
  result = _evaluate(run, state)
  metrics = {
      'train_loss': train_loss,
      'train_accuracy': float(state.accuracy_sum) / steps,
      'epoch': int(state.epoch),
      f'{run.eval_name}_loss': result['loss'],
      f'{run.eval_name}_accuracy': result['accuracy'],
      'epoch_time_s': watch.seconds,
      'compile_time_s': watch.compile_s,
      'images_per_s': (steps - done_before) * run.config.batch_size / max(
          watch.seconds - watch.compile_s, 1e-9),
  }
  if run.options.objective != 'classify':
    # The ELBO has no accuracy; a row of zeros would read as one.
    del metrics['train_accuracy'], metrics[f'{run.eval_name}_accuracy']
  return metrics


def _progress_bar(run: setup_lib.Run, epoch: int, done: int) -> tqdm.tqdm:
  """The epoch's tqdm bar (process 0 only, and only if the config wants it)."""
  wanted = run.config.progress_bar and jax.process_index() == 0
  return tqdm.tqdm(total=run.steps_per_epoch, initial=done,
                   desc=f'epoch {epoch}', unit='step',
                   disable=None if wanted else True, leave=False)


def _dispatch_groups(batch_indices: jax.Array,
                     size: int) -> Iterator[jax.Array]:
  """Splits (steps, B) indices into consecutive (<= size, B) groups."""
  for start in range(0, batch_indices.shape[0], size):
    yield batch_indices[start:start + size]


def _save(run: setup_lib.Run, state: TrainState) -> None:
  """Starts an asynchronous checkpoint of `state`."""
  run.checkpoints.save(state, {'num_train': len(run.train.labels),
                               'epoch': int(state.epoch),
                               'position': int(state.position)})


def _stopped(run: setup_lib.Run, stop: control.StopRequest, where: str) -> None:
  """Waits for the saved checkpoint, then raises InterruptedRun saying `where`."""
  run.checkpoints.wait()
  raise errors.InterruptedRun(
      f'Stopped by {stop.signal_name} {where}. Rerun the same command to '
      f'resume (checkpoint saved in {run.checkpoints.directory}).')
