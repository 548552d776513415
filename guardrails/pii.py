"""PII detection and redaction for user questions (medical/finance assistant), standard library only.

Seven kinds: email, phone, ssn, credit_card, iban, date_of_birth, mrn. Precision matters as much as recall:
a question full of money, doses, dates, ICD codes and table numbers must come through untouched, so

- numbers with a checksum (credit card: Luhn; IBAN: ISO 13616 mod-97; SSN: the SSA's impossible ranges) are
  reported only when the checksum passes;
- numbers with no checksum and no fixed shape (dates of birth, medical record numbers, bare 9-digit SSNs)
  are reported only after a cue word ("DOB", "MRN", "SSN", ...);
- phone numbers need phone-like grouping or a leading "+".

Matches carry the kind and the span, never the value, so they can be logged. ``find_pii`` resolves overlaps
over all kinds before filtering, so a card number is never also reported as a phone number.

``VALIDATORS`` exposes each kind to the rule engine as ``validator(text, context) -> [(start, end), ...]``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Any

KINDS = ("email", "phone", "ssn", "credit_card", "iban", "date_of_birth", "mrn")

LABELS = {
    "email": "[EMAIL]",
    "phone": "[PHONE]",
    "ssn": "[SSN]",
    "credit_card": "[CARD]",
    "iban": "[IBAN]",
    "date_of_birth": "[DOB]",
    "mrn": "[MRN]",
}

# Overlap tie-break after length: checksummed kinds are the strongest evidence, then cue-based ones,
# then shape-only ones (phone last: many number shapes look like phones).
_SPECIFICITY = {"iban": 0, "credit_card": 1, "ssn": 2, "mrn": 3, "date_of_birth": 4, "email": 5, "phone": 6}


@dataclass(frozen=True)
class PiiMatch:
    kind: str
    start: int
    end: int


# ------------------------------------------------------------------------------------------------ checksums


def luhn_valid(digits: str) -> bool:
    """Luhn (mod 10) check on a digit string; spaces and dashes are ignored."""
    digits = re.sub(r"[ -]", "", digits)
    if not digits.isdigit() or len(digits) < 2:
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:  # every second digit from the right is doubled
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


# ISO 13616 lengths of the common countries; any other country code gets the generic 15-34.
IBAN_LENGTHS = {
    "DE": 22, "GB": 22, "FR": 27, "ES": 24, "IT": 27, "NL": 18, "BE": 16, "CH": 21, "AT": 20,
    "IE": 22, "PL": 28, "SE": 24, "DK": 18, "NO": 15, "FI": 18, "PT": 25, "LU": 20,
}  # fmt: skip


def iban_mod97(iban: str) -> int:
    """The ISO 7064 mod-97 remainder of an IBAN (country and check digits moved to the end, letters as 10..35)."""
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97


def iban_valid(text: str) -> bool:
    """True for a well-formed IBAN (spaces allowed) with the right length for its country and mod-97 == 1."""
    iban = re.sub(r"\s", "", text).upper()
    if not re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]+", iban):
        return False
    expected = IBAN_LENGTHS.get(iban[:2])
    if expected is not None and len(iban) != expected:
        return False
    if not 15 <= len(iban) <= 34:
        return False
    if not 2 <= int(iban[2:4]) <= 98:  # computed check digits are 98 - remainder: never 00, 01 or 99
        return False
    return iban_mod97(iban) == 1


_SSN_ADVERTISING = {("078", "05", "1120"), ("219", "09", "9999")}  # printed on sample cards, used by thousands


def ssn_valid(area: str | int, group: str | int, serial: str | int) -> bool:
    """US SSA rules: area not 000, 666 or 900-999; group not 00; serial not 0000; not a known advertising number."""
    a, g, s = str(area).zfill(3), str(group).zfill(2), str(serial).zfill(4)
    if not (a.isdigit() and g.isdigit() and s.isdigit()) or (len(a), len(g), len(s)) != (3, 2, 4):
        return False
    if a == "000" or a == "666" or a[0] == "9" or g == "00" or s == "0000":
        return False
    return (a, g, s) not in _SSN_ADVERTISING


# ------------------------------------------------------------------------------------------------ detectors

_EMAIL = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9](?:[A-Za-z0-9._%+-]{0,62}[A-Za-z0-9_%+-])?"
    r"@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
    r"\.[A-Za-z]{2,24}(?![\w-]|\.[A-Za-z0-9])"
)

# US/NANP: (555) 123-4567, 555-123-4567, 555.123.4567, 555 123 4567, optional +1 / 1- prefix. The area code
# starts with 2-9 (NANP), the separator is the same twice; not glued to a longer number, a decimal or money.
_PHONE_US = re.compile(
    r"(?<![\w+$€£.,/-])(?:\+?1[ .-]?)?"
    r"(?:\([2-9]\d{2}\)[ ]?\d{3}[ .-]\d{4}|[2-9]\d{2}(?P<sep>[ .-])\d{3}(?P=sep)\d{4})"
    r"(?![\w%]|[.,/-]\d)"
)
# International: a leading "+", then either 8-15 digits in one run or a country code and groups separated
# by space, dot or dash (an optional "(0)" or "(20)" area group); 8 to 15 digits in all (E.164).
_PHONE_INTL = re.compile(r"(?<![\w+])\+(?:\d{8,15}|\d{1,3}(?:[ .-]?\(\d{1,4}\)[ .-]?\d{1,8})?(?:[ .-]\d{1,8}){0,6})(?![\d%]|[.,/-]\d)")

_SSN = re.compile(r"(?<![\w-])(\d{3})([- ])(\d{2})\2(\d{4})(?![\w-]|[.,]\d)")
# A bare 9-digit number is an SSN only right after "SSN" / "social security (number)".
_SSN_CUED = re.compile(
    r"(?i)\b(?:ssn|social[ -]security(?:[ -](?:number|no\.?|num\.?|#))?)(?:[\s:#=.-]|\bis\b|\bwas\b){0,6}"
    r"(?<![\w-])(\d{3})[- ]?(\d{2})[- ]?(\d{4})(?![\w-]|[.,]\d)"
)

# A run of digits in groups separated by a single space or dash: the whole run is the candidate card number
# (never a part of it: the first 16 digits of a longer number are not a card). A trailing group that starts
# a date or decimal ("... 1111 12/25") is left out of the run.
_DIGIT_RUN = re.compile(r"(?<![\w.,/-])\d+(?:[ -]\d+(?!\d|[/.:,]\d))*")
_CARD_LENGTHS = {"visa": (13, 16, 19), "mastercard": (16,), "amex": (15,), "discover": (16, 17, 18, 19)}


def _card_brand(digits: str) -> str | None:
    if digits[0] == "4":
        return "visa"
    if 51 <= int(digits[:2]) <= 55 or 2221 <= int(digits[:4]) <= 2720:
        return "mastercard"
    if digits[:2] in ("34", "37"):
        return "amex"
    if digits.startswith("6011") or digits.startswith("65"):
        return "discover"
    return None


def _is_card(groups: list[str], seps: set[str]) -> bool:
    digits = "".join(groups)
    if len(seps) > 1 or not 13 <= len(digits) <= 19:
        return False
    # Printed cards are grouped 4-4-4-4(-3), 4-6-5 (Amex) or 4-6-4 (Diners): a first group of 4, others 3-6.
    if len(groups) > 1 and (len(groups[0]) != 4 or any(not 3 <= len(g) <= 6 for g in groups[1:])):
        return False
    brand = _card_brand(digits)
    return brand is not None and len(digits) in _CARD_LENGTHS[brand] and luhn_valid(digits)


def _find_cards(text: str) -> Iterable[tuple[int, int]]:
    for run in _DIGIT_RUN.finditer(text):
        start = run.start()
        # Glued by one separator to a token with digits ("DE89 3704 ..."): part of something longer.
        if start >= 2 and text[start - 1] in " -" and text[start - 2].isalnum():
            token = re.search(r"[A-Za-z0-9]+$", text[: start - 1])
            if token and any(ch.isdigit() for ch in token.group(0)):
                continue
        pieces = re.split(r"([ -])", run.group(0))
        if _is_card(pieces[0::2], set(pieces[1::2])):
            yield run.span()


_IBAN_START = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2}\d{2}(?=[ ]?[A-Za-z0-9])")


def _find_ibans(text: str) -> Iterable[tuple[int, int]]:
    for m in _IBAN_START.finditer(text):
        known = IBAN_LENGTHS.get(m.group(0)[:2].upper())
        # Typed in lower case ("de89 3704 ...") only for the listed countries: with a fixed length the
        # checksum still decides; an unknown pair of lower-case letters is just a word.
        lower_ok = known is not None
        if not lower_ok and not m.group(0)[:2].isupper():
            continue
        # Walk forward over alphanumerics, allowing single spaces between groups; remember where each
        # character ends so a candidate of n characters maps back to a span.
        ends: list[int] = []
        chars: list[str] = []
        i = m.start()
        while i < len(text) and len(chars) < 34:
            ch = text[i]
            if ch.isascii() and (ch.isdigit() or ch.isupper() or (lower_ok and ch.islower())):
                chars.append(ch)
                ends.append(i + 1)
                i += 1
            elif ch == " " and i + 1 < len(text) and text[i + 1].isascii() and text[i + 1].isalnum() and chars:
                i += 1
            else:
                break
        lengths = [known] if known else range(min(len(chars), 34), 14, -1)
        for n in lengths:
            if n > len(chars):
                continue
            end = ends[n - 1]
            # It must end where a token ends (not in the middle of "…0130 00ABC").
            if end < len(text) and text[end].isascii() and text[end].isalnum():
                continue
            if iban_valid("".join(chars[:n])):
                yield m.start(), end
                break


# Birth cues, and the dates that may follow them within ~30 characters.
_DOB_CUE = re.compile(
    r"(?i)(?<![\w])(?:date\s+of\s+birth|birth\s*date|birthdate|birthday|born(?:\s+on)?|d\.?\s?o\.?\s?b\b\.?"
    r"|geburtsdatum|geb\.|geboren(?:\s+am)?)"
)
_MONTHS = {
    **dict.fromkeys(["january", "jan", "januar", "janvier", "enero"], 1),
    **dict.fromkeys(["february", "feb", "februar", "febr"], 2),
    **dict.fromkeys(["march", "mar", "märz", "maerz", "marz"], 3),
    **dict.fromkeys(["april", "apr"], 4),
    **dict.fromkeys(["may", "mai"], 5),
    **dict.fromkeys(["june", "jun", "juni"], 6),
    **dict.fromkeys(["july", "jul", "juli"], 7),
    **dict.fromkeys(["august", "aug"], 8),
    **dict.fromkeys(["september", "sep", "sept"], 9),
    **dict.fromkeys(["october", "oct", "oktober", "okt"], 10),
    **dict.fromkeys(["november", "nov"], 11),
    **dict.fromkeys(["december", "dec", "dezember", "dez"], 12),
}
_MONTH = "(?:" + "|".join(sorted(map(re.escape, _MONTHS), key=len, reverse=True)) + r")\.?"
_DATES = [
    # 14 March 1985, 14th of March 1985, 14. März 1985
    ("dmy", re.compile(rf"(?i)\b(\d{{1,2}})(?:st|nd|rd|th|\.)?\s+(?:of\s+)?({_MONTH}),?\s+(\d{{4}})\b")),
    # March 14, 1985 / Mar 14 1985
    ("mdy", re.compile(rf"(?i)\b({_MONTH})\s+(\d{{1,2}})(?:st|nd|rd|th)?,?\s+(\d{{4}})\b")),
    # 1985-03-14 / 1985/03/14
    ("iso", re.compile(r"(?<![\w.,/-])(\d{4})([-/.])(\d{1,2})\2(\d{1,2})(?![\w]|[.,/-]\d)")),
    # 03/14/1985, 14.03.1985, 14-03-85
    ("num", re.compile(r"(?<![\w.,/-])(\d{1,2})([-/.])(\d{1,2})\2(\d{4}|\d{2})(?![\w]|[.,/-]\d)")),
]


def _real_date(year: int, month: int, day: int) -> bool:
    try:
        date(year, month, day)
    except ValueError:
        return False
    return True


def _date_spans(text: str) -> Iterable[tuple[int, int]]:
    for form, pattern in _DATES:
        for m in pattern.finditer(text):
            g = m.groups()
            if form == "dmy":
                ok = _real_date(int(g[2]), _MONTHS[g[1].lower().rstrip(".")], int(g[0]))
            elif form == "mdy":
                ok = _real_date(int(g[2]), _MONTHS[g[0].lower().rstrip(".")], int(g[1]))
            elif form == "iso":
                ok = _real_date(int(g[0]), int(g[2]), int(g[3]))
            else:
                year = int(g[3]) if len(g[3]) == 4 else 2000 + int(g[3])  # century only matters for 29 Feb
                a, b = int(g[0]), int(g[2])
                ok = _real_date(year, a, b) or _real_date(year, b, a)  # m/d/y or d/m/y
            if ok:
                yield m.start(), m.end()


# What may not stand between a birth cue and the date: another number, the end of the clause, or a word
# saying the birth date is missing, that the date is some other event ("DOB unknown, admitted 03/14/2023")
# or a range ("infants born at our hospital between 8/1/97 and 1/31/99").
_DOB_GAP_BREAK = re.compile(
    r"\d|;|\n\s*\n|[.!?]\s+[A-Z]|(?i:\b(?:unknown|not|n/?a|none|pending|missing|redacted|withheld|admitted|"
    r"admission|discharged?|visit|seen|appointment|surgery|died|death|deceased|since|until|after|before|between|"
    r"from|during)\b)"
)


def _find_dobs(text: str) -> Iterable[tuple[int, int]]:
    cues = [m.end() for m in _DOB_CUE.finditer(text)]
    if not cues:
        return
    for start, end in _date_spans(text):
        for cue_end in cues:
            gap = text[cue_end:start]
            # Close after the cue, in the same clause, with no other number in between
            # ("born in 1962, admitted 03/14/2020" is an admission date).
            if len(gap) <= 30 and not _DOB_GAP_BREAK.search(gap) and len(re.findall(r"[A-Za-z]+", gap)) <= 5:
                yield start, end
                break


_MRN = re.compile(
    r"(?i)(?<![\w])(?:mrn|medical[ -]records?[ -]?(?:number|num\.?|no\.?|nr\.?|#|id)|med\.?[ -]?rec\.?[ -]?(?:no\.?|#)"
    r"|patient[ -]?(?:id|identifier|number|no\.?|nr\.?|#)|patientennummer|patienten-?id|patienten-?nr\.?)"
    r"(?:[\s:#=.-]|\bis\b|\bwas\b|\bof\b){0,5}"
    r"(?<![\w])(?P<id>[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){4,15})(?![\w]|-\w|[.,]\d)"
)


def _find_mrns(text: str) -> Iterable[tuple[int, int]]:
    for m in _MRN.finditer(text):
        ident = m.group("id").replace("-", "")
        # An id, not a word or a count: 5-12 characters, at least 4 of them digits.
        if 5 <= len(ident) <= 12 and sum(ch.isdigit() for ch in ident) >= 4:
            yield m.start("id"), m.end("id")


def _find_phones(text: str) -> Iterable[tuple[int, int]]:
    for m in _PHONE_US.finditer(text):
        yield m.span()
    for m in _PHONE_INTL.finditer(text):
        value = m.group(0)
        if not 8 <= sum(ch.isdigit() for ch in value) <= 15:
            continue
        # Dots as separators only in phone style (+44.20.7946.0958), not a decimal ("+1234567.89").
        if "." in value and (value.count(".") < 2 or re.search(r"[ -]", value)):
            continue
        yield m.span()


def _find_ssns(text: str) -> Iterable[tuple[int, int]]:
    for m in _SSN.finditer(text):
        if ssn_valid(m.group(1), m.group(3), m.group(4)):
            yield m.span()
    for m in _SSN_CUED.finditer(text):
        if ssn_valid(*m.groups()):
            yield m.start(1), m.end(3)


def _find_emails(text: str) -> Iterable[tuple[int, int]]:
    for m in _EMAIL.finditer(text):
        yield m.span()


_FINDERS: dict[str, Callable[[str], Iterable[tuple[int, int]]]] = {
    "email": _find_emails,
    "phone": _find_phones,
    "ssn": _find_ssns,
    "credit_card": _find_cards,
    "iban": _find_ibans,
    "date_of_birth": _find_dobs,
    "mrn": _find_mrns,
}


# ------------------------------------------------------------------------------------------------ public API


def find_pii(text: str, kinds: Iterable[str] | None = None) -> list[PiiMatch]:
    """All PII in ``text``, sorted by start, no two overlapping.

    Overlaps are resolved over every kind first (the longest match wins, then the more specific kind), and
    only then filtered to ``kinds``: asking for phones alone never reports the middle of a card number.
    """
    wanted = set(KINDS if kinds is None else kinds)
    unknown = wanted - set(KINDS)
    if unknown:
        raise ValueError(f"unknown PII kind(s): {', '.join(sorted(unknown))}; known: {', '.join(KINDS)}")
    return [m for m in _resolved(text) if m.kind in wanted]


# The rule engine asks each of the seven validators about the same text in turn: scan it once.
@lru_cache(maxsize=32)
def _resolved(text: str) -> tuple[PiiMatch, ...]:
    candidates = {PiiMatch(kind, s, e) for kind, finder in _FINDERS.items() for s, e in finder(text) if e > s}
    chosen: list[PiiMatch] = []
    for cand in sorted(candidates, key=lambda m: (-(m.end - m.start), _SPECIFICITY[m.kind], m.start)):
        if all(cand.end <= c.start or cand.start >= c.end for c in chosen):
            chosen.append(cand)
    return tuple(sorted(chosen, key=lambda m: m.start))


def redact(text: str, matches: Sequence[PiiMatch]) -> str:
    """``text`` with each match replaced by its label ([EMAIL], [PHONE], [SSN], [CARD], [IBAN], [DOB], [MRN])."""
    out: list[str] = []
    pos = 0
    for m in sorted(matches, key=lambda m: (m.start, -m.end)):
        if m.start < pos:  # overlaps one already replaced (callers normally pass find_pii's output)
            continue
        out.append(text[pos : m.start])
        out.append(LABELS[m.kind])
        pos = m.end
    out.append(text[pos:])
    return "".join(out)


def _validator(kind: str) -> Callable[[str, Mapping[str, Any]], list[tuple[int, int]]]:
    def validate(text: str, context: Mapping[str, Any]) -> list[tuple[int, int]]:
        return [(m.start, m.end) for m in find_pii(text, (kind,))]

    validate.__name__ = f"pii_{kind}"
    validate.__doc__ = f"Spans of {kind} PII in the text (after find_pii's overlap resolution)."
    return validate


VALIDATORS: dict[str, Callable[[str, Mapping[str, Any]], list[tuple[int, int]]]] = {f"pii.{kind}": _validator(kind) for kind in KINDS}
