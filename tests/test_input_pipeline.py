"""Tests for input_pipeline: IDX parsing, folder loading and the TFDS path."""

import functools
import gzip
import http.server
import os
import re
import socket
import subprocess
import sys
import threading
import time

from conftest import write_idx
import numpy as np
import pytest

import input_pipeline


def _header(magic, *dims):
  """Returns an IDX header with the given magic number and dimensions."""
  return b''.join(x.to_bytes(4, 'big') for x in (magic, *dims))


def _write_bytes(path, data):
  """Writes raw bytes to `path`."""
  with open(path, 'wb') as f:
    f.write(data)


@pytest.mark.parametrize('suffix', ['', '.gz'])
def test_read_idx_round_trips_images_and_labels(tmp_path, suffix):
  """What write_idx writes, plain or gzipped, read_idx reads back exactly."""
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
  labels = np.array([0, 9, 3, 3, 7], np.uint8)
  write_idx(tmp_path / f'images{suffix}', images)
  write_idx(tmp_path / f'labels{suffix}', labels)

  read_images = input_pipeline.read_idx(str(tmp_path / f'images{suffix}'))
  read_labels = input_pipeline.read_idx(str(tmp_path / f'labels{suffix}'))

  np.testing.assert_array_equal(read_images, images)
  np.testing.assert_array_equal(read_labels, labels)
  assert read_images.dtype == np.uint8
  assert read_images.flags.writeable


def _write_maybe_gzipped(path, data):
  """Writes raw bytes to `path`, through gzip if it ends in '.gz'."""
  with (gzip.open if path.endswith('.gz') else open)(path, 'wb') as f:
    f.write(data)


@pytest.mark.parametrize('name, data, problem', [
    # A magic number other than the two accepted ones is named with both.
    ('float-images', _header(0x00000D03, 1, 2, 2) + bytes(16),
     r'.*bad IDX magic number 0x00000d03.*0x00000801.*0x00000803'),
    # A payload shorter or longer than the dimensions need gives both counts.
    ('images', _header(0x00000803, 2, 28, 28) + bytes(1000),
     r'.*truncated payload.*need 1568 payload bytes, found 1000'),
    ('labels.gz', _header(0x00000801, 3) + bytes(5),
     r'.*trailing bytes.*need 3 payload bytes, found 5'),
    # A file cut inside the magic number or the dimensions.
    ('images', b'\x00\x00', r'.*truncated IDX header: 2 bytes, need 4'),
    ('images', _header(0x00000803, 60000, 28),
     r'.*truncated IDX header: 12 bytes, need 16'),
])
def test_read_idx_rejects_malformed_files(tmp_path, name, data, problem):
  """A malformed IDX file is a ValueError naming the file and the problem."""
  path = str(tmp_path / name)
  _write_maybe_gzipped(path, data)
  with pytest.raises(ValueError, match=re.escape(path) + problem):
    input_pipeline.read_idx(path)


def test_read_idx_rejects_corrupt_gzip(tmp_path):
  """A '.gz' file that is not gzip data is an error naming the file."""
  path = str(tmp_path / 'labels.gz')
  _write_bytes(path, _header(0x00000801, 1) + b'\x01')
  with pytest.raises(
      ValueError, match=re.escape(path) + r'.*cannot decompress'):
    input_pipeline.read_idx(path)


def test_read_idx_missing_file(tmp_path):
  """A missing file is a FileNotFoundError naming it."""
  path = str(tmp_path / 'nope')
  with pytest.raises(FileNotFoundError, match=re.escape(path)):
    input_pipeline.read_idx(path)


def test_load_idx_dir_reads_tiny_dataset(tiny_mnist_dir):
  """The fixture's gzipped folder loads as documented Splits."""
  train, test = input_pipeline.load_idx_dir(tiny_mnist_dir)

  assert train.images.shape == (256, 28, 28, 1)
  assert test.images.shape == (128, 28, 28, 1)
  assert train.images.dtype == np.uint8
  assert train.labels.dtype == np.int32
  assert test.labels.shape == (128,)
  assert set(train.labels.tolist()) == set(range(10))


