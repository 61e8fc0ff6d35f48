"""The user's terminal: plain log lines that never collide with a tqdm bar.

absl writes every line as `I1207 00:52:02.731 12345 train.py:81] message`,
straight onto the end of a progress bar that tqdm is redrawing. `setup`
gives the terminal a `ConsoleHandler` instead, which writes the plain
message (warnings as 'Warning: ...') through `tqdm.write`: the bar is
cleared, the line printed, the bar redrawn below it. absl's prefixed lines are kept where they
are asked for: in files with --log_dir, on stderr with --alsologtostderr or
--logtostderr.
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


def setup(flag_values: Any) -> None:
  """Plain lines on the terminal; absl's prefixed ones where files want them.

  --alsologtostderr or --logtostderr: absl's own format on stderr, as asked.
  --log_dir=DIR: absl writes its prefixed lines to files in DIR, and the
  terminal gets the plain ones. Otherwise absl's handler is replaced.
  Filters on absl's handler (cli.quiet_logs') also filter the terminal's.

  Args:
    flag_values: the parsed absl flags (main.FLAGS).
  """
  if flag_values['alsologtostderr'].value or flag_values['logtostderr'].value:
    return
  root = std_logging.getLogger()
  absl_handler = logging.get_absl_handler()
  handler = ConsoleHandler()
  for log_filter in absl_handler.filters:
    handler.addFilter(log_filter)
  if flag_values['log_dir'].value:
    absl_handler.use_absl_log_file('main', flag_values['log_dir'].value)
  else:
    root.removeHandler(absl_handler)
  for old in list(root.handlers):
    if isinstance(old, ConsoleHandler):
      root.removeHandler(old)
  root.addHandler(handler)
