"""A grid of cell texts (a table as rows of strings) rendered as text lines that carry row labels and column
headers, and kept as cells (core/tables.py) by the same walk, so every cell's row line is a line of the text.

Used for TAT-QA tables (lists of rows extracted from PDF reports) and HTML tables (rows of <td>/<th>, a
spanning cell's text in its first column). Cells only make sense with their row label and column headers
("1,234" means "Revenue, 2019, in millions"), so each data row is rendered as one line that carries both:
``Automotive (Transportation Solutions) | Fiscal 2019 (in millions): $ 5,686 | ...``.

Layout conventions seen in the data (tatqa_dataset_dev.json, 278 tables):
- header rows sit on top; most have an empty first cell, but a unit or period label often sits in the first
  cell of the last header row ("(In millions)", "For the year ended December 31:"), so the header block runs
  until the first row holding a number that is not a year;
- a spanning header ("Years Ended December 31,") is stored in one cell with empty neighbours;
- a row with a label and no values is a section heading ("Current assets:"), as is an unlabelled row whose
  only cell is text ("Consolidated Balance Sheets Data:"); consecutive headings nest ("Shares held in trust:
  Movement");
- several unlabelled text-only rows after data are a second header block (two tables stacked in one);
- an unlabelled row of numbers is a (sub)total of the rows above it;
- "Total <section>" closes its section (otherwise the grand total would be labelled with the last section).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from core.tables import Cell, Row, Table, stated_scale

_YEAR = re.compile(r"^(?:19|20)\d\d$")
_NUMBER = re.compile(r"^[$€£¥]?\s*\(?\s*[-–—+]?\s*[$€£¥]?\s*\d[\d,. ]*\s*%?\s*\)?\s*%?$")


def _is_data_value(cell: str) -> bool:
    """A number as it appears in a data cell ("$1,234", "(5.2)%", "0.81"), not a year used as a header."""
    cell = cell.strip()
    return bool(_NUMBER.match(cell)) and not _YEAR.match(cell.replace(" ", ""))  # "2 0 1 8" occurs


def _header_count(rows: list[list[str]]) -> int:
    if not any(_is_data_value(c) for row in rows for c in row[1:] if c):
        # A table of words (names and roles): the first row plus any unlabelled rows under it.
        n = 1
        while n < len(rows) - 1 and not rows[n][0]:
            n += 1
        return n
    seen_values = False
    for i, row in enumerate(rows):
        values = [c for c in row[1:] if c]
        if any(_is_data_value(c) for c in values):
            return max(i, 1)
        if row[0] and not values and seen_values:
            return i  # a section heading after header rows with values: the data has started
        if not row[0] and len(values) == 1 and values[0].endswith(":") and seen_values:
            return i  # "", "Consolidated Statements of Operations Data:", ...: a section heading
        seen_values = seen_values or bool(values)
    return 1  # unreachable: some row holds a data value


def _spread(values: list[str]) -> list[str]:
    """Give every column of one header row the header text that spans it.

    One text in the row spans all columns; several texts each take the columns closest to them (ties go to
    the left one), which fits both left-aligned ("Domestic", "", "International", "") and centred spans.
    """
    filled = [i for i, v in enumerate(values) if v]
    if not filled:
        return values
    if len(filled) == 1:
        return [values[filled[0]]] * len(values)
    return [values[min(filled, key=lambda f: (abs(f - i), f))] for i in range(len(values))]


def column_headers(header_rows: list[list[str]], width: int) -> list[str]:
    columns: list[list[str]] = [[] for _ in range(width - 1)]
    for row in header_rows:
        for j, text in enumerate(_spread(row[1:])):
            if text and (not columns[j] or columns[j][-1] != text):
                columns[j].append(text)
    return [" ".join(parts) for parts in columns]


def _is_header_like(row: list[str]) -> bool:
    """An unlabelled row of text only: part of a header block (or a one-cell section heading)."""
    return not row[0] and any(row[1:]) and not any(_is_data_value(c) for c in row[1:] if c)


def _header_line(corner: str, headers: list[str]) -> str:
    return " | ".join(([corner] if corner else []) + [h or f"column {j}" for j, h in enumerate(headers, 1)])


def read_grid(table: list[list[Any]], scale_hints: Iterable[str] = ()) -> tuple[str, Table | None]:
    """The table as text lines (what retrieval reads) and as cells (what computations read); the same walk
    makes both, so every cell's row line is a line of the text. ``scale_hints``: text around the table that may
    state its unit (an HTML caption, "(in millions)"), read when its header rows state none."""
    rows = [[" ".join(str(c).split()) if c is not None else "" for c in row] for row in table if row]
    width = max((len(r) for r in rows), default=0)
    rows = [r + [""] * (width - len(r)) for r in rows if any(r)]
    if not rows:
        return "", None
    if width == 1:
        return "\n".join(r[0] for r in rows), None
    i = _header_count(rows)
    headers = column_headers(rows[:i], width)
    scale = stated_scale([c for r in rows[:i] for c in r]) or stated_scale(scale_hints)
    lines = [_header_line(" ".join(r[0] for r in rows[:i] if r[0]), headers)]
    table_rows: list[Row] = []
    section, section_open = "", False  # section_open: the last row was a heading (nested headings join)
    while i < len(rows):
        row = rows[i]
        label, values = row[0], row[1:]
        filled = [v for v in values if v]
        if _is_header_like(row):
            run = i + 1
            while run < len(rows) and _is_header_like(rows[run]):
                run += 1
            if run - i > 1 or len(filled) > 1:
                # A header block repeated mid-table (one table stacked on another): new column headers.
                headers = column_headers(rows[i:run], width)
                lines.append(_header_line("", headers))
                section, section_open, i = "", False, run
                continue
            label, filled = filled[0], []  # "", "Consolidated Balance Sheets Data:", "": a section heading
        if not filled:
            heading = label.rstrip(":").strip()
            section = f"{section}: {heading}" if section_open and section else heading
            section_open, i = True, i + 1
            continue
        section_open = False
        label = label or "Total"
        if section and section.lower() not in label.lower():
            label = f"{label} ({section})"
        cells = [f"{h}: {v}" if h else v for h, v in zip(headers, values) if v]
        line = " | ".join([label, *cells])
        lines.append(line)
        table_rows.append(Row(label, line, tuple(Cell.of(label, h, v) for h, v in zip(headers, values) if v)))
        if section and label.lower() == f"total {section.lower()}":
            section = ""  # "Total Industrial Solutions" closes its section; later rows are not part of it
        i += 1
    return "\n".join(lines), Table(tuple(table_rows), scale)
