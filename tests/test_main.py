"""main.py as a user runs it: every class of bad input is one clear answer.

Each case runs main.py in a subprocess and checks the exit status, that the
message names the offending field or file and what is accepted, and that no
traceback is shown for a user's mistake (while a bug keeps its traceback).
"""

import json
import os
import subprocess
import sys

import pytest

from conftest import make_tiny_mnist
from conftest import ROOT
from conftest import run_main
from conftest import write_idx


def assert_one_clear_error(result, status, *fragments):
  """Exit `status`, every fragment in stderr, no traceback, at most 2 lines."""
  assert result.returncode == status, result.stderr
  assert 'Traceback' not in result.stderr
  error_lines = [line for line in result.stderr.splitlines()
                 if line.startswith('Error:')]
  assert len(error_lines) == 1, result.stderr
  for fragment in fragments:
    assert fragment in result.stderr, result.stderr


@pytest.fixture(scope='module')
def bad_configs(tmp_path_factory):
  """Config files with a syntax error and without get_config."""
  folder = tmp_path_factory.mktemp('configs')
  (folder / 'syntax.py').write_text('def get_config(:\n')
  (folder / 'noget.py').write_text('x = 1\n')
  (folder / 'notes.txt').write_text('learning rate 1e-3, 5 epochs\n')
  (folder / 'raises.py').write_text('import os\nx = undefined_name\n')
  (folder / 'get_raises.py').write_text(
      'def get_config():\n  return {}["lr"]\n')
  (folder / 'dict.py').write_text('def get_config():\n  return {"lr": 1}\n')
  (folder / 'empty.py').write_text('')
  (folder / 'a_folder').mkdir()
  return folder


@pytest.mark.parametrize('flags, fragments', [
    (['--config.epochs=3'],
     ["--config.epochs: config has no field 'epochs'", 'num_epochs']),
    (['--config.optimizer.lrate=0.1'],
     ["config.optimizer has no field 'lrate'", 'learning_rate']),
    (['--config.seed=2**70'], ['--config.seed=2**70', 'int()']),
    (['extra_argument'], ['unexpected arguments: extra_argument']),
])
def test_command_line_mistakes_exit_2(data_dir, tmp_path, flags, fragments):
  """Unknown fields, unparsable values, stray arguments: status 2, named."""
  result = run_main('--config=configs/mnist.py', f'--workdir={tmp_path}',
                    f'--config.data_dir={data_dir}', *flags)
  assert_one_clear_error(result, 2, *fragments)


@pytest.mark.parametrize('name, fragments', [
    ('missing.py', ['missing.py: no such file']),
    ('syntax.py', ['syntax.py: syntax error at line 1']),
    ('noget.py', ['noget.py defines no get_config()']),
    ('empty.py', ['empty.py defines no get_config()']),
    ('notes.txt', ['notes.txt is not a Python config file', '.py file']),
    ('raises.py', ['raises.py failed while loading at line 2: NameError',
                   'undefined_name']),
    ('get_raises.py', ['get_config() failed at line 2: KeyError', "'lr'"]),
    ('dict.py', ['get_config() returned a dict; accepted: an '
                 'ml_collections.ConfigDict']),
    ('a_folder', ['a_folder is a folder; accepted: a config file']),
])
def test_bad_config_files_exit_2(bad_configs, tmp_path, name, fragments):
  """A config file that is missing, broken or lacks get_config."""
  result = run_main(f'--config={bad_configs / name}', f'--workdir={tmp_path}')
  assert_one_clear_error(result, 2, *fragments)


def test_a_workdir_that_is_a_file_exits_2(tmp_path):
  """--workdir naming an existing file: one line, before anything runs."""
  workdir = tmp_path / 'run.txt'
  workdir.write_text('not a folder')
  result = run_main('--config=configs/mnist.py', f'--workdir={workdir}')
  assert_one_clear_error(result, 2, f'--workdir={workdir} is a file',
                         'accepted: a folder')


