"""The one set of argument checks: numbers, ranges, choices and sequences.

Every check takes the field's name as the user wrote it (e.g. 'config.seed'),
returns the value it accepted, and otherwise raises a one-line
`errors.ConfigError`: the name, the value, what is accepted.
"""

import difflib
import math
import numbers
from typing import Any, Callable, Iterable, NamedTuple, Optional

from adamjax.common import errors


def is_real(value: Any) -> bool:
  """Whether `value` is a Python or NumPy real number (bools excluded)."""
  return isinstance(value, numbers.Real) and not isinstance(value, bool)


def is_int(value: Any) -> bool:
  """Whether `value` is a Python or NumPy integer (bools excluded)."""
  return isinstance(value, numbers.Integral) and not isinstance(value, bool)


class Range(NamedTuple):
  """The accepted values of a number: low to high, each end open or closed.

  Attributes:
    low: -math.inf for none.
    high: math.inf for none.
    low_open: whether `low` itself is refused.
    high_open: whether `high` itself is refused.
  """
  low: float = -math.inf
  high: float = math.inf
  low_open: bool = False
  high_open: bool = False

  def __contains__(self, value: float) -> bool:
    """Whether the finite real `value` lies in the range."""
    above = value > self.low if self.low_open else value >= self.low
    below = value < self.high if self.high_open else value <= self.high
    return above and below

  def __str__(self) -> str:
    """The range as a reader writes it: 'in [0, 1)', '>= 0', '> 0'."""
    low, high = _format(self.low), _format(self.high)
    if self.low == -math.inf and self.high == math.inf:
      return ''
    if self.high == math.inf:
      return f'{">" if self.low_open else ">="} {low}'
    if self.low == -math.inf:
      return f'{"<" if self.high_open else "<="} {high}'
    return (f'in {"(" if self.low_open else "["}{low}, {high}'
            f'{")" if self.high_open else "]"}')


def _format(bound: float) -> str:
  """A range's end as written: whole numbers in full (2**32 - 1), else %g."""
  if math.isfinite(bound) and float(bound).is_integer():
    return str(int(bound))
  return f'{bound:g}'


ANY = Range()
NON_NEGATIVE = Range(0.0)
POSITIVE = Range(0.0, low_open=True)
# A decay that must forget (b1, b2, momentum): 1 would divide by zero in
# Adam's bias correction.
BELOW_ONE = Range(0.0, 1.0, high_open=True)
UNIT = Range(0.0, 1.0)


def closest(value: Any, choices: Iterable[Any]) -> Optional[str]:
  """The one of `choices` a misspelt `value` most likely meant, or None.

  Compared as strings, ignoring case, by difflib's similarity (at least 0.6
  counts as close); a choice that holds the value's letters in order
  ('lrate' in 'learning_rate', 'epochs' in 'num_epochs') counts from 0.5 and
  is preferred by 0.2.
  """
  if not isinstance(value, str) or not value:
    return None
  value = value.lower()

  def score(choice: str) -> float:
    name = choice.lower()
    similarity = difflib.SequenceMatcher(None, value, name).ratio()
    letters = iter(name)
    if len(value) >= 3 and all(letter in letters for letter in value):
      return similarity + 0.2 if similarity >= 0.5 else 0.0
    return similarity if similarity >= 0.6 else 0.0

  scores = {str(c): score(str(c)) for c in choices}
  best = max(scores, key=scores.get, default=None)
  return best if best is not None and scores[best] > 0 else None


def did_you_mean(value: Any, choices: Iterable[Any],
                 show: Callable[[str], str] = repr) -> str:
  """' Did you mean X?' for the closest of `choices` to `value`, else ''.

  Args:
    value: what the user wrote; only a string has close matches.
    choices: the accepted values (compared as strings, ignoring case).
    show: how to write the match in the sentence (repr: 'adam').
  """
  match = closest(value, choices)
  return '' if match is None else f' Did you mean {show(match)}?'


