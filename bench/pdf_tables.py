"""PDF tables read back as tables: TAT-QA tables rendered to PDF with reportlab, ruled (a grid of lines)
and unruled (columns aligned by whitespace alone, as annual reports set them), then read through the real
loader (ingest.loaders.load_file), and compared with the original cells.

    python bench/pdf_tables.py [--data ../shared/data] [--split tune|validation|both] [--out FILE]
                               [--renderer reportlab|chromium]

Each report's table is drawn on one page between two of the report's paragraphs (``render``), in Helvetica
8 as reports set tables: the first column left-aligned, a column of mostly numbers right-aligned, other
columns centred, header rows centred; unruled, a spanning header runs over its empty neighbours. No cell
wraps onto a second line (the page is as wide as the table needs) and no table is cut by a page break:
neither is measured here. Texts are first reduced to what the standard font can draw (``norm``), on both
sides of the comparison.

A second producer, ``--renderer chromium`` (``render_chromium``; needs Debian's ``chromium``): the same tables
as HTML, printed to PDF by headless Chromium, as a report's web version or a "save as PDF" would be. Annual-
report CSS: Arial (Liberation Sans here), bold centred header rows in <thead>, numbers right-aligned, the first
column left-aligned, other columns centred, prose in a serif face above and below; ruled, every cell bordered
(Chromium draws borders as filled rectangles, not lines); unruled, no border at all. Chromium lays the columns
out itself (its auto table layout: widths are not the reportlab ones, and the width a spanning header needs is
spread over its columns). A header text with empty neighbours is one <th colspan> (``_spans``): unruled,
centred over a span laid out around the text's TAT-QA column; ruled, starting at that column. Cells do not
wrap (``white-space: nowrap``) and each table has a page of its own (CSS named pages, sized as for reportlab);
60 tables go to one Chromium run, and its PDF is cut into single pages (pypdf), each read and scored exactly
as a reportlab page. The texts are the same ``norm``-reduced ones.

Figures (micro-averaged over every cell of a split):

- cell accuracy: the fraction of the original table's non-empty cells recovered with the same text at the
  same (row, column) position. Both grids are first normalised: whitespace in a cell collapsed, all-empty
  rows and all-empty columns dropped (they carry no text, and the loader drops them too); the tables the
  loader found on the page (the grids it passed to ingest/loaders/grid.py: ``read_grid``, recorded on the
  way) are stacked top to bottom; then the extracted grid is aligned with the original by the row and
  column shift (each in -2..2) that matches the most cells. A table not found scores 0 for all its cells.
- header accuracy: the same, over the cells of the header rows only (the rows ``read_grid`` takes as the
  header block of the original table: column headers, spanning headers, a unit row).
- named-cell accuracy: what computations see. The original grid is read by ``read_grid`` as the TAT-QA
  loader reads it; a cell (row label, column header, text) counts when the loader's ``LoadedDocument.tables``
  hold the same triple.
- tables found: pages where the loader found exactly one table.
- prose kept: the paragraphs above and below the table found, whole, in the document text outside it
  (nothing of the prose swallowed by the table).
- repeated: original cells of 4+ characters (and not in the paragraphs) that appear in the document text
  outside the table's rendered lines (the loader must not write a table's words twice).

Splits: the reports of TAT-QA dev are split in two by a hash of their uid (``split_of``). The table
detection's thresholds (ingest/loaders/pdf_tables.py) were tuned on "tune"; "validation" was not looked at
while tuning. ``--file`` reads another TAT-QA file under ``--data`` (the train file, where present, is a
further held-out set). ``--unruled plumber`` reads unruled tables with pdfplumber's own "text" strategy
instead, the baseline the loader's whitespace detector replaced; ``--pad`` and ``--font-size`` change the
rendering, to see how far the thresholds hold.
"""

from __future__ import annotations

import argparse
import hashlib
import html
import io
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unicodedata
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

REPO = Path(__file__).resolve().parents[1]
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(REPO))

from bench.tables import fmt, markdown_table  # noqa: E402
from ingest.loaders import (  # noqa: E402
    load_file,  # noqa: E402
    pdf_page,
    pdf_tables,
)
from ingest.loaders.grid import _header_count, read_grid  # noqa: E402

