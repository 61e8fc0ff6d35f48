"""The user's terminal: plain log lines that never collide with a tqdm bar.

absl writes every line as `I1207 00:52:02.731 12345 train.py:81] message`,
straight onto the end of a progress bar that tqdm is redrawing. On a terminal
`use_plain_logs` replaces absl's handler with `ConsoleHandler`, which writes
the plain message (warnings as 'Warning: ...') through `tqdm.write`: the bar
is cleared, the line printed, the bar redrawn below it. Where logs go to files
(absl's --log_dir, --alsologtostderr, --logtostderr) absl's prefixed lines are
kept for them.
"""

import logging as std_logging
import sys
from typing import Any

from absl import logging
import tqdm


class PlainFormatter(std_logging.Formatter):
  """The message alone; a warning or error says so first."""

  def format(self, record: std_logging.LogRecord) -> str:
    """'message', or 'Warning: message' / 'Error: message'."""
    message = super().format(record)
    if record.levelno >= std_logging.ERROR:
      return f'Error: {message}'
    if record.levelno >= std_logging.WARNING:
      return f'Warning: {message}'
    return message


class ConsoleHandler(std_logging.Handler):
  """Writes records to stderr through tqdm, above any bar being drawn."""

  def __init__(self):
    """A handler with the plain format."""
    super().__init__()
    self.setFormatter(PlainFormatter('%(message)s'))

  def emit(self, record: std_logging.LogRecord) -> None:
    """Clears the bars on stderr, writes the line, redraws them."""
    try:
      # sys.stderr is looked up now: a test (or a caller) may replace it.
      tqdm.tqdm.write(self.format(record), file=sys.stderr)
    except Exception:  # pylint: disable=broad-except
      self.handleError(record)


def logs_to_files(flag_values: Any) -> bool:
  """Whether the command asked for absl's log files or its stderr format."""
  return bool(flag_values['log_dir'].present or
              flag_values['alsologtostderr'].value or
              flag_values['logtostderr'].value)


def use_plain_logs() -> ConsoleHandler:
  """Replaces absl's handler on the root logger with a ConsoleHandler.

  The filters on absl's handler (cli.quiet_logs') move with it.

  Returns:
    The handler now installed.
  """
  root = std_logging.getLogger()
  absl_handler = logging.get_absl_handler()
  handler = ConsoleHandler()
  for log_filter in absl_handler.filters:
    handler.addFilter(log_filter)
  root.removeHandler(absl_handler)
  for old in list(root.handlers):
    if isinstance(old, ConsoleHandler):
      root.removeHandler(old)
  root.addHandler(handler)
  return handler
