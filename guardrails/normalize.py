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
# Tokens that are numbers with a unit or codes ("500mg", "2.5ml", "10k", "b12", "401k", "covid19"): their
# digits are digits. Leetspeak is read only in tokens that mix letters and digits some other way.
_UNITS = "mg|mcg|ug|g|kg|ml|dl|l|mmol|mol|iu|u|k|m|bn|b|x|s|h|hr|hrs|min|d|wk|y|yr|yrs|st|nd|rd|th|am|pm|mm|cm|km|lb|lbs|oz|kb|mb|gb|tb|q|fy|h1|h2|k|ks"
_NOT_LEET = re.compile(rf"\d+(?:[.,/\-]\d+)*-?(?:{_UNITS})?|[a-z]{{1,3}}-?\d+[a-z]?|covid-?19|\d+-[a-z]{{1,2}}")
_TOKEN = re.compile(r"[^\s.,;:!?()\"'\[\]]*[^\s]")
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


def _read_leet(match: re.Match) -> str:
    """One token with leetspeak read as letters: "1gn0re" -> "ignore", "pr3v10us" -> "previous"; symbols
    only between letters ("h@ck" -> "hack", but "now!" and "US$" keep theirs); numbers, amounts with units
    and codes unchanged. Same length in, same length out, so character origins stay valid."""
    token = match.group(0)
    core = token.rstrip("!?.,;:)\"'")
    if not re.search(r"[a-z]", core) or _NOT_LEET.fullmatch(core):
        return token
    chars = list(core)
    for i, ch in enumerate(chars):
        if ch.isdigit():
            chars[i] = ch.translate(LEET)
    # Symbols inside a word ("p@$$w0rd"), never at its edges ("now!", "US$", "@home").
    for i, ch in enumerate(chars):
        if (
            ch in "@$!|"
            and 0 < i < len(chars) - 1
            and (chars[i - 1].isalpha() or chars[i - 1] in "@$!|")
            and (chars[i + 1].isalpha() or chars[i + 1] in "@$!|")
        ):
            chars[i] = ch.translate(LEET)
    return "".join(chars) + token[len(core) :]


def strip_accents(text: str) -> str:
    """Base letters only ("möchte" -> "mochte"), as the normalised text has them: for rule patterns."""
    return "".join(unicodedata.normalize("NFD", c)[0] if c.isalpha() else c for c in text)


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
    flat = strip_accents(flat)
    if leet:
        flat = _TOKEN.sub(_read_leet, flat)
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
