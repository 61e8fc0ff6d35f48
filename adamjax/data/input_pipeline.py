"""MNIST-style datasets as in-memory NumPy arrays, read from IDX files.

The IDX files come from a folder or, with none, from TFDS's download cache.
Only TFDS's download manager is used (its `mnist` builder would need
TensorFlow) and the files are parsed with NumPy. Bad input raises `errors`
types whose messages name the file or value and what is accepted.
"""

import gzip
import os
import re
from typing import NamedTuple
import urllib.parse

from absl import logging
import numpy as np

from adamjax.common import checks
from adamjax.common import errors


class Split(NamedTuple):
  """One split of a dataset.

  Attributes:
    images: uint8 array of shape (N, 28, 28, 1).
    labels: int32 array of shape (N,), values in 0..9.
  """
  images: np.ndarray
  labels: np.ndarray


DATASETS = ('mnist', 'fashion_mnist')

IMAGE_SIZE = 28
NUM_CLASSES = 10

# IDX magic: two zero bytes, the element type (0x08: uint8), the dimensions.
_LABELS_MAGIC = 0x00000801
_IMAGES_MAGIC = 0x00000803
_ACCEPTED_MAGICS = (
    f'0x{_LABELS_MAGIC:08x} (uint8, 1-D labels) or '
    f'0x{_IMAGES_MAGIC:08x} (uint8, 3-D images)')

_SPLIT_FILES = {
    'train': ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte'),
    'test': ('t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'),
}
_IDX_NAMES = tuple(name for pair in _SPLIT_FILES.values() for name in pair)

_REACHABILITY_TIMEOUT_S = 5

# The longest reason an offline message quotes: urllib3's nested exception
# texts run to hundreds of characters.
_MAX_REASON_CHARS = 120

# The first labels of each split, as TFDS downloads them, to recognise a
# folder holding the other dataset (chance match probability about 1e-20).
_LABELS_PREFIX_LENGTH = 20
_KNOWN_LABELS = {
    'mnist': {
        'train': (5, 0, 4, 1, 9, 2, 1, 3, 1, 4, 3, 5, 3, 6, 1, 7, 2, 8, 6, 9),
        'test': (7, 2, 1, 0, 4, 1, 4, 9, 5, 9, 0, 6, 9, 0, 1, 5, 9, 7, 3, 4),
    },
    'fashion_mnist': {
        'train': (9, 0, 0, 3, 0, 2, 7, 2, 5, 5, 0, 9, 5, 5, 7, 9, 1, 0, 6, 4),
        'test': (9, 2, 1, 1, 6, 1, 4, 6, 5, 7, 4, 5, 7, 3, 4, 1, 2, 4, 8, 0),
    },
}


def read_idx(path: str) -> np.ndarray:
  """Reads one uint8 IDX file, gzipped or not.

  Args:
    path: the file; a name ending in '.gz' is read through gzip.

  Returns:
    A writable uint8 array with the dimensions the file's header gives.

  Raises:
    errors.MissingFileError: if the file does not exist.
    errors.DataError: if the file cannot be read or decompressed, or is not
      a complete uint8 IDX file of 1 or 3 dimensions.
  """
  if not os.path.isfile(path):
    raise errors.MissingFileError(f'{path}: no such IDX file')
  try:
    if path.endswith('.gz'):
      with gzip.open(path, 'rb') as f:
        data = f.read()
    else:
      with open(path, 'rb') as f:
        data = f.read()
  except PermissionError as e:
    raise errors.DataError(
        f'{path}: cannot read: permission denied ({e.strerror or e}); make '
        'the file readable') from e
  except (OSError, EOFError) as e:
    if not path.endswith('.gz'):
      raise errors.DataError(f'{path}: cannot read: {e}') from e
    # How gzip reports corrupt or cut-off archives; say which file it was.
    raise errors.DataError(
        f'{path}: cannot decompress: {e} (not a complete gzip file: '
        'truncated or corrupt)') from e

  if not data:
    raise errors.DataError(
        f'{path}: empty file: 0 bytes; an IDX file starts with a 4-byte '
        'magic number')
  if len(data) < 4:
    raise errors.DataError(
        f'{path}: truncated IDX header: {len(data)} bytes, need 4 for the '
        'magic number')
  magic = int.from_bytes(data[:4], 'big')
  if magic not in (_LABELS_MAGIC, _IMAGES_MAGIC):
    raise errors.DataError(
        f'{path}: bad IDX magic number 0x{magic:08x}; expected '
        f'{_ACCEPTED_MAGICS}')
  ndim = data[3]
  header_size = 4 + 4 * ndim
  if len(data) < header_size:
    raise errors.DataError(
        f'{path}: truncated IDX header: {len(data)} bytes, need '
        f'{header_size} for the magic number and {ndim} dimension sizes')
  dims = tuple(
      int.from_bytes(data[4 + 4 * i:8 + 4 * i], 'big') for i in range(ndim))
  expected = int(np.prod(dims))
  found = len(data) - header_size
  if found != expected:
    problem = 'truncated payload' if found < expected else 'trailing bytes'
    raise errors.DataError(
        f'{path}: {problem}: dimensions {dims} need {expected} payload bytes, '
        f'found {found}')
  # Copy out of the immutable `bytes` so callers get a writable array.
  return np.frombuffer(data, np.uint8, offset=header_size).reshape(dims).copy()