@pytest.mark.parametrize('config, fragments', [
    ('configs/compare.py', ("--mode='eval' is invalid", 'accepted: train.')),
    ('configs/quadratic.py', ("--mode='eval' is invalid", 'accepted: train.')),
])
def test_eval_mode_of_a_task_without_one_exits_1(tmp_path, config, fragments):
  """--mode=eval exists for the classifier only; other tasks say so."""
  result = run_main(f'--config={config}', f'--workdir={tmp_path}',
                    '--mode=eval')
  assert_one_clear_error(result, 1, *fragments)


def test_relative_config_works_from_another_folder(tmp_path):
  """--config=configs/mnist.py resolves against the checkout, not the cwd."""
  result = run_main('--config=configs/mnist.py', '--show_config',
                    cwd=str(tmp_path))
  assert result.returncode == 0, result.stderr
  assert "optimizer.name = 'adam'" in result.stdout


@pytest.mark.parametrize('flags, fragments', [
    (['--config.seed=4294967296'],
     ['config.seed=4294967296 is invalid', 'in [0, 4294967295]']),
    (['--config.optimizer.name=sgd', '--config.optimizer.momentum=-5.0'],
     ['momentum=-5.0']),
    (['--config.optimizer.name=rmsprop', '--config.optimizer.decay=2.0'],
     ['decay=2.0']),
    (['--config.model=resnet'], ["config.model='resnet' is invalid", 'cnn']),
    (['--config.label_smoothing=1.5'],
     ['config.label_smoothing=1.5 is invalid', 'in [0, 1]']),
    (['--config.batch_size=100000'],
     ['config.batch_size=100000 is invalid', '(the training-set size)']),
])
def test_bad_config_values_exit_1_before_training(data_dir, tmp_path, flags,
                                                  fragments):
  """Out-of-range values: status 1, before any training step."""
  result = run_main('--config=configs/mnist.py', f'--workdir={tmp_path}',
                    f'--config.data_dir={data_dir}', *flags)
  assert_one_clear_error(result, 1, *fragments)
  assert 'Training on' not in result.stderr
  assert 'rmsprop' not in flags or 'smaller learning rate' not in result.stderr


def test_an_empty_training_set_is_named(tmp_path):
  """Zero training examples: the file is named, no ZeroDivisionError."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  make_tiny_mnist(tmp_path)
  write_idx(tmp_path / 'train-images-idx3-ubyte.gz',
            np.zeros((0, 28, 28), np.uint8))
  write_idx(tmp_path / 'train-labels-idx1-ubyte.gz', np.zeros(0, np.uint8))
  result = run_main('--config=configs/mnist.py',
                    f'--workdir={tmp_path / "run"}',
                    f'--config.data_dir={tmp_path}')
  assert_one_clear_error(result, 1, 'train-images-idx3-ubyte')


def test_a_diverging_run_is_not_a_success(data_dir, tmp_path):
  """lr 1e6 with finite losses: status 1 and the divergence rule's message."""
  result = run_main('--config=configs/mnist.py', f'--workdir={tmp_path}',
                    f'--config.data_dir={data_dir}', '--config.num_epochs=2',
                    '--config.optimizer.learning_rate=1e6')
  assert_one_clear_error(result, 1, 'Training diverged: epoch 1')


def test_tilde_in_workdir_is_the_home_folder(data_dir, tmp_path):
  """--workdir=~/run writes to $HOME/run, never to a folder named '~'."""
  home = tmp_path / 'home'
  home.mkdir()
  cwd = tmp_path / 'cwd'
  cwd.mkdir()
  result = run_main('--config=configs/mnist.py', '--workdir=~/run',
                    f'--config.data_dir={data_dir}', '--config.num_epochs=1',
                    cwd=str(cwd), env={'HOME': str(home)})
  assert result.returncode == 0, result.stderr
  assert (home / 'run' / 'metrics.jsonl').exists()
  assert not (cwd / '~').exists()


def test_a_run_is_quiet_and_shows_progress_when_piped(data_dir, tmp_path):
  """No TPU probe or Orbax chatter; progress lines reach a pipe."""
  result = run_main('--config=configs/mnist.py', f'--workdir={tmp_path}',
                    f'--config.data_dir={data_dir}', '--config.num_epochs=1',
                    '--config.batch_size=16', '--config.progress_every_s=1e-9')
  assert result.returncode == 0, result.stderr
  assert "Unable to initialize backend 'tpu'" not in result.stderr
  assert 'orbax' not in result.stderr.lower()
  assert 'step 16 (epoch 1, batch 16/16): loss' in result.stderr
  assert 'images/s' in result.stderr


