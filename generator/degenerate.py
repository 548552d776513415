"""Generations that have stopped saying anything: a word or phrase repeated over and over ("Therachon,
Therachon, Therachon, ..."), watched while the text streams so it is stopped early instead of running to
its token limit, and then treated as "could not answer".

A small model loops when the passages do not hold what it was asked: measured on the held-out finance
questions, the typical failure ran the same name for 200 tokens. Greedy decoding makes a loop final: once
a phrase has come back three times in a row it does not stop by itself.
"""

from __future__ import annotations

import re

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
# A phrase of up to this many words, repeated back to back this many times (a single word: WORD_REPEATS).
MAX_PHRASE_WORDS = 12
PHRASE_REPEATS = 3
WORD_REPEATS = 5


def loop_at_end(words: list[str]) -> int:
    """The length of the phrase repeated back to back at the end of ``words`` (0 when there is none)."""
    for size in range(1, MAX_PHRASE_WORDS + 1):
        repeats = WORD_REPEATS if size == 1 else PHRASE_REPEATS
        span = size * repeats
        if len(words) < span:
            break
        tail = words[-span:]
        if all(tail[i] == tail[i % size] for i in range(span)):
            return size
    return 0


class LoopDetector:
    """Fed the streamed pieces; ``looping`` turns True once the text ends in a repeated phrase."""

    def __init__(self) -> None:
        self.text = ""
        self.looping = False
        self.phrase = ""

    def feed(self, piece: str) -> bool:
        self.text += piece
        if not self.looping:
            words = [w.lower() for w in _WORD.findall(self.text[-2000:])]
            size = loop_at_end(words)
            if size:
                self.looping, self.phrase = True, " ".join(words[-size:])
        return self.looping


def is_degenerate(text: str) -> bool:
    """A finished text that loops, or holds no word outside its citation markers."""
    words = [w.lower() for w in _WORD.findall(re.sub(r"\[[\d,;\s]*\]", " ", text))]
    if not words:
        return True
    return any(loop_at_end(words[: end + 1]) for end in range(len(words)))
