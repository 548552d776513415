"""The deterministic planner: a question of a common arithmetic shape, and the tables of the passages found,
become a program of compute/program.py over named cells.

Shapes ("change in X from 2018 to 2019", "percentage change", "average X for 2018 and 2019", "X as a
percentage of Y", "ratio of X to Y", "difference between X and Y", "sum of X and Y", "how many years did X
exceed N"): the operation comes from the question's wording, the row from the row labels that share the most
(rarest) words with the question, the columns from the years the question names. A question of no known
shape, or one whose row or years cannot be found with confidence, gets no plan; the generator answers it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from core.tables import Cell, Table

_YEAR = re.compile(r"\b(?:19|20)\d\d\b")
# "FY18", "F19", "FY 2019", "fiscal '18": a year written short.
_SHORT_YEAR = re.compile(r"\b(?:FY|F)\s?'?(\d\d)\b|\bfiscal\s+'(\d\d)\b", re.I)
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
# Order matters: the first pattern that matches names the operation.
_OPERATIONS = (
    ("count", re.compile(r"^\s*(?:in )?how many (?:years?|times|quarters|periods|months)\b", re.I)),
    (
        "pct_change",
        re.compile(
            r"\b(?:percent(?:age)?|%)\s*(?:change|increase|decrease|growth|rise|decline|drop|movement|difference)"
            r"|\bgrowth rate\b|\bby what (?:percent(?:age)?|%)|\brate of (?:change|increase|decrease|growth)",
            re.I,
        ),
    ),
    (
        "share",
        re.compile(
            r"\bas an? (?:percentage|proportion|%|percent|share|fraction) of\b|\b(?:percentage|proportion|percent|share|"
            r"fraction) of\b.*\b(?:in|of|to)\b.*\btotal\b|\bwhat (?:percentage|percent|proportion|share) of\b"
            r"|\b(?:percentage|proportion|percent) of\b.*\b(?:in|to)\b|\bpercentage constitution of\b",
            re.I,
        ),
    ),
    ("ratio", re.compile(r"\bratio\b", re.I)),
    ("average", re.compile(r"\baverage\b|\bmean\b", re.I)),
    (
        "change",
        re.compile(
            r"\bchange\b|\bincrease\b|\bdecrease\b|\bdifference\b|\bvariance\b|\bmovement\b|\bhow much (?:more|less|higher|"
            r"lower|bigger|smaller|greater)\b|\b(?:increase|decrease|growth|decline) (?:from|in|between)\b",
            re.I,
        ),
    ),
    (
        "sum",
        re.compile(
            r"\bsum\b|\bcombined\b|\btotal (?:of|amount of)\b.*\band\b|\bin total\b|\baltogether\b"
            r"|\btotal\b.*\b(?:19|20)\d\d\b.*\b(?:and|to)\b(?: fiscal)? (?:19|20)\d\d\b",  # "the total X in 2018 and 2019"
            re.I,
        ),
    ),
)
# Words that shape the question rather than name what it is about.
_NOT_CONTENT = frozenset(
    """a an the of in on for to from and or between by what was were is are did does do how much many which
    that this these those its it their company's company group year years fiscal fy fys period periods as at
    with over during end ended ending value values amount amounts total change changes increase increases
    decrease decreases difference percentage percent proportion share ratio average mean sum combined growth
    rate respectively both than more less higher lower respective each all number times quarter quarters
    january february march april may june july august september october november december jan feb mar apr jun jul aug sep sept oct nov dec 31 30 1 then there be been has have had also s i e whole in million
    thousand billion except per usd note""".split()
)


# Questions that ask for a reason, a year, a list or parts, whatever arithmetic words they hold ("Why did
# revenue increase?", "In which year was the average higher?", "the respective percentages of A and B").
_NOT_ARITHMETIC = re.compile(
    r"^\s*(?:why|how did|how does|how is|how are|how was|in which)\b|\b(?:reason|reasons|caused?|led to|driven|drivers?|"
    r"(?:is|was|were|are) attributable|attributed to|relates? to|explain\w*|respective(?:ly)?|what (?:are|were) the components|"
    r"components? (?:used|considered|included)|which (?:year|years|period|quarter))\b|\bdue to\s*\??\s*$",
    re.I,
)


@dataclass(frozen=True)
class Plan:
    operation: str  # one of the keys of _OPERATIONS
    program: str  # compute/program.py source
    table: int  # index of the table (in the list given) the cells come from


def operation(question: str) -> str | None:
    question = re.sub(r"\bweighted[- ]average\b", "weighted", question, flags=re.I)  # a kind of figure, not an operation
    for name, pattern in _OPERATIONS:
        if pattern.search(question):
            if name == "share" and _CHANGE_OF_SHARE.search(question):
                return "change"  # "the change in the percentage of sales from APAC": a change of a percentage
            return name
    return None


_CHANGE_OF_SHARE = re.compile(r"\b(?:change|increase|decrease|difference|movement)\b.*\b(?:percentage|proportion|percent|share) of\b", re.I)


def _stem(word: str) -> str:
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("s") and not word.endswith(("ss", "us", "is")) and len(word) > 3:
        return word[:-1]
    return word


def _words(text: str) -> list[str]:
    return [_stem(w) for w in _WORD.findall(text.lower().replace("’", "'"))]


def _content(text: str) -> list[str]:
    return [w for w in _words(text) if w not in _NOT_CONTENT and not _YEAR.fullmatch(w)]


def _years(text: str) -> list[str]:
    """The years a text names, in order: "2019", and short forms ("FY19", "F18") as four digits."""
    text = _SHORT_YEAR.sub(lambda m: f" 20{m.group(1) or m.group(2)} ", text)
    return _YEAR.findall(text)


@dataclass(frozen=True)
class _Series:
    """Cells that say the same thing for different years: one row across year columns, or (a table with the
    years down the side) one column across rows whose labels differ only in the year. Cells whose row and
    column name no year form series of their own, keyed by None."""

    words: frozenset[str]  # what the cells are about: the row label's and column's words, years left out
    cells: dict[str | None, Cell]  # year -> cell


def _series(table: Table) -> list[_Series]:
    groups: dict[tuple[str, str], tuple[frozenset[str], dict[str | None, Cell]]] = {}
    for row in table.rows:
        for cell in row.cells:
            if cell.value is None:
                continue
            years = set(_years(cell.row)) | set(_years(cell.column))
            if len(years) > 1:
                continue
            year = years.pop() if years else None
            # A column naming the year (the usual layout) says when, not what: the row label says what.
            about = cell.row if year and year in _years(cell.column) else f"{_without_years(cell.row)} {cell.column}"
            key = (_without_years(cell.row), _without_years(cell.column))
            entry = groups.setdefault(key, (frozenset(_content(about)), {}))
            entry[1].setdefault(year, cell)
    return [_Series(words, cells) for words, cells in groups.values()]


_MONTHS = frozenset("january february march april may june july august september october november december".split())


def _without_years(text: str) -> str:
    """The text with its dates left out ("Fiscal Year Ended April 27, 2019" -> "fiscal year ended"), so the
    columns of one row for different years key the same series."""
    words = _words(_SHORT_YEAR.sub(" ", text))
    return " ".join(w for w in words if not w.isdigit() and w not in _MONTHS and w[:3] not in _MONTHS)


@dataclass(frozen=True)
class _Match:
    series: _Series
    score: float


def _matches(question_words: list[str], series: list[_Series], weight: dict[str, float]) -> list[_Match]:
    """Series whose words the question shares, best first: the weight of the shared words over the weight of
    the series' and the question's words (an F1), so "Revenue" beats "Revenue from services" for a question
    about revenue, and loses to it for one about revenue from services."""
    asked = set(question_words)
    total_q = sum(weight.get(w, 1.0) for w in asked) or 1.0
    out = []
    for item in series:
        shared = item.words & asked
        if not shared:
            continue
        got = sum(weight.get(w, 1.0) for w in shared)
        precision = got / (sum(weight.get(w, 1.0) for w in item.words) or 1.0)
        recall = got / total_q
        out.append(_Match(item, 2 * precision * recall / (precision + recall)))
    return sorted(out, key=lambda m: -m.score)  # stable: ties keep the table's order


def _is_percent(series: _Series) -> bool:
    return all(c.unit == "%" for c in series.cells.values())


def _prefer_kind(op: str, question: str, matches: list[_Match]) -> list[_Match]:
    """Between a figure and its percentage column ("Revenue" and "Percentage of revenue" both say revenue):
    a percentage change, average or sum is of the amounts unless the question asks for "the percentage of"."""
    if op not in ("change", "pct_change", "average", "sum"):
        return matches
    wants_percent = op != "pct_change" and bool(re.search(r"\b(?:percentage|percent|proportion|share) of\b|%\s*of\b", question, re.I))
    return sorted(matches, key=lambda m: -m.score * (1.0 if _is_percent(m.series) == wants_percent else 0.9))


def _weights(series: list[_Series]) -> dict[str, float]:
    """Inverse frequency over the series: a word in every row or column ("total", "net") says little."""
    n = len(series) or 1
    counts: dict[str, int] = {}
    for item in series:
        for w in item.words:
            counts[w] = counts.get(w, 0) + 1
    return {w: math.log(1 + n / c) for w, c in counts.items()}


def _ref(cell: Cell) -> str:
    return "{" + cell.row.replace("{", "(").replace("}", ")").replace("|", "/") + " | " + cell.column.replace("|", "/") + "}"


def plan(question: str, tables: list[Table]) -> Plan | None:
    """A program answering ``question`` from one of ``tables``, or None when the question has no known shape
    or its cells cannot be found with confidence."""
    op = operation(question) or ("lookup" if _LOOKUP.search(question) else None)
    if op is None or not tables or _NOT_ARITHMETIC.search(question):
        return None
    words = _content(question)
    if not words:
        return None
    years = list(dict.fromkeys(_years(question)))
    best: tuple[float, Plan] | None = None
    for t, table in enumerate(tables):
        series = _series(table)
        weight = _weights(series)
        matches = _prefer_kind(op, question, _matches(words, series, weight))
        if not matches or matches[0].score < _MIN_SCORE:
            continue
        program = _program(op, question, years, series, matches, weight)
        if program is not None and (best is None or matches[0].score > best[0]):
            best = (matches[0].score, Plan(op, program, t))
    return best[1] if best else None


# "What was the trade accounts receivable in 2019?": one figure for one year, read from its cell.
_LOOKUP = re.compile(
    r"^\s*(?:what|how much) (?:is|was|were|are)\b.*\b(?:in|for|at|as of|during|of|on)\b(?: the)?(?: fiscal| fy)? ?'?(?:19|20)\d\d\b\s*\??\s*$",
    re.I,
)
_LOOKUP_MIN = 0.6  # a lookup answers with the cell itself, so the figure must match closely and alone


def _lookup(years: list[str], matches: list[_Match]) -> str | None:
    """The cell of the best-matching series for the one year named, when no other series matches as well."""
    if len(years) != 1:
        return None
    usable = [m for m in matches if years[0] in m.series.cells]
    if not usable or usable[0].score < _LOOKUP_MIN:
        return None
    if len(usable) > 1 and usable[1].score >= usable[0].score * 0.9:
        return None  # two figures fit the question about as well: not for the code to choose
    return _ref(usable[0].series.cells[years[0]])


_MIN_SCORE = 0.3  # a series sharing less with the question is a guess, not a match
_RANGE = re.compile(r"\bfrom\b.*\bto\b|\bbetween\b.*\bto\b|\bover\b|\bperiod\b|\bthrough\b|\d{4}\s*(?:[-–]|to)\s*(?:19|20)?\d\d\b", re.I)
# Where a two-sided question divides: "X as a percentage of Y", "ratio of X to Y", "difference between X and Y".
_SPLIT = re.compile(
    r"\bas an? (?:percentage|proportion|%|percent|share|fraction) of\b|\bout of\b|\bover\b|\bto\b|\bin (?:the )?total\b"
    r"|\bof (?:the )?total\b|\band\b|\bdivided by\b|\bagainst\b|\bcompared (?:to|with)\b|\bversus\b|\bvs\.?",
    re.I,
)


def _program(
    op: str, question: str, years: list[str], series: list[_Series], matches: list[_Match], weight: dict[str, float]
) -> str | None:
    top = matches[0].series
    if op == "lookup":
        return _lookup(years, matches)
    if op == "count":
        return _count(question, top)
    by_year = {y: c for y, c in top.cells.items() if y is not None}
    if op == "average" and len(years) == 1 and re.search(rf"\b{years[0]} average\b", question) and str(int(years[0]) - 1) in by_year:
        # "the 2019 average X": the average balance over the year, of its closing and opening (2018) values.
        years = [str(int(years[0]) - 1), years[0]]
    if op in ("change", "pct_change", "average", "sum") and (len(years) >= 2 or (not years and len(by_year) >= 2)):
        chosen = _chosen_years(question, years, by_year, op)
        if chosen is None:
            return None
        cells = [by_year[y] for y in chosen]
        if op in ("change", "pct_change"):
            # Earlier to later, however the question orders the years: TAT-QA's analysts do (measured: taking
            # "from 2019 to 2018" or "the difference between A and B" literally matched fewer answers).
            return f"{op}({_ref(cells[0])}, {_ref(cells[-1])})"
        return f"{op}({', '.join(_ref(c) for c in cells)})"
    if op in ("share", "ratio") and len(years) == 2 and all(y in by_year for y in years):
        # "the 2019 balance as a percentage of the 2018 balance": one figure, two years, in the order named.
        return f"{op}({_ref(by_year[years[0]])}, {_ref(by_year[years[1]])})"
    # Two series in one year: "difference between X and Y in 2019", "X as a percentage of Y", "ratio of X to Y".
    if len(years) > 1:
        return None
    pair = _two_sides(question, series, weight, years[0] if years else None)
    if pair is None:
        return None
    a, b = pair
    if op == "change":
        return f"{_ref(a)} - {_ref(b)}"
    if op == "pct_change":
        return f"pct_change({_ref(b)}, {_ref(a)})"
    if op in ("share", "ratio", "sum", "average"):
        return f"{op}({_ref(a)}, {_ref(b)})"
    return None


def _chosen_years(question: str, years: list[str], by_year: dict[str, Cell], op: str) -> list[str] | None:
    """The years to read, oldest first: those named, a range "from 2017 to 2019" in full for an average or a
    sum, or (none named) the table's two years."""
    if not years:
        have = sorted(by_year)
        return have[-2:] if op in ("change", "pct_change") else have  # "the average X": over every year shown
    if any(y not in by_year for y in years):
        return None
    chosen = sorted(years)
    if op in ("average", "sum") and len(chosen) == 2 and _RANGE.search(question):
        chosen = [y for y in sorted(by_year) if chosen[0] <= y <= chosen[1]]
    if op in ("change", "pct_change") and len(chosen) != 2:
        return None
    return chosen


