"""One PDF page's text layer as text, its tables rendered like TAT-QA tables and kept as cells.

The page is read with pdfplumber. Tables (ingest/loaders/pdf_tables.py) are rendered by
ingest/loaders/grid.py: one line per row carrying its row label and column headers, plus the cells for
computations. The words inside a table are not repeated in the page text; the words outside stay in the
order the PDF draws them (pdfplumber's ``use_text_flow``: the producer's order, which keeps a two-column
page's columns apart, as pypdf did), placed before, between and after the tables by their height on the page.
"""

from __future__ import annotations

import re
from typing import Any

from core.tables import Table
from ingest.cleaning import clean_text

from .grid import read_grid
from .pdf_tables import BBox, FoundTable, find_tables

# pdfplumber's word and line grouping: chars closer than this many points join a word; chars whose tops
# differ by less than this share a line.
X_TOLERANCE = 3
Y_TOLERANCE = 3
SCALE_HINT_LINES = 2  # lines right above a table that may state its unit ("(in millions)")
_CID = re.compile(r"^\(cid:\d+\)$")  # what pdfminer writes for a glyph it cannot map to text


def _middle_in(obj: dict, box: BBox) -> bool:
    cx, cy = (obj["x0"] + obj["x1"]) / 2, (obj["top"] + obj["bottom"]) / 2
    x0, top, x1, bottom = box
    return x0 <= cx <= x1 and top <= cy <= bottom


def _slot(obj: dict, tables: list[FoundTable]) -> int:
    """Where a char goes between the tables: the number of tables that start above its middle; -1 inside one."""
    if any(_middle_in(obj, t.bbox) for t in tables):
        return -1
    middle = (obj["top"] + obj["bottom"]) / 2
    return sum(t.bbox[1] <= middle for t in tables)


def _outside_text(page: Any, tables: list[FoundTable], slot: int) -> str:
    def keep(obj: dict) -> bool:
        return obj.get("object_type") != "char" or _slot(obj, tables) == slot

    region = page.filter(keep) if tables else page
    return region.extract_text(x_tolerance=X_TOLERANCE, y_tolerance=Y_TOLERANCE, use_text_flow=True) or ""


def _render(found: FoundTable, above: str) -> tuple[str, Table | None]:
    # Cells cleaned as the pipeline cleans the whole text, so each row's line stays a line of the stored text.
    rows = [[" ".join(clean_text(cell).split()) for cell in row] for row in found.rows]
    hints = [line for line in above.splitlines() if line.strip()][-SCALE_HINT_LINES:]
    return read_grid(rows, hints)


def _mapped(obj: dict) -> bool:
    # pdfminer writes a glyph its font does not map to Unicode as "(cid:127)" (a ZapfDingbats bullet, a symbol
    # font's tick): a placeholder, not text; pypdf left such glyphs out too.
    return obj.get("object_type") != "char" or not _CID.match(obj.get("text", ""))


def read_page(page: Any) -> tuple[str, list[Table]]:
    """The page's text (tables in place, as grid lines) and its tables as cells; "" when it has no text layer."""
    page = page.filter(_mapped)
    words = page.extract_words(x_tolerance=X_TOLERANCE, y_tolerance=Y_TOLERANCE, keep_blank_chars=False)
    if not words:
        return "", []
    found = find_tables(page, words)
    parts: list[str] = []
    tables: list[Table] = []
    for i in range(len(found) + 1):
        text = _outside_text(page, found, i)
        parts.append(text)
        if i < len(found):
            rendered, table = _render(found[i], text)
            parts.append(rendered)
            if table is not None and table.rows:
                tables.append(table)
    return "\n\n".join(part for part in parts if part.strip()), tables