FONT, SIZE, PAD = "Helvetica", 8, 6
STYLES = ("ruled", "unruled")
MAX_SHIFT = 2
_NUMBERISH = re.compile(r"^[$€£¥(\-–—+\d\s,.%)]+$")


def split_of(uid: str) -> str:
    """A report's split, fixed by its uid: about half "tune", half "validation"."""
    return "tune" if hashlib.sha256(uid.encode()).digest()[0] % 2 == 0 else "validation"


def norm(cell: Any) -> str:
    """A cell's or paragraph's text as the bench draws it: whitespace collapsed, and reduced to what the
    standard Helvetica font can draw (NFKC: "ﬂ" -> "fl"; then Windows-1252, "?" for the rest), since a
    character the font cannot draw would be lost by the rendering, not by the loader."""
    text = unicodedata.normalize("NFKC", str(cell if cell is not None else ""))
    return " ".join(text.encode("cp1252", "replace").decode("cp1252").split())


def normalise(grid: list[list[Any]]) -> list[list[str]]:
    """Cells' whitespace collapsed, all-empty rows and all-empty columns dropped."""
    rows = [[norm(c) for c in row] for row in grid]
    width = max((len(r) for r in rows), default=0)
    rows = [r + [""] * (width - len(r)) for r in rows if any(r)]
    keep = [j for j in range(width) if any(r[j] for r in rows)]
    return [[r[j] for j in keep] for r in rows]


# ---------------------------------------------------------------------------------------------- rendering


def _numeric(cell: str) -> bool:
    return bool(_NUMBERISH.match(cell)) and any(ch.isdigit() or ch in "—–-" for ch in cell)


def _alignments(body: list[list[str]], width: int) -> list[str]:
    """Each column's body alignment: the first column left, a column of mostly numbers right, others centred."""
    return ["LEFT"] + [
        "RIGHT" if sum(_numeric(r[j]) for r in body if r[j]) * 2 >= max(1, sum(bool(r[j]) for r in body)) else "CENTER"
        for j in range(1, width)
    ]


def _layout(rows: list[list[str]], ruled: bool, size: float, pad: float) -> tuple[list[float], list[str], int]:
    """Column widths, each column's body alignment, and the number of header rows.

    As reports set tables: the first column left-aligned, a column of mostly numbers right-aligned, other
    columns centred, header rows centred. Each column is as wide as its widest cell plus padding, except,
    unruled, a header cell with empty neighbours (a spanning header, "Years Ended December 31,"): it may
    run over those neighbours, as in a report; a ruled table cannot, its lines would cut the text.
    """
    from reportlab.pdfbase.pdfmetrics import stringWidth

    def w(text: str) -> float:
        return stringWidth(text, FONT, size)

    n_header = _header_count(rows) if len(rows[0]) > 1 else 1
    width = len(rows[0])
    body = rows[n_header:] or rows
    align = _alignments(body, width)
    widths = [max([w(r[j]) for r in body] + [0]) + 2 * pad for j in range(width)]

    def spanning(i: int, j: int) -> bool:
        row = rows[i]
        return not ruled and i < n_header and j > 0 and (j == 1 or not row[j - 1]) and (j == width - 1 or not row[j + 1])

    for i in range(n_header):
        for j, cell in enumerate(rows[i]):
            if not cell:
                continue
            need = w(cell) + 2 * pad
            if spanning(i, j):
                left = widths[j - 1] if j > 1 else 0.0
                right = widths[j + 1] if j < width - 1 else 0.0
                need -= 2 * min(left, right)  # centred: it may run as far over each empty neighbour
            widths[j] = max(widths[j], need)
    return widths, align, n_header


