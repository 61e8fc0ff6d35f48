"""Tests for what a user's terminal shows (issue 26, "the first ten minutes").

Plain log lines (no absl prefix) that never land on a progress bar's line,
the messages of a stopped, finished or evaluated run, and "Did you mean?".
"""

import contextlib
import io
import json
import logging as std_logging
import os
import re
import sys

from absl import logging
import pytest
import tqdm

from adamjax import schema
from adamjax.common import checks
from adamjax.common import cli
from adamjax.common import console
from adamjax.common import errors
from adamjax.playground import problems
from conftest import main_flags
from conftest import run_main
import main
import train
from test_train import tiny_config

ABSL_PREFIX = re.compile(r'^[IWEF]\d{4} \d\d:\d\d:\d\d')


class FakeTerminal(io.StringIO):
  """A StringIO that says it is a terminal, so tqdm draws its bar on it."""

  def isatty(self) -> bool:
    return True


def screen(text: str) -> list[str]:
  """The lines a terminal shows after `text`: '\\r' returns to column 0."""
  lines, line, column = [], [], 0
  for char in re.sub(r'\x1b\[[0-9;]*[A-Za-z]', '', text):
    if char == '\n':
      lines.append(''.join(line).rstrip())
      line, column = [], 0
    elif char == '\r':
      column = 0
    else:
      line[column:column + 1] = [char]
      column += 1
  if ''.join(line).strip():
    lines.append(''.join(line).rstrip())
  return lines


@contextlib.contextmanager
def fake_terminal():
  """stderr as a fake terminal, absl's INFO logging through a ConsoleHandler.

  Entered in the test's body: pytest puts its own sys.stderr back between a
  fixture's setup and the test.
  """
  fake, previous = FakeTerminal(), sys.stderr
  handler = console.ConsoleHandler()
  absl_logger = std_logging.getLogger('absl')
  level, propagate = absl_logger.level, absl_logger.propagate
  absl_logger.addHandler(handler)
  absl_logger.setLevel(std_logging.INFO)
  absl_logger.propagate = False
  sys.stderr = fake
  try:
    yield fake
  finally:
    sys.stderr = previous
    absl_logger.removeHandler(handler)
    absl_logger.setLevel(level)
    absl_logger.propagate = propagate


def test_console_lines_are_plain_messages():
  """No 'I1207 00:52:02.731 ...]' prefix; warnings and errors say so."""
  with fake_terminal() as terminal:
    logging.info('step %d: loss %.2f', 196, 0.5)
    logging.warning('disk nearly full')
    logging.error('bad file')
  assert terminal.getvalue().splitlines() == [
      'step 196: loss 0.50', 'Warning: disk nearly full', 'Error: bad file']


def test_a_log_line_never_lands_on_the_progress_bar():
  """Written while a bar is drawn, the line gets its own line; bar redrawn."""
  with fake_terminal() as terminal:
    bar = tqdm.tqdm(total=10, desc='epoch 1', unit='step', mininterval=0,
                    file=sys.stderr)
    bar.update(3)
    logging.info('step 3 (epoch 1, batch 3/10): loss 2.3000')
    bar.update(2)
    bar.close()
  lines = screen(terminal.getvalue())
  (line,) = [l for l in lines if 'loss 2.3000' in l]
  assert line == 'step 3 (epoch 1, batch 3/10): loss 2.3000', lines
  assert any(l.startswith('epoch 1:  50%') for l in lines), lines


def test_training_progress_lines_start_their_own_lines(tiny_mnist_dir,
                                                       tmp_path):
  """A real epoch with its bar and a progress line after every group."""
  config = tiny_config(tiny_mnist_dir, num_epochs=1, progress_bar=True,
                       progress_every_s=1e-9, steps_per_dispatch=2)
  with fake_terminal() as terminal:
    train.train_and_evaluate(config, str(tmp_path))
  text = terminal.getvalue()
  assert 'step/s]' in text  # The bar was drawn.
  lines = screen(text)
  progress = [l for l in lines if 'images/s' in l and '(epoch 1, batch' in l]
  assert len(progress) >= 3, lines
  for line in progress:
    assert re.match(r'^step \d+ \(epoch 1, batch \d+/8\): loss ', line), line
  (epoch_line,) = [l for l in lines if 'train loss' in l]
  assert epoch_line.startswith('epoch 1: train loss '), lines


