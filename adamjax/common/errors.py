"""The project's user-facing error types.

main.py prints a UserError (bad input) without a traceback and exits with
status 1; any other exception is a bug and keeps its traceback. Each class
also derives from the built-in type callers would catch (ValueError, ...).
"""

import contextlib
from typing import Iterator


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


@contextlib.contextmanager
def optional_packages(packages: tuple[str, ...], what: str,
                      requirements: str) -> Iterator[None]:
  """Turns a missing one of `packages`, imported inside, into one line.

  Args:
    packages: top-level package names that are optional extras.
    what: who needs them, with the verb, e.g. "the playground's web page
      needs".
    requirements: the requirements file that installs them.

  Raises:
    MissingPackageError: "WHAT: pip install -r REQUIREMENTS (no module named
      'x')." A module missing inside those packages (a broken install) or any
      other import error keeps its traceback.
  """
  try:
    yield
  except ModuleNotFoundError as e:
    missing = (e.name or '').split('.')[0]
    if missing not in packages:
      raise
    raise MissingPackageError(
        f'{what}: pip install -r {requirements} (no module named '
        f'{missing!r}).') from e


class OfflineError(UserError, ConnectionError):
  """A download that cannot happen (no network); says what to pass instead."""


class DivergedError(UserError, FloatingPointError):
  """Training diverged (non-finite or exploding loss); says at which step."""


class WorkdirError(UserError, ValueError):
  """A workdir whose saved run does not match the current config."""


class InterruptedRun(UserError):
  """The user stopped the run (Ctrl-C, SIGTERM); a checkpoint was saved."""
