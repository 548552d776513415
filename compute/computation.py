"""A question answered by arithmetic in code: the planner's program run over the cells of the tables behind
the passages found, every operand cited to the passage that shows its row, and the work shown.

``compute(question, tables)`` -> ``Computation`` or None (no known shape, no confident cells, or an operand
in no passage found: then the generator answers as before). A program that fails (a division by zero) is a
``Computation`` with ``error`` set, shown to the user in words rather than hidden.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from compute.planner import Plan, plan
from compute.program import ComputeError, Operand, Ref, Result, evaluate, format_number
from compute.writer import operation_of, write_program
from core.tables import Table

_YEAR = re.compile(r"\b(?:19|20)\d\d\b")


class _NotInPassages(ComputeError):
    """An operand the passages given do not show: nothing to cite, so the question is left to the model."""


_CURRENCIES = "$€£¥"


@dataclass(frozen=True)
class SourceTable:
    """A table of a document some passage came from, with the passages ([n], text) of that document."""

    table: Table
    passages: tuple[tuple[int, str], ...]


@dataclass(frozen=True)
class Computation:
    operation: str
    program: str
    operands: tuple[Operand, ...]
    value: float | None  # None when evaluation failed
    shown: str  # the result as the answer states it: "12.14%", "$162 million"
    work: str  # "(1,496 - 1,334) / 1,334 * 100 = 12.14%"
    text: str  # the answer: the result with its citations, then the work
    error: str | None = None
    ms: float = 0.0

    @property
    def cited(self) -> list[int]:
        return list(dict.fromkeys(o.passage for o in self.operands if o.passage is not None))

    def to_dict(self) -> dict[str, Any]:
        return {
            "operation": self.operation,
            "program": self.program,
            "operands": [
                {"row": o.ref.row, "column": o.ref.column, "text": o.text, "value": o.value, "unit": o.unit, "passage": o.passage}
                for o in self.operands
            ],
            "value": self.value,
            "result": self.shown,
            "work": self.work,
            "error": self.error,
        }


def _norm(text: str) -> str:
    return " ".join(text.split())


Writer = Callable[[list[dict[str, str]]], str]  # chat messages -> the model's reply (compute/writer.py's prompt)


def compute(question: str, sources: list[SourceTable], write: Writer | None = None, *, planner: bool = True) -> Computation | None:
    """The planner's program for ``question``; with ``write`` (a model trained to write programs), the program
    it writes over the first table when the planner has none (or always, with ``planner=False``)."""
    started = time.perf_counter()
    chosen = plan(question, [s.table for s in sources]) if planner else None
    if chosen is None and write is not None and sources:
        program = write_program(question, sources[0].table, write)
        chosen = Plan(operation_of(program), program, 0) if program else None
    if chosen is None:
        return None
    source = sources[chosen.table]

    def resolve(ref: Ref) -> Operand:
        for row in source.table.rows:
            for cell in row.cells:
                if _ref_text(cell.row) == ref.row and _ref_text(cell.column) == ref.column and cell.value is not None:
                    line = _norm(row.line)
                    passage = next((n for n, text in source.passages if line in _norm(text)), None)
                    if passage is None:
                        raise _NotInPassages(f"the row {cell.row!r} is in no passage found")
                    return Operand(ref, cell.text, cell.value, cell.unit, passage)
        raise _NotInPassages(f"no cell {ref} in the table")

    try:
        result = evaluate(chosen.program, resolve)
    except _NotInPassages:
        return None
    except ComputeError as exc:
        ms = (time.perf_counter() - started) * 1000
        text = f"The computation could not be done: {exc}."
        return Computation(chosen.operation, chosen.program, (), None, "", "", text, str(exc), ms)
    shown = _shown(chosen.operation, result, source.table.scale)
    work = result.work if chosen.operation == "lookup" else f"{result.work} = {shown}"
    text = _answer(chosen.operation, result, shown, work)
    ms = (time.perf_counter() - started) * 1000
    return Computation(chosen.operation, chosen.program, result.operands, result.value, shown, work, text, None, ms)


def _ref_text(text: str) -> str:
    """A label as a program writes it (compute/planner.py: _ref)."""
    return " ".join(text.replace("{", "(").replace("}", ")").replace("|", "/").split())


def _places(operands: tuple[Operand, ...]) -> int:
    return max((len(o.text.split(".")[1].rstrip("%) ")) if "." in o.text else 0 for o in operands), default=0)


# Rows whose figures are not amounts in the table's stated scale ("in millions" does not apply to them).
_UNSCALED = re.compile(
    r"\bper\b|\brates?\b|\bratios?\b|\bmargins?\b|%|\bpercent|\bcents?\b|\bdays?\b|\bnumber\b|"
    r"\bemployees\b|\bshares\b|\byears?\b|\bheadcount\b|\bprice\b",
    re.I,
)


def _shown(operation: str, result: Result, scale: str) -> str:
    """The result as the answer states it: a count whole, percentages and ratios to two places, amounts to the
    operands' places (two at most, for an average), with the table's currency and scale ("$162 million")."""
    if any(_UNSCALED.search(o.ref.row) for o in result.operands):
        scale = ""
    if operation == "lookup":
        number = result.operands[0].text.strip()
        return f"{number} {scale}" if scale and result.operands[0].unit != "%" else number
    if operation == "count" or result.boolean:
        return format_number(result.value, 0)
    if result.percent:
        return f"{format_number(result.value, 2)}%"
    if operation == "ratio":
        return format_number(result.value, 2 if abs(result.value) >= 0.1 else 4)
    places = min(2, max(_places(result.operands), 0 if float(result.value).is_integer() else 2))
    number = format_number(result.value, places)
    currency = next((o.unit for o in result.operands if o.unit and o.unit in _CURRENCIES), "")
    if currency:
        number = f"-{currency}{number[1:]}" if number.startswith("-") else f"{currency}{number}"
    return f"{number} {scale}" if scale else number


def _when(column: str) -> str:
    years = _YEAR.findall(column)
    return years[0] if len(years) == 1 else column


def _answer(operation: str, result: Result, shown: str, work: str) -> str:
    """One sentence with the result and the cited cells, then the arithmetic."""
    ops = result.operands
    cite = " ".join(f"[{n}]" for n in dict.fromkeys(o.passage for o in ops if o.passage is not None))
    rows = list(dict.fromkeys(o.ref.row for o in ops))
    whens = list(dict.fromkeys(_when(o.ref.column) for o in ops))
    what = rows[0] if len(rows) == 1 else " and ".join(rows)
    span = f"from {whens[0]} to {whens[-1]}" if len(whens) > 1 else f"in {whens[0]}" if whens[0] else ""
    lead = {
        "change": f"The change in {what} {span}",
        "pct_change": f"The percentage change in {what} {span}",
        "average": f"The average of {what} {'over ' + ', '.join(whens) if len(whens) > 1 else span}",
        "sum": f"The sum of {what} {'over ' + ', '.join(whens) if len(whens) > 1 else span}",
        "share": f"{rows[0]} as a percentage of {rows[-1]} {span}",
        "ratio": f"The ratio of {rows[0]} to {rows[-1]} {span}",
        "count": f"The number of years in which {rows[0]} meets the condition",
    }.get(operation, "The result")
    if operation == "change" and len(rows) == 2:
        lead = f"The difference between {rows[0]} and {rows[1]} {span}"
    if operation == "lookup":  # one cell, copied: nothing was computed, so no work to show
        return f"{rows[0]} in {whens[0]}: {shown} {cite}."
    cells = "; ".join(f"{o.ref.row}, {o.ref.column}: {o.text} [{o.passage}]" for o in ops)
    return f"{' '.join(lead.split())} is {shown} {cite}.\nComputed in code from the cited cells ({cells}): {work}."
