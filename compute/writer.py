"""Programs written by a model instead of the planner: the prompt that asks for one, reading the reply, and
turning TAT-QA's derivations ("(1,496 - 1,334) / 1,334") into programs over the table's cells, which is what
the task adapter (``assistant finetune --tasks``) is trained on.

The model only writes the program; compute/program.py evaluates it, so a wrong program gives a wrong (but
shown and cited) computation, never an unshown number. A reply that does not parse is no plan.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

from compute.program import Call, ComputeError, Num, Op, Operand, Ref, evaluate, parse
from core.tables import Cell, Table

NONE = "NONE"
PROGRAM_PROMPT = (
    "Write a program that computes the answer to the question from the table's cells, or NONE when the question "
    "asks for no computation. A cell is {row label | column header}. Functions: sum, average, change(old, new), "
    "pct_change(old, new), ratio(a, b), share(part, whole), min, max; operators + - * /. Write only the program."
)
_OPERATIONS = {"sum", "average", "change", "pct_change", "ratio", "share", "count", "min", "max"}


def table_text(table: Table) -> str:
    return "\n".join(row.line for row in table.rows)


def program_messages(question: str, table: Table) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": PROGRAM_PROMPT},
        {"role": "user", "content": f"Table:\n{table_text(table)}\n\nQuestion: {' '.join(question.split())}"},
    ]


def read_reply(text: str) -> str | None:
    """The program in a model's reply, or None for NONE, nothing, or text that is not a program."""
    line = next((ln.strip() for ln in text.strip().splitlines() if ln.strip()), "")
    line = re.sub(r"^(?:program|answer)\s*:\s*", "", line, flags=re.I).strip().strip("`")
    if not line or line.upper().startswith(NONE):
        return None
    try:
        parse(line)
    except ComputeError:
        return None
    return line


def operation_of(program: str) -> str:
    """The operation a program performs, for the answer's wording (compute/computation.py: _answer)."""
    node = parse(program)
    if isinstance(node, Call) and node.name in _OPERATIONS:
        return node.name
    if isinstance(node, Ref):
        return "lookup"
    if isinstance(node, Op):
        return {"-": "change", "+": "sum", "/": "ratio"}.get(node.op, "arithmetic")
    return "arithmetic"


def write_program(question: str, table: Table, write: Callable[[list[dict[str, str]]], str]) -> str | None:
    """The program a model writes for ``question`` over ``table`` (``write`` answers chat messages), or None."""
    return read_reply(write(program_messages(question, table)))


# --- training targets from TAT-QA derivations -------------------------------------------------------------

_DIGIT_COMMA = re.compile(r"(?<=\d),(?=\d{3}\b)")
_NUMBER = re.compile(r"\d+(?:\.\d+)?|\.\d+")
_CONSTANTS = {1.0, 2.0, 3.0, 4.0, 5.0, 10.0, 12.0, 100.0, 1000.0}
_WORD = re.compile(r"[a-z0-9]+")


def _ref(cell: Cell) -> str:
    """The cell as a program writes it, spaces collapsed as the parser reads them (compute/planner.py: _ref)."""
    row = " ".join(cell.row.replace("{", "(").replace("}", ")").replace("|", "/").split())
    return str(Ref(row, " ".join(cell.column.replace("|", "/").split())))


def _cell_for(number: float, question: str, table: Table) -> Cell | None | bool:
    """The cell holding ``number`` that the question points at; None when no cell holds it; False when several
    do and the question does not say which."""
    found = [c for r in table.rows for c in r.cells if c.value is not None and math.isclose(abs(c.value), number, rel_tol=1e-9)]
    if not found:
        return None
    asked = set(_WORD.findall(question.lower()))

    def score(cell: Cell) -> int:
        return len(asked & set(_WORD.findall(cell.row.lower()))) + 2 * len(asked & set(_WORD.findall(cell.column.lower())))

    best = max(score(c) for c in found)
    top = {_ref(c): c for c in found if score(c) == best}
    return next(iter(top.values())) if len(top) == 1 else False


def _terms(node, op: str) -> list:
    if isinstance(node, Op) and node.op == op:
        return _terms(node.args[0], op) + _terms(node.args[1], op)
    return [node]


def _canonical(node):
    """The derivation's arithmetic in the language's own words where one fits: (b - a) / a -> pct_change(a, b),
    (a + b) / 2 -> average(a, b), a / b * 100 -> share(a, b)."""
    if isinstance(node, Op) and node.op == "*" and isinstance(node.args[1], Num) and node.args[1].value == 100:
        inner = _canonical(node.args[0])
        if isinstance(inner, Call) and inner.name == "pct_change":
            return inner
        if isinstance(inner, Op) and inner.op == "/":
            return Call("share", inner.args)
    if isinstance(node, Op) and node.op == "/":
        top, bottom = node.args
        if isinstance(top, Op) and top.op == "-" and top.args[1] == bottom:
            return Call("pct_change", (bottom, top.args[0]))
        terms = _terms(top, "+")
        if isinstance(bottom, Num) and len(terms) > 1 and bottom.value == len(terms):
            return Call("average", tuple(terms))
    if isinstance(node, Op):
        return Op(node.op, tuple(_canonical(a) for a in node.args))
    return node


def unparse(node) -> str:
    if isinstance(node, Num):
        return f"{node.value:g}"
    if isinstance(node, Ref):
        return str(node)
    if isinstance(node, Call):
        return f"{node.name}({', '.join(unparse(a) for a in node.args)})"
    if node.op == "neg":
        return f"-{_wrapped(node.args[0])}"
    left, right = node.args
    if node.op in ("*", "/"):
        return f"{_wrapped(left)} {node.op} {_wrapped(right)}"
    return f"{unparse(left)} {node.op} {_wrapped(right) if node.op == '-' else unparse(right)}"


def _wrapped(node) -> str:
    return f"({unparse(node)})" if isinstance(node, Op) and node.op not in ("neg",) else unparse(node)


def program_from_derivation(derivation: str, question: str, table: Table, matches: Callable[[float, bool], bool]) -> str | None:
    """The program over ``table``'s cells that a TAT-QA derivation computes, or None when a number of it is in
    no cell (it came from the text), a cell is ambiguous, or the program's result fails ``matches(value,
    is_percent)`` (the answer's check)."""
    text = derivation.replace("[", "(").replace("]", ")").replace("×", "*").replace("÷", "/")
    text = re.sub(r"[$€£%]", "", _DIGIT_COMMA.sub("", text))
    pieces, at = [], 0
    for match in _NUMBER.finditer(text):
        number = float(match.group(0))
        cell = _cell_for(number, question, table)
        if cell is False or (cell is None and number not in _CONSTANTS):
            return None
        pieces += [text[at : match.start()], _ref(cell) if cell else match.group(0)]
        at = match.end()
    program = "".join(pieces + [text[at:]])
    cells = {_ref(c): c for r in table.rows for c in r.cells}

    def resolve(ref: Ref) -> Operand:
        cell = cells.get(str(ref))
        if cell is None or cell.value is None:
            raise ComputeError(f"no cell {ref}")
        return Operand(ref, cell.text, cell.value, cell.unit)

    try:
        node = parse(program)
    except ComputeError:
        return None
    for candidate in dict.fromkeys([unparse(_canonical(node)), unparse(node)]):
        try:
            result = evaluate(candidate, resolve)
        except ComputeError:
            continue
        if matches(result.value, result.percent):
            return candidate
    return None
