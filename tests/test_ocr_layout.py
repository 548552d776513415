"""Reading order of OCR boxes (ingest/ocr_layout.py), on boxes shaped like RapidOCR's: one per line, taller
than the line pitch (the detector expands them), so neighbouring lines' boxes overlap."""

from __future__ import annotations

import math

from ingest.ocr_layout import layout

HEIGHT, PITCH = 46, 40  # a 11 pt line at 200 dpi, 1.3 leading


def box(x0: float, y: float, x1: float, text: str) -> tuple[list[list[float]], str]:
    """A line box whose middle is at ``y``, corners clockwise from the top-left."""
    top, bottom = y - HEIGHT / 2, y + HEIGHT / 2
    return [[x0, top], [x1, top], [x1, bottom], [x0, bottom]], text


def column(x0: float, x1: float, y: float, lines: list[str | None]) -> list[tuple[list[list[float]], str]]:
    """Lines one pitch apart; None leaves a blank line (a paragraph gap)."""
    out = []
    for line in lines:
        if line is not None:
            out.append(box(x0, y, x1, line))
        y += PITCH
    return out


def read(boxes: list[tuple[list[list[float]], str]]) -> str:
    return layout([quad for quad, _ in boxes], [text for _, text in boxes])


def test_lines_and_paragraphs():
    boxes = column(100, 1500, 200, ["First line of a paragraph", "its second line", None, "A new paragraph"])
    assert read(boxes) == "First line of a paragraph\nits second line\n\nA new paragraph"


def test_the_detectors_order_does_not_matter():
    boxes = column(100, 1500, 200, ["one", "two", None, "three"])
    assert read(boxes[::-1]) == "one\ntwo\n\nthree"


def test_a_line_cut_into_several_boxes_is_joined_left_to_right():
    boxes = [box(900, 200, 1500, "of the line"), box(100, 202, 800, "The start")]
    assert read(boxes) == "The start of the line"


def test_columns_are_read_one_after_the_other():
    title = [box(100, 100, 1500, "A title across both columns")]
    left = column(100, 760, 200, ["left one", "left two", "left three"])
    right = column(840, 1500, 200, ["right one", "right two", "right three"])
    assert read(title + right + left) == (
        "A title across both columns\n\nleft one\nleft two\nleft three\n\nright one\nright two\nright three"
    )


def test_a_table_is_read_row_by_row():
    rows = []
    for i, (label, a, b) in enumerate([("Revenue", "1,234.5", "1,100.2"), ("Cost of sales", "(800.1)", "(750.0)")]):
        y = 200 + i * PITCH
        rows += [box(100, y, 400, label), box(900, y, 1040, a), box(1200, y, 1340, b)]
    assert read(rows) == "Revenue 1,234.5 1,100.2\nCost of sales (800.1) (750.0)"


def test_a_skewed_page_reads_as_a_straight_one():
    boxes = column(100, 760, 200, ["left one", "left two", None, "left four"]) + column(840, 1500, 200, ["right one", "right two"])
    angle = math.radians(3)

    def turn(quad):
        return [[x * math.cos(angle) - y * math.sin(angle), x * math.sin(angle) + y * math.cos(angle)] for x, y in quad]

    # Turned by 3 degrees, each line drops 35 pixels across a column: most of a line pitch.
    assert read([(turn(quad), text) for quad, text in boxes]) == read(boxes)
    assert read(boxes) == "left one\nleft two\n\nleft four\n\nright one\nright two"


def test_nothing_found():
    assert layout([], []) == ""
    assert read([box(100, 200, 300, "  ")]) == ""
