"""CSV: one document per data row, as ``column: value`` lines.

A row is the natural unit of a table (one record, one fact): retrieval then returns the matching row with its
column names, instead of a chunk cut across unrelated rows. Each row is also kept as cells (its first value
the label) for computations (core/tables.py).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from core.errors import LoadError
from core.tables import Cell, Row, Table, stated_scale
from core.types import LoadedDocument

from ._text import decode_text
from .options import LoadOptions

# The default limit (128 KiB per field) rejects real exports with long text cells; the file-size limit
# already bounds memory. Raised once, process-wide, because the csv module has no per-reader setting.
csv.field_size_limit(max(csv.field_size_limit(), 100 * 2**20))

_SNIFF_BYTES = 64 * 1024
_DELIMITERS = ",;\t|"


def _dialect(text: str) -> type[csv.Dialect] | csv.Dialect:
    try:
        return csv.Sniffer().sniff(text[:_SNIFF_BYTES], delimiters=_DELIMITERS)
    except csv.Error:
        return csv.excel  # the sniffer gives up on one-column files and odd quoting: plain commas then


def _row_table(headers: list[str], record: list[str], text: str) -> tuple[Table, ...]:
    """The row as cells for computations: its first value is its label, the other columns its cells."""
    label = record[0].strip() if record else ""
    cells = [(headers[i] if i < len(headers) else f"column {i + 1}", v.strip()) for i, v in enumerate(record[1:], 1) if v.strip()]
    if not label or not cells:
        return ()
    return (Table((Row(label, text, tuple(Cell.of(label, h, v) for h, v in cells)),), stated_scale(headers)),)


def load(path: Path, data: bytes, *, options: LoadOptions = LoadOptions()) -> list[LoadedDocument]:
    text = decode_text(data, encoding_fallback=options.encoding_fallback)
    # strict: an unterminated quote (a truncated file) is an error instead of one giant last field.
    reader = csv.reader(io.StringIO(text, newline=""), _dialect(text), strict=True)
    headers: list[str] | None = None
    docs: list[LoadedDocument] = []
    n = 0
    try:
        for record in reader:
            if not any(cell.strip() for cell in record):
                if headers is not None:
                    n += 1  # keep row numbers equal to positions in the file's data rows
                continue
            if headers is None:
                headers = [h.strip() or f"column {i}" for i, h in enumerate(record, 1)]
                continue
            n += 1
            lines = [
                f"{headers[i] if i < len(headers) else f'column {i + 1}'}: {value.strip()}"
                for i, value in enumerate(record)
                if value.strip()
            ]
            text = "\n".join(lines)
            docs.append(
                LoadedDocument(title=f"{path.stem} row {n}", text=text, metadata={"row": n}, tables=_row_table(headers, record, text))
            )
    except csv.Error as err:
        raise LoadError(f"invalid CSV at line {reader.line_num}: {err}") from None
    if headers is None:
        raise LoadError("no text")
    if not docs:
        raise LoadError("no data rows")
    return docs
