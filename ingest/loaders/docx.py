"""Word .docx: body paragraphs and tables in reading order.

Tables are flattened one row per line as ``header: value; header: value`` (first row = headers), so a row
stays a self-contained fact after chunking; merged cells count once. Headers, footers, comments and text boxes are not read.
"""

from __future__ import annotations

import io
from itertools import zip_longest
from pathlib import Path

import docx
from docx.table import Table

from core.errors import LoadError
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


def render_table(table: Table) -> str:
    rows = [_row_cells(row) for row in table.rows]
    rows = [row for row in rows if any(row)]
    if not rows:
        return ""
    if len(rows) == 1:
        return "; ".join(cell for cell in rows[0] if cell)
    # A header merged over several columns names each of them.
    headers, last = [], ""
    for cell in rows[0]:
        last = cell if cell is not None else last
        headers.append(last)
    lines = []
    for row in rows[1:]:
        parts = [f"{header}: {value}" if header else value for header, value in zip_longest(headers, row, fillvalue="") if value]
        if parts:
            lines.append("; ".join(parts))
    return "\n".join(lines)


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
    heading: str | None = None
    for item in document.iter_inner_content():
        if isinstance(item, Table):
            blocks.append(render_table(item))
            continue
        text = item.text
        blocks.append(text)
        style = item.style.name if item.style is not None else ""
        if heading is None and text.strip() and (style.startswith("Heading") or style == "Title"):
            heading = text.strip()
    title = (document.core_properties.title or "").strip() or heading or path.stem
    return [LoadedDocument(title=title, text="\n\n".join(b for b in blocks if b.strip()), metadata={})]
