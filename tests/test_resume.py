"""Checkpoints and resume, with real processes: SIGKILL, Ctrl-C, damage.

Each run is `main.py` in a subprocess on a tiny IDX dataset, so these tests
see exactly what a user sees: a killed process, a rerun of the same command.
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from adamjax.trainer import checkpointing
from conftest import damage_checkpoint
from conftest import make_tiny_mnist
from conftest import without_timings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS_PER_EPOCH = 32  # 1,024 training examples, batch 32.
NUM_EPOCHS = 3


def command(data_dir, workdir, *extra):
  """The main.py command line of the test run (2 epochs unless extended)."""
  return [sys.executable, os.path.join(ROOT, 'main.py'),
          '--config=configs/mnist.py', f'--workdir={workdir}',
          f'--config.data_dir={data_dir}', f'--config.num_epochs={NUM_EPOCHS}',
          '--config.batch_size=32', '--config.eval_batch_size=100',
          '--config.checkpoint_every_steps=5', '--config.progress_bar=False',
          '--config.optimizer.learning_rate=0.001', *extra]


def run(data_dir, workdir, *extra):
  """Runs the command to completion; returns the completed process."""
  return subprocess.run(command(data_dir, workdir, *extra), cwd=ROOT,
                        capture_output=True, text=True, timeout=300)


def metrics(workdir):
  """The rows of workdir/metrics.jsonl."""
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    return [json.loads(line) for line in f]


def committed_steps(workdir):
  """The steps of the committed (not temporary) checkpoints."""
  directory = os.path.join(workdir, checkpointing.CHECKPOINT_DIR)
  if not os.path.isdir(directory):
    return []
  return sorted(int(name) for name in os.listdir(directory) if name.isdigit())


def final_fingerprint(workdir):
  """The fingerprint stored with the newest checkpoint of a workdir."""
  step = committed_steps(workdir)[-1]
  path = os.path.join(workdir, checkpointing.CHECKPOINT_DIR, str(step),
                      'meta', 'metadata')
  with open(path) as f:
    return step, json.load(f)['fingerprint']


def start_and_signal(data_dir, workdir, sig):
  """Starts a run and sends `sig` once a mid-epoch checkpoint is committed.

  Returns:
    The finished process (returncode, stderr) after the signal.
  """
  process = subprocess.Popen(command(data_dir, workdir), cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
  deadline = time.monotonic() + 240
  while time.monotonic() < deadline and process.poll() is None:
    if any(step % STEPS_PER_EPOCH for step in committed_steps(workdir)):
      process.send_signal(sig)
      break
    time.sleep(0.005)
  _, stderr = process.communicate(timeout=240)
  return process.returncode, stderr


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  """A tiny dataset: 1,024 training and 200 test images."""
  folder = tmp_path_factory.mktemp('data')
  make_tiny_mnist(folder, num_train=1024, num_test=200)
  return str(folder)


@pytest.fixture(scope='module')
def reference(data_dir, tmp_path_factory):
  """An uninterrupted run: its workdir."""
  workdir = str(tmp_path_factory.mktemp('reference'))
  result = run(data_dir, workdir)
  assert result.returncode == 0, result.stderr
  assert [row['epoch'] for row in metrics(workdir)] == [1, 2, 3]
  return workdir


def test_sigkill_mid_epoch_then_rerun_is_bitwise_the_same_run(
    data_dir, reference, tmp_path):
  """Killed with SIGKILL mid-epoch and rerun: the same state and metrics."""
  workdir = str(tmp_path)
  returncode, _ = start_and_signal(data_dir, workdir, signal.SIGKILL)
  assert returncode == -signal.SIGKILL
  assert len(metrics(workdir)) < NUM_EPOCHS if os.path.exists(
      os.path.join(workdir, 'metrics.jsonl')) else True
  result = run(data_dir, workdir)
  assert result.returncode == 0, result.stderr
  assert 'resuming from step' in result.stderr
  # Parameters, optimizer state and every other byte of the final state.
  assert final_fingerprint(workdir) == final_fingerprint(reference)
  assert without_timings(metrics(workdir)) == without_timings(
      metrics(reference))


def test_ctrl_c_saves_a_checkpoint_and_says_how_to_resume(
    data_dir, reference, tmp_path):
  """SIGINT: a checkpoint at the stopping step, exit 130, then a clean resume."""
  workdir = str(tmp_path)
  returncode, stderr = start_and_signal(data_dir, workdir, signal.SIGINT)
  assert returncode == 130, stderr
  assert 'Rerun the same command to resume' in stderr
  assert 'Traceback' not in stderr
  stopped_at = int(stderr.split('at step ')[1].split(' ')[0])
  assert committed_steps(workdir)[-1] == stopped_at
  result = run(data_dir, workdir)
  assert result.returncode == 0, result.stderr
  assert f'resuming from step {stopped_at}' in result.stderr
  assert final_fingerprint(workdir) == final_fingerprint(reference)
  assert without_timings(metrics(workdir)) == without_timings(
      metrics(reference))


def test_more_epochs_continue_a_finished_run(data_dir, reference, tmp_path):
  """Raising num_epochs continues; the old rows stay, none is repeated."""
  workdir = str(tmp_path / 'run')
  os.makedirs(workdir)
  for name in os.listdir(reference):
    if name in ('checkpoints', 'metrics.jsonl', 'config.json'):
      src = os.path.join(reference, name)
      (subprocess.run(['cp', '-r', src, workdir], check=True))
  result = run(data_dir, workdir, f'--config.num_epochs={NUM_EPOCHS + 1}')
  assert result.returncode == 0, result.stderr
  rows = metrics(workdir)
  assert [row['epoch'] for row in rows] == [1, 2, 3, 4]
  assert rows[:3] == metrics(reference)
  assert f'resuming from step {NUM_EPOCHS * STEPS_PER_EPOCH}' in result.stderr


def copy_run(reference, workdir):
  """Copies a finished run's outputs into `workdir`."""
  subprocess.run(['cp', '-r', reference, workdir], check=True)
  return workdir