class FakeFlag:
  """An absl flag's .value and .present."""

  def __init__(self, value):
    self.value, self.present = value, bool(value)


@pytest.mark.parametrize('also_to_stderr', [False, True])
def test_setup_replaces_absl_handler_unless_its_format_is_asked(
    also_to_stderr):
  """The root's absl handler becomes a ConsoleHandler with its filters."""
  flags = {'alsologtostderr': FakeFlag(also_to_stderr),
           'logtostderr': FakeFlag(False), 'log_dir': FakeFlag('')}
  root = std_logging.getLogger()
  absl_handler = logging.get_absl_handler()
  marker = std_logging.Filter('marker')
  absl_handler.addFilter(marker)
  before = list(root.handlers)
  root.addHandler(absl_handler)
  try:
    console.setup(flags)
    added = [h for h in root.handlers if isinstance(h, console.ConsoleHandler)]
    if also_to_stderr:
      assert absl_handler in root.handlers and not added
    else:
      assert absl_handler not in root.handlers
      assert len(added) == 1 and marker in added[0].filters
  finally:
    root.handlers[:] = before
    absl_handler.removeFilter(marker)


def test_a_stopped_run_says_where_and_how_to_resume(tiny_mnist_dir, tmp_path,
                                                    monkeypatch):
  """SIGINT mid-epoch: 'Stopped by SIGINT at step N (...). Rerun ...'."""
  import signal  # pylint: disable=g-import-not-at-top
  from adamjax.trainer import steps  # pylint: disable=g-import-not-at-top
  original, calls = steps.train_steps, []

  def signal_on_the_third_group(*args, **kwargs):
    calls.append(1)
    if len(calls) == 3:
      signal.raise_signal(signal.SIGINT)
    return original(*args, **kwargs)

  monkeypatch.setattr(steps, 'train_steps', signal_on_the_third_group)
  config = tiny_config(tiny_mnist_dir, num_epochs=1, steps_per_dispatch=1)
  with pytest.raises(errors.InterruptedRun) as info:
    train.train_and_evaluate(config, str(tmp_path))
  assert re.match(r'^Stopped by SIGINT at step 3 \(epoch 1, batch 3/8\)\. '
                  r'Rerun the same command to resume \(checkpoint saved in '
                  r'.*checkpoints\)\.$', str(info.value)), str(info.value)


def test_main_prints_the_stop_message_alone(monkeypatch, capsys, tmp_path):
  """No 'Stopped: Stopped by ...': the message as the run wrote it, exit 130."""
  message = 'Stopped by SIGINT at step 7 (epoch 1, batch 7/8). Rerun it.'

  def stopped(config, workdir):
    raise errors.InterruptedRun(message)

  monkeypatch.setattr(main, 'task_function', lambda task, mode: stopped)
  monkeypatch.setattr(console, 'setup', lambda flag_values: None)
  monkeypatch.setattr(cli, 'quiet_logs', lambda: None)
  with main_flags('--config=configs/mnist.py', f'--workdir={tmp_path}'):
    with pytest.raises(SystemExit) as info:
      main.main(['main.py'])
  assert info.value.code == 130
  assert capsys.readouterr().err == message + '\n'


@pytest.fixture(scope='module')
def finished_run(data_dir, tmp_path_factory):
  """main.py trained one epoch in a workdir: (workdir, its stderr)."""
  workdir = str(tmp_path_factory.mktemp('run'))
  result = run_main('--config=configs/mnist.py', f'--workdir={workdir}',
                    f'--config.data_dir={data_dir}', '--config.num_epochs=1',
                    '--config.batch_size=32', timeout=600)
  assert result.returncode == 0, result.stderr
  return workdir, result.stderr


