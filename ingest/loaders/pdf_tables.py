"""Tables on a PDF page, found and read as rows of cell strings (the shape ingest/loaders/grid.py reads).

Two kinds, two methods:

- ruled tables (a grid of lines): pdfplumber's "lines" strategy. Its cells come from the drawn lines, so a
  cell's text is exactly what lies inside its borders. Its default tolerances (``RULED_SETTINGS``) already
  recover every cell of the benchmark's ruled tables, so they are kept.
- unruled tables (columns aligned by whitespace alone, as annual reports set them): pdfplumber's "text"
  strategy was measured first (bench/pdf_tables.py, ``--unruled plumber``) and fell far short: it takes
  the paragraphs above and below into the table and cuts right-aligned numbers and centred headers in two.
  So the words are grouped here instead: a line's words separated by a gap wider than ``segment_gap_em``
  font sizes are separate cells; a run of lines with several cells each is a table; its columns are the
  x-ranges that the cells of its data rows (rows holding a number) cover, and every cell, a centred
  spanning header included, goes to the column under its centre; a header centred between two columns'
  data goes to the column, or the middle of the run of columns, it is centred over (``_column_of``).

Prose must not become a table. A candidate needs two rows of several cells; a strip of whitespace down
the whole block after its first column, and columns whose cells mostly share an edge or a centre (justified
prose has wide gaps, but neither); cells outside the first column that are short (a median of at most
``max_cell_words`` words: a two-column page layout, whose "cells" are lines of prose, has long ones); and a
first column that is not just list markers ("•", "1."). The thresholds were tuned on the "tune" half of
TAT-QA dev rendered by reportlab and checked on the other half (bench/pdf_tables.py); the same tables as HTML
printed by headless Chromium (``--renderer chromium``: another producer, its own column widths and spanning
headers set with colspan) showed the headers centred between columns, read since by ``_column_of``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from statistics import median
from typing import Any

from core.tables import parse_number

# pdfplumber's table settings for ruled tables; text_x_tolerance is the gap (points) under which two chars
# of a cell belong to one word.
RULED_SETTINGS: dict[str, Any] = {
    "vertical_strategy": "lines",
    "horizontal_strategy": "lines",
    "snap_tolerance": 3,
    "join_tolerance": 3,
    "intersection_tolerance": 3,
    "text_x_tolerance": 3,
    "text_y_tolerance": 3,
}


@dataclass(frozen=True)
class UnruledSettings:
    segment_gap_em: float = 0.45  # words further apart than this many font sizes are separate cells
    line_gap_em: float = 1.0  # a vertical gap over this many font sizes (a blank line) ends a table...
    join_gap_em: float = 2.5  # ...unless the lines after it, up to this gap, continue its columns (a blank row)
    max_single_lines: int = 3  # one-cell lines (section headings) allowed in a row between two table rows
    min_rows: int = 2  # lines with two or more cells a table needs
    max_cell_words: float = 4.0  # median words per cell outside the first column; above: prose, not a table


UNRULED = UnruledSettings()
LABEL_EDGE_TOLERANCE = 2.0  # points: a segment starting this close to the first column's left edge is a label
ALIGN_TOLERANCE = 1.5  # points: cells whose edges (or centres) are this close are aligned

BBox = tuple[float, float, float, float]  # x0, top, x1, bottom, in pdfplumber's page coordinates


@dataclass(frozen=True)
class FoundTable:
    bbox: BBox
    rows: list[list[str]]
    ruled: bool


@dataclass
class _Segment:
    """Words of one line close enough to be one cell."""

    x0: float
    x1: float
    top: float
    bottom: float
    text: str
    size: float

    @property
    def center(self) -> float:
        return (self.x0 + self.x1) / 2


@dataclass
class _Line:
    top: float
    bottom: float
    segments: list[_Segment]

    @property
    def multi(self) -> bool:
        return len(self.segments) > 1


def _inside(word: dict, boxes: list[BBox]) -> bool:
    cx, cy = (word["x0"] + word["x1"]) / 2, (word["top"] + word["bottom"]) / 2
    return any(x0 <= cx <= x1 and top <= cy <= bottom for x0, top, x1, bottom in boxes)


def _lines(words: list[dict], settings: UnruledSettings) -> list[_Line]:
    """Words grouped into lines (by vertical overlap) and each line into segments (by horizontal gaps)."""
    lines: list[list[dict]] = []
    for word in sorted(words, key=lambda w: (w["top"], w["x0"])):
        size = word["bottom"] - word["top"]
        if lines and abs(word["top"] - lines[-1][0]["top"]) <= size / 2:
            lines[-1].append(word)
        else:
            lines.append([word])
    out = []
    for line_words in lines:
        line_words.sort(key=lambda w: w["x0"])
        segments: list[_Segment] = []
        for w in line_words:
            size = w["bottom"] - w["top"]
            if segments and w["x0"] - segments[-1].x1 <= settings.segment_gap_em * max(size, segments[-1].size):
                s = segments[-1]
                s.x1, s.text = max(s.x1, w["x1"]), f"{s.text} {w['text']}"
                s.top, s.bottom = min(s.top, w["top"]), max(s.bottom, w["bottom"])
            else:
                segments.append(_Segment(w["x0"], w["x1"], w["top"], w["bottom"], w["text"], size))
        out.append(_Line(min(s.top for s in segments), max(s.bottom for s in segments), segments))
    return out


def _runs(lines: list[_Line], settings: UnruledSettings) -> list[list[_Line]]:
    """Lines with no blank line between them."""
    runs: list[list[_Line]] = []
    for line in lines:
        if runs:
            prev = runs[-1][-1]
            size = max(s.size for s in line.segments + prev.segments)
            if line.top - prev.bottom <= settings.line_gap_em * size:
                runs[-1].append(line)
                continue
        runs.append([line])
    return runs


def _blocks(run: list[_Line], settings: UnruledSettings) -> list[list[_Line]]:
    """Stretches of a run from one multi-cell line to another with few one-cell lines between them."""
    blocks: list[list[_Line]] = []
    start = last = None
    for i, line in enumerate(run):
        if not line.multi:
            continue
        if start is not None and i - last - 1 > settings.max_single_lines:
            blocks.append(run[start : last + 1])
            start = None
        if start is None:
            start = i
        last = i
    if start is not None:
        blocks.append(run[start : last + 1])
    return blocks


_YEAR = re.compile(r"^(?:19|20)\d\d$")


def _is_value(text: str) -> bool:
    """A number as a data cell holds it ("$ 1,234", "(5.2)%"), not a year heading a column."""
    return parse_number(text) is not None and not _YEAR.match(text.strip())


def _union(segments: list[_Segment]) -> list[tuple[float, float]]:
    """The x-ranges the segments cover together, left to right."""
    columns: list[list[float]] = []
    for x0, x1 in sorted((s.x0, s.x1) for s in segments):
        if columns and x0 <= columns[-1][1]:
            columns[-1][1] = max(columns[-1][1], x1)
        else:
            columns.append([x0, x1])
    return [(a, b) for a, b in columns]


def _columns(lines: list[_Line]) -> list[tuple[float, float]]:
    """Column x-ranges: the union of the cells of the data rows (rows holding a value after their first
    cell); header rows are left out, since a header spanning two columns would join them, and a centred
    header over right-aligned numbers would make a column of its own. A table of words: all its rows."""
    data = [ln for ln in lines if ln.multi and any(_is_value(s.text) for s in ln.segments[1:])]
    return _union([s for ln in (data or [ln for ln in lines if ln.multi]) for s in ln.segments])


def _aligned(segments: list[_Segment]) -> bool:
    """Whether most of a column's cells share a left edge, a right edge or a centre (within
    ``ALIGN_TOLERANCE``), as a column of a table does and words that happen to sit in a strip of prose do not."""
    for edge in (lambda s: s.x0, lambda s: s.x1, lambda s: s.center):
        values = sorted(edge(s) for s in segments)
        best = max(sum(1 for v in values if abs(v - anchor) <= ALIGN_TOLERANCE) for anchor in values)
        if best >= 2 and best * 2 >= len(segments):
            return True
    return False


def _columns_aligned(lines: list[_Line], columns: list[tuple[float, float]]) -> bool:
    """Whether at least half of the columns after the first that hold two or more cells are aligned."""
    judged = aligned = 0
    for j in range(1, len(columns)):
        cells = [s for ln in lines if ln.multi for s in ln.segments if _column_of(s, columns) == j]
        if len(cells) >= 2:
            judged += 1
            aligned += _aligned(cells)
    return judged > 0 and aligned * 2 >= judged


def _has_label_gap(lines: list[_Line]) -> bool:
    """Whether a vertical strip of whitespace runs down the whole block between its first column and the
    rest. A table's columns are such strips; the wide gaps of justified prose are not (the words of the
    next line fill them), so its lines, full of "cells", are no table."""
    return len(_union([s for ln in lines if ln.multi for s in ln.segments])) >= 2


def _column_of(segment: _Segment, columns: list[tuple[float, float]], cells: list[tuple[float, float]] | None = None) -> int:
    """The first column whose data ends right of the segment's centre: a column's cells never reach past
    its widest cell, while its header, centred or spanning, has its centre over the column. A segment that
    starts where the (left-aligned) row labels start is a label, however long (a section heading).

    With ``cells`` (each column's estimated cell, ``_cells``), a centre in the gutter between two value
    columns' data is read more closely: a header wider than its column's data, or one centred over several
    columns. It goes to the one of the two columns whose data it reaches over; reaching over both or neither,
    it is centred over a cell or a run of cells: the run whose middle is nearest its centre. A run of an
    even number of columns has no middle column: the header goes to the left one of the two middle ones, as
    TAT-QA stores such headers and ingest/loaders/grid.py spreads them ("ties go to the left one")."""
    if segment.x0 <= columns[0][0] + LABEL_EDGE_TOLERANCE:
        return 0
    center = segment.center
    j = next((j for j, (_, x1) in enumerate(columns) if center <= x1), len(columns) - 1)
    if cells is None or j < 2 or center >= columns[j][0]:
        return j
    over_left = segment.x0 < columns[j - 1][1] - ALIGN_TOLERANCE
    over_right = segment.x1 > columns[j][0] + ALIGN_TOLERANCE
    if over_left != over_right:
        return j - 1 if over_left else j
    runs = [(p, q) for p in range(1, j + 1) for q in range(max(p, j - 1), len(columns))]
    p, q = min(runs, key=lambda run: (abs((cells[run[0]][0] + cells[run[1]][1]) / 2 - center), run[1] - run[0]))
    return p + (q - p) // 2


def _cells(lines: list[_Line], columns: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Each column's cell, as a ruled table would draw it, estimated from where its data sits: two value
    columns meet where the left one's data ends when it is right-aligned (numbers: most of its cells end at
    its right edge), else where the right one's data starts when that one is left-aligned, else mid-gutter;
    the row labels' column meets the first value column mid-gutter."""
    data = [ln for ln in lines if ln.multi and any(_is_value(s.text) for s in ln.segments[1:])] or [ln for ln in lines if ln.multi]
    lefts: list[list[float]] = [[] for _ in columns]
    rights: list[list[float]] = [[] for _ in columns]
    for line in data:
        for s in line.segments:
            j = _column_of(s, columns)
            lefts[j].append(s.x0)
            rights[j].append(s.x1)

    def shared(edges: list[float], edge: float) -> bool:
        return bool(edges) and 2 * sum(abs(e - edge) <= ALIGN_TOLERANCE for e in edges) >= len(edges)

    bounds = []
    for j in range(len(columns) - 1):
        (_, right), (left, _) = columns[j], columns[j + 1]
        if j > 0 and shared(rights[j], right):
            bounds.append(right)
        elif j > 0 and shared(lefts[j + 1], left):
            bounds.append(left)
        else:
            bounds.append((right + left) / 2)
    return list(zip([columns[0][0], *bounds], [*bounds, columns[-1][1]]))


def _header_lines(run: list[_Line], first: int, block: list[_Line], columns: list[tuple[float, float]]) -> int:
    """How many one-cell lines right above a block belong to it: a spanning header ("Fiscal") or unit
    ("(in millions)") over the value columns, or a title that fits in the first column ("($ in millions)",
    "December 31, 2019"); a line of prose runs past the first column."""
    labels = [s for line in block for s in line.segments if _column_of(s, columns) == 0]
    label_right = max((s.x1 for s in labels), default=columns[0][1])
    n = 0
    while first - n - 1 >= 0:
        segments = run[first - n - 1].segments
        if len(segments) > 1 or not (segments[0].x0 > label_right or segments[0].x1 <= label_right + 1):
            break
        n += 1
    return n


def _table(lines: list[_Line], columns: list[tuple[float, float]]) -> list[list[str]]:
    rows = []
    cells = _cells(lines, columns)
    for line in lines:
        row = [""] * len(columns)
        for segment in line.segments:
            j = _column_of(segment, columns, cells)
            row[j] = f"{row[j]} {segment.text}".strip()
        rows.append(row)
    return rows


def _is_prose(rows: list[list[str]], settings: UnruledSettings) -> bool:
    counts = [len(cell.split()) for row in rows for cell in row[1:] if cell]
    return not counts or median(counts) > settings.max_cell_words


# What starts the items of a list: a bullet, a dash, "1.", "a)", "(iv)".
_LIST_MARKER = re.compile(r"^(?:[•·▪◦‣∙●○■□►✓✔*–—-]|\d{1,3}[.)]|[a-zA-Z][.)]|\(?[ivxlcIVXLC]{1,6}[.)]|\([a-zA-Z0-9]{1,3}\))$")


def _is_list(rows: list[list[str]]) -> bool:
    """A bulleted or numbered list: its first "column" holds nothing but the markers ("1", "2", "3"... too)."""
    firsts = [row[0] for row in rows if row[0]]
    counting = firsts == [str(i) for i in range(1, len(firsts) + 1)]
    return bool(firsts) and (counting or all(_LIST_MARKER.match(cell) for cell in firsts))


@dataclass
class _Candidate:
    lines: list[_Line]
    columns: list[tuple[float, float]]
    at_run_start: bool  # nothing above it in its run of lines
    at_run_end: bool  # nothing below it


def _candidates(lines: list[_Line], settings: UnruledSettings) -> list[_Candidate]:
    """Blocks of multi-cell lines with their columns and the header lines above them; a block of a single
    row too, since it may be the end of a table above it after a blank row (``_continues``)."""
    found = []
    for run in _runs(lines, settings):
        for block in _blocks(run, settings):
            columns = _columns(block)
            if len(columns) < 2:
                continue
            first = run.index(block[0])
            block = run[first - _header_lines(run, first, block, columns) : first] + block
            found.append(_Candidate(block, columns, block[0] is run[0], block[-1] is run[-1]))
    return found


def _continues(above: _Candidate, below: _Candidate, settings: UnruledSettings) -> bool:
    """Whether ``below`` is the rest of ``above`` after a blank row: the same columns, and nothing between."""
    if not (above.at_run_end and below.at_run_start) or len(below.columns) > len(above.columns):
        return False
    size = max(s.size for s in above.lines[-1].segments + below.lines[0].segments)
    if below.lines[0].top - above.lines[-1].bottom > settings.join_gap_em * size:
        return False
    # Each of its columns under one of the table's (a row may leave a column empty).
    return all(sum(a0 <= b1 and b0 <= a1 for a0, a1 in above.columns) == 1 for b0, b1 in below.columns)


def unruled_tables(words: list[dict], settings: UnruledSettings = UNRULED) -> list[FoundTable]:
    """Whitespace-aligned tables among ``words`` (pdfplumber's ``extract_words`` dicts)."""
    joined: list[_Candidate] = []
    for candidate in _candidates(_lines(words, settings), settings):
        if joined and _continues(joined[-1], candidate, settings):
            lines = joined[-1].lines + candidate.lines
            joined[-1] = _Candidate(lines, _columns(lines), joined[-1].at_run_start, candidate.at_run_end)
        else:
            joined.append(candidate)
    found = []
    for candidate in joined:
        if sum(line.multi for line in candidate.lines) < settings.min_rows:
            continue
        rows = _table(candidate.lines, candidate.columns)
        if (
            _is_prose(rows, settings)
            or _is_list(rows)
            or not _has_label_gap(candidate.lines)
            or not _columns_aligned(candidate.lines, candidate.columns)
        ):
            continue
        segments = [s for line in candidate.lines for s in line.segments]
        bbox = (min(s.x0 for s in segments), candidate.lines[0].top, max(s.x1 for s in segments), candidate.lines[-1].bottom)
        found.append(FoundTable(bbox, rows, ruled=False))
    return found


def ruled_tables(page: Any, settings: dict[str, Any] | None = None) -> list[FoundTable]:
    """Tables drawn as a grid of lines on a pdfplumber page; a lone box (a framed paragraph) is no table."""
    found = []
    for table in page.find_tables(settings or RULED_SETTINGS):
        rows = [[" ".join((cell or "").split()) for cell in row] for row in table.extract()]
        rows = [row for row in rows if any(row)]
        if len(rows) >= 2 and max(sum(bool(c) for c in row) for row in rows) >= 2:
            found.append(FoundTable(tuple(table.bbox), rows, ruled=True))
    return found


def find_tables(page: Any, words: list[dict], *, unruled: UnruledSettings = UNRULED) -> list[FoundTable]:
    """Every table on the page, top to bottom: ruled ones first, then unruled ones among the words the
    ruled ones do not hold."""
    ruled = ruled_tables(page)
    rest = [w for w in words if not _inside(w, [t.bbox for t in ruled])]
    return sorted(ruled + unruled_tables(rest, unruled), key=lambda t: (t.bbox[1], t.bbox[0]))