@pytest.mark.parametrize('how', ['truncate', 'flip'])
def test_a_damaged_latest_checkpoint_falls_back_to_the_previous(
    data_dir, reference, tmp_path, how):
  """The damaged checkpoint is named and the one before it evaluated."""
  workdir = copy_run(reference, str(tmp_path / 'run'))
  steps = committed_steps(workdir)
  damage_checkpoint(workdir, steps[-1], how)
  result = run(data_dir, workdir, '--mode=eval')
  assert result.returncode == 0, result.stderr
  assert f'Damaged checkpoint {workdir}' in result.stderr
  assert f'/{steps[-1]}' in result.stderr
  assert f'step {steps[-2]}: test loss' in result.stdout


def test_no_intact_checkpoint_is_a_clear_error(data_dir, reference, tmp_path):
  """Every checkpoint damaged: one clear message, no traceback."""
  workdir = copy_run(reference, str(tmp_path / 'run'))
  for step in committed_steps(workdir):
    damage_checkpoint(workdir, step, 'flip')
  result = run(data_dir, workdir, '--mode=eval')
  assert result.returncode == 1
  assert 'Error: No intact checkpoint in' in result.stderr
  assert '--config.restart=True' in result.stderr
  assert 'Traceback' not in result.stderr


def test_an_incompatible_workdir_is_refused_naming_the_fields(
    data_dir, reference, tmp_path):
  """A different learning rate and batch size: refused, both fields named."""
  workdir = copy_run(reference, str(tmp_path / 'run'))
  result = run(data_dir, workdir, '--config.optimizer.learning_rate=0.01',
               '--config.batch_size=64')
  assert result.returncode == 1
  assert 'optimizer.learning_rate (saved 0.001, now 0.01)' in result.stderr
  assert 'batch_size (saved 32, now 64)' in result.stderr
  assert '--config.restart=True' in result.stderr
  assert 'Traceback' not in result.stderr
  # The refused run changed nothing.
  assert metrics(workdir) == metrics(reference)


def test_restart_moves_the_old_run_aside(data_dir, reference, tmp_path):
  """restart=True keeps the old outputs under previous/ and starts at 1."""
  workdir = copy_run(reference, str(tmp_path / 'run'))
  result = run(data_dir, workdir, '--config.restart=True',
               '--config.num_epochs=1', '--config.optimizer.learning_rate=0.01')
  assert result.returncode == 0, result.stderr
  assert [row['epoch'] for row in metrics(workdir)] == [1]
  (moved,) = os.listdir(os.path.join(workdir, 'previous'))
  assert metrics(os.path.join(workdir, 'previous', moved)) == metrics(
      reference)


def test_eval_mode_prints_the_saved_accuracy(data_dir, reference):
  """--mode=eval reports the final epoch's test accuracy, without training."""
  result = run(data_dir, reference, '--mode=eval')
  assert result.returncode == 0, result.stderr
  accuracy = metrics(reference)[-1]['test_accuracy']
  assert f'test accuracy {100 * accuracy:.2f}%' in result.stdout
  assert len(metrics(reference)) == NUM_EPOCHS


def test_eval_mode_without_a_checkpoint_says_so(data_dir, tmp_path):
  """Nothing to evaluate: a clear message, exit 1."""
  result = run(data_dir, str(tmp_path), '--mode=eval')
  assert result.returncode == 1
  assert 'No checkpoint to evaluate' in result.stderr


def test_tensorboard_events_hold_epoch_and_step_metrics(reference):
  """The event files hold per-epoch metrics and the per-step train loss."""
  from tensorboard.backend.event_processing import event_accumulator  # pylint: disable=g-import-not-at-top
  accumulator = event_accumulator.EventAccumulator(
      os.path.join(reference, 'tensorboard'))
  accumulator.Reload()
  tags = accumulator.Tags()['scalars']
  assert 'epoch/test_accuracy' in tags and 'train/loss' in tags
  accuracies = [e.value for e in accumulator.Scalars('epoch/test_accuracy')]
  assert accuracies == pytest.approx(
      [row['test_accuracy'] for row in metrics(reference)])
  steps = [e.step for e in accumulator.Scalars('train/loss')]
  assert steps == list(range(50, NUM_EPOCHS * STEPS_PER_EPOCH + 1, 50))


def test_fields_added_after_a_run_started_count_as_their_defaults():
  """A saved config without a newer field resumes if the field is default."""
  saved = {'seed': 0, 'optimizer': {'name': 'adam'}}
  defaults = {'seed': 0, 'param_dtype': 'float32',
              'optimizer': {'name': 'adam', 'b1': None}}
  current = {'seed': 0, 'param_dtype': 'float32',
             'optimizer': {'name': 'adam', 'b1': None}}
  assert checkpointing.config_differences(saved, current, defaults) == []
  current['param_dtype'] = 'bfloat16'
  current['optimizer']['b1'] = 0.8
  assert checkpointing.config_differences(saved, current, defaults) == [
      "optimizer.b1 (saved None, now 0.8)",
      "param_dtype (saved 'float32', now 'bfloat16')"]
  assert checkpointing.config_differences(saved, current) == [
      "optimizer.b1 (saved '<absent>', now 0.8)",
      "param_dtype (saved '<absent>', now 'bfloat16')"]
