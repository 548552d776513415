"""Text normalisation before matching, so obfuscation does not slip past a rule: Unicode NFKC (full-width
and styled letters become plain ones), invisible characters dropped, lower case, leetspeak digits and
symbols read as letters, letters spread out with spaces or dots joined again ("i g n o r e", "i.g.n.o.r.e"),
runs of whitespace collapsed.

Every normalised character remembers the index of the original character it came from, so a match in the
normalised text maps back to a span of the original.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s", "!": "i", "|": "l"})
# Single letters separated by one space, dot, dash, underscore or asterisk, at least four in a row.
_SPREAD = re.compile(r"(?<![a-z])(?:[a-z][ ._*\-]){3,}[a-z](?![a-z])")


@dataclass(frozen=True)
class Normalised:
    text: str
    origin: tuple[int, ...]  # origin[i] = index in the original text of normalised character i

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The original span that normalised[start:end] came from."""
        if not self.origin:
            return (0, 0)
        return (self.origin[start], self.origin[max(start, end - 1)] + 1)


def _invisible(ch: str) -> bool:
    # Format characters (zero-width space and joiners, soft hyphen, bidi controls) and variation selectors.
    return unicodedata.category(ch) == "Cf" or "\ufe00" <= ch <= "\ufe0f"


def normalise(text: str, *, leet: bool = True) -> Normalised:
    chars: list[str] = []
    origin: list[int] = []
    for i, ch in enumerate(text):
        if _invisible(ch):
            continue
        for out in unicodedata.normalize("NFKC", ch).lower():
            if unicodedata.combining(out):
                continue  # accents stripped: "ïgnore" reads as "ignore"
            chars.append(out)
            origin.append(i)
    flat = "".join(chars)
    # Accents: decompose what NFKC composed, keep the base letters (ä -> a). German umlauts stay readable.
    decomposed = [unicodedata.normalize("NFD", c)[0] if c.isalpha() else c for c in flat]
    flat = "".join(decomposed)
    if leet:
        # Only inside words: "4ll" -> "all", "1gn0re" -> "ignore", but "in 2019" keeps its digits.
        flat = re.sub(r"(?<=[a-z])[013457@$!|]+|[013457@$|]+(?=[a-z])", lambda m: m.group(0).translate(LEET), flat)
    # Join letters spread out with separators, and collapse whitespace; both shorten, so rebuild origin.
    out_chars: list[str] = []
    out_origin: list[int] = []
    pos = 0
    for match in _SPREAD.finditer(flat):
        for j in range(pos, match.start()):
            out_chars.append(flat[j])
            out_origin.append(origin[j])
        for j in range(match.start(), match.end()):
            if flat[j].isalpha():
                out_chars.append(flat[j])
                out_origin.append(origin[j])
        pos = match.end()
    for j in range(pos, len(flat)):
        out_chars.append(flat[j])
        out_origin.append(origin[j])
    final_chars: list[str] = []
    final_origin: list[int] = []
    for ch, o in zip(out_chars, out_origin):
        if ch.isspace():
            if not final_chars or final_chars[-1] == " ":
                continue
            ch = " "
        final_chars.append(ch)
        final_origin.append(o)
    while final_chars and final_chars[-1] == " ":
        final_chars.pop()
        final_origin.pop()
    return Normalised("".join(final_chars), tuple(final_origin))
