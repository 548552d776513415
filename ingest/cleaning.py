"""Text cleaning applied to every loaded document before chunking.

Offsets of chunks refer to the cleaned text, which is what the collection stores.
"""

from __future__ import annotations

import re
import unicodedata

# Zero-width and other invisible format characters that break words and token matching.
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"), None)
_SPACES = re.compile(r"[ \t\f\v\u00a0\u2000-\u200a\u202f\u205f\u3000]+")
# Control characters other than newline and tab (\x7f and C1 controls included).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# A word broken by a hyphen at a line end ("treat-\nment"), as PDFs often have.
_HYPHENATED = re.compile(r"(\w)-\n(\w)")
_MANY_NEWLINES = re.compile(r"\n{3,}")


def clean_text(text: str) -> str:
    text = unicodedata.normalize("NFC", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n").translate(_INVISIBLE)
    text = _CONTROL.sub(" ", text)
    text = _HYPHENATED.sub(r"\1\2", text)
    lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    text = "\n".join(lines)
    return _MANY_NEWLINES.sub("\n\n", text).strip()


def clean_title(title: str) -> str:
    return " ".join(clean_text(title).split())
