"""Tests for input_pipeline: IDX parsing, folder loading and the TFDS path."""

import base64
import functools
import gzip
import hashlib
import http.server
import logging
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
import requests
import urllib3

from adamjax.common import errors
from adamjax.data import input_pipeline


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
     r': truncated payload: dimensions \(2, 28, 28\) need 1568 payload '
     r'bytes, found 1000$'),
    ('labels.gz', _header(0x00000801, 3) + bytes(5),
     r': trailing bytes: dimensions \(3,\) need 3 payload bytes, found 5$'),
    # Dimension sizes are read as whole 4-byte big-endian numbers.
    ('labels', _header(0x00000801, 2**24 + 5),
     r': truncated payload: dimensions \(16777221,\) need 16777221 payload '
     r'bytes, found 0$'),
    ('images', _header(0x00000803, 2, 2**24 + 1, 3) + bytes(6),
     r': truncated payload: dimensions \(2, 16777217, 3\) need 100663302 '
     r'payload bytes, found 6$'),
    # A file cut inside the magic number or the dimensions.
    ('images', b'\x00\x00', r': truncated IDX header: 2 bytes, need 4 for the '
     r'magic number$'),
    ('labels', _header(0x00000801), r': truncated IDX header: 4 bytes, need 8 '
     r'for the magic number and 1 dimension sizes$'),
    ('images', _header(0x00000803, 60000, 28),
     r': truncated IDX header: 12 bytes, need 16 for the magic number and 3 '
     r'dimension sizes$'),
])
def test_read_idx_rejects_malformed_files(tmp_path, name, data, problem):
  """A malformed IDX file is a DataError naming the file and the problem."""
  path = str(tmp_path / name)
  _write_maybe_gzipped(path, data)
  with pytest.raises(errors.DataError, match='^' + re.escape(path) + problem):
    input_pipeline.read_idx(path)


def test_read_idx_rejects_corrupt_gzip(tmp_path):
  """A '.gz' file that is not gzip data is an error naming the file."""
  path = str(tmp_path / 'labels.gz')
  _write_bytes(path, _header(0x00000801, 1) + b'\x01')
  with pytest.raises(
      errors.DataError, match='^' + re.escape(path) + r': cannot decompress'):
    input_pipeline.read_idx(path)


def test_read_idx_missing_file(tmp_path):
  """A missing file is a MissingFileError naming it."""
  path = str(tmp_path / 'nope')
  with pytest.raises(errors.MissingFileError,
                     match='^' + re.escape(path) + ': no such IDX file$'):
    input_pipeline.read_idx(path)


def test_load_idx_dir_reads_tiny_dataset(tiny_mnist_dir, caplog):
  """The fixture's gzipped folder loads as documented Splits, and says so."""
  caplog.set_level(logging.INFO)
  train, test = input_pipeline.load_idx_dir(tiny_mnist_dir)
  assert caplog.messages == [
      f'Loaded {tiny_mnist_dir}: 256 train and 128 test examples.']

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
  """Missing files are named, along with the folder and the expected names."""
  os.remove(os.path.join(tiny_mnist_dir, 't10k-labels-idx1-ubyte.gz'))
  os.remove(os.path.join(tiny_mnist_dir, 'train-images-idx3-ubyte.gz'))
  with pytest.raises(
      errors.MissingFileError,
      match='^' + re.escape(tiny_mnist_dir) + r' lacks train-images-idx3-ubyte, '
      r't10k-labels-idx1-ubyte \(plain or \.gz\); it must hold the four IDX '
      r'files '
      r'train-images-idx3-ubyte, train-labels-idx1-ubyte, '
      r't10k-images-idx3-ubyte, t10k-labels-idx1-ubyte'):
    input_pipeline.load_idx_dir(tiny_mnist_dir)


def test_load_idx_dir_missing_folder(tmp_path):
  """A folder that does not exist (or is a file) is named."""
  path = str(tmp_path / 'absent')
  with pytest.raises(errors.MissingFileError,
                     match=f'^data_dir {re.escape(path)} is not a folder$'):
    input_pipeline.load_idx_dir(path)
  _write_bytes(path, b'')
  with pytest.raises(errors.MissingFileError, match='is not a folder'):
    input_pipeline.load_dataset('mnist', path)