def test_main_logs_plain_lines_and_one_epoch_line(finished_run):
  """The terminal gets the messages without absl's prefix."""
  _, stderr = finished_run
  lines = stderr.splitlines()
  assert not [l for l in lines if ABSL_PREFIX.match(l)], stderr
  assert len([l for l in lines if l.startswith('epoch 1: train loss')]) == 1
  assert any(l.startswith('Training on mnist') for l in lines), stderr


def test_rerunning_a_finished_run_says_there_is_nothing_to_do(data_dir,
                                                              finished_run):
  """Not 'resuming from step ...' then silence."""
  workdir, _ = finished_run
  result = run_main('--config=configs/mnist.py', f'--workdir={workdir}',
                    f'--config.data_dir={data_dir}', '--config.num_epochs=1',
                    '--config.batch_size=32', timeout=600)
  assert result.returncode == 0, result.stderr
  assert (f'{workdir}: already trained 1/1 epochs; nothing to do (use '
          '--mode=eval to evaluate') in result.stderr
  assert 'resuming' not in result.stderr
  assert 'Training on' not in result.stderr


def test_eval_takes_data_dir_from_the_saved_config(finished_run, tmp_path):
  """--mode=eval without --config.data_dir evaluates where it trained."""
  workdir, _ = finished_run
  with open(os.path.join(workdir, 'config.json')) as f:
    data_dir = json.load(f)['data_dir']
  result = run_main(f'--config={os.path.abspath("configs/mnist.py")}',
                    f'--workdir={workdir}', '--mode=eval',
                    '--config.batch_size=32', cwd=str(tmp_path), timeout=600)
  assert result.returncode == 0, result.stderr
  assert ('evaluating checkpoint of step 8 (after epoch 1) in '
          f'{workdir}/checkpoints on {data_dir}') in result.stderr
  assert 'resuming' not in result.stderr
  assert re.search(r'step 8: test loss \d\.\d{4}, test accuracy', result.stdout)


def test_absl_prefix_is_kept_for_log_files(data_dir, finished_run, tmp_path):
  """--log_dir: absl's prefixed lines in its files, plain ones on stderr."""
  workdir, _ = finished_run
  result = run_main('--config=configs/mnist.py', f'--workdir={workdir}',
                    f'--config.data_dir={data_dir}', '--config.num_epochs=1',
                    '--config.batch_size=32', f'--log_dir={tmp_path}',
                    timeout=600)
  assert result.returncode == 0, result.stderr
  (line,) = [l for l in result.stderr.splitlines() if 'nothing to do' in l]
  assert line.startswith(f'{workdir}: already trained'), result.stderr
  with open(tmp_path / 'main.INFO') as f:
    (logged,) = [l for l in f if 'nothing to do' in l]
  assert ABSL_PREFIX.match(logged), logged


def test_eval_given_data_dir_keeps_it(finished_run, tmp_path):
  """--config.data_dir on the command line wins over the saved one."""
  config = schema.default_config('classify')
  saved = os.path.join(finished_run[0], 'config.json')
  with open(saved) as f:
    data_dir = json.load(f)['data_dir']
  assert cli.sets_field(['main.py', '--config.data_dir=/x'], 'data_dir')
  assert cli.sets_field(['main.py', '--config.data_dir', '/x'], 'data_dir')
  assert not cli.sets_field(['main.py', '--config.data_dirs=/x'], 'data_dir')
  cli.use_saved_field(config, finished_run[0], 'data_dir')
  assert config.data_dir == data_dir
  config.data_dir = None
  cli.use_saved_field(config, str(tmp_path), 'data_dir')  # No config.json.
  assert config.data_dir is None


