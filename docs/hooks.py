"""MkDocs hook: publish RESULTS.md and results/ from the repository root.

The pages under docs/ link to `../RESULTS.md` (a path that also works on
GitHub). MkDocs only knows files under docs/, so this hook adds RESULTS.md and
the figures and tables under results/ with source paths relative to docs/
(`../RESULTS.md`), which is what such a link resolves to, and publishes them
at the site's root (`RESULTS/`, `results/...`). `mkdocs build --strict` then
checks those links like any other. Links from those pages into docs/
(`docs/performance.md`) become `/performance.md`, which mkdocs.yml's
`absolute_links: relative_to_docs` resolves (and checks) against docs/.
"""

import os
import re

from mkdocs.structure.files import File
from mkdocs.structure.files import InclusionLevel

# Repository files (relative to the root) published with the docs.
_ROOT_FILES = ('RESULTS.md',)
_ROOT_DIRS = ('results',)


def on_files(files, config):
  """Adds RESULTS.md and results/** to the site's files."""
  docs_dir = config['docs_dir']
  root = os.path.dirname(os.path.abspath(docs_dir))
  paths = list(_ROOT_FILES)
  for folder in _ROOT_DIRS:
    for dirpath, _, names in os.walk(os.path.join(root, folder)):
      for name in sorted(names):
        rel = os.path.relpath(os.path.join(dirpath, name), root)
        paths.append(rel.replace(os.sep, '/'))
  for rel in paths:
    f = File('../' + rel, docs_dir, config['site_dir'],
             config['use_directory_urls'])
    stem, ext = os.path.splitext(rel)
    if ext == '.md':  # A page: RESULTS/, results/kingma_ba/README/, ...
      f.dest_uri = (stem + '/index.html' if config['use_directory_urls']
                    else stem + '.html')
    else:
      f.dest_uri = rel
    # Decided here (MkDocs would exclude a path starting with '.'): RESULTS.md
    # is in the nav, the tables under results/ are reached by links only.
    f.inclusion = (InclusionLevel.INCLUDED if rel in _ROOT_FILES
                   else InclusionLevel.NOT_IN_NAV)
    files.append(f)
  return files


def on_page_markdown(markdown, page, config, files):
  """In the repository-root pages, points links into docs/ at the docs."""
  del config, files  # Unused.
  if not page.file.src_uri.startswith('../'):
    return markdown
  return re.sub(r'\]\(docs/', '](/', markdown)
