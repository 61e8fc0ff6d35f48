"""The documentation: README.md, RESULTS.md and docs/*.md.

Fast checks that need nothing but the files: every relative link and image
points at a file that exists, every mkdocstrings reference (`::: name`)
names something importable, every code block quoted from adam_optax.py is
still in it, and the README's Python example runs. The strict MkDocs build
(broken links and anchors, missing API names are errors) runs when mkdocs
is installed (requirements-dev.txt).
"""

import importlib
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, 'docs')

_FENCE = re.compile(r'^\s*(```|~~~)')
# [text](target) and ![alt](target); the target ends at whitespace or ')'.
_LINK = re.compile(r'!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)')
_API_REF = re.compile(r'^:::\s+([\w.]+)\s*$')


def markdown_files(root=ROOT):
  """README.md, RESULTS.md and every docs/*.md under `root`."""
  files = [os.path.join(root, name) for name in ('README.md', 'RESULTS.md')]
  docs = os.path.join(root, 'docs')
  files += sorted(os.path.join(docs, name) for name in os.listdir(docs)
                  if name.endswith('.md'))
  return [f for f in files if os.path.exists(f)]


def _prose_lines(path):
  """(line number, line) of a Markdown file outside its code blocks."""
  fenced = False
  with open(path, encoding='utf-8') as f:
    for number, line in enumerate(f, 1):
      if _FENCE.match(line):
        fenced = not fenced
        continue
      if not fenced:
        yield number, line


def _code_blocks(path):
  """(info string, text) of each fenced code block of a Markdown file."""
  with open(path, encoding='utf-8') as f:
    text = f.read()
  return re.findall(r'^```([^\n]*)\n(.*?)^```\s*$', text, re.M | re.S)


def broken_links(paths, root=ROOT):
  """'file:line: target' for each relative link whose file does not exist,
  the file relative to `root`."""
  problems = []
  for path in paths:
    for number, line in _prose_lines(path):
      # Inline code may show link syntax without being a link.
      line = re.sub(r'`[^`]*`', '', line)
      for target in _LINK.findall(line):
        if re.match(r'^[a-z][a-z0-9+.-]*:', target, re.I) or target.startswith(
            '#'):
          continue  # http:, https:, mailto:, an anchor in the same page.
        file_part = target.split('#', 1)[0]
        resolved = os.path.normpath(
            os.path.join(os.path.dirname(path), file_part))
        if not os.path.exists(resolved):
          problems.append(f'{os.path.relpath(path, root)}:{number}: {target}')
  return problems


def api_references(paths):
  """(file:line, dotted name) of each `::: dotted.name` line."""
  refs = []
  for path in paths:
    for number, line in _prose_lines(path):
      match = _API_REF.match(line)
      if match:
        refs.append((f'{os.path.relpath(path, ROOT)}:{number}',
                     match.group(1)))
  return refs


def resolve(dotted):
  """The object a dotted name refers to: the longest importable module, then
  attributes. Raises ImportError or AttributeError when there is none."""
  parts = dotted.split('.')
  for i in range(len(parts), 0, -1):
    try:
      obj = importlib.import_module('.'.join(parts[:i]))
    except ModuleNotFoundError:
      if i == 1:
        raise
      continue
    for attribute in parts[i:]:
      obj = getattr(obj, attribute)
    return obj
  raise ImportError(dotted)


def test_every_relative_link_points_at_a_file():
  assert not broken_links(markdown_files()), broken_links(markdown_files())


