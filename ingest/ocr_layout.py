"""Reading order for OCR output: text-line boxes found anywhere on a page, turned into lines and paragraphs.

RapidOCR returns one quadrilateral per run of text (usually a whole line) with its text, roughly top to
bottom. Joining them in that order mixes the lines of side-by-side columns and loses paragraphs, so:

1. Deskew: the boxes of a page fed in at an angle share their slope; every box is turned back by the median
   slope, so "the same line" and "the gap between two lines" mean the same thing anywhere on the page.
2. Order by recursive XY-cut: a region is split at a gutter (a vertical band of white crossing the region,
   with lines of running text on both sides) first, so each column is read whole, else at its widest horizontal gap,
   until each region is one line. A table's columns are not running text (short cells), so a table is read
   row by row, as the TAT-QA renderer writes tables.
3. Paragraphs: a gap between consecutive lines well above the page's line pitch, or a jump back up (the
   next column), starts a new paragraph, written after a blank line.

Boxes are expanded by the detector (``unclip_ratio``), so neighbouring lines' boxes overlap: vertical gaps
are measured between the boxes' middle halves, which never do.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

# A gutter is at least this many line heights wide...
GUTTER_HEIGHTS = 1.0
# ... and the boxes on each side of it are running text: typically this many times wider than high (a
# 3-inch column line at 11 pt is about 20; a table cell such as "2019" or "1,234" 2 to 4).
RUNNING_TEXT_ASPECT = 8.0
# Lines further apart than this many line pitches start a new paragraph (a blank line is two pitches).
PARAGRAPH_PITCHES = 1.5
MAX_SKEW_DEGREES = 30.0  # steeper boxes are vertical text or noise, not a skewed page


@dataclass
class _Box:
    text: str
    x0: float
    x1: float
    cy: float
    h: float

    @property
    def core(self) -> tuple[float, float]:
        """The middle half of the box's height: what its line surely covers."""
        return self.cy - self.h / 4, self.cy + self.h / 4


def _slope(quad: Sequence[Sequence[float]]) -> float | None:
    """The angle of the box's top edge (top-left to top-right), in radians; None for short boxes."""
    (x0, y0), (x1, y1) = quad[0], quad[1]
    height = math.dist(quad[0], quad[3])
    if math.dist(quad[0], quad[1]) < 2 * height:  # too short to trust its slope
        return None
    angle = math.atan2(y1 - y0, x1 - x0)
    return angle if abs(math.degrees(angle)) <= MAX_SKEW_DEGREES else None


def _boxes(quads: Sequence[Sequence[Sequence[float]]], texts: Sequence[str]) -> list[_Box]:
    slopes = [s for s in (_slope(q) for q in quads) if s is not None]
    angle = statistics.median(slopes) if slopes else 0.0
    cos, sin = math.cos(angle), math.sin(angle)
    out = []
    for quad, text in zip(quads, texts):
        # Rotate by -angle: the page's lines become horizontal.
        xs = [x * cos + y * sin for x, y in quad]
        ys = [-x * sin + y * cos for x, y in quad]
        h = max(ys) - min(ys)
        if text.strip() and h > 0:
            out.append(_Box(text.strip(), min(xs), max(xs), (max(ys) + min(ys)) / 2, h))
    return out


def _gaps(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The empty stretches between the union of ``intervals``: (start, end) of each."""
    gaps = []
    ordered = sorted(intervals)
    reach = ordered[0][1]
    for start, end in ordered[1:]:
        if start > reach:
            gaps.append((reach, start))
        reach = max(reach, end)
    return gaps


def _running_text(boxes: list[_Box]) -> bool:
    """Lines of text wide enough to be a column's, on more than one line: one line split in two boxes at
    a wide space is not two columns."""
    several_lines = max(b.cy for b in boxes) - min(b.cy for b in boxes) > boxes[0].h / 2
    return several_lines and statistics.median((b.x1 - b.x0) / b.h for b in boxes) >= RUNNING_TEXT_ASPECT


def _gutter_split(boxes: list[_Box], height: float) -> tuple[list[_Box], list[_Box]] | None:
    wide = [g for g in _gaps([(b.x0, b.x1) for b in boxes]) if g[1] - g[0] >= GUTTER_HEIGHTS * height]
    for start, end in sorted(wide, key=lambda g: g[0] - g[1]):  # the widest first
        left = [b for b in boxes if b.x1 <= start]
        right = [b for b in boxes if b.x0 >= end]
        if _running_text(left) and _running_text(right):
            return left, right
    return None


def _row_split(boxes: list[_Box]) -> tuple[list[_Box], list[_Box]] | None:
    gaps = _gaps([b.core for b in boxes])
    if not gaps:
        return None
    start, end = max(gaps, key=lambda g: g[1] - g[0])
    return [b for b in boxes if b.core[1] <= start], [b for b in boxes if b.core[0] >= end]


def _one_band(boxes: list[_Box], height: float) -> list[list[_Box]]:
    """A region no gap divides: its boxes grouped into lines by their middles, each line left to right."""
    lines: list[list[_Box]] = []
    for box in sorted(boxes, key=lambda b: b.cy):
        if lines and abs(box.cy - lines[-1][-1].cy) < height / 2:
            lines[-1].append(box)
        else:
            lines.append([box])
    return [sorted(line, key=lambda b: b.x0) for line in lines]


def _lines(boxes: list[_Box]) -> list[list[_Box]]:
    """The boxes as lines in reading order (XY-cut with an explicit stack: a dense table has hundreds)."""
    height = statistics.median(b.h for b in boxes)
    out: list[list[_Box]] = []
    stack = [boxes]
    while stack:
        region = stack.pop()
        split = _gutter_split(region, height) or _row_split(region)
        if split is None:
            out += _one_band(region, height)
        else:
            first, second = split
            stack += [second, first]  # first is read first
    return out


def layout(quads: Sequence[Sequence[Sequence[float]]], texts: Sequence[str]) -> str:
    """The page's text: lines in reading order separated by "\\n", paragraphs by a blank line.

    ``quads[i]`` are the four corners of the box holding ``texts[i]``, clockwise from the top-left, in pixels.
    """
    boxes = _boxes(quads, texts)
    if not boxes:
        return ""
    lines = _lines(boxes)
    middles = [statistics.fmean(b.cy for b in line) for line in lines]
    height = statistics.median(b.h for b in boxes)
    steps = [b - a for a, b in zip(middles, middles[1:])]
    # The line pitch: the usual step from one line to the next, paragraph gaps and column jumps left out.
    usual = [s for s in steps if 0 < s < 1.5 * height]
    pitch = statistics.median(usual) if usual else height
    parts = [" ".join(b.text for b in lines[0])]
    for step, line in zip(steps, lines[1:]):
        parts.append("\n\n" if step <= 0 or step > PARAGRAPH_PITCHES * pitch else "\n")
        parts.append(" ".join(b.text for b in line))
    return "".join(parts)