def _find_idx_file(data_dir: str, name: str) -> str | None:
  """Returns the path of IDX file `name` in `data_dir`, plain or gzipped."""
  # The plain file first: it is quicker to read when both are there.
  for candidate in (name, name + '.gz'):
    path = os.path.join(data_dir, candidate)
    if os.path.isfile(path):
      return path
  return None


def _load_split(split: str, images_path: str, labels_path: str) -> Split:
  """Reads and validates split `split` from its images and labels files."""
  images = read_idx(images_path)
  if images.ndim != 3 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
    raise errors.DataError(
        f'{images_path}: expected images of shape (N, {IMAGE_SIZE}, '
        f'{IMAGE_SIZE}), found shape {images.shape}')
  labels = read_idx(labels_path)
  if labels.ndim != 1:
    raise errors.DataError(
        f'{labels_path}: expected 1-D labels, found shape {labels.shape}')
  if len(images) != len(labels):
    raise errors.DataError(
        f'{images_path} holds {len(images)} images but {labels_path} holds '
        f'{len(labels)} labels')
  if not len(labels):
    # Valid IDX, but training would divide by zero examples much later.
    raise errors.DataError(
        f'{images_path} and {labels_path} hold 0 examples; the {split} split '
        'needs at least one')
  bad = labels[labels >= NUM_CLASSES]
  if bad.size:
    raise errors.DataError(
        f'{labels_path}: {bad.size} labels out of range 0..{NUM_CLASSES - 1}, '
        f'e.g. {bad[0]}')
  return Split(images=images[..., np.newaxis], labels=labels.astype(np.int32))


def load_idx_dir(data_dir: str) -> tuple[Split, Split]:
  """Loads the train and test splits from a folder of IDX files.

  Args:
    data_dir: a folder holding train-images-idx3-ubyte,
      train-labels-idx1-ubyte, t10k-images-idx3-ubyte and
      t10k-labels-idx1-ubyte, each plain or gzipped (with '.gz' appended).

  Raises:
    errors.MissingFileError: if the folder or one of the files is missing.
    errors.DataError: if the folder or a file is not readable, a file is not
      valid IDX, images are not 28x28, counts of images and labels differ, a
      split is empty, or a label is outside 0..9.
  """
  # The shell leaves `~` alone after `--config.data_dir=`.
  data_dir = os.path.expanduser(data_dir)
  if not os.path.isdir(data_dir):
    raise errors.MissingFileError(f'data_dir {data_dir} is not a folder')
  paths = {name: _find_idx_file(data_dir, name) for name in _IDX_NAMES}
  missing = [name for name, path in paths.items() if path is None]
  if missing:
    try:
      # Without permission to read the folder every file looks missing.
      os.listdir(data_dir)
    except PermissionError as e:
      raise errors.DataError(
          f'data_dir {data_dir} is not readable: permission denied '
          f'({e.strerror or e}); make the folder readable') from e
    raise errors.MissingFileError(
        f'{data_dir} lacks {", ".join(missing)} (plain or .gz); it must hold '
        f'the four IDX files {", ".join(_IDX_NAMES)}')
  splits = tuple(
      _load_split(split, paths[images], paths[labels])
      for split, (images, labels) in _SPLIT_FILES.items())
  logging.info('Loaded %s: %d train and %d test examples.', data_dir,
               len(splits[0].labels), len(splits[1].labels))
  return splits


def _short_reason(error: BaseException) -> str:
  """One short line saying why a download failed: its innermost cause."""
  # requests wraps urllib3's MaxRetryError, whose `reason` says what
  # happened; each level repeats the text of the ones inside it.
  cause = error
  for _ in range(10):  # A bound, in case an exception refers to itself.
    inner = getattr(cause, 'reason', None)
    if not isinstance(inner, BaseException) and cause.args:
      inner = cause.args[0]
    if not isinstance(inner, BaseException):
      break
    cause = inner
  lines = str(cause).strip().splitlines()
  # urllib3 starts with the connection's repr ('<...object at 0x...>' or
  # 'HTTPSConnection(host=..., port=443)'); the host is in the URL already.
  text = re.sub(r'^(<[^>]*>|\w+\([^)]*\)):\s*', '', lines[-1] if lines else '')
  if len(text) > _MAX_REASON_CHARS:
    text = text[:_MAX_REASON_CHARS - 3] + '...'
  return f'{type(cause).__name__}: {text}' if text else type(cause).__name__