def test_load_idx_dir_rejects_mismatched_counts(tiny_mnist_dir):
  """Differing image and label counts name both files and both counts."""
  labels = os.path.join(tiny_mnist_dir, 'train-labels-idx1-ubyte.gz')
  write_idx(labels, np.zeros(255, np.uint8))
  images = os.path.join(tiny_mnist_dir, 'train-images-idx3-ubyte.gz')
  with pytest.raises(
      errors.DataError,
      match='^' + re.escape(images) + r' holds 256 images but '
      + re.escape(labels) + r' holds 255 labels$'):
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
  with pytest.raises(errors.DataError, match=re.escape(path) + problem):
    input_pipeline.load_idx_dir(tiny_mnist_dir)


@pytest.mark.parametrize('prefix, split', [('train', 'train'),
                                           ('t10k', 'test')])
def test_load_idx_dir_rejects_an_empty_split(tiny_mnist_dir, prefix, split):
  """A split with zero examples is named, with both its files."""
  images = os.path.join(tiny_mnist_dir, f'{prefix}-images-idx3-ubyte.gz')
  labels = os.path.join(tiny_mnist_dir, f'{prefix}-labels-idx1-ubyte.gz')
  write_idx(images, np.zeros((0, 28, 28), np.uint8))
  write_idx(labels, np.zeros(0, np.uint8))
  with pytest.raises(
      errors.DataError,
      match=f'^{re.escape(images)} and {re.escape(labels)} hold 0 examples; '
      f'the {split} split needs at least one$'):
    input_pipeline.load_dataset('mnist', tiny_mnist_dir)


def test_one_example_per_split_is_enough(tiny_mnist_dir):
  """The smallest non-empty splits load."""
  for prefix in ('train', 't10k'):
    write_idx(os.path.join(tiny_mnist_dir, f'{prefix}-images-idx3-ubyte.gz'),
              np.zeros((1, 28, 28), np.uint8))
    write_idx(os.path.join(tiny_mnist_dir, f'{prefix}-labels-idx1-ubyte.gz'),
              np.array([9], np.uint8))
  train, test = input_pipeline.load_idx_dir(tiny_mnist_dir)
  assert train.labels.tolist() == test.labels.tolist() == [9]


def test_label_nine_is_accepted_and_ten_is_not(tiny_mnist_dir):
  """The accepted labels are exactly 0..9."""
  path = os.path.join(tiny_mnist_dir, 't10k-labels-idx1-ubyte.gz')
  labels = np.arange(128, dtype=np.uint8) % 10
  write_idx(path, labels)
  _, test = input_pipeline.load_idx_dir(tiny_mnist_dir)
  np.testing.assert_array_equal(test.labels, labels)
  labels[127] = 10
  write_idx(path, labels)
  with pytest.raises(errors.DataError,
                     match=': 1 labels out of range 0..9, e.g. 10$'):
    input_pipeline.load_idx_dir(tiny_mnist_dir)


def test_load_dataset_rejects_unknown_name(tiny_mnist_dir):
  """An unknown dataset name is an error listing the accepted names."""
  with pytest.raises(
      errors.ConfigError,
      match=r"^dataset='cifar10' is invalid; accepted: mnist, fashion_mnist\.$"):
    input_pipeline.load_dataset('cifar10', tiny_mnist_dir)


@pytest.mark.parametrize('name', input_pipeline.DATASETS)
def test_load_dataset_reads_data_dir(tiny_mnist_dir, name, caplog):
  """With a folder of other data, every accepted name reads that folder."""
  caplog.set_level(logging.INFO)
  train, test = input_pipeline.load_dataset(name, tiny_mnist_dir)
  assert (len(train.labels), len(test.labels)) == (256, 128)
  assert input_pipeline.identify(train, test) is None
  assert (f"Reading {tiny_mnist_dir} as dataset '{name}' (its labels are not "
          'those of mnist or fashion_mnist).') in caplog.messages


def test_load_dataset_expands_the_home_folder(tiny_mnist_dir, monkeypatch):
  """`~` in data_dir is the home folder (the shell leaves it after `=`)."""
  monkeypatch.setenv('HOME', os.path.dirname(tiny_mnist_dir))
  data_dir = os.path.join('~', os.path.basename(tiny_mnist_dir))
  train, _ = input_pipeline.load_dataset('mnist', data_dir)
  assert len(train.labels) == 256
  train, _ = input_pipeline.load_idx_dir(data_dir)
  assert len(train.labels) == 256


