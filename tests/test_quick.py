"""The quick subset (`pytest -m quick`): it reaches every product module.

conftest.QUICK names the quick tests. Here a product module counts as
reached when a test file with quick tests imports it or runs it by name
(`python -m adamjax.experiments.plot_curves`), or imports (at module level,
transitively) a product module that does; a module only imported lazily
inside a function is not reached that way.
"""

import ast
import glob
import os

import pytest

import conftest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.quick


def product_modules() -> dict[str, str]:
  """{'adamjax.trainer.setup': path} for adam_optax, main, train, adamjax."""
  paths = ([os.path.join(ROOT, name) for name in
            ('adam_optax.py', 'main.py', 'train.py')] +
           glob.glob(os.path.join(ROOT, 'adamjax', '**', '*.py'),
                     recursive=True))
  modules = {}
  for path in paths:
    name = os.path.relpath(path, ROOT)[:-3].replace(os.sep, '.')
    modules[name.removesuffix('.__init__')] = path
  return modules


def imports(path: str, top_level_only: bool) -> set[str]:
  """The modules a file imports ('a.b' and, for `from a import b`, 'a.b')."""
  tree = ast.parse(open(path).read())
  nodes = ([n for statement in tree.body for n in ast.walk(statement)
            if not isinstance(statement, (ast.FunctionDef,
                                          ast.AsyncFunctionDef,
                                          ast.ClassDef))]
           if top_level_only else list(ast.walk(tree)))
  names = set()
  for node in nodes:
    if isinstance(node, ast.Import):
      names.update(alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module:
      names.add(node.module)
      names.update(f'{node.module}.{alias.name}' for alias in node.names)
  return names


def reached(start: set[str], modules: dict[str, str]) -> set[str]:
  """`start`'s product modules, their packages, and what they import."""
  seen, todo = set(), [m for m in start if m in modules]
  while todo:
    name = todo.pop()
    if name in seen:
      continue
    seen.add(name)
    parts = name.split('.')
    todo.extend('.'.join(parts[:i]) for i in range(1, len(parts)))
    todo.extend(m for m in imports(modules[name], True) if m in modules)
  return seen


def test_every_quick_name_is_a_test():
  """A renamed or removed test cannot silently drop out of the subset."""
  for file, names in conftest.QUICK.items():
    path = os.path.join(ROOT, 'tests', file)
    assert os.path.isfile(path), file
    if names == conftest.ALL:
      continue
    defined = {node.name for node in ast.parse(open(path).read()).body
               if isinstance(node, ast.FunctionDef)}
    assert not set(names) - defined, (file, set(names) - defined)


def test_quick_tests_reach_every_product_module():
  """Each product module is imported by a test file with quick tests."""
  modules = product_modules()
  start = set()
  for file in conftest.QUICK:
    path = os.path.join(ROOT, 'tests', file)
    start |= imports(path, False)
    start |= {node.value for node in ast.walk(ast.parse(open(path).read()))
              if isinstance(node, ast.Constant) and node.value in modules}
  missing = sorted(set(modules) - reached(start, modules))
  assert not missing, f'no quick test reaches: {missing}'

