"""Shared test helpers: writing IDX files and a tiny MNIST-like dataset."""

import contextlib
import gzip
import os
import subprocess
import sys
import threading
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import adam_optax
from adamjax import models
from adamjax.trainer import train_state


@contextlib.contextmanager
def main_flags(*argv):
  """main.py's flags parsed from `argv`, then unparsed; yields main.

  absl's logger level is put back too: unparsing resets it to WARNING,
  which would hide later tests' INFO records from caplog.
  """
  import logging  # pylint: disable=g-import-not-at-top
  import main  # pylint: disable=g-import-not-at-top
  absl_logger = logging.getLogger('absl')
  level = absl_logger.level
  main.FLAGS(['main.py', *argv])
  try:
    yield main
  finally:
    main.FLAGS.unparse_flags()
    absl_logger.setLevel(level)


def write_idx(path, array):
  """Writes a uint8 array as an IDX file, gzipped if `path` ends in '.gz'.

  Args:
    path: the file to write.
    array: a uint8 array of any rank; its shape goes into the header.
  """
  array = np.asarray(array)
  if array.dtype != np.uint8:
    raise ValueError(f'write_idx needs a uint8 array, got {array.dtype}')
  # Magic: two zero bytes, type 0x08 (uint8), then the number of dimensions.
  header = bytes([0, 0, 0x08, array.ndim]) + b''.join(
      d.to_bytes(4, 'big') for d in array.shape)
  opener = gzip.open if str(path).endswith('.gz') else open
  with opener(path, 'wb') as f:
    f.write(header + array.tobytes())