# The first 20 labels of each split of the real datasets (from their label
# files), written over a tiny folder's first labels to make it look like one.
_FIRST_LABELS = {
    ('mnist', 'train'): [5, 0, 4, 1, 9, 2, 1, 3, 1, 4, 3, 5, 3, 6, 1, 7, 2, 8,
                         6, 9],
    ('mnist', 't10k'): [7, 2, 1, 0, 4, 1, 4, 9, 5, 9, 0, 6, 9, 0, 1, 5, 9, 7,
                        3, 4],
    ('fashion_mnist', 'train'): [9, 0, 0, 3, 0, 2, 7, 2, 5, 5, 0, 9, 5, 5, 7,
                                 9, 1, 0, 6, 4],
    ('fashion_mnist', 't10k'): [9, 2, 1, 1, 6, 1, 4, 6, 5, 7, 4, 5, 7, 3, 4,
                                1, 2, 4, 8, 0],
}


def _disguise(folder, dataset, prefix, first=20):
  """Makes split `prefix` of `folder` start with `dataset`'s first labels."""
  path = os.path.join(folder, f'{prefix}-labels-idx1-ubyte.gz')
  labels = input_pipeline.read_idx(path)
  labels[:first] = _FIRST_LABELS[dataset, prefix][:first]
  write_idx(path, labels)


@pytest.mark.parametrize('found, asked', [('mnist', 'fashion_mnist'),
                                          ('fashion_mnist', 'mnist')])
@pytest.mark.parametrize('prefix', ['train', 't10k'])
def test_load_dataset_refuses_the_other_dataset(tiny_mnist_dir, found, asked,
                                                prefix):
  """A folder recognisably holding the other dataset names both."""
  _disguise(tiny_mnist_dir, found, prefix)
  with pytest.raises(
      errors.DataError,
      match=f'^data_dir {re.escape(tiny_mnist_dir)} holds {found} \\(its '
      f"labels are {found}'s\\), not dataset='{asked}': pass "
      f'--config.dataset={found} or a data_dir holding {asked}$'):
    input_pipeline.load_dataset(asked, tiny_mnist_dir)


@pytest.mark.parametrize('dataset', input_pipeline.DATASETS)
def test_load_dataset_accepts_the_recognised_dataset(tiny_mnist_dir, dataset,
                                                     caplog):
  """The dataset the config names is recognised, and the log says so."""
  caplog.set_level(logging.INFO)
  _disguise(tiny_mnist_dir, dataset, 'train')
  _disguise(tiny_mnist_dir, dataset, 't10k')
  train, test = input_pipeline.load_dataset(dataset, tiny_mnist_dir)
  assert input_pipeline.identify(train, test) == dataset
  assert (f'Reading {tiny_mnist_dir}: recognised as {dataset} by its labels.'
          in caplog.messages)


def test_identify_needs_all_twenty_first_labels(tiny_mnist_dir):
  """19 matching labels, or a split too short, are not a recognition."""
  _disguise(tiny_mnist_dir, 'mnist', 'train', first=19)
  train, test = input_pipeline.load_idx_dir(tiny_mnist_dir)
  assert input_pipeline.identify(train, test) is None
  short = input_pipeline.Split(train.images[:19], train.labels[:19])
  assert input_pipeline.identify(short, test) is None
  _disguise(tiny_mnist_dir, 'mnist', 'train')
  train, test = input_pipeline.load_idx_dir(tiny_mnist_dir)
  assert input_pipeline.identify(train, test) == 'mnist'
  reordered = input_pipeline.Split(train.images, train.labels[::-1])
  assert input_pipeline.identify(reordered, test) is None


def test_import_does_not_load_tfds():
  """Importing the module stays cheap: TFDS is imported only to download."""
  code = ('import sys; from adamjax.data import input_pipeline; '
          'print("tensorflow_datasets" in sys.modules)')
  result = subprocess.run(
      [sys.executable, '-c', code], capture_output=True, text=True,
      check=True, cwd=os.path.dirname(os.path.dirname(__file__)))
  assert result.stdout.strip() == 'False'


def _no_tfds_retries(monkeypatch):
  """Makes a failed TFDS request fail at once instead of after retries.

  TFDS retries 10 times with backoff (minutes). The code under test should
  not reach a failing request (it checks reachability first); if a bug made
  it, the test fails by its assertions in seconds instead of hanging.
  """
  monkeypatch.setattr(
      'tensorflow_datasets.core.download.downloader.MAX_RETRIES', 0)


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
  _no_tfds_retries(monkeypatch)
  start = time.monotonic()
  with pytest.raises(
      errors.OfflineError,
      # The advice comes first, then a short reason.
      match=r"^Could not download dataset 'mnist'; without network access "
      r'pass --config\.data_dir=/path/to/folder holding the four IDX files '
      r'train-images-idx3-ubyte, train-labels-idx1-ubyte, '
      r't10k-images-idx3-ubyte, t10k-labels-idx1-ubyte \(each plain or '
      r'\.gz\)\. Reason: https://\S+ is unreachable: NameResolutionError: '
      r"Failed to resolve '\S+' \(\[Errno -2\] Name or service not "
      r'known\)$'):
    input_pipeline.load_dataset('mnist', data_dir)
  assert time.monotonic() - start < 10