def test_a_renamed_link_target_is_reported(tmp_path):
  """The link check fails when a page's target goes away (a mutation)."""
  (tmp_path / 'docs').mkdir()
  (tmp_path / 'docs' / 'figure.png').write_bytes(b'')
  (tmp_path / 'docs' / 'other.md').write_text('# Other\n')
  (tmp_path / 'RESULTS.md').write_text('# Results\n')
  page = tmp_path / 'docs' / 'page.md'
  page.write_text('See [other](other.md#part), [results](../RESULTS.md),\n'
                  '![a figure](figure.png) and [the web](https://x.org/a).\n'
                  '```\n[not a link](nowhere.md)\n```\n')
  files = markdown_files(str(tmp_path))
  assert broken_links(files, str(tmp_path)) == []
  (tmp_path / 'docs' / 'figure.png').rename(tmp_path / 'docs' / 'moved.png')
  (tmp_path / 'RESULTS.md').rename(tmp_path / 'RESULTS_old.md')
  assert broken_links(markdown_files(str(tmp_path)), str(tmp_path)) == [
      'docs/page.md:1: ../RESULTS.md', 'docs/page.md:2: figure.png']


def test_every_api_reference_resolves():
  refs = api_references(markdown_files())
  assert refs, 'docs/api.md should reference the modules with ::: names'
  for where, name in refs:
    try:
      resolve(name)
    except (ImportError, AttributeError) as e:
      pytest.fail(f'{where}: ::: {name} does not resolve: {e}')


def test_a_misspelt_api_name_does_not_resolve():
  assert resolve('adam_optax.scale_by_adam') is not None
  assert resolve('adamjax.optim.lowmem') is not None
  for name in ('adam_optax.scale_by_adamm', 'adamjax.optim.lowmemory',
               'no_such_module'):
    with pytest.raises((ImportError, AttributeError)):
      resolve(name)


def test_quoted_code_is_still_in_its_source_file():
  """Blocks titled with a file ("```python title="adam_optax.py"") quote it
  verbatim, indentation included."""
  quoted = 0
  for path in markdown_files():
    for info, block in _code_blocks(path):
      match = re.search(r'title="([^"]+)"', info)
      if not match:
        continue
      source = os.path.join(ROOT, match.group(1))
      with open(source, encoding='utf-8') as f:
        text = f.read()
      assert block in text, (
          f'{os.path.relpath(path, ROOT)} quotes {match.group(1)}, which no '
          f'longer contains:\n{block}')
      quoted += 1
  assert quoted >= 8  # docs/adam_explained.md quotes scale_by_adam's lines.


def test_readme_python_example_runs():
  blocks = [b for info, b in _code_blocks(os.path.join(ROOT, 'README.md'))
            if info.strip() == 'python']
  assert len(blocks) == 1
  result = subprocess.run([sys.executable, '-c', blocks[0]], cwd=ROOT,
                          capture_output=True, text=True, timeout=300,
                          check=False)
  assert result.returncode == 0, result.stderr
  match = re.fullmatch(r'loss (\S+)\n', result.stdout)
  assert match, result.stdout
  assert float(match.group(1)) < 1e-6


def test_strict_mkdocs_build(tmp_path):
  """`mkdocs build --strict`: broken links and anchors, and ::: names that
  do not resolve, are errors."""
  pytest.importorskip(
      'mkdocs', reason='mkdocs is not installed: pip install -r '
      'requirements-dev.txt')
  pytest.importorskip(
      'mkdocstrings', reason='mkdocstrings is not installed: pip install -r '
      'requirements-dev.txt')
  site = tmp_path / 'site'
  result = subprocess.run(
      [sys.executable, '-m', 'mkdocs', 'build', '--strict', '--site-dir',
       str(site)], cwd=ROOT, capture_output=True, text=True, timeout=600,
      env=dict(os.environ, NO_MKDOCS_2_WARNING='1'), check=False)
  assert result.returncode == 0, result.stdout + result.stderr
  api = (site / 'api' / 'index.html').read_text(encoding='utf-8')
  for name in ('adam_optax.scale_by_adam', 'adamjax.optim.lowmem.adam8bit',
               'adamjax.optim.registry'):
    assert f'id="{name}"' in api, name
  assert (site / 'RESULTS' / 'index.html').exists()
  assert (site / 'results' / 'protocol' / 'ranking.png').exists()