def render(grid: list[list[Any]], ruled: bool, before: str = "", after: str = "", *, size: float = SIZE, pad: float = PAD) -> bytes:
    from reportlab.lib.pagesizes import letter
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    rows = [[norm(c) for c in row] for row in grid]
    width = max(len(r) for r in rows)
    rows = [r + [""] * (width - len(r)) for r in rows]
    widths, align, n_header = _layout(rows, ruled, size, pad)
    style: list[tuple] = [
        ("FONT", (0, 0), (-1, -1), FONT, size),
        ("LEFTPADDING", (0, 0), (-1, -1), pad),
        ("RIGHTPADDING", (0, 0), (-1, -1), pad),
        ("TOPPADDING", (0, 0), (-1, -1), 1),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 1),
    ]
    style += [("ALIGN", (j, n_header), (j, -1), a) for j, a in enumerate(align)]
    if n_header:
        style.append(("ALIGN", (1, 0), (-1, n_header - 1), "CENTER"))
    if ruled:
        style.append(("GRID", (0, 0), (-1, -1), 0.5, "black"))
    # Tall enough for the paragraphs and the table on one page: tables across pages are not measured here.
    page = (max(letter[0], sum(widths) + 144), max(letter[1], 2 * size * len(rows) + 400 + 0.25 * (len(before) + len(after))))
    buf = io.BytesIO()
    doc = SimpleDocTemplate(buf, pagesize=page, leftMargin=72, rightMargin=72, topMargin=72, bottomMargin=72)
    normal = getSampleStyleSheet()["Normal"]
    story: list[Any] = []
    if before:
        story += [Paragraph(escape(before), normal), Spacer(1, 12)]
    story.append(Table(rows, colWidths=widths, style=TableStyle(style), hAlign="LEFT"))
    if after:
        story += [Spacer(1, 12), Paragraph(escape(after), normal)]
    doc.build(story)
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------- Chromium

CHROMIUM = "chromium"
CHROMIUM_BATCH = 60  # tables per Chromium run (one page each): its start-up costs about half a second
# Annual-report CSS: tables in Arial (Liberation Sans here, metric-compatible with the Helvetica of the
# reportlab rendering), bold header rows, numbers right-aligned, prose in a serif face.
HTML_CSS = """
body {{ margin: 0; font-family: "Times New Roman", Times, serif; font-size: 10pt; line-height: 1.25; }}
.sheet {{ break-after: page; }}
p {{ margin: 0 0 12pt 0; }}
table {{ border-collapse: collapse; font-family: Arial, Helvetica, sans-serif; font-size: {size}pt;
         break-inside: avoid; margin: 0 0 12pt 0; }}
td, th {{ padding: 1pt {pad}pt; white-space: nowrap; vertical-align: bottom; }}
th {{ font-weight: bold; text-align: center; }}
th.label, td.label {{ text-align: left; }}
td.num {{ text-align: right; }}
td.mid {{ text-align: center; }}
table.ruled td, table.ruled th {{ border: 0.5pt solid #000; }}
"""


def _spans(row: list[str], ruled: bool) -> dict[int, tuple[int, int]]:
    """The header cells of a row that span columns (<th colspan>): {first column: (columns spanned, the
    column whose text it holds)}; the first column is never spanned.

    A header text with empty neighbours (TAT-QA's "", "Years Ended December 31,", "") spans them, as a report
    sets it. Unruled, it is centred over its span, so the span is laid out around the text's own column
    (that column the middle one, the left of the two middle ones for an even span): the column a reader
    would take a centred header to belong to, and the one TAT-QA stores it in. Ruled, the borders show the
    span and a merged cell's text belongs to its first column (as HTML tables are read: ingest/loaders/grid.py),
    so the span starts at the text's column and takes the empty cells right of it.
    """
    width = len(row)
    filled = [j for j in range(1, width) if row[j]]
    spans: dict[int, tuple[int, int]] = {}
    free = 1  # the first column no span has taken
    for k, j in enumerate(filled):
        right = (filled[k + 1] if k + 1 < len(filled) else width) - j - 1
        left = 0
        if not ruled:
            left = min(j - free, right)
            right = min(right, left + 1)
        if left + right:
            spans[j - left] = (1 + left + right, j)
        free = j + right + 1
    return spans


