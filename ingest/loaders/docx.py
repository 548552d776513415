"""Word .docx: body paragraphs and tables in reading order.

Tables are flattened one row per line as ``header: value; header: value`` (first row = headers), so a row
stays a self-contained fact after chunking; merged cells count once. They are also kept as cells (the first
cell of a row its label) for computations (core/tables.py). Headers, footers, comments and text boxes are not read.
Embedded images are read by OCR per ``options.ocr`` (ingest/loaders/docx_images.py): ``auto`` when the
document has no text of its own (scans pasted as pictures), ``always`` every time, ``never`` not at all.
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

from . import docx_images
from .options import LoadOptions

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


def load(path: Path, data: bytes, *, options: LoadOptions = LoadOptions()) -> list[LoadedDocument]:
    document = _open(data)
    blocks: list[tuple[str, list[str]]] = []  # each body item's text, and the images it draws
    tables: list[Cells] = []
    heading: str | None = None
    for item in document.iter_inner_content():
        images = docx_images.image_ids(item._element)
        if isinstance(item, Table):
            text, cells = read_table(item)
            blocks.append((text, images))
            tables += [cells] if cells else []
            continue
        text = item.text
        blocks.append((text, images))
        style = item.style.name if item.style is not None else ""
        if heading is None and text.strip() and (style.startswith("Heading") or style == "Title"):
            heading = text.strip()
    title = (document.core_properties.title or "").strip() or heading or path.stem
    has_text = any(text.strip() for text, _ in blocks)
    has_images = any(images for _, images in blocks)
    metadata: dict = {}
    if has_images and (options.ocr == "always" or (options.ocr == "auto" and not has_text)):
        blocks = _with_image_text(document, blocks, options, has_text)
        metadata["ocr_images"] = sum(1 for _, images in blocks for _ in images)
    elif has_images and not has_text:
        raise LoadError(docx_images.ocr_off_reason())
    text = "\n\n".join(b for b, _ in blocks if b.strip())
    return [LoadedDocument(title=title, text=text, metadata=metadata, tables=tuple(tables))]


def _with_image_text(document, blocks: list[tuple[str, list[str]]], options: LoadOptions, has_text: bool) -> list[tuple[str, list[str]]]:
    """The blocks with each image's OCR text as a block of its own after the block that draws it (the ids
    kept are those of the images read)."""
    unavailable = docx_images.ocr_unavailable()
    if unavailable is not None:
        if has_text:
            raise LoadError(
                f"OCR is unavailable ({unavailable}) and {docx_images.OCR_SETTING}=always; set it to auto to read the text alone"
            )
        raise LoadError(f"DOCX has no text (only images) and OCR is unavailable: {unavailable}")
    reader = docx_images.ImageReader(document.part, options)
    out: list[tuple[str, list[str]]] = []
    for text, images in blocks:
        out.append((text, []))
        for rel_id in images:
            read = reader.text(rel_id)
            if read:
                out.append((read, [rel_id]))
    if not has_text and not any(text.strip() for text, _ in out):
        raise LoadError(reader.nothing_read_reason())
    return out
