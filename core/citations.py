"""Citation markers in an answer: ``[1]``, ``[2, 3]``, ``[1][4]``, mapped back to the numbered passages,
and the fixed sentences an answer uses when the passages do not hold the answer or none could be written.

In the bottom layer because the generator (writes them), the guardrails (check them) and the evaluation
(scores them) all read answers the same way."""

from __future__ import annotations

import re
from dataclasses import dataclass

NO_ANSWER = "The passages do not contain the answer."
# The lead of an answer the model could not write, where passages bearing on the question exist: what
# follows are quotations, shown as evidence rather than as an answer.
COULD_NOT_ANSWER = "No answer could be written from the passages. What they say that bears on the question:"
MARKER = re.compile(r"\[(\s*\d+\s*(?:[,;]\s*\d+\s*)*)\]")


@dataclass(frozen=True)
class Marker:
    number: int  # as written in the answer: 1-based
    start: int  # character span of the whole [..] marker in the answer
    end: int
    valid: bool  # refers to a passage that was given


def find_markers(answer: str, n_passages: int) -> list[Marker]:
    markers = []
    for match in MARKER.finditer(answer):
        for part in re.split(r"[,;]", match.group(1)):
            number = int(part)
            markers.append(Marker(number, match.start(), match.end(), 1 <= number <= n_passages))
    return markers


def cited_numbers(answer: str, n_passages: int) -> list[int]:
    """Valid passage numbers in order of first citation, without repeats."""
    return list(dict.fromkeys(m.number for m in find_markers(answer, n_passages) if m.valid))


def invalid_numbers(answer: str, n_passages: int) -> list[int]:
    return list(dict.fromkeys(m.number for m in find_markers(answer, n_passages) if not m.valid))


# A sentence ends at . ! or ? followed by whitespace (so "12.5" stays whole), taking any citation markers
# right after the full stop with it; a line break also ends one.
BOUNDARY = re.compile(r"[.!?]+(?:\s*\[[\d,;\s]+\])*(?=\s|$)|\n+")


def split_sentences(answer: str) -> list[str]:
    parts, start = [], 0
    for match in BOUNDARY.finditer(answer):
        parts.append(answer[start : match.end()])
        start = match.end()
    parts.append(answer[start:])
    return [p.strip() for p in parts if any(c.isalnum() for c in MARKER.sub("", p))]