def make_tiny_mnist(folder, num_train=256, num_test=128, seed=0):
  """Writes the four gzipped IDX files of a small learnable 28x28 dataset.

  Each image is dim noise plus a bright 8x4 bar whose position encodes its
  label (two rows of five slots), so a small CNN can learn it in a few steps.

  Args:
    folder: an existing folder to write into.
    num_train: number of training examples.
    num_test: number of test examples.
    seed: seed of the noise and the label order.
  """
  rng = np.random.default_rng(seed)
  for prefix, n in (('train', num_train), ('t10k', num_test)):
    # Every class appears (when n >= 10), in a shuffled order.
    labels = rng.permutation(np.arange(n) % 10).astype(np.uint8)
    images = rng.integers(0, 64, size=(n, 28, 28), dtype=np.uint8)
    for i, label in enumerate(labels):
      row, col = 4 + 12 * (label // 5), 1 + 5 * (label % 5)
      images[i, row:row + 8, col:col + 4] = 255
    write_idx(os.path.join(folder, f'{prefix}-images-idx3-ubyte.gz'), images)
    write_idx(os.path.join(folder, f'{prefix}-labels-idx1-ubyte.gz'), labels)


@pytest.fixture
def tiny_mnist_dir(tmp_path):
  """Returns a folder holding a tiny valid dataset: 256 train, 128 test."""
  make_tiny_mnist(tmp_path)
  return str(tmp_path)


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  """A tiny dataset folder (256 train, 128 test), shared by a test module.

  A module that needs another size defines its own data_dir fixture.
  """
  folder = tmp_path_factory.mktemp('data')
  make_tiny_mnist(folder)
  return str(folder)


# metrics.jsonl fields that measure time, and so differ between equal runs.
TIMING_FIELDS = ('epoch_time_s', 'compile_time_s', 'images_per_s')


def without_timings(rows):
  """metrics.jsonl rows without the fields that measure time."""
  return [{k: v for k, v in row.items() if k not in TIMING_FIELDS}
          for row in rows]


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAIN = os.path.join(ROOT, 'main.py')


def run_main(*flags, cwd=ROOT, env=None, timeout=120):
  """Runs main.py with `flags`; returns the completed process."""
  return subprocess.run([sys.executable, MAIN, *flags], capture_output=True,
                        text=True, cwd=cwd, timeout=timeout,
                        env=None if env is None else {**os.environ, **env})


def random_data(seed, n):
  """n random uint8 images and int32 labels, as the trainer stores them."""
  rng = np.random.default_rng(seed)
  return (jnp.asarray(rng.integers(0, 256, (n, 28, 28, 1), np.uint8)),
          jnp.asarray(rng.integers(0, 10, n), jnp.int32))


def fresh_state():
  """A CNN TrainState with our Adam at 1e-3, initialised from key 0."""
  return train_state.create_train_state(jax.random.key(0), models.CNN(),
                                  adam_optax.adam(1e-3), (28, 28, 1))


def damage_checkpoint(workdir, step, how):
  """Damages checkpoint `step`'s largest state file: truncate, flip, remove."""
  folder = os.path.join(workdir, 'checkpoints', str(step), 'state')
  files = [os.path.join(d, f) for d, _, fs in os.walk(folder) for f in fs]
  largest = max(files, key=os.path.getsize)
  if how == 'remove':
    os.remove(largest)
    return
  with open(largest, 'r+b') as f:
    if how == 'truncate':
      f.truncate(os.path.getsize(largest) // 2)
    else:
      data = bytearray(f.read())
      for i in range(len(data) // 3, len(data) // 3 + 64):
        data[i] ^= 0xFF
      f.seek(0)
      f.write(data)


@contextlib.contextmanager
def serving_playground():
  """A uvicorn server of the playground page in a thread; yields its URL."""
  # pylint: disable=g-import-not-at-top
  import uvicorn
  from adamjax.playground import web
  from configs import playground_web
  # pylint: enable=g-import-not-at-top
  defaults = web.defaults_from_config(playground_web.get_config())
  sock = web.bind('127.0.0.1', 0)
  server = uvicorn.Server(uvicorn.Config(web.create_app(defaults),
                                         log_level='warning', lifespan='off'))
  thread = threading.Thread(target=server.run, kwargs={'sockets': [sock]},
                            daemon=True)
  thread.start()
  began = time.monotonic()
  while not server.started:
    assert time.monotonic() - began < 30, 'the server did not start'
    time.sleep(0.05)
  try:
    yield web.url(sock)
  finally:
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


# The quick subset: `python -m pytest -m quick -q`, about a minute on a
# 2-core CPU, reaching every product module (tests/test_quick.py checks that
# each is imported by one of these files, and that every name here is a
# test). ALL takes a file's every test.
ALL = '*'
QUICK = {
    'test_quick.py': ALL,
    'test_checks.py': ALL,
    'test_schema.py': ALL,
    'test_tables.py': ALL,
    'test_control.py': ALL,
    'test_order.py': ALL,
    'test_schedules.py': ALL,
    'test_report.py': ALL,
    'test_xla_cpu.py': ALL,
    'test_objective.py': ALL,
    'test_evaluation.py': ALL,
    'test_models.py': ['test_model_registry_parameter_counts_and_bad_names'],
    'test_adam_optax.py': ['test_parity_with_optax',
                           'test_parity_with_paper'],
    'test_registry.py': ['test_unknown_optimizer_lists_the_registry',
                         'test_bad_learning_rate',
                         'test_from_config_applies_warmup_and_clipping'],
    'test_steps.py': ['test_train_steps_equals_single_steps'],
    'test_input_pipeline.py': ['test_read_idx_round_trips_images_and_labels',
                               'test_load_dataset_reads_data_dir',
                               'test_load_idx_dir_rejects_bad_contents'],
    'test_experiment_figures.py': [
        'test_plot_curves_draws_groups_of_runs_and_names_a_bad_glob'],
    'test_compare.py': ['test_run_config_is_an_ordinary_training_config'],
    'test_kingma_ba.py': ['test_vae_bad_config_is_named'],
    'test_playground.py': ['test_adam_converges_to_the_origin_on_the_quadratic',
                           'test_bad_settings_are_clear_errors',
                           'test_the_web_page_without_its_packages_is_one_line'],
    'test_playground_web.py': ['test_run_returns_the_paths_and_table_jax_computes',
                               'test_meta_and_landscape'],
    'test_console.py': [
        'test_console_lines_are_plain_messages',
        'test_a_log_line_never_lands_on_the_progress_bar',
        'test_training_progress_lines_start_their_own_lines',
        'test_main_prints_the_stop_message_alone', 'test_closest',
        'test_close_field',
        'test_a_misspelt_choice_is_named_with_its_likely_meaning',
        'test_a_misspelt_problem_is_named_with_its_likely_meaning',
        'test_an_unknown_field_in_a_config_suggests_the_full_name',
        'test_a_misspelt_flag_suggests_the_field'],
}


def pytest_collection_modifyitems(config, items):
  """Marks the tests QUICK names with `quick`."""
  del config
  for item in items:
    names = QUICK.get(os.path.basename(str(item.fspath)))
    if names == ALL or (names and item.originalname in names):
      item.add_marker(pytest.mark.quick)
