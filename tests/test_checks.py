"""Tests for the one set of argument checks (adamjax/common/checks.py)."""

import math
import re

import numpy as np
import pytest

from adamjax.common import checks
from adamjax.common import errors


@pytest.mark.parametrize('accepted, text', [
    (checks.ANY, ''),
    (checks.NON_NEGATIVE, '>= 0'),
    (checks.POSITIVE, '> 0'),
    (checks.BELOW_ONE, 'in [0, 1)'),
    (checks.UNIT, 'in [0, 1]'),
    (checks.Range(0, 2**32 - 1), 'in [0, 4294967295]'),
    (checks.Range(1e-8, 0.5, low_open=True), 'in (1e-08, 0.5]'),
    (checks.Range(high=3, high_open=True), '< 3'),
])
def test_range_reads_as_written(accepted, text):
  """A range prints as a reader writes it, whole numbers in full."""
  assert str(accepted) == text


@pytest.mark.parametrize('value, accepted, inside', [
    (0.0, checks.BELOW_ONE, True), (1.0, checks.BELOW_ONE, False),
    (1.0, checks.UNIT, True), (0.0, checks.POSITIVE, False),
    (1e-300, checks.POSITIVE, True), (-1e-300, checks.NON_NEGATIVE, False),
])
def test_range_ends_are_open_or_closed(value, accepted, inside):
  """Each end is included or not, exactly as declared."""
  assert (value in accepted) is inside


@pytest.mark.parametrize('value', [0, 0.5, np.float32(0.25), np.int64(0)])
def test_number_accepts_python_and_numpy_numbers(value):
  """Python and NumPy numbers in range come back unchanged."""
  assert checks.number('x', value, checks.BELOW_ONE) is value


@pytest.mark.parametrize('value', [1.0, -0.1, math.nan, math.inf, True, '0.5',
                                   None, [0.5]])
def test_number_refuses_with_name_value_and_range(value):
  """Out of range, non-finite, bool, string, None: one line naming all."""
  with pytest.raises(errors.ConfigError, match='^' + re.escape(
      f'config.b1={value!r} is invalid; accepted: a finite number in [0, 1).')
                     + '$'):
    checks.number('config.b1', value, checks.BELOW_ONE)


def test_integer_and_optional_numbers():
  """integer=True refuses 1.5 (and 2.0); optional=True accepts None."""
  assert checks.number('n', np.int32(3), checks.Range(1), integer=True) == 3
  for value in (1.5, 2.0):
    with pytest.raises(errors.ConfigError,
                       match=r'accepted: an integer >= 1\.$'):
      checks.number('n', value, checks.Range(1), integer=True)
  assert checks.number('n', None, optional=True) is None
  with pytest.raises(errors.ConfigError,
                     match=r'accepted: None or a finite number\.$'):
    checks.number('n', 'x', optional=True)


def test_an_integer_too_large_for_a_float_is_refused_not_raised():
  """10**400 overflows math.isfinite; it is a ConfigError, not a crash."""
  with pytest.raises(errors.ConfigError, match=r'^n=10{400} is invalid'):
    checks.number('n', 10**400, checks.Range(1), integer=True)


def test_boolean_refuses_truthy_strings():
  """'False' is a truthy string, not a bool."""
  assert checks.boolean('flag', False) is False
  for value in ('False', 1, None):
    with pytest.raises(errors.ConfigError, match='accepted: True or False'):
      checks.boolean('flag', value)


def test_choice_lists_what_is_accepted():
  """An unknown name lists every accepted one in order."""
  assert checks.choice('model', 'cnn', ('cnn', 'mlp')) == 'cnn'
  with pytest.raises(errors.ConfigError,
                     match=r"^model='resnet' is invalid; accepted: cnn, mlp\.$"):
    checks.choice('model', 'resnet', ('cnn', 'mlp'))


def test_sequence_checks_shape_entries_and_repeats():
  """Empty or not a tuple, a bad entry (named by index), a repeated entry."""
  item = lambda name, v: checks.number(name, v, checks.POSITIVE)
  assert checks.sequence('r', [1, 2], item, example='(1, 2)') == (1, 2)
  for value in ((), 'abc', 3):
    with pytest.raises(errors.ConfigError,
                       match=r'accepted: a non-empty tuple, e\.g\. \(1, 2\)'):
      checks.sequence('r', value, item, example='(1, 2)')
  with pytest.raises(errors.ConfigError, match=r'^r\[1\]=0 is invalid'):
    checks.sequence('r', (1, 0), item, example='(1, 2)')
  with pytest.raises(errors.ConfigError, match=r'each entry once \(2 repeat'):
    checks.sequence('r', (2, 1, 2), item, example='(1, 2)')
  assert checks.sequence('r', (2, 2), item, example='', distinct=False)


def test_dtype_name_accepts_floating_dtypes_only():
  """bfloat16 yes; int8 and a misspelling no."""
  assert checks.dtype_name('mu_dtype', 'bfloat16') == 'bfloat16'
  for value in ('int8', 'float33'):
    with pytest.raises(errors.ConfigError, match='a floating dtype'):
      checks.dtype_name('mu_dtype', value)


def test_optional_wraps_any_check():
  """optional(check) passes None through and checks everything else."""
  check = checks.optional(checks.boolean)
  assert check('flag', None) is None
  with pytest.raises(errors.ConfigError):
    check('flag', 'yes')


def test_optional_packages_names_the_file_to_install():
  """A missing listed package is one line; anything else keeps its error."""
  from adamjax.common import errors  # pylint: disable=g-import-not-at-top
  with pytest.raises(errors.MissingPackageError,
                     match=r"^the figures need: pip install -r "
                           r"requirements-web.txt \(no module named "
                           r"'no_such_pkg'\)\.$"):
    with errors.optional_packages(('no_such_pkg',), 'the figures need',
                                  'requirements-web.txt'):
      import no_such_pkg.sub  # pylint: disable=g-import-not-at-top,unused-import
  with pytest.raises(ModuleNotFoundError) as info:
    with errors.optional_packages(('other',), 'x', 'requirements-web.txt'):
      import no_such_pkg  # pylint: disable=g-import-not-at-top,unused-import
  assert not isinstance(info.value, errors.MissingPackageError)


@pytest.mark.parametrize('module, package', [
    ('adamjax.playground.figures', 'matplotlib'),
    ('adamjax.playground.figures', 'PIL'),
    ('adamjax.playground.web', 'contourpy'),
    ('adamjax.experiments.figures', 'matplotlib'),
    ('adamjax.experiments.vae_grid', 'matplotlib'),
])
def test_optional_features_without_their_packages_are_one_line(
    monkeypatch, module, package):
  import importlib  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  from adamjax.common import errors  # pylint: disable=g-import-not-at-top
  for name in [package] + [n for n in sys.modules
                           if n.startswith(package + '.')]:
    monkeypatch.setitem(sys.modules, name, None)  # As if not installed.
  for name in [n for n in sys.modules
               if n == module or n == 'adamjax.common.plotting']:
    monkeypatch.delitem(sys.modules, name)
  parent, _, child = module.rpartition('.')
  monkeypatch.delattr(importlib.import_module(parent), child, raising=False)
  monkeypatch.delattr(importlib.import_module('adamjax.common'), 'plotting',
                      raising=False)
  with pytest.raises(errors.MissingPackageError,
                     match=rf"pip install -r requirements-\w+\.txt \(no "
                           rf"module named '{package}'\)"):
    importlib.import_module(module)
