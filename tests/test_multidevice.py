"""Data parallelism over a mesh (issue 12): simulated devices, real processes.

The device count of a JAX process is fixed when JAX starts, so the checks on
2 and 4 simulated CPU devices run in a subprocess (tests/mesh_worker.py with
XLA_FLAGS=--xla_force_host_platform_device_count=4) and the rest of the suite
keeps its one device. The multi-process test starts two real main.py
processes that join over loopback through jax.distributed.initialize, with
JAX's CPU collectives (gloo).

Tolerance: a mesh sums each device's partial gradient in an all-reduce, one
device sums the whole batch in one reduction; float addition is not
associative, so the results differ in the last bits (measured after 16 Adam
steps: at most 6e-8 absolute, parameters up to 0.46). rtol=1e-5 with
atol=1e-6 leaves a wide margin over that and is still far below what a wrong
batch split or a missing all-reduce gives (differences of 1e-3 and more).
"""

import json
import os
import re
import socket
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import adam_optax
from adamjax.trainer import checkpointing
from adamjax.trainer import distributed
from adamjax.common import errors
import mesh_worker
from adamjax.trainer import metrics_log
from adamjax import models
from adamjax.trainer import objective
from adamjax.trainer import setup
from adamjax.trainer import steps
from adamjax.trainer import train_state
import train
from conftest import without_timings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOLERANCE = {'rtol': 1e-5, 'atol': 1e-6}


def forced_devices(n):
  """The environment of a subprocess that sees n CPU devices."""
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  env['XLA_FLAGS'] = (env.get('XLA_FLAGS', '') +
                      f' --xla_force_host_platform_device_count={n}').strip()
  return env


def main_flags(data_dir, workdir, num_epochs):
  """main.py flags for mesh_worker.tiny_config's recipe."""
  return ['--config=configs/mnist.py', f'--workdir={workdir}',
          f'--config.data_dir={data_dir}', f'--config.num_epochs={num_epochs}',
          '--config.batch_size=32', '--config.eval_batch_size=50',
          '--config.optimizer.learning_rate=0.001',
          '--config.progress_bar=False', '--config.checkpoint_every_steps=5']


def final_fingerprint(workdir):
  """The fingerprint stored with the newest checkpoint of a workdir."""
  directory = os.path.join(workdir, checkpointing.CHECKPOINT_DIR)
  step = max(int(name) for name in os.listdir(directory) if name.isdigit())
  with open(os.path.join(directory, str(step), 'meta', 'metadata')) as f:
    return json.load(f)['fingerprint']


def assert_params_close(got, want):
  """Every parameter within TOLERANCE."""
  assert sorted(got) == sorted(want)
  for name in want:
    np.testing.assert_allclose(got[name], want[name], err_msg=name,
                               **TOLERANCE)


@pytest.fixture(scope='module')
def mesh_runs(data_dir, tmp_path_factory):
  """mesh_worker's output on 4 simulated devices: (out_dir, result)."""
  out_dir = str(tmp_path_factory.mktemp('mesh'))
  result = subprocess.run(
      [sys.executable, os.path.join(ROOT, 'tests', 'mesh_worker.py'), out_dir,
       data_dir], env=forced_devices(4), cwd=ROOT, capture_output=True,
      text=True, timeout=900)
  assert result.returncode == 0, result.stderr[-5000:]
  with open(os.path.join(out_dir, 'result.json')) as f:
    return out_dir, json.load(f)


@pytest.fixture(scope='module')
def one_device_run(data_dir, tmp_path_factory):
  """The same recipe in this process, on its one device: (workdir, params)."""
  workdir = str(tmp_path_factory.mktemp('one'))
  state = train.train_and_evaluate(mesh_worker.tiny_config(data_dir), workdir)
  assert distributed.mesh_of(state).size == 1
  return workdir, mesh_worker.flat_params(state.params)


def test_2_and_4_devices_give_the_one_device_run(mesh_runs, one_device_run):
  """After 16 steps: the same parameters and epoch losses, to TOLERANCE."""
  out_dir, result = mesh_runs
  workdir, params = one_device_run
  assert result['devices'] == 4
  one = without_timings(metrics_log.read_metrics(workdir))
  assert [row['epoch'] for row in one] == [1, 2]
  for n in [*mesh_worker.MESH_SIZES, '4_sharded']:
    with np.load(os.path.join(out_dir, f'params_{n}.npz')) as mesh_params:
      assert_params_close(dict(mesh_params), params)
    rows = without_timings(metrics_log.read_metrics(os.path.join(out_dir,
                                                                 str(n))))
    assert [row['epoch'] for row in rows] == [1, 2]
    for row, want in zip(rows, one):
      for key in ('train_loss', 'test_loss'):
        assert row[key] == pytest.approx(want[key], rel=1e-5), (n, key)
      for key in ('train_accuracy', 'test_accuracy'):
        assert row[key] == want[key], (n, key)