def html_sheet(
    grid: list[list[Any]], ruled: bool, before: str = "", after: str = "", *, page: str, size: float = SIZE, pad: float = PAD
) -> tuple[str, str]:
    """One table between its paragraphs as HTML on a page of its own (the page rule ``page`` names, sized
    like the reportlab page: wide and tall enough for the table and the prose), and that page's @page rule."""
    rows = [[norm(c) for c in row] for row in grid]
    width = max(len(r) for r in rows)
    rows = [r + [""] * (width - len(r)) for r in rows]
    widths, _, n_header = _layout(rows, True, size, pad)
    align = _alignments(rows[n_header:] or rows, width)
    kind = {"LEFT": "label", "RIGHT": "num", "CENTER": "mid"}
    out = [f'<div class="sheet" style="page: {page}">']
    if before:
        out.append(f"<p>{html.escape(before)}</p>")
    out.append(f'<table class="{"ruled" if ruled else "unruled"}">')
    for i, row in enumerate(rows):
        if i == 0:
            out.append("<thead>")
        if i == n_header:
            out.append("</thead><tbody>")
        cells = []
        if i < n_header:
            cells.append(f'<th class="label">{html.escape(row[0])}</th>')
            spans, j = _spans(row, ruled), 1
            while j < width:
                span, source = spans.get(j, (1, j))
                cells.append(f'<th colspan="{span}">{html.escape(row[source])}</th>' if span > 1 else f"<th>{html.escape(row[j])}</th>")
                j += span
        else:
            cells = [f'<td class="{kind[align[j]]}">{html.escape(cell)}</td>' for j, cell in enumerate(row)]
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>" if n_header < len(rows) else "</thead></table>")
    if after:
        out.append(f"<p>{html.escape(after)}</p>")
    out.append("</div>")
    # Bold header text is wider than _layout's Helvetica widths, and each cell has its padding: room to spare.
    page_w = max(612, 1.25 * sum(widths) + 144)
    page_h = max(792, 2 * size * len(rows) + 400 + 0.25 * (len(before) + len(after)))
    return "\n".join(out), f"@page {page} {{ size: {page_w:.0f}pt {page_h:.0f}pt; margin: 72pt; }}"


def chromium_binary() -> str:
    found = shutil.which(CHROMIUM) or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if not found:
        sys.exit("chromium not found (Debian: apt-get install -y chromium)")
    return found


def render_chromium(items: list[tuple[list[list[Any]], bool, str, str]], *, size: float = SIZE, pad: float = PAD) -> list[bytes]:
    """Each (grid, ruled, before, after) as a one-page PDF printed by headless Chromium: the tables of a batch
    go into one HTML file, one page each, printed in one run, and the PDF is cut into its pages (pypdf)."""
    import pypdf

    out: list[bytes] = []
    binary = chromium_binary()
    with tempfile.TemporaryDirectory() as tmp:
        for start in range(0, len(items), CHROMIUM_BATCH):
            batch = items[start : start + CHROMIUM_BATCH]
            sheets, pages = [], []
            for k, (grid, ruled, before, after) in enumerate(batch):
                sheet, rule = html_sheet(grid, ruled, before, after, page=f"t{k}", size=size, pad=pad)
                sheets.append(sheet)
                pages.append(rule)
            css = HTML_CSS.format(size=size, pad=pad) + "\n".join(pages)
            source = Path(tmp) / "tables.html"
            source.write_text(
                f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><style>{css}</style></head>\n<body>\n'
                + "\n".join(sheets)
                + "\n</body></html>\n",
                encoding="utf-8",
            )
            target = Path(tmp) / "tables.pdf"
            target.unlink(missing_ok=True)
            command = [
                binary,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-pdf-header-footer",
                f"--print-to-pdf={target}",
                source.as_uri(),
            ]
            subprocess.run(command, check=True, capture_output=True, timeout=600)
            reader = pypdf.PdfReader(target)
            if len(reader.pages) != len(batch):
                sys.exit(f"chromium printed {len(reader.pages)} pages for {len(batch)} tables (a table cut by a page break?)")
            for page in reader.pages:
                writer = pypdf.PdfWriter()
                writer.add_page(page)
                buf = io.BytesIO()
                writer.write(buf)
                out.append(buf.getvalue())
    return out


# ---------------------------------------------------------------------------------------------- reading back


@contextmanager
def recorded_grids():
    """The grids the PDF loader hands to ``read_grid``, recorded while it runs (the loader itself unchanged)."""
    grids: list[tuple[list[list[str]], str]] = []  # (grid, its rendered text)
    real = pdf_page.read_grid

    def spy(table, scale_hints=()):
        text, cells = real(table, scale_hints)
        grids.append(([list(row) for row in table], text))
        return text, cells

    pdf_page.read_grid = spy
    try:
        yield grids
    finally:
        pdf_page.read_grid = real