def test_load_idx_dir_reads_plain_and_mixed_files(tiny_mnist_dir):
  """Uncompressed files load too, even beside gzipped ones."""
  expected_train, expected_test = input_pipeline.load_idx_dir(tiny_mnist_dir)
  for name in ('train-images-idx3-ubyte', 't10k-labels-idx1-ubyte'):
    path = os.path.join(tiny_mnist_dir, name)
    with gzip.open(path + '.gz') as src:
      _write_bytes(path, src.read())
    os.remove(path + '.gz')

  train, test = input_pipeline.load_idx_dir(tiny_mnist_dir)

  np.testing.assert_array_equal(train.images, expected_train.images)
  np.testing.assert_array_equal(test.labels, expected_test.labels)


def test_load_idx_dir_names_missing_file_and_folder(tiny_mnist_dir):
  """A missing file is named, along with the folder and the expected names."""
  os.remove(os.path.join(tiny_mnist_dir, 't10k-labels-idx1-ubyte.gz'))
  with pytest.raises(
      FileNotFoundError,
      match=re.escape(tiny_mnist_dir) + r' lacks t10k-labels-idx1-ubyte .*'
      r'train-images-idx3-ubyte, train-labels-idx1-ubyte, '
      r't10k-images-idx3-ubyte, t10k-labels-idx1-ubyte'):
    input_pipeline.load_idx_dir(tiny_mnist_dir)


def test_load_idx_dir_missing_folder(tmp_path):
  """A folder that does not exist is named."""
  path = str(tmp_path / 'absent')
  with pytest.raises(FileNotFoundError, match=re.escape(path)):
    input_pipeline.load_idx_dir(path)


def test_load_idx_dir_rejects_mismatched_counts(tiny_mnist_dir):
  """Differing image and label counts name both files and both counts."""
  labels = os.path.join(tiny_mnist_dir, 'train-labels-idx1-ubyte.gz')
  write_idx(labels, np.zeros(255, np.uint8))
  images = os.path.join(tiny_mnist_dir, 'train-images-idx3-ubyte.gz')
  with pytest.raises(
      ValueError,
      match=re.escape(images) + r' holds 256 images but ' + re.escape(labels)
      + r' holds 255 labels'):
    input_pipeline.load_idx_dir(tiny_mnist_dir)


def _labels_out_of_range():
  """128 test labels, three of them (two distinct values) above 9."""
  labels = np.zeros(128, np.uint8)
  labels[[5, 17, 99]] = [12, 10, 12]
  return labels


@pytest.mark.parametrize('name, content, problem', [
    # Labels outside 0..9 name how many and a bad value.
    ('t10k-labels-idx1-ubyte.gz', _labels_out_of_range(),
     r': 3 labels out of range 0..9, e.g. 12'),
    # Images that are not 28x28 name the shape found.
    ('train-images-idx3-ubyte.gz', np.zeros((256, 32, 32), np.uint8),
     r'.*\(N, 28, 28\).*\(256, 32, 32\)'),
    # A labels file holding images names the shape.
    ('t10k-labels-idx1-ubyte.gz', np.zeros((128, 28, 28), np.uint8),
     r'.*1-D labels.*\(128, 28, 28\)'),
])
def test_load_idx_dir_rejects_bad_contents(tiny_mnist_dir, name, content,
                                           problem):
  """A valid IDX file with the wrong contents is named with the problem."""
  path = os.path.join(tiny_mnist_dir, name)
  write_idx(path, content)
  with pytest.raises(ValueError, match=re.escape(path) + problem):
    input_pipeline.load_idx_dir(tiny_mnist_dir)


def test_load_dataset_rejects_unknown_name(tiny_mnist_dir):
  """An unknown dataset name is an error listing the accepted names."""
  with pytest.raises(
      ValueError,
      match=r"Unknown dataset 'cifar10'; accepted: mnist, fashion_mnist"):
    input_pipeline.load_dataset('cifar10', tiny_mnist_dir)