def test_sharded_optimizer_state_keeps_a_quarter_on_each_of_4_devices(
    mesh_runs):
  """shard_optimizer_state: Adam's moments split 4 ways, the rest replicated.

  (That it trains to the same parameters is checked with the other runs
  above.)
  """
  runs = mesh_runs[1]['runs']
  replicated, sharded = runs['4'], runs['4_sharded']
  assert replicated['specs'] == ['P()']
  assert "P('data',)" in sharded['specs']
  full = replicated['optimizer_bytes_per_device']
  assert full > 2 * replicated['param_bytes_per_device']  # mu, nu, count
  # A quarter, plus the few bytes 4 does not divide and so stay whole (the
  # CNN's 10 output biases in mu and nu, the step count).
  assert full / 4 < sharded['optimizer_bytes_per_device'] <= full / 4 + 100


def test_one_device_mesh_is_bit_identical_to_no_mesh():
  """The mesh costs one device nothing: the same bits as the plain step."""
  rng = np.random.default_rng(7)
  images = rng.integers(0, 256, (96, 28, 28, 1), np.uint8)
  labels = rng.integers(0, 10, 96).astype(np.int32)
  indices = np.arange(96).reshape(3, 32)

  def fresh():
    """A CNN with Adam, from key 0."""
    return train_state.create_train_state(jax.random.key(0), models.CNN(),
                                    adam_optax.adam(1e-3), (28, 28, 1))

  plain, plain_metrics = steps.train_steps(
      fresh(), jnp.asarray(images), jnp.asarray(labels),
      jnp.asarray(indices), 4)
  mesh = distributed.make_mesh(1)
  data = distributed.place((images, labels), distributed.replicated(mesh))
  meshed, meshed_metrics = steps.train_steps(
      distributed.place(fresh(), distributed.replicated(mesh)), *data,
      distributed.feed(indices, mesh, axis=1), 4, objective.StepOptions(), mesh)
  assert distributed.mesh_of(meshed) is mesh
  for a, b in zip(jax.tree.leaves((plain, plain_metrics)),
                  jax.tree.leaves((meshed, meshed_metrics))):
    np.testing.assert_array_equal(a, b)


def test_evaluation_on_4_devices_counts_every_example_once(mesh_runs):
  """23 examples in batches of 5 (8 on 4 devices), 23 and 64: exact means."""
  _, result = mesh_runs
  exact = result['evaluation']['exact']
  for batch_size, got in result['evaluation']['sharded'].items():
    assert got['counted'] == 23, batch_size
    assert got['shards'] == [4] and got['spec'] == "P('data',)", batch_size
    assert got['loss'] == pytest.approx(exact['loss'], rel=1e-6), batch_size
    assert got['accuracy'] == exact['accuracy'], batch_size


def test_configs_the_mesh_cannot_run_are_refused(mesh_runs):
  """A batch that does not divide, too many devices, chunks per device."""
  _, result = mesh_runs
  messages = result['refusals']
  assert messages['batch_30'].startswith(
      'config.batch_size=30 is invalid; accepted: a multiple of the 4 devices')
  assert messages['num_devices_5'].startswith(
      'config.num_devices=5 is invalid; accepted: None (all) or 1 to 4')
  assert messages['grad_chunks_16'].startswith(
      'config.grad_chunks=16 is invalid; accepted: None (automatic) or a '
      'divisor of the per-device batch 8')
  assert '/ 4 devices' in messages['grad_chunks_16']


def test_main_refuses_a_batch_that_does_not_divide_in_one_line(data_dir,
                                                               tmp_path):
  """What a user on 4 devices sees for --config.batch_size=30."""
  result = subprocess.run(
      [sys.executable, 'main.py', *main_flags(data_dir, tmp_path, 1),
       '--config.batch_size=30'], env=forced_devices(4), cwd=ROOT,
      capture_output=True, text=True, timeout=300)
  assert result.returncode == 1, result.stderr[-3000:]
  assert ('Error: config.batch_size=30 is invalid; accepted: a multiple of '
          'the 4 devices of the mesh') in result.stderr
  assert 'Traceback' not in result.stderr