@contextmanager
def plumber_unruled():
    """pdfplumber's "text" strategy in place of the loader's whitespace detector (the baseline)."""
    real = pdf_tables.find_tables

    def find(page, words, **kwargs):
        ruled = pdf_tables.ruled_tables(page)
        if ruled:
            return ruled
        text = {"vertical_strategy": "text", "horizontal_strategy": "text"}
        found = []
        for table in page.find_tables(text):
            rows = [[norm(c) for c in row] for row in table.extract()]
            found.append(pdf_tables.FoundTable(tuple(table.bbox), [r for r in rows if any(r)], ruled=False))
        return found

    pdf_tables.find_tables = find
    pdf_page.find_tables = find
    try:
        yield
    finally:
        pdf_tables.find_tables = real
        pdf_page.find_tables = real


def stack(grids: list[list[list[str]]]) -> list[list[str]]:
    return [row for grid in grids for row in grid]


def aligned_matches(original: list[list[str]], extracted: list[list[str]]) -> tuple[set[tuple[int, int]], tuple[int, int]]:
    """The original's non-empty cells found at the same position in ``extracted`` under the best shift."""
    best: set[tuple[int, int]] = set()
    best_shift = (0, 0)
    for dr in range(-MAX_SHIFT, MAX_SHIFT + 1):
        for dc in range(-MAX_SHIFT, MAX_SHIFT + 1):
            hits = {
                (i, j)
                for i, row in enumerate(original)
                for j, cell in enumerate(row)
                if cell and 0 <= i + dr < len(extracted) and 0 <= j + dc < len(extracted[i + dr]) and extracted[i + dr][j + dc] == cell
            }
            if len(hits) > len(best):
                best, best_shift = hits, (dr, dc)
    return best, best_shift


def named_cells(tables) -> Counter:
    return Counter((c.row, c.column, c.text) for t in tables for r in t.rows for c in r.cells)


def prose(report: dict) -> tuple[str, str]:
    """The paragraphs drawn above and below the report's table: its first two."""
    paragraphs = [norm(p.get("text")) for p in report["paragraphs"] if isinstance(p, dict) and norm(p.get("text"))]
    before, after = (paragraphs + ["", ""])[:2]
    return before, after


def score(report: dict, style: str, workdir: Path, *, size: float = SIZE, pad: float = PAD, pdf: bytes | None = None) -> dict[str, int]:
    """The counts for one report's table drawn in one style: drawn by reportlab, or ``pdf`` (the page another
    renderer drew for it); the reading and the scoring are the same either way."""
    grid = report["table"]["table"]
    before, after = prose(report)
    path = workdir / f"{report['table']['uid']}-{style}.pdf"
    path.write_bytes(pdf if pdf is not None else render(grid, style == "ruled", before, after, size=size, pad=pad))
    with recorded_grids() as grids:
        docs = load_file(path)
    (doc,) = docs
    original = normalise(grid)
    extracted = normalise(stack([g for g, _ in grids]))
    hits, _ = aligned_matches(original, extracted)
    header_rows = _header_count(original) if original and len(original[0]) > 1 else 1
    cells = [(i, j) for i, row in enumerate(original) for j, c in enumerate(row) if c]
    header = [(i, j) for i, j in cells if i < header_rows]
    _, truth = read_grid([[norm(c) for c in row] for row in grid])
    want = named_cells([truth] if truth else [])
    got = named_cells(doc.tables)
    outside = doc.text
    for _, rendered in grids:
        outside = outside.replace(rendered, "\n")
    outside = " ".join(outside.split())
    long_cells = [c for row in original for c in row if len(c) >= 4]
    return {
        "tables": 1,
        "found_one": int(len(grids) == 1),
        "cells": len(cells),
        "cells_hit": len(hits),
        "header": len(header),
        "header_hit": sum(1 for p in header if p in hits),
        "named": sum(want.values()),
        "named_hit": sum((want & got).values()),
        "prose": sum(1 for p in (before, after) if p),
        "prose_kept": sum(1 for p in (before, after) if p and p in outside),
        "long_cells": len(long_cells),
        "repeated": sum(1 for c in long_cells if c in outside and c not in before and c not in after),
    }


