"""The project's user-facing error types.

main.py prints a UserError (bad input) without a traceback and exits with
status 1; any other exception is a bug and keeps its traceback. Each class
also derives from the built-in type callers would catch (ValueError, ...).
"""


class UserError(Exception):
  """Bad input from the user; the message names the field, value and fix."""


class ConfigError(UserError, ValueError):
  """A config value outside what is accepted."""


class DataError(UserError, ValueError):
  """A data file or folder that is not a valid dataset."""


class MissingFileError(UserError, FileNotFoundError):
  """A file or folder the config names does not exist."""


class MissingPackageError(UserError, ImportError):
  """An optional package a task needs is not installed; says what to install."""


class OfflineError(UserError, ConnectionError):
  """A download that cannot happen (no network); says what to pass instead."""


class DivergedError(UserError, FloatingPointError):
  """Training diverged (non-finite or exploding loss); says at which step."""


class WorkdirError(UserError, ValueError):
  """A workdir whose saved run does not match the current config."""


class InterruptedRun(UserError):
  """The user stopped the run (Ctrl-C, SIGTERM); a checkpoint was saved."""