def _nested_requests_error(text):
  """A requests ConnectionError wrapping urllib3's errors, as when offline."""
  reason = urllib3.exceptions.NewConnectionError(
      'HTTPSConnection(host=\'example.org\', port=443)', text)
  pool_error = urllib3.exceptions.MaxRetryError(None, '/x.gz', reason)
  return requests.ConnectionError(pool_error)


@pytest.mark.parametrize('error, reason', [
    # The innermost cause, without the connection's repr.
    (_nested_requests_error('Connection refused'),
     'NewConnectionError: Connection refused'),
    # A long reason is cut to 120 characters.
    (_nested_requests_error('x' * 500), 'NewConnectionError: ' + 'x' * 117
     + '...'),
    (_nested_requests_error('y' * 120), 'NewConnectionError: ' + 'y' * 120),
    # The last line of a multi-line text; the type alone if there is none.
    (RuntimeError('Traceback\n  detail\nthe point'), 'RuntimeError: the point'),
    (TimeoutError(), 'TimeoutError'),
    (requests.ConnectionError(ValueError('<HTTPConnection object at 0x7f>: '
                                         'refused')), 'ValueError: refused'),
])
def test_short_reason(error, reason):
  """The offline message quotes one short line, the innermost cause."""
  assert input_pipeline._short_reason(error) == reason


def test_short_reason_of_a_self_referring_error_ends():
  """An exception that is its own reason still gives one (no endless loop)."""
  error = ConnectionError('loops')
  error.reason = error
  assert input_pipeline._short_reason(error) == 'ConnectionError: loops'


@pytest.fixture
def idx_server(tiny_mnist_dir, monkeypatch):
  """Serves the tiny dataset's files over HTTP on localhost; yields its URL."""
  _no_tfds_retries(monkeypatch)
  handler = functools.partial(
      http.server.SimpleHTTPRequestHandler, directory=tiny_mnist_dir)
  server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  yield server, f'http://127.0.0.1:{server.server_port}/'
  server.shutdown()
  server.server_close()


def _point_tfds_at(monkeypatch, data_dir, url):
  """Imports TFDS (or skips) and sends its mnist download to `url`.

  Returns:
    The tensorflow_datasets module.
  """
  tfds = pytest.importorskip('tensorflow_datasets')
  monkeypatch.setenv('TFDS_DATA_DIR', str(data_dir))
  monkeypatch.setenv('no_proxy', '127.0.0.1')
  monkeypatch.setattr(tfds.builder_cls('mnist'), 'URL', url)
  return tfds


def test_load_dataset_downloads_once_into_tfds_data_dir(
    tmp_path, monkeypatch, idx_server, caplog):
  """Without a folder, TFDS downloads into its data dir, then reuses it."""
  server, url = idx_server
  data_dir = tmp_path / 'tfds'
  _point_tfds_at(monkeypatch, data_dir, url)

  caplog.set_level(logging.INFO)
  train, test = input_pipeline.load_dataset('mnist', None)

  assert (train.images.shape, test.images.shape) == (
      (256, 28, 28, 1), (128, 28, 28, 1))
  assert (f'Fetching mnist with TFDS into {data_dir / "downloads"}.'
          in caplog.messages)
  cached = list((data_dir / 'downloads' / 'mnist').glob('*.gz'))
  assert len(cached) == 4
  # With the server gone, only the cache can provide the files.
  server.shutdown()
  server.server_close()
  cached_train, _ = input_pipeline.load_dataset('mnist', None)
  np.testing.assert_array_equal(cached_train.images, train.images)


def test_registered_checksums_name_the_cache(tmp_path, monkeypatch,
                                            idx_server, tiny_mnist_dir):
  """Files TFDS knows checksums for are cached by checksum, and found there."""
  server, url = idx_server
  data_dir = tmp_path / 'tfds'
  _point_tfds_at(monkeypatch, data_dir, url)
  from tensorflow_datasets.core.download import checksums  # pylint: disable=g-import-not-at-top
  # Register the served files' checksums, as TFDS registers the real ones.
  registered = {}
  for name in os.listdir(tiny_mnist_dir):
    with open(os.path.join(tiny_mnist_dir, name), 'rb') as f:
      content = f.read()
    registered[url + name] = checksums.UrlInfo(
        size=len(content), checksum=hashlib.sha256(content).hexdigest(),
        filename=name)
  monkeypatch.setattr(checksums, 'get_all_url_infos', lambda: registered)

  train, _ = input_pipeline.load_dataset('mnist', None)
  cached = os.listdir(data_dir / 'downloads' / 'mnist')
  # TFDS names a registered file after its checksum (in unpadded base64).
  for info in registered.values():
    tag = base64.urlsafe_b64encode(bytes.fromhex(info.checksum)).decode()
    assert any(tag.rstrip('=') in name for name in cached), cached
  server.shutdown()
  server.server_close()
  cached_train, _ = input_pipeline.load_dataset('mnist', None)
  np.testing.assert_array_equal(cached_train.labels, train.labels)