def measure(
    reports: list[dict], styles: tuple[str, ...] = STYLES, *, size: float = SIZE, pad: float = PAD, renderer: str = "reportlab"
) -> dict[str, dict[str, int]]:
    pages: dict[tuple[int, str], bytes] = {}
    if renderer == CHROMIUM:
        pairs = [(i, style) for i in range(len(reports)) for style in styles]
        items = [(reports[i]["table"]["table"], style == "ruled", *prose(reports[i])) for i, style in pairs]
        pages = dict(zip(pairs, render_chromium(items, size=size, pad=pad)))
    totals: dict[str, dict[str, int]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, report in enumerate(reports):
            for style in styles:
                got = score(report, style, Path(tmp), size=size, pad=pad, pdf=pages.get((i, style)))
                total = totals.setdefault(f"{split_of(report['table']['uid'])}/{style}", Counter())
                total.update(got)
    return {key: dict(value) for key, value in sorted(totals.items())}


def ratio(a: int, b: int) -> float | None:
    return a / b if b else None


def table_rows(totals: dict[str, dict[str, int]]) -> list[list[str]]:
    rows = []
    for key, t in totals.items():
        split, style = key.split("/")
        rows.append(
            [
                split,
                style,
                t["tables"],
                fmt(ratio(t["found_one"], t["tables"]), 3),
                fmt(ratio(t["cells_hit"], t["cells"]), 3),
                fmt(ratio(t["header_hit"], t["header"]), 3),
                fmt(ratio(t["named_hit"], t["named"]), 3),
                fmt(ratio(t["prose_kept"], t["prose"]), 3),
                fmt(ratio(t["repeated"], t["long_cells"]), 3),
            ]
        )
    return rows


HEADERS = ["split", "style", "tables", "one table found", "cell acc", "header acc", "named-cell acc", "prose kept", "repeated"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--file", default="tatqa/tatqa_dataset_dev.json", help="the TAT-QA file under --data")
    parser.add_argument("--split", choices=("tune", "validation", "both"), default="both")
    parser.add_argument("--limit", type=int, help="at most this many reports (a quick look)")
    parser.add_argument("--unruled", choices=("loader", "plumber"), default="loader", help="the baseline: pdfplumber's text strategy")
    parser.add_argument("--font-size", type=float, default=SIZE, help="of the table (default %(default)s pt)")
    parser.add_argument("--pad", type=float, default=PAD, help="space on each side of a cell (default %(default)s pt)")
    parser.add_argument(
        "--renderer",
        choices=("reportlab", CHROMIUM),
        default="reportlab",
        help="who draws the PDFs: reportlab, or HTML printed by headless Chromium",
    )
    parser.add_argument("--out", type=Path, help="write the figures here as Markdown too")
    parser.add_argument("--json", type=Path, help="write the counts here")
    args = parser.parse_args()
    source = args.data / args.file
    if not source.is_file():
        sys.exit(f"TAT-QA not found at {source} (see --data)")
    reports = json.loads(source.read_text(encoding="utf-8"))
    if args.split != "both":
        reports = [r for r in reports if split_of(r["table"]["uid"]) == args.split]
    reports = reports[: args.limit] if args.limit else reports
    started = time.perf_counter()
    if args.unruled == "plumber":
        with plumber_unruled():
            totals = measure(reports, size=args.font_size, pad=args.pad, renderer=args.renderer)
    else:
        totals = measure(reports, size=args.font_size, pad=args.pad, renderer=args.renderer)
    seconds = time.perf_counter() - started
    table = markdown_table(HEADERS, table_rows(totals))
    print(table)
    print(f"\n{len(reports)} reports x {len(STYLES)} styles in {seconds:.1f} s")
    if args.out:
        command = "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])
        args.out.write_text(f"# PDF tables read back ({source.name})\n\n```\n{command}\n```\n\n{table}\n", encoding="utf-8")
    if args.json:
        args.json.write_text(json.dumps(totals, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
