"""A small arithmetic language over table cells, parsed by a grammar and evaluated without ``eval``.

    program    := comparison
    comparison := sum [("<" | "<=" | ">" | ">=" | "=") sum]
    sum        := product (("+" | "-") product)*
    product    := unary (("*" | "/") unary)*
    unary      := "-" unary | atom
    atom       := NUMBER | CELL | NAME "(" [program ("," program)*] ")" | "(" program ")"
    CELL       := "{" row label "|" column header "}"        e.g. {Revenue | 2019}

Functions: ``sum``, ``average``, ``change(old, new)`` (new - old), ``pct_change(old, new)`` ((new - old) / old,
in percent), ``ratio(a, b)`` (a / b), ``share(part, whole)`` (part / whole, in percent), ``count(comparison,
...)`` (how many hold), ``min``, ``max``. A program is at most ``MAX_CHARS`` long with ``MAX_NODES`` nodes,
so a hostile one costs nothing; a missing cell, a cell without a number and a division by zero are
``ComputeError`` with a message for the user.

``evaluate`` returns the value and the work in plain arithmetic ("(1,496 - 1,334) / 1,334 = 12.1 %"), each
cell written as the table writes it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

MAX_CHARS = 1000
MAX_NODES = 100

_TOKEN = re.compile(r"\s*(?:(?P<number>\d+(?:\.\d+)?|\.\d+)|(?P<cell>\{[^{}]*\})|(?P<name>[a-z_]+)|(?P<op><=|>=|[-+*/(),<>=]))", re.I)
_COMPARISONS = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}
_COMPARISONS["="] = lambda a, b: math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


class ComputeError(ValueError):
    """A program that cannot be parsed or evaluated; the message is meant for the user."""


@dataclass(frozen=True)
class Ref:
    """``{row | column}``: a cell of a table the program is evaluated against."""

    row: str
    column: str

    def __str__(self) -> str:
        return f"{{{self.row} | {self.column}}}"


@dataclass(frozen=True)
class Num:
    value: float


@dataclass(frozen=True)
class Op:
    op: str  # + - * / < <= > >= = neg
    args: tuple[Node, ...]


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple[Node, ...]


Node = Ref | Num | Op | Call
FUNCTIONS = ("sum", "average", "change", "pct_change", "ratio", "share", "count", "min", "max")
_ARITY = {"change": 2, "pct_change": 2, "ratio": 2, "share": 2}


def parse(text: str) -> Node:
    if len(text) > MAX_CHARS:
        raise ComputeError(f"the program is longer than {MAX_CHARS} characters")
    tokens: list[tuple[str, str]] = []
    position = 0
    text = text.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match or match.end() == position:
            raise ComputeError(f"cannot read the program at {text[position : position + 12]!r}")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        position = match.end()
        while position < len(text) and text[position].isspace():
            position += 1
    parser = _Parser(tokens)
    node = parser.comparison()
    if parser.at < len(tokens):
        raise ComputeError(f"unexpected {tokens[parser.at][1]!r} in the program")
    if _size(node) > MAX_NODES:
        raise ComputeError(f"the program has more than {MAX_NODES} parts")
    return node


def _size(node: Node) -> int:
    return 1 + sum(_size(a) for a in node.args) if isinstance(node, Op | Call) else 1


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]):
        self.tokens, self.at = tokens, 0

    def peek(self) -> str | None:
        return self.tokens[self.at][1] if self.at < len(self.tokens) else None

    def take(self, expected: str | None = None) -> tuple[str, str]:
        if self.at >= len(self.tokens):
            raise ComputeError("the program ends too early" + (f": {expected!r} expected" if expected else ""))
        token = self.tokens[self.at]
        if expected is not None and token[1] != expected:
            raise ComputeError(f"{expected!r} expected, found {token[1]!r}")
        self.at += 1
        return token

    def comparison(self) -> Node:
        left = self.sum()
        if self.peek() in _COMPARISONS:
            return Op(self.take()[1], (left, self.sum()))
        return left

    def sum(self) -> Node:
        node = self.product()
        while self.peek() in ("+", "-"):
            node = Op(self.take()[1], (node, self.product()))
        return node

    def product(self) -> Node:
        node = self.unary()
        while self.peek() in ("*", "/"):
            node = Op(self.take()[1], (node, self.unary()))
        return node

    def unary(self) -> Node:
        if self.peek() == "-":
            self.take()
            return Op("neg", (self.unary(),))
        return self.atom()

    def atom(self) -> Node:
        kind, text = self.take()
        if kind == "number":
            return Num(float(text))
        if kind == "cell":
            row, sep, column = text[1:-1].partition("|")
            if not sep or not row.strip():
                raise ComputeError(f"a cell is written {{row | column}}, not {text}")
            return Ref(" ".join(row.split()), " ".join(column.split()))
        if kind == "name":
            name = text.lower()
            if name not in FUNCTIONS:
                raise ComputeError(f"unknown function {text!r} (known: {', '.join(FUNCTIONS)})")
            self.take("(")
            args: list[Node] = []
            if self.peek() != ")":
                args.append(self.comparison())
                while self.peek() == ",":
                    self.take()
                    args.append(self.comparison())
            self.take(")")
            if not args or (name in _ARITY and len(args) != _ARITY[name]):
                wanted = _ARITY.get(name)
                raise ComputeError(f"{name} takes {wanted} values, got {len(args)}" if wanted else f"{name} needs at least one value")
            return Call(name, tuple(args))
        if text == "(":
            node = self.comparison()
            self.take(")")
            return node
        raise ComputeError(f"unexpected {text!r} in the program")


# ------------------------------------------------------------------------------------------ evaluation


@dataclass(frozen=True)
class Operand:
    """A cell a program read: where it is and what it holds."""

    ref: Ref
    text: str  # as the table writes it
    value: float
    unit: str = ""  # "%", a currency symbol, or ""
    passage: int | None = None  # the passage ([n]) whose text holds the cell's row


@dataclass(frozen=True)
class Result:
    value: float
    percent: bool  # the value is a percentage (pct_change, share, or percentages averaged / added)
    work: str  # the arithmetic with the operands' values: "(1,496 - 1,334) / 1,334 * 100"
    operands: tuple[Operand, ...]
    boolean: bool = False  # a comparison: value is 1.0 (true) or 0.0 (false)


Resolver = Callable[[Ref], Operand]


def evaluate(program: str | Node, resolve: Resolver) -> Result:
    """Evaluate a program; ``resolve`` finds each cell (ComputeError when there is none or it holds no number)."""
    node = parse(program) if isinstance(program, str) else program
    operands: dict[Ref, Operand] = {}

    def cell(ref: Ref) -> Operand:
        if ref not in operands:
            operands[ref] = resolve(ref)
        return operands[ref]

    value, work, percent = _eval(node, cell)
    boolean = isinstance(node, Op) and node.op in _COMPARISONS
    if not math.isfinite(value):
        raise ComputeError("the result is not a finite number")
    return Result(value, percent, work, tuple(operands.values()), boolean)


def _divide(a: float, b: float, what: str) -> float:
    if b == 0:
        raise ComputeError(f"division by zero: {what} is 0")
    return a / b


def _eval(node: Node, cell: Callable[[Ref], Operand]) -> tuple[float, str, bool]:
    """(value, work as text, is a percentage)."""
    if isinstance(node, Num):
        return node.value, format_number(node.value), False
    if isinstance(node, Ref):
        operand = cell(node)
        return operand.value, operand.text, operand.unit == "%"
    values = [_eval(a, cell) for a in node.args]
    nums = [v for v, _, _ in values]
    works = [w for _, w, _ in values]
    pcts = [p for _, _, p in values]
    if isinstance(node, Op):
        if node.op == "neg":
            return -nums[0], f"-{_wrap(works[0])}", pcts[0]
        a, b = nums
        left, right = _wrap(works[0]), _wrap(works[1])
        if node.op in _COMPARISONS:
            return float(_COMPARISONS[node.op](a, b)), f"{works[0]} {node.op} {works[1]}", False
        if node.op == "+":
            return a + b, f"{works[0]} + {works[1]}", pcts[0] and pcts[1]
        if node.op == "-":
            return a - b, f"{works[0]} - {right}", pcts[0] and pcts[1]
        if node.op == "*":
            return a * b, f"{left} * {right}", pcts[0] or pcts[1]
        return _divide(a, b, works[1]), f"{left} / {right}", pcts[0] and not pcts[1]
    name = node.name
    if name == "sum":
        return sum(nums), " + ".join(works), all(pcts)
    if name == "average":
        return sum(nums) / len(nums), f"({' + '.join(works)}) / {len(nums)}", all(pcts)
    if name == "change":
        old, new = nums
        return new - old, f"{works[1]} - {_wrap(works[0])}", all(pcts)
    if name == "pct_change":
        old, new = nums
        return _divide(new - old, old, works[0]) * 100, f"({works[1]} - {_wrap(works[0])}) / {_wrap(works[0])} * 100", True
    if name == "ratio":
        return _divide(nums[0], nums[1], works[1]), f"{_wrap(works[0])} / {_wrap(works[1])}", False
    if name == "share":
        return _divide(nums[0], nums[1], works[1]) * 100, f"{_wrap(works[0])} / {_wrap(works[1])} * 100", True
    if name == "count":
        return float(sum(1 for v in nums if v)), f"count of ({'; '.join(works)})", False
    if name == "min":
        return min(nums), f"min({', '.join(works)})", all(pcts)
    return max(nums), f"max({', '.join(works)})", all(pcts)


def _wrap(work: str) -> str:
    """Parenthesise a compound term so the shown arithmetic reads as it was computed."""
    return f"({work})" if re.search(r"\s[-+*/]\s", work) else work


def format_number(value: float, places: int | None = None) -> str:
    """1496.0 -> "1,496", 12.0897 -> "12.09" (two places unless given), -35 -> "-35"."""
    if places is None:
        places = 0 if float(value).is_integer() else 2
    return f"{value:,.{places}f}"