@pytest.mark.parametrize('value, choices, expected', [
    ('adm', ('sgd', 'adam', 'adamw', 'adamax'), 'adam'),
    ('Adam', ('sgd', 'adam', 'adamw'), 'adam'),
    ('cosin', ('constant', 'cosine', 'warmup_cosine'), 'cosine'),
    ('cnnn', ('cnn', 'cnn_wide', 'mlp', 'logreg'), 'cnn'),
    ('rosenbrok', tuple(problems.PROBLEMS), 'rosenbrock'),
    ('xyz', ('sgd', 'adam'), None),
    (3, ('sgd', 'adam'), None),
])
def test_closest(value, choices, expected):
  """A likely misspelling finds its choice; something unlike all finds none."""
  assert checks.closest(value, choices) == expected


@pytest.mark.parametrize('name, expected', [
    ('learnig_rate', ' Did you mean config.optimizer.learning_rate?'),
    ('learning_rate', ' Did you mean config.optimizer.learning_rate?'),
    ('optimizer.nmae', ' Did you mean config.optimizer.name?'),
    ('optimizer.lrate', ' Did you mean config.optimizer.learning_rate?'),
    ('optimzer.b1', ' Did you mean config.optimizer.b1?'),
    ('epochs', ' Did you mean config.num_epochs?'),
    ('optimizers', ' Did you mean the group config.optimizer (e.g. '
     'config.optimizer.name)?'),
    ('zzzz', ''),
])
def test_close_field(name, expected):
  """The dotted field a misspelt name meant, by its full name."""
  assert checks.close_field(name, schema.fields('classify'),
                            'config.') == expected


@pytest.mark.parametrize('field, value, meant', [
    ('optimizer.name', 'adamm', 'adam'),
    ('schedule', 'cosin', 'cosine'),
    ('model', 'cnnn', 'cnn'),
])
def test_a_misspelt_choice_is_named_with_its_likely_meaning(field, value,
                                                            meant):
  """schema.validate: '..., accepted: ... Did you mean 'adam'?'."""
  config = schema.default_config('classify')
  group, _, leaf = field.rpartition('.')
  (config[group] if group else config)[leaf] = value
  with pytest.raises(errors.ConfigError,
                     match=rf"^config\.{re.escape(field)}='{value}' is invalid; "
                     rf"accepted: .*\. Did you mean '{meant}'\?$"):
    schema.validate(config)


def test_a_misspelt_problem_is_named_with_its_likely_meaning():
  with pytest.raises(errors.ConfigError,
                     match=r"accepted: .*\. Did you mean 'rosenbrock'\?$"):
    problems.get_problem('rosenbrok')


def test_an_unknown_field_in_a_config_suggests_the_full_name():
  """schema.validate on a field the task does not have."""
  config = schema.default_config('classify')
  config.unlock()
  config.learnig_rate = 0.1
  with pytest.raises(errors.ConfigError,
                     match=r'^config\.learnig_rate is not a field of task '
                     r"'classify'.* Did you mean "
                     r'config\.optimizer\.learning_rate\?$'):
    schema.validate(config)


@pytest.mark.parametrize('flag, expected', [
    ('--config.learnig_rate=0.1', "Error: --config.learnig_rate: config has "
     "no field 'learnig_rate'. Did you mean "
     '--config.optimizer.learning_rate?'),
    ('--config.optimizer.nmae=adam', "Error: --config.optimizer.nmae: "
     "config.optimizer has no field 'nmae'. Did you mean "
     '--config.optimizer.name?'),
])
def test_a_misspelt_flag_suggests_the_field(capsys, flag, expected):
  """The command line's unknown field: one line, the guess, where to look."""
  with pytest.raises(SystemExit) as info:
    cli.check_overrides(schema.default_config('classify'), ['main.py', flag])
  assert info.value.code == 2
  assert capsys.readouterr().err.splitlines() == [expected, cli.HELP_HINT]
  assert '--help ' in cli.HELP_HINT and '--show_config' in cli.HELP_HINT