def test_help_lists_the_flags_and_exits_0():
  """--help: every main.py flag and how to list the config fields."""
  result = run_main('--help')
  assert result.returncode == 0
  for flag in ('--config', '--workdir', '--mode', '--show_config'):
    assert flag in result.stdout
  assert '--show_config' in result.stdout


CONFIGS = sorted(
    f'configs/{name}' for name in os.listdir(os.path.join(ROOT, 'configs'))
    if name.endswith('.py') and name != '__init__.py')


@pytest.mark.parametrize('config', CONFIGS)
def test_show_config_describes_every_field(config):
  """--show_config: each field with its value and a line of meaning."""
  result = run_main(f'--config={config}', '--show_config')
  assert result.returncode == 0, result.stderr
  lines = result.stdout.splitlines()
  fields = [l for l in lines if not l.startswith(' ')]
  assert len(fields) > 5 and len(lines) == 2 * len(fields)
  assert 'no description' not in result.stdout
  assert "task = '" in result.stdout


def test_a_bug_keeps_its_traceback(tmp_path):
  """An unexpected exception is not disguised as a user error."""
  script = tmp_path / 'buggy.py'
  script.write_text(
      'import sys\n'
      f'sys.path.insert(0, {ROOT!r})\n'
      'import train\n'
      'def boom(config, workdir):\n'
      '  raise KeyError("a bug")\n'
      'train.train_and_evaluate = boom\n'
      'import main\n'
      'from absl import app\n'
      'app.run(main.main, flags_parser=main.parse_flags)\n')
  result = subprocess.run(
      [sys.executable, str(script), '--config=configs/mnist.py',
       f'--workdir={tmp_path}'], capture_output=True, text=True, cwd=ROOT,
      timeout=120)
  assert result.returncode == 1
  assert 'Traceback' in result.stderr and "KeyError: 'a bug'" in result.stderr


def test_main_end_to_end(tiny_mnist_dir, tmp_path):
  """main.py parses config flags, trains, and writes metrics and config."""
  workdir = tmp_path / 'run'
  result = run_main(
      '--config=configs/mnist.py', f'--workdir={workdir}',
      f'--config.data_dir={tiny_mnist_dir}', '--config.num_epochs=1',
      '--config.batch_size=32', '--config.optimizer.name=adamw',
      '--config.optimizer.weight_decay=0.01', '--config.schedule=cosine',
      timeout=300)
  assert result.returncode == 0, result.stderr
  (metrics,) = [json.loads(l) for l in
                (workdir / 'metrics.jsonl').read_text().splitlines()]
  assert metrics['epoch'] == 1 and 0 <= metrics['test_accuracy'] <= 1
  config = json.loads((workdir / 'config.json').read_text())
  assert config['optimizer']['name'] == 'adamw'
  assert config['optimizer']['weight_decay'] == 0.01
  assert 'epoch 1: train loss' in result.stderr

@pytest.mark.parametrize('flags, message', [
    (['--config.optimizer.name=adamm'],
     "Error: config.optimizer.name='adamm' is invalid; accepted: adam, adamw"),
    (['--config.optimizer.name=sgd', '--config.optimizer.b1=0.5'],
     "Error: Optimizer 'sgd' does not take b1; it accepts: learning_rate"),
    (['--config.optimizer.b2=1.5'], 'b2=1.5'),
    (['--config.dataset=cifar10'], "Error: config.dataset='cifar10' is invalid; accepted: mnist"),
])
def test_main_bad_input_is_one_clear_line(tiny_mnist_dir, tmp_path, flags,
                                          message):
  """Bad flags end the run with the message, no traceback."""
  result = run_main('--config=configs/mnist.py', f'--workdir={tmp_path}',
                    f'--config.data_dir={tiny_mnist_dir}', *flags, timeout=300)
  assert result.returncode != 0
  assert message in result.stderr
  assert 'Traceback' not in result.stderr