@pytest.mark.parametrize('name', input_pipeline.DATASETS)
def test_load_dataset_reads_data_dir(tiny_mnist_dir, name):
  """With a folder, every accepted name reads that folder."""
  train, test = input_pipeline.load_dataset(name, tiny_mnist_dir)
  assert (len(train.labels), len(test.labels)) == (256, 128)


def test_import_does_not_load_tfds():
  """Importing the module stays cheap: TFDS is imported only to download."""
  code = ('import sys, input_pipeline; '
          'print("tensorflow_datasets" in sys.modules)')
  result = subprocess.run(
      [sys.executable, '-c', code], capture_output=True, text=True,
      check=True, cwd=os.path.dirname(os.path.dirname(__file__)))
  assert result.stdout.strip() == 'False'


@pytest.mark.parametrize('data_dir', [None, ''])
def test_load_dataset_offline_fails_fast_pointing_at_data_dir(
    tmp_path, monkeypatch, data_dir):
  """Offline with an empty TFDS data dir, the error comes in seconds."""
  monkeypatch.setenv('TFDS_DATA_DIR', str(tmp_path))

  def no_dns(*args, **kwargs):
    """Fails every host lookup, as on a machine without network."""
    del args, kwargs
    raise socket.gaierror(socket.EAI_NONAME, 'Name or service not known')

  # Offline for certain, even where this test runs with network access.
  monkeypatch.setattr(socket, 'getaddrinfo', no_dns)
  start = time.monotonic()
  with pytest.raises(
      ConnectionError,
      match=r"Could not download dataset 'mnist'.*--config\.data_dir=.*"
      r'train-images-idx3-ubyte, train-labels-idx1-ubyte, '
      r't10k-images-idx3-ubyte, t10k-labels-idx1-ubyte'):
    input_pipeline.load_dataset('mnist', data_dir)
  assert time.monotonic() - start < 10


@pytest.fixture
def idx_server(tiny_mnist_dir):
  """Serves the tiny dataset's files over HTTP on localhost; yields its URL."""
  handler = functools.partial(
      http.server.SimpleHTTPRequestHandler, directory=tiny_mnist_dir)
  server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  yield server, f'http://127.0.0.1:{server.server_port}/'
  server.shutdown()
  server.server_close()


def test_load_dataset_downloads_once_into_tfds_data_dir(
    tmp_path, monkeypatch, idx_server):
  """Without a folder, TFDS downloads into its data dir, then reuses it."""
  tfds = pytest.importorskip('tensorflow_datasets')
  server, url = idx_server
  data_dir = tmp_path / 'tfds'
  monkeypatch.setenv('TFDS_DATA_DIR', str(data_dir))
  monkeypatch.setenv('no_proxy', '127.0.0.1')
  # Point TFDS's mnist builder at the local server instead of the internet.
  monkeypatch.setattr(tfds.builder_cls('mnist'), 'URL', url)

  train, test = input_pipeline.load_dataset('mnist', None)

  assert (train.images.shape, test.images.shape) == (
      (256, 28, 28, 1), (128, 28, 28, 1))
  cached = list((data_dir / 'downloads' / 'mnist').glob('*.gz'))
  assert len(cached) == 4
  # With the server gone, only the cache can provide the files.
  server.shutdown()
  server.server_close()
  cached_train, _ = input_pipeline.load_dataset('mnist', None)
  np.testing.assert_array_equal(cached_train.images, train.images)


@pytest.mark.skipif(
    'MNIST_DIR' not in os.environ,
    reason='set MNIST_DIR to a folder holding the real MNIST IDX files')
def test_load_real_mnist():
  """The real MNIST folder loads with its documented sizes and values."""
  train, test = input_pipeline.load_dataset('mnist', os.environ['MNIST_DIR'])

  assert train.images.shape == (60000, 28, 28, 1)
  assert test.images.shape == (10000, 28, 28, 1)
  assert train.images.dtype == test.images.dtype == np.uint8
  assert train.labels.dtype == test.labels.dtype == np.int32
  for split in (train, test):
    assert split.labels.min() == 0 and split.labels.max() == 9
    assert set(split.labels.tolist()) == set(range(10))
