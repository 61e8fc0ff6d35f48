"""The house rules: imports run one way, with no cycles.

Read from the source (ast), so in-function imports count too. The layers, each
importing only from those before it: common; optim and data and models;
schema; trainer; train.py; experiments and playground; main.py and configs/.
"""

import ast
import os

import pytest

from conftest import ROOT

# Layer of each first-party module prefix; a module may import only from its
# own layer or lower ones (adam_optax, standalone, imports nothing of ours).
LAYERS = (
    ('adam_optax',),
    ('adamjax.common',),
    ('adamjax.optim', 'adamjax.data', 'adamjax.models'),
    ('adamjax.schema',),
    ('adamjax.trainer',),
    ('train',),
    ('adamjax.experiments', 'adamjax.playground'),
    ('main', 'configs'),
)
FIRST_PARTY = tuple(p for layer in LAYERS for p in layer) + ('adamjax',)


def _module_name(path):
  """'adamjax/trainer/steps.py' -> 'adamjax.trainer.steps'."""
  name = os.path.relpath(path, ROOT)[:-3].replace(os.sep, '.')
  return name[:-len('.__init__')] if name.endswith('.__init__') else name


def _sources():
  """Every first-party module of the product: {module name: path}."""
  found = {}
  for top in ('adamjax', 'configs'):
    for folder, _, files in os.walk(os.path.join(ROOT, top)):
      for file in files:
        if file.endswith('.py'):
          path = os.path.join(folder, file)
          found[_module_name(path)] = path
  for file in ('main.py', 'train.py', 'adam_optax.py'):
    found[file[:-3]] = os.path.join(ROOT, file)
  return found


def _first_party(name):
  """Whether `name` is one of ours."""
  return any(name == p or name.startswith(p + '.') for p in FIRST_PARTY)


def _imports(path, modules):
  """The first-party modules `path` imports, anywhere in its body."""
  found = set()
  for node in ast.walk(ast.parse(open(path).read())):
    if isinstance(node, ast.Import):
      names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
      # `from adamjax.trainer import steps` imports the module steps.
      names = [f'{node.module}.{alias.name}' for alias in node.names]
      names = [n if n in modules else node.module for n in names]
    else:
      continue
    found.update(n for n in names if _first_party(n))
  return found


def _layer(name):
  """The index of `name`'s layer in LAYERS."""
  for index, layer in enumerate(LAYERS):
    if any(name == p or name.startswith(p + '.') for p in layer):
      return index
  return None


GRAPH = {name: _imports(path, _sources()) for name, path in _sources().items()}


@pytest.mark.parametrize('module', sorted(GRAPH))
def test_imports_run_one_way(module):
  """No module imports from a layer above its own."""
  own = _layer(module)
  if own is None:
    return  # A package's empty __init__.
  upward = sorted(i for i in GRAPH[module]
                  if _layer(i) is not None and _layer(i) > own)
  assert not upward, f'{module} imports {upward} from above its layer'


def test_library_never_imports_main_configs_or_an_experiment():
  """The three rules the design states, checked by name."""
  for module, imports in GRAPH.items():
    if module.startswith('adamjax.experiments') or module in ('main',):
      continue
    if module.startswith('configs'):
      continue
    bad = sorted(i for i in imports if i == 'main' or i.startswith('configs')
                 or i.startswith('adamjax.experiments'))
    assert not bad, f'{module} imports {bad}'


def test_no_import_cycles():
  """Depth-first search over the module graph finds no cycle."""
  state = {}

  def visit(node, trail):
    """Marks `node` on the current path; a second visit on it is a cycle."""
    state[node] = 'open'
    for nxt in sorted(GRAPH.get(node, ())):
      assert state.get(nxt) != 'open', ' -> '.join(trail + [node, nxt])
      if nxt not in state:
        visit(nxt, trail + [node])
    state[node] = 'done'

  for node in sorted(GRAPH):
    if node not in state:
      visit(node, [])


def test_the_graph_is_read():
  """The parse finds the edges it should (a broken parser passes vacuously)."""
  assert 'adamjax.trainer.steps' in GRAPH['train']
  assert 'adamjax.common.errors' in GRAPH['adamjax.optim.registry']
  assert 'adamjax.schema' in GRAPH['configs.default']
  assert 'adam_optax' in GRAPH['adamjax.optim.lowmem']
