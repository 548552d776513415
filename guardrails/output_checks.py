"""Validators for answers: citations, grounding, numbers. They read what the caller passes in the context:
``passages`` (the texts numbered [1], [2], ... in the prompt), optionally ``support`` (a function scoring a
sentence against passages with embeddings, 0..1), ``question``, and ``computed`` (the text of a computation
the code ran over cited table cells: its sentences and numbers are supported by construction)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from core.citations import MARKER, NO_ANSWER, find_markers, split_sentences

Span = tuple[int, int]
# A sentence counts as supported when this share of its content words is in the passages it cites ...
LEXICAL_SUPPORT = 0.6
# ... or when its embedding is this close to one of the cited passages' sentences.
EMBEDDING_SUPPORT = 0.75
_WORD = re.compile(r"[a-z0-9]+")
STOPWORDS = frozenset(
    "a an the and or but if of to in on at by for with from as is are was were be been being it its this that these "
    "those which who whom what when where why how there their they them he she his her we our you your i can may might "
    "will would should could do does did not no so than then also such into about over under more most other some any "
    "each all both has have had".split()
)


def _passages(context: Mapping[str, Any]) -> list[str]:
    return [str(p) for p in context.get("passages") or []]


def is_refusal(text: str) -> bool:
    return NO_ANSWER.lower().rstrip(".") in text.lower()


def content_words(text: str) -> list[str]:
    return [w for w in _WORD.findall(MARKER.sub(" ", text.lower())) if w not in STOPWORDS]


def lexical_support(sentence: str, passages: Sequence[str]) -> float:
    words = content_words(sentence)
    if not words:
        return 1.0
    vocabulary = set(_WORD.findall(" ".join(passages).lower()))
    return sum(w in vocabulary for w in words) / len(words)


def sentence_spans(text: str) -> list[tuple[Span, str]]:
    """Sentences of ``text`` with their spans (split like core.citations.split_sentences)."""
    out, pos = [], 0
    for sentence in split_sentences(text):
        start = text.find(sentence, pos)
        if start < 0:
            continue
        out.append(((start, start + len(sentence)), sentence))
        pos = start + len(sentence)
    return out


def missing_citation(text: str, context: Mapping[str, Any]) -> list[Span | None]:
    """The whole answer, when it cites no given passage (a refusal needs no citation)."""
    if is_refusal(text) or not text.strip():
        return []
    return [] if any(m.valid for m in find_markers(text, len(_passages(context)))) else [None]


def invalid_citations(text: str, context: Mapping[str, Any]) -> list[Span]:
    """Markers naming a passage that was not given (``[7]`` with five passages)."""
    return list(dict.fromkeys((m.start, m.end) for m in find_markers(text, len(_passages(context))) if not m.valid))


def unsupported_sentences(text: str, context: Mapping[str, Any]) -> list[Span]:
    """Sentences that cite no valid passage, or whose cited passages do not support them, lexically or
    (when the context carries a ``support`` scorer) by embedding similarity."""
    passages = _passages(context)
    support: Callable[[str, list[str]], float] | None = context.get("support")
    computed = str(context.get("computed") or "")
    spans = []
    for span, sentence in sentence_spans(text):
        if is_refusal(sentence) or (computed and sentence.strip() in computed):
            continue
        cited = [m.number for m in find_markers(sentence, len(passages)) if m.valid]
        sources = [passages[n - 1] for n in dict.fromkeys(cited)]
        if sources and lexical_support(sentence, sources) >= LEXICAL_SUPPORT:
            continue
        if sources and support is not None and support(MARKER.sub("", sentence), sources) >= EMBEDDING_SUPPORT:
            continue
        spans.append(span)
    return spans


_NUMBER = re.compile(r"(?<![\w.])[-+]?\$?\d[\d,]*(?:\.\d+)?%?")
# A scale word after an amount: "$5.1 billion", "5,067 million", "12k".
_SCALE = re.compile(r"\s*(thousand|million|billion|trillion|bn|mn|k)\b", re.I)
_LIST_LEAD = re.compile(r"(?:^|[:;,\n]|\band|\bor)\s*$", re.I)  # what comes before an item number: "are: 1)", "and 2)"
_FACTORS = {"thousand": 1e3, "k": 1e3, "million": 1e6, "mn": 1e6, "billion": 1e9, "bn": 1e9, "trillion": 1e12}


def _canonical(number: str) -> str:
    digits = number.strip("+-$%").replace(",", "")
    return digits.rstrip("0").rstrip(".") if "." in digits else digits


def _amount(text: str, match: re.Match) -> tuple[float, float] | None:
    """The amount a number with a scale word states, in units, and half its last written place ("$5.1
    billion" is 5.1e9 +- 0.05e9); None without a scale word."""
    scale = _SCALE.match(text, match.end())
    if scale is None or match.group(0).endswith("%"):
        return None
    digits = match.group(0).strip("+-$").replace(",", "")
    places = len(digits.split(".")[1]) if "." in digits else 0
    factor = _FACTORS[scale.group(1).lower()]
    return float(digits) * factor, 0.5 * 10**-places * factor


def _unknown_numbers(text: str, passages: Sequence[str]) -> list[Span]:
    """Numbers in ``text`` that none of ``passages`` states; citation markers and list numbering ("1)") are not
    numbers. An amount with a scale word may round one the passages state ("$5.1 billion" for "$5,067
    million"): rounding a shown figure is not arithmetic."""
    joined = " ".join(passages)
    known = {_canonical(m.group(0)) for m in _NUMBER.finditer(joined)}
    amounts = [a for m in _NUMBER.finditer(joined) if (a := _amount(joined, m)) is not None]
    spans = []
    for match in _NUMBER.finditer(text):
        before = text[: match.start()]
        if before.endswith("[") or before.endswith(", ") and re.search(r"\[[\d,\s]*$", before):
            continue  # inside a citation marker
        if (
            text[match.end() : match.end() + 1] == ")"
            and _LIST_LEAD.search(before)
            and match.group(0).isdigit()
            and len(match.group(0)) <= 2
        ):
            continue  # an item of a numbered list: "are: 1) Full-Service Bookkeeping and 2) ..."
        if _canonical(match.group(0)) in known:
            continue
        stated = _amount(text, match)
        if stated is not None and any(abs(stated[0] - value) <= stated[1] for value, _ in amounts):
            continue
        spans.append(match.span())
    return spans


def unsupported_numbers(text: str, context: Mapping[str, Any]) -> list[Span]:
    """Numbers (doses, amounts, percentages) in the answer that appear in none of the passages, outside what
    the code computed."""
    computed = str(context.get("computed") or "")
    spans = []
    for (start, _), sentence in sentence_spans(text):
        if computed and sentence.strip() in computed:
            continue
        spans += [(start + a, start + b) for a, b in _unknown_numbers(sentence, _passages(context))]
    return spans


def unshown_numbers(text: str, context: Mapping[str, Any]) -> list[Span]:
    """Sentences stating a number that is neither in a passage they cite (in any passage, when they cite none)
    nor the result of a computation shown with it: arithmetic done in the model's head."""
    passages = _passages(context)
    computed = str(context.get("computed") or "")
    spans = []
    for span, sentence in sentence_spans(text):
        if computed and sentence.strip() in computed:
            continue
        cited = [passages[m.number - 1] for m in find_markers(sentence, len(passages)) if m.valid]
        if _unknown_numbers(sentence, cited or passages):
            spans.append(span)
    return spans


# A dose: a number with a unit of amount or a frequency ("500 mg", "2.5 mL", "10 units", "twice a day" is
# words, "3 times a day" is a dose). Ranges ("1 to 2 tablets", "5-10 mg") are one dose.
_DOSE = re.compile(
    r"(?<![\w.])(\d+(?:[.,]\d+)?(?:\s*(?:-|–|to)\s*\d+(?:[.,]\d+)?)?)\s*"
    r"(mg|mcg|µg|micrograms?|milligrams?|grams?|g|kg|ml|millilit(?:er|re)s?|l|international units?|units?|iu|tablets?|capsules?|pills?|puffs?|drops?|"
    r"sprays?|patch(?:es)?|(?:times|x)\s+(?:a|per|each)\s+(?:day|week)|times\s+daily|mg/kg|mg/day|mg/ml|mg/m2)(?![\w/])",
    re.I,
)
_DOSE_UNITS = {
    "milligram": "mg",
    "milligrams": "mg",
    "microgram": "mcg",
    "micrograms": "mcg",
    "µg": "mcg",
    "gram": "g",
    "grams": "g",
    "milliliter": "ml",
    "milliliters": "ml",
    "millilitre": "ml",
    "millilitres": "ml",
    "iu": "units",
    "unit": "units",
}


def _dose_key(number: str, unit: str) -> str:
    number = re.sub(r",(?=\d{3}\b)", "", number).replace(",", ".")  # "1,000" is a thousand, "2,5" two and a half
    number = re.sub(r"\s*(?:-|–|to)\s*", "-", number)
    unit = " ".join(unit.lower().split())
    unit = _DOSE_UNITS.get(unit, unit.rstrip("s") if unit.endswith(("tablets", "capsules", "pills", "puffs", "drops", "sprays")) else unit)
    unit = re.sub(r"^(?:times|x) (?:a|per|each) ", "times a ", unit).replace("times daily", "times a day")
    return f"{number} {unit}"


def doses(text: str) -> list[tuple[Span, str]]:
    """Every dose in ``text`` with its span, as a comparable key ("500 mg", "2-3 times a day")."""
    return [(m.span(), _dose_key(m.group(1), m.group(2))) for m in _DOSE.finditer(MARKER.sub(lambda x: " " * len(x.group(0)), text))]


def uncopied_doses(text: str, context: Mapping[str, Any]) -> list[Span]:
    """Doses in the answer that the passages its sentence cites (any passage, when it cites none) do not state
    with the same number and unit: a dose must be copied exactly, never converted or recalled."""
    passages = _passages(context)
    spans = []
    for (start, _), sentence in sentence_spans(text):
        cited = [passages[m.number - 1] for m in find_markers(sentence, len(passages)) if m.valid]
        known = {key for passage in (cited or passages) for _, key in doses(passage)}
        spans += [(start + a, start + b) for (a, b), key in doses(sentence) if key not in known]
    return spans


# A cell under its column header: "2019: 1,496", "Fiscal 2019 (in millions): $ 5,686" (a header has letters or is a year).
_HEADED_CELL = re.compile(r"^[^:|]*(?:[^\W\d_]|\b(?:19|20)\d\d\b)[^:|]*:\s*\S")


def quotable(sentence: str) -> bool:
    """A sentence fit to quote as evidence: prose, or a table row that carries its row label and column
    headers ("Revenue | 2019: 1,496 | 2018: 1,334", as ingest renders tables); not a page heading, a
    statement's title, a table caption or a run of bare cells (on real 10-K pages those are most of what
    shares words with a question), nor a lead-in ending in a colon ("Revenue by region was as follows:"),
    which says nothing without the table it introduces, nor a question (FAQ pages head answers with them)."""
    if sentence.count("|") >= 2:
        label, *cells = [c.strip() for c in sentence.split("|")]
        headed = [c for c in cells if _HEADED_CELL.match(c)]
        return bool(re.search(r"[^\W\d_]{3}", label)) and bool(headed) and len(headed) * 2 >= len(cells)
    if sentence.rstrip().endswith((":", "?")):  # a lead-in, or a question heading ("How might it be treated?")
        return False
    words = re.findall(r"[^\W\d_]+", sentence)
    if len(words) < 6:
        return False
    digits, letters = sum(c.isdigit() for c in sentence), sum(c.isalpha() for c in sentence)
    if digits > letters / 2:
        return False
    capitalised = sum(w[0].isupper() for w in words)
    return capitalised / len(words) <= 0.6  # Title Case Throughout: a heading


def _singular(word: str) -> str:
    """A plural's singular, near enough for matching: losses -> loss, liabilities -> liability, margins -> margin."""
    if len(word) <= 3 or not word.endswith("s") or word.endswith("ss"):
        return word
    if word.endswith("ies"):
        return word[:-3] + "y"
    return word[:-2] if word.endswith(("sses", "xes", "ches", "shes")) else word[:-1]


def _mentioned(terms: Sequence[str], sentence: str) -> int:
    """How many of ``terms`` (each one or more words: "coca-cola", "fy2018") the sentence mentions."""
    words = {_singular(w) for w in re.findall(r"[a-z]+|\d+", sentence.lower())}
    return sum(all(_singular(p) in words for p in re.findall(r"[a-z]+|\d+", term.lower())) for term in terms)


def quote_fallback(
    question: str, passages: Sequence[str], k: int = 2, evidence: Sequence[int] | None = None, terms: Sequence[str] | None = None
) -> str:
    """The passages' sentences that bear on the question, as cited quotations, for an answer that could
    not be written ("" when none does). Only passages numbered in ``evidence`` (the answerability check's
    accepted ones; None: all), only quotable sentences, and only those mentioning two of the question's key
    terms (``terms``, from the answerability check; both when it has two, the one when it has one; without
    them, the question's content words, half of them up to two: "who" and "what" then count too)."""
    if terms is None:
        wanted = sorted(set(content_words(question)))
        needed = min(2, (len(wanted) + 1) // 2)
    else:
        wanted = list(dict.fromkeys(t for t in terms if t))
        needed = min(2, len(wanted))
    allowed = set(evidence) if evidence is not None else None
    scored = []
    for number, passage in enumerate(passages, start=1):
        if allowed is not None and number not in allowed:
            continue
        for position, sentence in enumerate(split_sentences(passage)):
            overlap = _mentioned(wanted, sentence)
            if needed and overlap >= needed and quotable(sentence):
                scored.append((-overlap, number, position, sentence))
    best = sorted(scored)[:k]  # most overlap first; ties go to the higher-ranked passage, then earlier sentences
    return "\n".join(f'"{sentence.strip()}" [{number}]' for _, number, _, sentence in best)


def always(text: str, context: Mapping[str, Any]) -> list[Span | None]:
    """Fires on any non-empty text: for disclaimers."""
    return [None] if text.strip() else []


VALIDATORS = {
    "always": always,
    "citations.missing": missing_citation,
    "citations.invalid": invalid_citations,
    "grounding": unsupported_sentences,
    "numbers": unsupported_numbers,
    "numbers.unshown": unshown_numbers,
    "numbers.doses": uncopied_doses,
}