def _offline_error(name: str, reason: str) -> errors.OfflineError:
  """Returns the error telling the user to pass a folder of IDX files."""
  # The advice first: the reason is for those who want to know more.
  return errors.OfflineError(
      f'Could not download dataset {name!r}; without network access pass '
      '--config.data_dir=/path/to/folder holding the four IDX files '
      f'{", ".join(_IDX_NAMES)} (each plain or .gz). Reason: {reason}')


def _is_cached_by_tfds(download_dir: str, name: str, url: str) -> bool:
  """Returns whether TFDS's download cache already holds `url`."""
  # pylint: disable=g-import-not-at-top
  from etils import epath
  from tensorflow_datasets.core.download import checksums
  from tensorflow_datasets.core.download import resource
  # pylint: enable=g-import-not-at-top
  # Where TFDS's DownloadManager puts the file: named after the registered
  # checksum when TFDS knows one, else after the URL alone.
  url_info = checksums.get_all_url_infos().get(url)
  fname = resource.get_dl_fname(url, url_info.checksum if url_info else None)
  return resource.is_locally_cached(epath.Path(download_dir) / name / fname)


def _download_with_tfds(name: str) -> tuple[Split, Split]:
  """Downloads `name`'s IDX files once through TFDS and loads them."""
  try:
    # Imported here so that reading a folder never needs TFDS.
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise _offline_error(
        name, f'tensorflow_datasets is not installed ({e})') from e
  # The URLs TFDS's own builder downloads, so that TFDS checks them against
  # its registered checksums and shares the cache with the builder.
  base_url = tfds.builder_cls(name).URL
  urls = {idx_name: urllib.parse.urljoin(base_url, idx_name + '.gz')
          for idx_name in _IDX_NAMES}
  download_dir = os.path.join(tfds.core.constants.get_default_data_dir(),
                              'downloads')
  # pylint: disable=g-import-not-at-top
  import requests  # A dependency of TFDS, which downloads with it.
  from tensorflow_datasets.core.download import download_manager
  # pylint: enable=g-import-not-at-top
  if not all(_is_cached_by_tfds(download_dir, name, url)
             for url in urls.values()):
    # TFDS retries a failed request 10 times with backoff, minutes in all, so
    # one quick request first makes an offline run fail in seconds.
    try:
      requests.head(base_url, timeout=_REACHABILITY_TIMEOUT_S)
    except requests.RequestException as e:
      raise _offline_error(
          name, f'{base_url} is unreachable: {_short_reason(e)}') from e
  logging.info('Fetching %s with TFDS into %s.', name, download_dir)
  dl_manager = tfds.download.DownloadManager(
      download_dir=download_dir, dataset_name=name)
  try:
    paths = dl_manager.download(urls)
  except (requests.RequestException, tfds.download.DownloadError,
          download_manager.NonMatchingChecksumError) as e:
    # Network failure (after TFDS's retries), an HTTP error status, or a proxy
    # serving something else; anything else is a bug and keeps its traceback.
    raise _offline_error(name, _short_reason(e)) from e
  return tuple(
      _load_split(split, os.fspath(paths[images]), os.fspath(paths[labels]))
      for split, (images, labels) in _SPLIT_FILES.items())


def identify(train: Split, test: Split) -> str | None:
  """Recognises MNIST or Fashion-MNIST by the first labels of its splits.

  Args:
    train: the training split.
    test: the test split.

  Returns:
    The name in DATASETS whose known first labels either split starts with,
    or None.
  """
  for name, known in _KNOWN_LABELS.items():
    for split, labels in (('train', train.labels), ('test', test.labels)):
      if tuple(labels[:_LABELS_PREFIX_LENGTH].tolist()) == known[split]:
        return name
  return None


def load_dataset(name: str, data_dir: str | None) -> tuple[Split, Split]:
  """Loads the train and test splits of an MNIST-style dataset.

  Args:
    name: one of DATASETS.
    data_dir: a folder of the four IDX files (see `load_idx_dir`); None or ''
      downloads them through TFDS, once, into TFDS's data dir
      (~/tensorflow_datasets, or $TFDS_DATA_DIR).

  Raises:
    errors.ConfigError: if `name` is not in DATASETS.
    errors.DataError: if the files are invalid, or hold the other dataset
      (see `identify`).
    errors.MissingFileError: if `data_dir` lacks a file.
    errors.OfflineError: if the download fails, e.g. offline.
  """
  checks.choice('dataset', name, DATASETS)
  if not data_dir:
    return _download_with_tfds(name)
  data_dir = os.path.expanduser(data_dir)
  train, test = load_idx_dir(data_dir)
  found = identify(train, test)
  if found is None:
    # Any MNIST-style data is welcome; say that `name` was not checked.
    logging.info('Reading %s as dataset %r (its labels are not those of %s).',
                 data_dir, name, ' or '.join(DATASETS))
  elif found != name:
    raise errors.DataError(
        f'data_dir {data_dir} holds {found} (its labels are {found}\'s), not '
        f'dataset={name!r}: pass --config.dataset={found} or a data_dir '
        f'holding {name}')
  else:
    logging.info('Reading %s: recognised as %s by its labels.', data_dir,
                 name)
  return train, test
