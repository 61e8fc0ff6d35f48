"""Runs main.py and records every file it opens for writing (for tests).

  python tests/audited_main.py LOG.json [main.py flags...]

A Python audit hook (sys.addaudithook) sees every open(), os.open(), rename,
removal and folder creation made from Python code in this process, including
by libraries; LOG.json then lists their paths. Writes from C++ code (e.g.
TensorStore inside Orbax) are not visible to it.
"""

import atexit
import json
import os
import runpy
import sys

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
PATH_EVENTS = {'os.rename': 'renamed', 'os.replace': 'renamed',
               'os.remove': 'removed', 'os.rmdir': 'removed',
               'shutil.rmtree': 'removed', 'os.mkdir': 'mkdir'}


def main() -> None:
  """Installs the hook, then runs main.py with the remaining arguments."""
  log_path = sys.argv.pop(1)
  seen = {'opened': set(), 'renamed': set(), 'removed': set(), 'mkdir': set()}
  done = []

  def path_of(value):
    """An absolute path, or None for file descriptors and the like."""
    if isinstance(value, (str, bytes, os.PathLike)):
      return os.path.abspath(os.fsdecode(value))
    return None

  def hook(event, args):
    """Records the paths of writing events."""
    if done:
      return
    if event == 'open':
      path, mode, flags = args
      writes = (isinstance(mode, str) and any(c in mode for c in 'wax+')) or (
          isinstance(flags, int) and flags & WRITE_FLAGS)
      if writes and path_of(path):
        seen['opened'].add(path_of(path))
    elif event in PATH_EVENTS:
      for value in args[:2] if event in ('os.rename', 'os.replace') else args[:1]:
        if path_of(value):
          seen[PATH_EVENTS[event]].add(path_of(value))

  def dump():
    """Writes what was seen (the hook's own write is not recorded)."""
    done.append(True)
    record = {key: sorted(paths) for key, paths in seen.items()}
    with open(log_path, 'w') as f:
      json.dump(record, f)

  sys.addaudithook(hook)
  atexit.register(dump)
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  sys.argv[0] = os.path.join(root, 'main.py')
  sys.path.insert(0, root)
  runpy.run_path(sys.argv[0], run_name='__main__')


if __name__ == '__main__':
  main()
