"""Tables as CSV and Markdown, the format of every table the project writes."""

import csv
from typing import Any, Sequence


def markdown_table(header: Sequence[str],
                   rows: Sequence[Sequence[Any]]) -> str:
  """A table as Markdown ('—' where a cell is empty).

  Args:
    header: the column names.
    rows: the rows, each as long as the header.

  Returns:
    The Markdown text, ending in a newline.
  """
  lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
  lines += ['| ' + ' | '.join(str(v) if v != '' else '—' for v in row) + ' |'
            for row in rows]
  return '\n'.join(lines) + '\n'


def write_csv(path: str, header: Sequence[str],
              rows: Sequence[Sequence[Any]]) -> None:
  """Writes a table as CSV, the header first.

  Args:
    path: the file to write.
    header: the column names.
    rows: the rows, each as long as the header.
  """
  with open(path, 'w', newline='') as f:
    writer = csv.writer(f)
    writer.writerow(header)
    writer.writerows(rows)


def write_table(stem: str, header: Sequence[str],
                rows: Sequence[Sequence[Any]]) -> None:
  """Writes a table as `stem`.csv and `stem`.md.

  Args:
    stem: the path without extension.
    header: the column names.
    rows: the rows, each as long as the header.
  """
  write_csv(stem + '.csv', header, rows)
  with open(stem + '.md', 'w') as f:
    f.write(markdown_table(header, rows))