def close_field(name: str, names: Iterable[str], prefix: str = '') -> str:
  """' Did you mean PREFIX+FIELD?' for the field a misspelt `name` meant.

  First the first unknown part of the dotted name is matched against the
  names at its level ('optimizer.nmae' -> 'optimizer.name', 'optimzer.b1' ->
  'optimizer.b1'); failing that, its last part against every field's last
  part ('learnig_rate' -> 'optimizer.learning_rate').

  Args:
    name: the dotted name the user wrote, without 'config.'.
    names: the dotted names of the fields that exist.
    prefix: written before the suggestion ('config.', '--config.').

  Returns:
    The sentence, with a leading space, or '' if nothing is close.
  """
  names = list(names)
  parts = name.split('.')
  for depth in range(len(parts)):
    level = {n.split('.')[depth] for n in names
             if n.count('.') >= depth and n.split('.')[:depth] == parts[:depth]}
    if parts[depth] in level:
      continue
    part = closest(parts[depth], level)
    if part is not None:
      guess = '.'.join(parts[:depth] + [part] + parts[depth + 1:])
      if guess in names:
        return f' Did you mean {prefix}{guess}?'
      group = [n[len(guess) + 1:] for n in names if n.startswith(guess + '.')]
      if group and depth == len(parts) - 1:
        return (f' Did you mean the group {prefix}{guess} (e.g. '
                f'{prefix}{guess}.{group[0]})?')
    break
  leaves = {}
  for field in names:
    leaves.setdefault(field.rsplit('.', 1)[-1], field)
  leaf = closest(parts[-1], leaves)
  return '' if leaf is None else f' Did you mean {prefix}{leaves[leaf]}?'


def fail(name: str, value: Any, accepted: str, hint: str = '') -> None:
  """Raises the one-line ConfigError every check uses (`hint` appended)."""
  raise errors.ConfigError(f'{name}={value!r} is invalid; accepted: '
                           f'{accepted}.{hint}')


def number(name: str, value: Any, accepted: Range = ANY, *,
           integer: bool = False, optional: bool = False) -> Any:
  """Checks a finite number (an integer if `integer`) in `accepted`.

  Args:
    name: the field's name.
    value: the value to check.
    accepted: the range it must lie in.
    integer: whether it must be an integer.
    optional: whether None is accepted.

  Raises:
    errors.ConfigError: if `value` is refused.
  """
  if value is None and optional:
    return value
  ok = is_int(value) if integer else is_real(value)
  try:
    ok = ok and math.isfinite(value) and value in accepted
  except OverflowError:  # An integer too large for a float.
    ok = False
  if not ok:
    kind = 'an integer' if integer else 'a finite number'
    fail(name, value, (('None or ' if optional else '') +
                       f'{kind} {accepted}').rstrip())
  return value


def boolean(name: str, value: Any) -> bool:
  """Checks True or False (a truthy string such as 'False' is refused)."""
  if not isinstance(value, bool):
    fail(name, value, 'True or False')
  return value


def choice(name: str, value: Any, choices: Iterable[Any]) -> Any:
  """Checks that `value` is one of `choices`."""
  choices = tuple(choices)
  if value not in choices:
    fail(name, value, ', '.join(map(str, choices)),
         did_you_mean(value, choices))
  return value


def sequence(name: str, value: Any, item: Callable[[str, Any], Any], *,
             example: str, distinct: bool = True) -> tuple[Any, ...]:
  """Checks a non-empty tuple or list whose entries each pass `item`.

  Args:
    name: the field's name.
    value: the value to check.
    item: a check of one entry, called as item(f'{name}[i]', entry).
    example: how to write an accepted value on the command line.
    distinct: whether an entry may appear only once.

  Raises:
    errors.ConfigError: naming the field or the bad entry.
  """
  if not isinstance(value, (tuple, list)) or not value:
    fail(name, value, f'a non-empty tuple, e.g. {example}')
  for i, entry in enumerate(value):
    item(f'{name}[{i}]', entry)
  if distinct:
    repeated = sorted({repr(v) for v in value if list(value).count(v) > 1})
    if repeated:
      fail(name, value, f'each entry once ({", ".join(repeated)} repeat)')
  return tuple(value)


def dtype_name(name: str, value: Any) -> str:
  """Checks the name of a floating dtype, e.g. 'float32' or 'bfloat16'."""
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  try:
    ok = jnp.issubdtype(jnp.dtype(value), jnp.floating)
  except TypeError:
    ok = False
  if not ok:
    fail(name, value, "a floating dtype such as 'float32' or 'bfloat16'")
  return value


def optional(check: Callable[..., Any]) -> Callable[..., Any]:
  """`check` that also accepts None."""

  def checked(name: str, value: Any, *args: Any, **kwargs: Any) -> Any:
    """None, or what `check` accepts."""
    return None if value is None else check(name, value, *args, **kwargs)

  return checked


def mapping(name: str, value: Any, keys: Iterable[str]) -> dict[str, Any]:
  """Checks a dict whose keys are all among `keys` (none need be present)."""
  keys = tuple(keys)
  if not (isinstance(value, dict) and set(value) <= set(keys)):
    fail(name, value, f'a dict with keys among {", ".join(keys)}' if keys
         else 'an empty dict')
  return value