@pytest.mark.parametrize('overrides, message', [
    ({'num_processes': 2},
     'config.num_processes=2 needs config.coordinator_address'),
    ({'coordinator_address': 'localhost', 'num_processes': 2, 'process_id': 0},
     "config.coordinator_address='localhost' is invalid; accepted: "
     "'host:port'"),
    ({'coordinator_address': '127.0.0.1:1234', 'num_processes': 2},
     'config.process_id=None is invalid; accepted: an integer >= 0'),
    ({'coordinator_address': '127.0.0.1:1234', 'num_processes': 2,
      'process_id': 2},
     'config.process_id=2 is invalid; accepted: 0 to '
     'config.num_processes - 1 = 1'),
    ({'process_id': 1},
     'config.process_id=1 needs config.num_processes > 1'),
])
def test_bad_process_fields_are_named_before_joining(overrides, message):
  """Inconsistent multi-process fields fail before any connection attempt."""
  with pytest.raises(errors.ConfigError, match=re.escape(message)):
    distributed.initialize(mesh_worker.tiny_config('unused', **overrides))
  assert not jax.distributed.is_initialized()


def free_port():
  """A TCP port that is free on the loopback interface now."""
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def run_two_processes(data_dir, workdir, num_epochs, audit_dir):
  """main.py as processes 0 and 1 of a run; returns each one's audit."""
  address = f'127.0.0.1:{free_port()}'
  processes, audits = [], []
  for index in range(2):
    audits.append(os.path.join(audit_dir, f'audit_{num_epochs}_{index}.json'))
    processes.append(subprocess.Popen(
        [sys.executable, os.path.join(ROOT, 'tests', 'audited_main.py'),
         audits[-1], *main_flags(data_dir, workdir, num_epochs),
         f'--config.coordinator_address={address}',
         '--config.num_processes=2', f'--config.process_id={index}'],
        cwd=ROOT, env=forced_devices(1), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True))
  try:
    outputs = [p.communicate(timeout=600) for p in processes]
  finally:
    for p in processes:
      if p.poll() is None:
        p.kill()
  for index, (p, (_, stderr)) in enumerate(zip(processes, outputs)):
    assert p.returncode == 0, f'process {index}: {stderr[-5000:]}'
    assert '2 devices in 2 process(es)' in stderr
  result = []
  for path in audits:
    with open(path) as f:
      result.append(json.load(f))
  return result


def under(paths, folder):
  """The paths inside `folder`, relative to it."""
  folder = os.path.abspath(folder) + os.sep
  return sorted(p[len(folder):] for p in paths if p.startswith(folder))


def test_two_processes_equal_one_process_and_only_process_0_writes(
    data_dir, mesh_runs, one_device_run, tmp_path):
  """Two real processes (1 device each): an epoch, then a resumed second one.

  They end bit for bit where one process with 2 devices ends (the same
  program; an all-reduce of two values is exact in either order), and within
  TOLERANCE of one device. Process 0 alone writes config, metrics and
  TensorBoard; process 1 writes only its own pieces of Orbax's checkpoints.
  """
  workdir = tmp_path / 'run'
  first = run_two_processes(data_dir, workdir, 1, tmp_path)
  second = run_two_processes(data_dir, workdir, 2, tmp_path)
  out_dir, _ = mesh_runs
  assert final_fingerprint(workdir) == final_fingerprint(
      os.path.join(out_dir, '2'))
  assert without_timings(metrics_log.read_metrics(workdir)) == without_timings(
      metrics_log.read_metrics(os.path.join(out_dir, '2')))
  assert len(os.listdir(workdir / 'tensorboard')) == 2  # One per command.

  for audit in (first, second):
    written0 = under(audit[0]['opened'], workdir)
    assert 'config.json.tmp' in written0 and 'metrics.jsonl' in written0
    assert any(p.startswith('tensorboard/events.') for p in written0)
    written1 = under(audit[1]['opened'] + audit[1]['renamed'], workdir)
    assert written1, 'the audit hook saw none of process 1\'s Orbax writes'
    for path in written1:
      assert path.startswith('checkpoints/') and 'process_1' in path, path

  # Restoring the 2-process checkpoint on this process's one device (the
  # device count may change between a run and its resumption).
  run = setup.setup(mesh_worker.tiny_config(data_dir), str(workdir))
  run.checkpoints.close()
  assert run.step == 16 and run.mesh.size == 1
  assert_params_close(mesh_worker.flat_params(run.state.params),
                      one_device_run[1])