def test_downloaded_split_without_examples(tmp_path, monkeypatch, idx_server,
                                          tiny_mnist_dir):
  """Downloaded files are checked as a folder's are: an empty split is named."""
  _, url = idx_server
  _point_tfds_at(monkeypatch, tmp_path / 'tfds', url)
  write_idx(os.path.join(tiny_mnist_dir, 't10k-images-idx3-ubyte.gz'),
            np.zeros((0, 28, 28), np.uint8))
  write_idx(os.path.join(tiny_mnist_dir, 't10k-labels-idx1-ubyte.gz'),
            np.zeros(0, np.uint8))
  with pytest.raises(errors.DataError,
                     match='hold 0 examples; the test split needs at least '
                     'one$'):
    input_pipeline.load_dataset('mnist', None)


def test_without_tfds_the_error_asks_for_a_folder(monkeypatch):
  """With TFDS not installed, the error says so and asks for data_dir."""
  monkeypatch.setitem(sys.modules, 'tensorflow_datasets', None)
  with pytest.raises(
      errors.OfflineError,
      match=r"^Could not download dataset 'fashion_mnist'; without network "
      r'access pass --config\.data_dir=.* Reason: tensorflow_datasets is not '
      r"installed \(import of tensorflow_datasets halted; None in "
      r'sys\.modules\)$'):
    input_pipeline.load_dataset('fashion_mnist', None)


def test_download_refused_by_the_server_is_offline_error(
    tmp_path, monkeypatch, idx_server):
  """An HTTP error from the server is an OfflineError quoting the status."""
  _, url = idx_server
  # A folder the server does not have: every file is a 404.
  _point_tfds_at(monkeypatch, tmp_path / 'tfds', url + 'absent/')
  with pytest.raises(
      errors.OfflineError,
      match=r"^Could not download dataset 'mnist'; .* Reason: DownloadError: "
      r'Failed to get url http://127\.0\.0\.1:\d+/absent/\S+\.gz\. HTTP '
      r'code: 404\.$'):
    input_pipeline.load_dataset('mnist', None)


def test_silent_server_times_out(tmp_path, monkeypatch):
  """A server that accepts but never answers is given up on, not waited for."""
  pytest.importorskip('tensorflow_datasets')
  # Listening without ever accepting: the kernel completes the connection,
  # nobody answers the request.
  silent = socket.socket()
  silent.bind(('127.0.0.1', 0))
  silent.listen(8)
  try:
    url = f'http://127.0.0.1:{silent.getsockname()[1]}/'
    _point_tfds_at(monkeypatch, tmp_path / 'tfds', url)
    monkeypatch.setattr(input_pipeline, '_REACHABILITY_TIMEOUT_S', 0.5)
    start = time.monotonic()
    with pytest.raises(errors.OfflineError,
                       match=r'is unreachable: ReadTimeoutError: '):
      input_pipeline.load_dataset('mnist', None)
    assert time.monotonic() - start < 5
  finally:
    silent.close()


def test_bug_inside_the_download_keeps_its_traceback(
    tmp_path, monkeypatch, idx_server):
  """An exception that is not a download failure is not made an OfflineError."""
  _, url = idx_server
  tfds = _point_tfds_at(monkeypatch, tmp_path / 'tfds', url)

  def broken(self, urls):
    """A download manager with a bug."""
    del self, urls
    raise KeyError('a bug')

  monkeypatch.setattr(tfds.download.DownloadManager, 'download', broken)
  with pytest.raises(KeyError, match='a bug'):
    input_pipeline.load_dataset('mnist', None)


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
  # The folder is recognised as MNIST, so the Fashion-MNIST config is refused.
  assert input_pipeline.identify(train, test) == 'mnist'
  with pytest.raises(errors.DataError, match='holds mnist'):
    input_pipeline.load_dataset('fashion_mnist', os.environ['MNIST_DIR'])
