"""Data faults (issue 24): every bad data_dir gets one clear error.

Each case breaks a tiny valid dataset in one way and checks that
input_pipeline.load_dataset raises the project's error type with a message
naming the file (or folder) and the problem: no traceback-worthy exception,
no deep NumPy or gzip error.
"""

import builtins
import gzip
import os

from conftest import make_tiny_mnist
from conftest import run_main
from conftest import write_idx
import numpy as np
import pytest

from adamjax.common import errors
from adamjax.data import input_pipeline

TRAIN_IMAGES = 'train-images-idx3-ubyte.gz'
TRAIN_LABELS = 'train-labels-idx1-ubyte.gz'
TEST_LABELS = 't10k-labels-idx1-ubyte.gz'


def _write_bytes(path, data, *, gzipped=False):
  """Writes raw bytes to `path`, through gzip if `gzipped`."""
  with (gzip.open if gzipped else open)(path, 'wb') as f:
    f.write(data)


def _wrong_magic(folder):
  # A float32 (0x0d) 3-D file where uint8 images belong.
  header = bytes([0, 0, 0x0D, 3]) + b''.join(
      d.to_bytes(4, 'big') for d in (1, 28, 28))
  _write_bytes(folder / TRAIN_IMAGES, header + bytes(4 * 28 * 28),
               gzipped=True)
  return TRAIN_IMAGES


