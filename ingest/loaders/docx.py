"""Word .docx: body paragraphs and tables in reading order.

Tables are flattened one row per line as ``header: value; header: value`` (first row = headers), so a row
stays a self-contained fact after chunking; merged cells count once. They are also kept as cells (the first
cell of a row its label) for computations (core/tables.py). Headers, footers, comments and text boxes are not read.
"""

from __future__ import annotations

import io
from itertools import zip_longest
from pathlib import Path

import docx
from docx.table import Table

from core.errors import LoadError
from core.tables import Cell, Row, stated_scale
from core.tables import Table as Cells
from core.types import LoadedDocument

_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # the old binary .doc (and .xls) container


def _row_cells(row) -> list[str | None]:
    """Cell text per grid column; None where a horizontally merged cell repeats (python-docx returns the
    merged cell once per grid column it spans), so the values stay aligned with the header columns."""
    cells: list[str | None] = []
    previous = None
    for cell in row.cells:
        cells.append(None if cell._tc is previous else " ".join(cell.text.split()))
        previous = cell._tc
    return cells


def read_table(table: Table) -> tuple[str, Cells | None]:
    """The table as text lines (what retrieval reads) and as cells (what computations read): the first cell
    of a row is its label, the first row the column headers."""
    rows = [_row_cells(row) for row in table.rows]
    rows = [row for row in rows if any(row)]
    if not rows:
        return "", None
    if len(rows) == 1:
        return "; ".join(cell for cell in rows[0] if cell), None
    # A header merged over several columns names each of them.
    headers, last = [], ""
    for cell in rows[0]:
        last = cell if cell is not None else last
        headers.append(last)
    lines, cells_rows = [], []
    for row in rows[1:]:
        parts = [f"{header}: {value}" if header else value for header, value in zip_longest(headers, row, fillvalue="") if value]
        if parts:
            line = "; ".join(parts)
            lines.append(line)
            label = row[0] or ""
            values = [(h or "", v) for h, v in zip(headers[1:], row[1:]) if v]
            if label and values:
                cells_rows.append(Row(label, line, tuple(Cell.of(label, h, v) for h, v in values)))
    cells = Cells(tuple(cells_rows), stated_scale([h for h in headers if h])) if cells_rows else None
    return "\n".join(lines), cells


def _open(data: bytes):
    if data.startswith(_OLE_MAGIC):
        raise LoadError("not a valid DOCX file: old binary Word .doc format; save it as .docx")
    try:
        return docx.Document(io.BytesIO(data))
    except Exception as err:  # noqa: BLE001 - zipfile, lxml and python-docx each raise their own types
        raise LoadError(f"not a valid DOCX file: {err or type(err).__name__}") from None


def load(path: Path, data: bytes, *, encoding_fallback: str | None = None) -> list[LoadedDocument]:
    document = _open(data)
    blocks: list[str] = []
    tables: list[Cells] = []
    heading: str | None = None
    for item in document.iter_inner_content():
        if isinstance(item, Table):
            text, cells = read_table(item)
            blocks.append(text)
            tables += [cells] if cells else []
            continue
        text = item.text
        blocks.append(text)
        style = item.style.name if item.style is not None else ""
        if heading is None and text.strip() and (style.startswith("Heading") or style == "Title"):
            heading = text.strip()
    title = (document.core_properties.title or "").strip() or heading or path.stem
    return [LoadedDocument(title=title, text="\n\n".join(b for b in blocks if b.strip()), metadata={}, tables=tuple(tables))]
