"""Tests for the project's table format (common/tables.py)."""

import csv

from adamjax.common import tables

HEADER = ('optimizer', 'learning_rate', 'epoch')
ROWS = [['adam', 0.001, 3], ['sgd', 0.1, '']]


def test_markdown_table_marks_empty_cells():
  """A header, its rule, one line per row; '' shows as '—', 0 as 0."""
  assert tables.markdown_table(HEADER, ROWS + [['x', 0, 0.0]]) == (
      '| optimizer | learning_rate | epoch |\n'
      '|---|---|---|\n'
      '| adam | 0.001 | 3 |\n'
      '| sgd | 0.1 | — |\n'
      '| x | 0 | 0.0 |\n')


def test_write_table_writes_the_same_rows_as_csv_and_markdown(tmp_path):
  """stem.csv reads back as the rows (as text); stem.md is markdown_table."""
  stem = str(tmp_path / 'summary')
  tables.write_table(stem, HEADER, ROWS)
  with open(stem + '.csv', newline='') as f:
    assert list(csv.reader(f)) == [list(HEADER), ['adam', '0.001', '3'],
                                   ['sgd', '0.1', '']]
  with open(stem + '.csv', 'rb') as f:
    assert f.read().startswith(b'optimizer,learning_rate,epoch\r\n')
  with open(stem + '.md') as f:
    assert f.read() == tables.markdown_table(HEADER, ROWS)


def test_write_csv_quotes_cells_with_commas(tmp_path):
  """A cell holding the separator survives the round trip."""
  path = str(tmp_path / 'runs.csv')
  tables.write_csv(path, ('name', 'note'), [['adam', 'partial: 2, of 3']])
  with open(path, newline='') as f:
    assert list(csv.reader(f)) == [['name', 'note'],
                                   ['adam', 'partial: 2, of 3']]