def _truncated_gzip(folder):
  data = (folder / TRAIN_IMAGES).read_bytes()
  (folder / TRAIN_IMAGES).write_bytes(data[:len(data) // 2])
  return TRAIN_IMAGES


def _images_32x32(folder):
  write_idx(folder / TRAIN_IMAGES, np.zeros((256, 32, 32), np.uint8))
  return TRAIN_IMAGES


def _fewer_labels(folder):
  write_idx(folder / TRAIN_LABELS, np.zeros(200, np.uint8))
  return TRAIN_LABELS


def _label_ten(folder):
  labels = np.arange(128, dtype=np.uint8) % 10
  labels[5] = 10
  write_idx(folder / TEST_LABELS, labels)
  return TEST_LABELS


def _label_255(folder):
  write_idx(folder / TRAIN_LABELS, np.full(256, 255, np.uint8))
  return TRAIN_LABELS


def _empty_file(folder):
  (folder / TEST_LABELS).write_bytes(b'')
  return TEST_LABELS


def _empty_plain_file(folder):
  os.remove(folder / TEST_LABELS)
  (folder / TEST_LABELS[:-3]).write_bytes(b'')
  return TEST_LABELS[:-3]


def _not_gzip(folder):
  # Bytes that are not gzip at all under a '.gz' name.
  (folder / TRAIN_LABELS).write_bytes(b'this is not a gzip archive' * 10)
  return TRAIN_LABELS


def _gzip_of_garbage(folder):
  # A valid gzip archive whose content is not IDX.
  _write_bytes(folder / TRAIN_LABELS, b'<html>404 Not Found</html>' * 10,
               gzipped=True)
  return TRAIN_LABELS


# case -> (break the folder, returning the file named; error type; the words
# that must follow the file's path in the message).
CASES = {
    'wrong_magic': (_wrong_magic, errors.DataError,
                    ['bad IDX magic number 0x00000d03', '0x00000803']),
    'truncated_gzip': (_truncated_gzip, errors.DataError,
                       ['cannot decompress', 'truncated or corrupt']),
    'images_32x32': (_images_32x32, errors.DataError,
                     ['expected images of shape (N, 28, 28)',
                      'found shape (256, 32, 32)']),
    'fewer_labels': (_fewer_labels, errors.DataError,
                     ['256 images', '200 labels']),
    'label_10': (_label_ten, errors.DataError,
                 ['1 labels out of range 0..9', 'e.g. 10']),
    'label_255': (_label_255, errors.DataError,
                  ['256 labels out of range 0..9', 'e.g. 255']),
    'empty_gz_file': (_empty_file, errors.DataError, ['empty file', '0 bytes']),
    'empty_plain_file': (_empty_plain_file, errors.DataError,
                         ['empty file', '0 bytes']),
    'not_gzip': (_not_gzip, errors.DataError,
                 ['cannot decompress', 'truncated or corrupt']),
    'gzip_of_garbage': (_gzip_of_garbage, errors.DataError,
                        ['bad IDX magic number', '0x00000801']),
}


@pytest.mark.parametrize('case', sorted(CASES))
def test_bad_file_is_named_with_its_problem(tmp_path, case):
  """Each broken file: the project's error, naming the file and problem."""
  corrupt, error_type, words = CASES[case]
  make_tiny_mnist(tmp_path)
  name = corrupt(tmp_path)
  with pytest.raises(error_type) as info:
    input_pipeline.load_dataset('mnist', str(tmp_path))
  message = str(info.value)
  assert isinstance(info.value, errors.UserError)
  assert os.path.join(str(tmp_path), name) in message
  for word in words:
    assert word in message, (word, message)
  assert '\n' not in message


def test_data_dir_that_is_a_file(tmp_path):
  """A file passed as data_dir: MissingFileError saying it is no folder."""
  path = tmp_path / 'mnist.tar.gz'
  path.write_bytes(b'not a folder')
  with pytest.raises(errors.MissingFileError,
                     match=f'^data_dir {path} is not a folder$'):
    input_pipeline.load_dataset('mnist', str(path))


def _deny(monkeypatch, folder, what):
  """Makes reads under `folder` fail as chmod 000 would for a non-root user.

  Root reads through chmod, so the refusal is simulated: `what` is 'folder'
  (listing it fails and, as stat fails, no file in it is seen) or 'file'
  (opening the files in it fails).
  """
  folder = str(folder)
  if what == 'folder':
    real_isfile = os.path.isfile

    def listdir(path='.'):
      raise PermissionError(13, 'Permission denied', os.fspath(path))

    monkeypatch.setattr(os, 'listdir', listdir)
    monkeypatch.setattr(
        os.path, 'isfile',
        lambda p: False if os.fspath(p).startswith(folder + os.sep)
        else real_isfile(p))
  else:
    real_open = builtins.open

    def guarded_open(file, *args, **kwargs):
      if isinstance(file, (str, os.PathLike)) and os.fspath(file).startswith(
          folder + os.sep):
        raise PermissionError(13, 'Permission denied', os.fspath(file))
      return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, 'open', guarded_open)


def test_unreadable_data_dir_simulated(tmp_path, monkeypatch):
  """A folder the user may not read is named as unreadable, not as empty."""
  make_tiny_mnist(tmp_path)
  _deny(monkeypatch, tmp_path, 'folder')
  with pytest.raises(errors.DataError) as info:
    input_pipeline.load_dataset('mnist', str(tmp_path))
  assert str(info.value).startswith(f'data_dir {tmp_path} is not readable: '
                                    'permission denied')


def test_unreadable_file_simulated(tmp_path, monkeypatch):
  """A file the user may not read is named, and not called corrupt."""
  make_tiny_mnist(tmp_path)
  _deny(monkeypatch, tmp_path, 'file')
  with pytest.raises(errors.DataError) as info:
    input_pipeline.load_dataset('mnist', str(tmp_path))
  message = str(info.value)
  assert message.startswith(f'{tmp_path / TRAIN_IMAGES}: cannot read: '
                            'permission denied'), message
  assert 'decompress' not in message


@pytest.mark.skipif(os.geteuid() == 0,
                    reason='root reads through chmod 000; the simulated '
                    'tests above cover this case')
def test_unreadable_data_dir_for_real(tmp_path):
  """The same with a real chmod 000, where it has an effect."""
  folder = tmp_path / 'data'
  folder.mkdir()
  make_tiny_mnist(folder)
  folder.chmod(0)
  try:
    with pytest.raises(errors.DataError, match='is not readable: permission'):
      input_pipeline.load_dataset('mnist', str(folder))
  finally:
    folder.chmod(0o755)


def test_main_reports_a_bad_file_without_traceback(tmp_path):
  """End to end: a corrupt data file is one 'Error:' line and exit 1."""
  data = tmp_path / 'data'
  data.mkdir()
  make_tiny_mnist(data)
  _truncated_gzip(data)
  result = run_main('--config=configs/mnist.py',
                    f'--workdir={tmp_path / "run"}',
                    f'--config.data_dir={data}')
  assert result.returncode == 1, result.stderr
  assert 'Traceback' not in result.stderr + result.stdout
  assert 'Error:' in result.stderr
  assert str(data / TRAIN_IMAGES) in result.stderr
  assert 'cannot decompress' in result.stderr
