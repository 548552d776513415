"""Tables with addressable cells, kept from ingest so arithmetic can run in code on the values themselves.

A ``Table`` is rows of cells; every cell knows its row label, its column header, its text as written and the
number it holds: the sign from a minus or accounting parentheses ("(1,234)" is -1234), a percent sign, a
currency symbol. ``scale`` is the unit the table states for its amounts ("in millions" -> "million"), so a
change computed from two cells is in the table's units too. ``Row.line`` is the row as the text rendering
shows it: the passage holding that line is the one a computation over the row's cells cites.

One JSON shape (``to_dict`` / ``from_dict``), stored per document by the collection.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

SCALES = ("", "thousand", "million", "billion")
_SCALE_WORDS = (
    (re.compile(r"\b(?:billions?|bn)\b", re.I), "billion"),
    (re.compile(r"\b(?:millions?|mn|mm)\b|\$m\b|£m\b|€m\b", re.I), "million"),
    (re.compile(r"\b(?:thousands?)\b|'000|\$000|£000|€000|\b000s\b", re.I), "thousand"),
)
_NUMBER = re.compile(
    r"""^(?P<cur1>[$€£¥])?\s*(?P<open>\()?\s*(?P<sign>[-–—−+])?\s*(?P<cur2>[$€£¥])?\s*
        (?P<digits>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)
        \s*(?P<pct1>%)?\s*(?P<close>\))?\s*(?P<pct2>%)?$""",
    re.X,
)


@dataclass(frozen=True)
class Number:
    value: float  # signed, in the units written (the table's scale is not applied)
    unit: str  # "%" for a percentage, the currency symbol, or ""


def parse_number(text: str) -> Number | None:
    """The number a cell states: "$ 1,234" -> 1234 $, "(5.2)%" -> -5.2 %, "-0.81" -> -0.81; None for
    anything else (words, a dash for nil, a date)."""
    match = _NUMBER.match(" ".join(text.split()))
    if not match or bool(match["open"]) != bool(match["close"]):
        return None
    value = float(match["digits"].replace(",", ""))
    if match["open"] or match["sign"] in ("-", "–", "—", "−"):
        value = -value
    unit = "%" if match["pct1"] or match["pct2"] else (match["cur1"] or match["cur2"] or "")
    return Number(value, unit)


def stated_scale(texts: Iterable[str]) -> str:
    """The scale a table's headers or caption state ("(In millions)", "$'000"), or ""."""
    for text in texts:
        for pattern, scale in _SCALE_WORDS:
            if pattern.search(text):
                return scale
    return ""


@dataclass(frozen=True)
class Cell:
    row: str  # the row label
    column: str  # the column header ("" when the table has none)
    text: str  # as written
    value: float | None = None  # the number it states, signed; None for text
    unit: str = ""  # "%", a currency symbol, or ""

    @classmethod
    def of(cls, row: str, column: str, text: str) -> Cell:
        number = parse_number(text)
        return cls(row, column, text, number.value if number else None, number.unit if number else "")

    def to_dict(self) -> dict[str, Any]:
        return {"row": self.row, "column": self.column, "text": self.text, "value": self.value, "unit": self.unit}


@dataclass(frozen=True)
class Row:
    label: str
    line: str  # the row as the document's text shows it
    cells: tuple[Cell, ...]


@dataclass(frozen=True)
class Table:
    rows: tuple[Row, ...]
    scale: str = ""  # one of SCALES: the unit of the table's amounts (percentages are always percent)

    def to_dict(self) -> dict[str, Any]:
        return {
            "scale": self.scale,
            "rows": [
                {"label": r.label, "line": r.line, "cells": [{k: v for k, v in c.to_dict().items() if k != "row"} for c in r.cells]}
                for r in self.rows
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Table:
        rows = []
        for r in data.get("rows", []):
            cells = tuple(Cell(r["label"], c["column"], c["text"], c.get("value"), c.get("unit", "")) for c in r.get("cells", []))
            rows.append(Row(r["label"], r["line"], cells))
        return cls(tuple(rows), data.get("scale", ""))

    @property
    def columns(self) -> list[str]:
        return list(dict.fromkeys(c.column for r in self.rows for c in r.cells))