def _cell_for(series: _Series, year: str | None) -> Cell | None:
    if year is not None:
        return series.cells.get(year)
    if None in series.cells:
        return series.cells[None]
    return series.cells[max(y for y in series.cells if y is not None)]  # no year named: the latest


_PART_OF_WHOLE = re.compile(
    r"\b(?:percentage|proportion|percent|share|fraction) of (?P<whole>.+?) (?:does|do|did|is|was|were) (?P<part>.+?) "
    r"(?:form|make up|represent|account for|constitute|comprise)",
    re.I,
)


def _two_sides(question: str, series: list[_Series], weight: dict[str, float], year: str | None) -> tuple[Cell, Cell] | None:
    """The cells on either side of the word that divides a two-sided question (the first side first), from
    the division where both sides match a series best; both for the same year (the one named, or the latest)."""
    best: tuple[float, Cell, Cell] | None = None
    inverted = _PART_OF_WHOLE.search(question)
    if inverted:  # "What percentage of the total income does Swiss income form?": the part is named second
        sides = [(_content(inverted.group("part")), _content(inverted.group("whole")))]
    else:
        sides = [(_content(question[: m.start()]), _content(question[m.end() :])) for m in _SPLIT.finditer(question)]
    for left, right in sides:
        if not left or not right:
            continue
        a, b = _matches(left, series, weight), _matches(right, series, weight)
        b = [m for m in b if not a or m.series is not a[0].series]
        if not a or not b or min(a[0].score, b[0].score) < _MIN_SCORE:
            continue
        if year is None:
            shared = [y for y in a[0].series.cells if y in b[0].series.cells]
            if not shared:
                continue
            pick = None if None in shared else max(y for y in shared if y is not None)
        else:
            pick = year
        cell_a, cell_b = _cell_for(a[0].series, pick), _cell_for(b[0].series, pick)
        if cell_a is None or cell_b is None:
            continue
        score = a[0].score + b[0].score
        if best is None or score > best[0]:
            best = (score, cell_a, cell_b)
    return (best[1], best[2]) if best else None


_THRESHOLD = re.compile(
    r"\b(exceed(?:ed|s)?|more than|greater than|above|over|higher than|less than|below|under|lower than)\s+\$?\s*([\d,]+(?:\.\d+)?)",
    re.I,
)
_ABOVE = ("exceed", "exceeded", "exceeds", "more than", "greater than", "above", "over", "higher than")


def _count(question: str, top: _Series) -> str | None:
    """How many years did X exceed N: count(cell > N, ...) over the series' years."""
    match = _THRESHOLD.search(question)
    by_year = {y: c for y, c in top.cells.items() if y is not None}
    if not match or len(by_year) < 2:
        return None
    sign = ">" if match.group(1).lower() in _ABOVE else "<"
    limit = match.group(2).replace(",", "")
    return "count(" + ", ".join(f"{_ref(by_year[y])} {sign} {limit}" for y in sorted(by_year)) + ")"
