"""A seeded, labelled PII test set for guardrails/pii.py, and how well the detectors do on it.

    python bench/pii_set.py [--seed 0] [--n 100] [--json FILE]

For each kind (email, phone, ssn, credit_card, iban, date_of_birth, mrn) ``generate`` writes ``n`` positive
sentences, each embedding one VALID value (Luhn check digit computed, IBAN check digits computed with
mod-97, SSN areas the SSA could issue, dates after a birth cue) in a varied medical/finance sentence, and
``n`` negatives: look-alikes that are not PII (Luhn-failing cards, mod-97-failing IBANs, impossible SSNs,
dates with no birth cue, order numbers, money, doses, lab values, ICD codes, ratios, ...). An item is
``{"text", "kind": KIND or None, "value_span": [start, end] or None}``; negatives also say which kind they
imitate (``"lookalike"``), only for reading.

``measure`` counts, per kind: true positives (a detection of the right kind overlapping the value span),
false negatives, false positives (negative items, of any look-alike group, with a detection of that kind),
recall, false-positive rate (over all negatives) and precision (share of that kind's detections, on all
items, that are a labelled value). Overall: recall over all positives, false-positive rate = negatives
with any detection at all, precision over all detections.

The set is drawn from the same templates the rules were written against, so a second seed is reported as
well: it redraws every value and template choice; it does not add unseen sentence shapes.
"""

from __future__ import annotations

import argparse
import json
import random
import string
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from guardrails.pii import IBAN_LENGTHS, KINDS, find_pii, iban_mod97, luhn_valid, ssn_valid  # noqa: E402

# ------------------------------------------------------------------------------------------ valid values

FIRST = ["anna", "john", "maria", "li", "omar", "sofia", "peter", "chloe", "raj", "eva", "lukas", "fatima"]
LAST = ["smith", "mueller", "garcia", "chen", "okafor", "rossi", "novak", "dubois", "kim", "jensen"]
DOMAINS = ["example.com", "gmail.com", "clinic.org", "uni-klinik.de", "nhs.net", "bank.co.uk", "mail.example.fr",
           "outlook.com", "health-partners.io", "finance.example.org"]  # fmt: skip


def _email(rng: random.Random) -> str:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    local = rng.choice([f"{first}.{last}", f"{first}{last}{rng.randint(1, 99)}", f"{first[0]}{last}",
                        f"{first}_{last}", f"{first}+billing", f"{last}.{first}{rng.randint(1950, 2005)}"])  # fmt: skip
    email = f"{local}@{rng.choice(DOMAINS)}"
    return email.upper() if rng.random() < 0.05 else email


def _phone(rng: random.Random) -> str:
    area, exch, line = rng.randint(200, 989), rng.randint(100, 999), rng.randint(0, 9999)
    forms = [
        f"({area}) {exch}-{line:04d}", f"{area}-{exch}-{line:04d}", f"{area}.{exch}.{line:04d}",
        f"+1 {area} {exch} {line:04d}", f"+1-{area}-{exch}-{line:04d}", f"1-{area}-{exch}-{line:04d}",
        f"({area}){exch}-{line:04d}", f"{area} {exch} {line:04d}",
        f"+44 20 {rng.randint(7000, 8999)} {rng.randint(0, 9999):04d}",
        f"+44 7{rng.randint(100, 999)} {rng.randint(100000, 999999)}",
        f"+49 30 {rng.randint(100000, 99999999)}", f"+49 89 {rng.randint(1000, 9999)} {rng.randint(1000, 9999)}",
        f"+33 1 {rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)}",
        f"+41 44 {rng.randint(100, 999)} {rng.randint(10, 99)} {rng.randint(10, 99)}",
        f"+49{rng.randint(30, 89)}{rng.randint(1000000, 9999999)}", f"+1{area}{exch}{line:04d}",
        f"+44.20.{rng.randint(7000, 8999)}.{rng.randint(0, 9999):04d}",
    ]  # fmt: skip
    return rng.choice(forms)


def _ssn_parts(rng: random.Random) -> tuple[str, str, str]:
    while True:
        parts = (f"{rng.randint(1, 899):03d}", f"{rng.randint(1, 99):02d}", f"{rng.randint(1, 9999):04d}")
        if ssn_valid(*parts):
            return parts


def luhn_complete(partial: str) -> str:
    """``partial`` with the Luhn check digit appended."""
    for d in "0123456789":
        if luhn_valid(partial + d):
            return partial + d
    raise AssertionError("unreachable")


CARD_BRANDS = [("4", 16), ("4", 13), ("4", 19), ("51", 16), ("55", 16), ("2221", 16), ("2720", 16), ("34", 15),
               ("37", 15), ("6011", 16), ("65", 16), ("6011", 19)]  # fmt: skip


def _card_digits(rng: random.Random) -> str:
    prefix, length = rng.choice(CARD_BRANDS)
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    return luhn_complete(body)


CARD_GROUPS = {13: (4, 4, 5), 15: (4, 6, 5), 16: (4, 4, 4, 4), 19: (4, 4, 4, 4, 3)}  # as printed on cards


def _group_card(digits: str, rng: random.Random) -> str:
    sep = rng.choice([" ", " ", "-", ""])
    out, pos = [], 0
    for size in CARD_GROUPS[len(digits)]:
        out.append(digits[pos : pos + size])
        pos += size
    return sep.join(out)


def _bban(country: str, rng: random.Random) -> str:
    digits = lambda n: "".join(rng.choice(string.digits) for _ in range(n))  # noqa: E731
    letters = lambda n: "".join(rng.choice(string.ascii_uppercase) for _ in range(n))  # noqa: E731
    alnum = lambda n: "".join(rng.choice(string.digits + string.ascii_uppercase) for _ in range(n))  # noqa: E731
    if country == "DE":
        return digits(18)  # bank code (8) + account (10)
    if country == "GB":
        return letters(4) + digits(14)  # bank (4 letters) + sort code (6) + account (8)
    if country == "FR":
        return digits(10) + alnum(11) + digits(2)  # bank, branch, account, RIB key
    if country == "NL":
        return letters(4) + digits(10)
    if country == "ES":
        return digits(20)
    if country == "IT":
        return letters(1) + digits(10) + alnum(12)
    raise ValueError(country)


def make_iban(country: str, rng: random.Random) -> str:
    """A valid IBAN: check digits = 98 - (country + '00' + BBAN rearranged) mod 97."""
    bban = _bban(country, rng)
    check = 98 - iban_mod97(f"{country}00{bban}")
    iban = f"{country}{check:02d}{bban}"
    assert len(iban) == IBAN_LENGTHS[country]
    return iban


def _group_iban(iban: str, rng: random.Random) -> str:
    return iban if rng.random() < 0.3 else " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))


MONTH_NAMES = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
               "November", "December"]  # fmt: skip


def _ordinal(d: int) -> str:
    return f"{d}{'th' if 10 <= d <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(d % 10, 'th')}"


def _date(rng: random.Random, year_range: tuple[int, int] = (1930, 2015)) -> str:
    y, m, d = rng.randint(*year_range), rng.randint(1, 12), rng.randint(1, 28)
    forms = [f"{m:02d}/{d:02d}/{y}", f"{m}/{d}/{y}", f"{d:02d}.{m:02d}.{y}", f"{y}-{m:02d}-{d:02d}",
             f"{d} {MONTH_NAMES[m - 1]} {y}", f"{MONTH_NAMES[m - 1]} {d}, {y}", f"{MONTH_NAMES[m - 1][:3]} {d} {y}",
             f"{d:02d}-{m:02d}-{y}", f"{_ordinal(d)} of {MONTH_NAMES[m - 1]} {y}", f"{m:02d}/{d:02d}/{y % 100:02d}"]  # fmt: skip
    return rng.choice(forms)


def _mrn(rng: random.Random) -> str:
    forms = [f"{rng.randint(0, 99999999):08d}", f"{rng.randint(100000, 9999999)}",
             f"{rng.choice(string.ascii_uppercase)}{rng.randint(1000000, 9999999)}",
             f"MR{rng.randint(100000, 99999999)}", f"{rng.randint(100, 999)}-{rng.randint(1000, 9999)}",
             f"H{rng.randint(10, 99)}-{rng.randint(100000, 999999)}", f"{rng.randint(10000, 999999999999)}"]  # fmt: skip
    return rng.choice(forms)


# ------------------------------------------------------------------------------------------ positives

# Each template has one {v}; {cue} is filled from the kind's cue list where there is one.
POSITIVE = {
    "email": [
        "Please send my lab results to {v} instead of the portal.",
        "My email is {v}, can you explain my HbA1c of 7.2%?",
        "Contact {v} about the Q3 dividend payout ratio.",
        "I'm {v} - why did my metformin dose go up to 1000 mg?",
        "Forward the 10-K summary to <{v}> please.",
        "Can my doctor ({v}) see the MRI report?",
        "Reply to {v}; what does a P/E of 23.4 mean?",
    ],
    "phone": [
        "Call me at {v} about my blood pressure readings.",
        "My number is {v}, what are the side effects of lisinopril?",
        "The pharmacy ({v}) said 500 mg twice daily, is that right?",
        "Please text {v} when the statement for 2023 is ready.",
        "My advisor's line is {v} - is a Roth IRA better?",
        "Reach the clinic on {v} to reschedule.",
        "Phone: {v}. Question: how is EBITDA calculated?",
    ],
    "ssn": [
        "My SSN is {v}, why was my claim denied?",
        "Social security number {v} - can I get my 1099 online?",
        "SSN: {v}. Does Medicare cover insulin pumps?",
        "I typed {v} into the tax form, is that safe?",
        "Patient SSN {v}, reports chest pain since Monday.",
        "For the W-2, my social security no. is {v}.",
        "Is {v} enough to verify me for the loan?",
    ],
    "credit_card": [
        "Charge the copay to my card {v}, expiry 09/27.",
        "I paid $125.40 with {v} but was billed twice.",
        "Card number: {v}. Why was the pharmacy payment declined?",
        "Please refund {v} for the cancelled appointment.",
        "Visa {v} shows a foreign transaction fee of 3%.",
        "My Amex/Mastercard is {v}; can I pay the deductible in installments?",
        "Use {v} for the annual subscription of $99.",
    ],
    "iban": [
        "Please send the refund to IBAN {v}.",
        "My account is {v}, when will the dividend arrive?",
        "Transfer the premium from {v} to the insurer.",
        "IBAN: {v} - is the SEPA fee 0.5%?",
        "Die Erstattung bitte auf {v} überweisen.",
        "Pay the invoice of EUR 1,250.00 to {v} by 2024-03-31.",
        "My salary goes to {v}; how much should I save?",
    ],
    "date_of_birth": [
        "Patient DOB {v}, reports chest pain.",
        "I was born on {v} - which vaccines do I still need?",
        "Date of birth: {v}. Is my cholesterol of 240 mg/dL high?",
        "D.O.B. {v}, weight 82 kg, on 500 mg metformin.",
        "My birthday is {v}, when can I draw my pension?",
        "Geburtsdatum: {v}, Blutdruck 140/90.",
        "Born {v}; what retirement age applies to me?",
        "DOB: {v} | MRN pending | BP 128/82",
        "geboren am {v}, Diagnose E11.9",
    ],
    "mrn": [
        "Patient MRN {v}, reports chest pain since Monday.",
        "MRN: {v} - please check the HbA1c trend.",
        "Medical record number {v}; allergy to penicillin.",
        "Can you summarise the notes for patient ID {v}?",
        "Patientennummer {v}, Kontrolle in 3 Monaten.",
        "MRN#{v}: discharged 2023-02-15 on 20 mg atorvastatin.",
        "medical record no. {v} was admitted with ICD-10 I21.4.",
        "Patient identifier: {v}, BMI 31.2.",
    ],
}


def _value(kind: str, rng: random.Random, template: str) -> str:
    if kind == "email":
        return _email(rng)
    if kind == "phone":
        return _phone(rng)
    if kind == "ssn":
        a, g, s = _ssn_parts(rng)
        # Bare 9 digits only where the template gives the SSN cue, as the rules require.
        cued = "SSN" in template or "social security" in template.lower()
        return rng.choice(["-", "-", " "] + ([""] if cued else [])).join((a, g, s))
    if kind == "credit_card":
        return _group_card(_card_digits(rng), rng)
    if kind == "iban":
        return _group_iban(make_iban(rng.choice(["DE", "DE", "GB", "GB", "FR", "FR", "NL", "ES", "IT"]), rng), rng)
    if kind == "date_of_birth":
        return _date(rng)
    if kind == "mrn":
        return _mrn(rng)
    raise ValueError(kind)


def _positive(kind: str, rng: random.Random) -> dict:
    template = rng.choice(POSITIVE[kind])
    value = _value(kind, rng, template)
    before, after = template.split("{v}")
    return {"text": before + value + after, "kind": kind, "value_span": [len(before), len(before) + len(value)]}


# ------------------------------------------------------------------------------------------ negatives


def _neg_email(rng: random.Random) -> str:
    n = rng.randint
    return rng.choice([
        f"Follow @{rng.choice(LAST)}_clinic for updates on the {n(2019, 2024)} trial.",
        f"Buy {n(10, 500)} shares @ ${n(10, 300)}.{n(10, 99)} each?",
        f"The file Q{n(1, 4)}_results.v{n(2, 9)}.pdf shows revenue up {n(2, 30)}%.",
        f"See https://www.sec.gov/cgi-bin/browse-edgar?CIK={n(100000, 999999)} for the filing.",
        f"Email the billing team about invoice {n(10000, 99999)}.",
        f"Rate was {n(1, 9)}.{n(0, 9)}% @ {n(1, 30)}y fixed.",
        f"Use the #{rng.choice(['diabetes', 'cardio', 'earnings'])} channel @ noon.",
    ])  # fmt: skip


def _neg_phone(rng: random.Random) -> str:
    n = rng.randint
    return rng.choice([
        f"Revenue of ${n(1, 999)},{n(100, 999)},{n(100, 999)} in {n(2010, 2024)}.",
        f"Take {rng.choice([250, 500, 850, 1000])} mg twice daily for {n(5, 14)} days.",
        f"The ratio was {n(1, 9)}.{n(100, 999)}.{n(100, 999)} in the report.",
        f"Call 911 if the chest pain lasts more than {n(5, 20)} minutes.",
        f"Table: {n(10, 99)},{n(100, 999)} | {n(10, 99)},{n(100, 999)} | "
        f"{n(10, 99)},{n(100, 999)}",
        f"Order {n(2000000000, 9999999999)} shipped on {n(2020, 2024)}-0{n(1, 9)}-1{n(0, 9)}.",
        f"ISBN 978-{n(0, 9)}-{n(10, 99)}-{n(100000, 999999)}-{n(0, 9)} covers it.",
        f"Shares moved +{n(1, 40)}.{n(0, 9)}% after the 10-K.",
        f"Glucose {n(70, 300)} mg/dL at {n(10, 12)}:{n(10, 59)}-{n(13, 23)}:{n(10, 59)}.",
        f"ZIP {n(10000, 99999)}-{n(1000, 9999)}, account ending {n(1000, 9999)}.",
        f"Net change +{n(1000, 9999)}.{n(10, 99)} vs prior year.",
        f"Population {n(100, 999)} {n(100, 999)} {n(100, 999)} in {n(2000, 2023)}.",
        f"Budget: {n(200, 999)}.{n(100, 999)}.{n(100, 999)} EUR",
        f"Version {n(1, 9)}.{n(0, 20)}.{n(0, 99)} of the dosing app.",
    ])  # fmt: skip


def _impossible_ssn(rng: random.Random) -> str:
    area, group, serial = f"{rng.randint(1, 899):03d}", f"{rng.randint(1, 99):02d}", f"{rng.randint(1, 9999):04d}"
    broken = rng.choice(["000", "666", "9xx", "group", "serial", "ad"])
    if broken in ("000", "666"):
        area = broken
    elif broken == "9xx":
        area = f"{rng.randint(900, 999)}"
    elif broken == "group":
        group = "00"
    elif broken == "serial":
        serial = "0000"
    else:
        area, group, serial = rng.choice([("078", "05", "1120"), ("219", "09", "9999")])
    assert not ssn_valid(area, group, serial)
    return rng.choice(["-", " "]).join((area, group, serial))


def _neg_ssn(rng: random.Random) -> str:
    n = rng.randint
    return rng.choice([
        f"My SSN is {_impossible_ssn(rng)}, is that valid?",
        f"The form example shows {_impossible_ssn(rng)} as the SSN.",
        f"Invoice {n(100000000, 999999999)} was paid late.",
        f"Routing number {n(10000000, 399999999):09d} for the wire.",
        f"Claim {n(100, 999)}-{n(100, 999)}-{n(100, 999)} is pending.",
        f"Lot {n(10, 99)}-{n(100, 999)}-{n(1000, 9999)} of the vaccine was recalled.",
        f"CUSIP {n(100000000, 999999999)} matured in {n(2015, 2024)}.",
    ])  # fmt: skip


def _luhn_failing_card(rng: random.Random) -> str:
    digits = _card_digits(rng)
    bad = digits[:-1] + str((int(digits[-1]) + rng.randint(1, 9)) % 10)
    assert not luhn_valid(bad)
    return _group_card(bad, rng)


def _neg_card(rng: random.Random) -> str:
    n = rng.randint
    unknown_iin = luhn_complete(rng.choice("1789") + "".join(rng.choice(string.digits) for _ in range(14)))
    return rng.choice([
        f"Charge card {_luhn_failing_card(rng)} for the copay.",
        f"I paid with {_luhn_failing_card(rng)} but it was declined.",
        f"Tracking number {unknown_iin} for the test kit.",
        f"Account {n(10 ** 11, 10 ** 12 - 1)} holds ${n(1, 99)},{n(100, 999)}.",
        f"Order {n(1000, 9999)} {n(1000, 9999)} {n(1000, 9999)} ships Monday.",
        f"Market cap grew from {n(100, 999)},{n(100, 999)},{n(100, 999)},{n(100, 999)} to more.",
        f"Reference {_luhn_failing_card(rng).replace(' ', '').replace('-', '')} on the statement.",
    ])  # fmt: skip


def _bad_iban(rng: random.Random) -> str:
    iban = make_iban(rng.choice(["DE", "GB", "FR", "NL", "ES"]), rng)
    i = rng.randint(4, len(iban) - 1)
    while True:  # change one BBAN digit: mod-97 catches every single-character error
        repl = rng.choice(string.digits) if iban[i].isdigit() else rng.choice(string.ascii_uppercase)
        if repl != iban[i]:
            break
    bad = iban[:i] + repl + iban[i + 1 :]
    assert iban_mod97(bad) != 1
    return _group_iban(bad, rng)


def _neg_iban(rng: random.Random) -> str:
    n = rng.randint
    return rng.choice([
        f"Please send the refund to IBAN {_bad_iban(rng)}.",
        f"My account is {_bad_iban(rng)}, why did the transfer bounce?",
        f"ISIN US{n(100000000, 999999999)}{n(0, 9)} is the bond in question.",
        f"SWIFT code {rng.choice(['DEUTDEFF', 'COBADEFFXXX', 'BNPAFRPP'])} for the wire.",
        f"Diagnosis ICD-10 E{n(10, 14)}.{n(0, 9)} and I{n(10, 99)}.{n(0, 9)}.",
        f"Part number AB{n(10, 99)} {n(1000, 9999)} {n(1000, 9999)} {n(10, 99)}.",
        f"Form DE{n(10, 99)} {n(1000, 9999)} filed for tax year {n(2018, 2023)}.",
    ])  # fmt: skip


def _neg_dob(rng: random.Random) -> str:
    n = rng.randint
    d, recent = _date(rng), _date(rng, (2015, 2024))
    return rng.choice([
        f"Admitted on {recent} with ICD-10 E11.9.",
        f"The 10-K filed {recent} shows revenue of $1,234,567.",
        f"Next appointment: {recent}, take 500 mg twice daily.",
        f"The fund launched on {d} and returned 7% a year.",
        f"Born in {n(1940, 2000)}, admitted {recent} for pneumonia.",
        f"Lab drawn {recent}: HbA1c 7.1%, LDL 130 mg/dL.",
        f"Date of service {recent}; invoice ${n(100, 999)}.00.",
        f"The patient was born prematurely. Follow-up visit on {recent} went well.",
        f"Dividend record date {recent}, payable {_date(rng, (2015, 2024))}.",
    ])  # fmt: skip


def _neg_mrn(rng: random.Random) -> str:
    n = rng.randint
    return rng.choice([
        f"MRN pending, lab drawn {n(2019, 2024)}-0{n(1, 9)}-1{n(0, 9)}.",
        "Patient ID was verified at the front desk.",
        f"Patient number {n(1, 40)} in the trial had nausea.",
        f"Lot number AB{n(10000, 99999)} of the vaccine was recalled.",
        f"Room {n(100, 999)}, bed {n(1, 4)}; weight {n(50, 120)} kg.",
        f"The medical record shows BP {n(110, 160)}/{n(60, 100)} on {n(2019, 2024)}-0{n(1, 9)}-0{n(1, 9)}.",
        "The MRN field was left blank on the referral.",
        f"Claim reference CLM{n(10000, 99999)} for ${n(100, 999)}.",
    ])  # fmt: skip


NEGATIVE = {"email": _neg_email, "phone": _neg_phone, "ssn": _neg_ssn, "credit_card": _neg_card, "iban": _neg_iban,
            "date_of_birth": _neg_dob, "mrn": _neg_mrn}  # fmt: skip


def generate(seed: int = 0, n_per_kind: int = 100) -> list[dict]:
    """``n_per_kind`` positives and as many negatives per kind, in a fixed order for the seed."""
    rng = random.Random(seed)
    items: list[dict] = []
    for kind in KINDS:
        items.extend(_positive(kind, rng) for _ in range(n_per_kind))
        items.extend({"text": NEGATIVE[kind](rng), "kind": None, "value_span": None, "lookalike": kind}
                     for _ in range(n_per_kind))  # fmt: skip
    return items


# ------------------------------------------------------------------------------------------ measurement


def _ratio(num: int, den: int) -> float:
    return num / den if den else 0.0


def measure(items: list[dict]) -> dict:
    """Per kind and overall: tp, fn, fp, recall, fp_rate, precision (see the module docstring)."""
    negatives = [it for it in items if it["kind"] is None]
    per_kind = {k: {"positives": 0, "tp": 0, "fn": 0, "fp": 0, "detections": 0, "correct": 0} for k in KINDS}
    neg_with_any = 0
    for item in items:
        found = find_pii(item["text"])
        span = item["value_span"]
        hits = {m for m in found if m.kind == item["kind"] and span and m.start < span[1] and m.end > span[0]}
        for m in found:
            per_kind[m.kind]["detections"] += 1
            per_kind[m.kind]["correct"] += m in hits
        if item["kind"] is None:
            neg_with_any += bool(found)
            for kind in {m.kind for m in found}:
                per_kind[kind]["fp"] += 1
        else:
            row = per_kind[item["kind"]]
            row["positives"] += 1
            row["tp" if hits else "fn"] += 1
    for row in per_kind.values():
        row["recall"] = _ratio(row["tp"], row["positives"])
        row["fp_rate"] = _ratio(row["fp"], len(negatives))
        row["precision"] = _ratio(row["correct"], row["detections"]) if row["detections"] else 1.0
    total = {key: sum(r[key] for r in per_kind.values()) for key in ("positives", "tp", "fn", "detections", "correct")}
    overall = {
        **total,
        "negatives": len(negatives),
        "fp": neg_with_any,
        "recall": _ratio(total["tp"], total["positives"]),
        "fp_rate": _ratio(neg_with_any, len(negatives)),
        "precision": _ratio(total["correct"], total["detections"]) if total["detections"] else 1.0,
    }
    return {"per_kind": per_kind, "overall": overall}


def misses(items: list[dict]) -> list[tuple[str, str]]:
    """(what went wrong, text) for every false negative and false positive: for reading, never for logs."""
    out = []
    for item in items:
        found = find_pii(item["text"])
        if item["kind"] is None and found:
            out.append((f"FP {','.join(m.kind for m in found)}", item["text"]))
        elif item["kind"] is not None:
            span = item["value_span"]
            if not any(m.kind == item["kind"] and m.start < span[1] and m.end > span[0] for m in found):
                out.append((f"FN {item['kind']}", item["text"]))
    return out


def format_table(result: dict, title: str) -> str:
    lines = [title, f"{'kind':<14}{'pos':>5}{'tp':>5}{'fn':>5}{'fp':>5}{'recall':>9}{'fp_rate':>9}{'precision':>11}"]
    rows = [*result["per_kind"].items(), ("overall", result["overall"])]
    for name, r in rows:
        lines.append(f"{name:<14}{r['positives']:>5}{r['tp']:>5}{r['fn']:>5}{r['fp']:>5}"
                     f"{r['recall']:>9.3f}{r['fp_rate']:>9.3f}{r['precision']:>11.3f}")  # fmt: skip
    lines.append(f"({result['overall']['negatives']} negatives; overall fp = negatives with any detection)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n", type=int, default=100, help="positives (and negatives) per kind")
    parser.add_argument("--json", type=Path, help="also write both results here")
    parser.add_argument("--show-errors", action="store_true", help="print the misclassified texts")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    results = {}
    # The second seed redraws values and template choices: the rules were not fitted to one draw.
    for seed in (args.seed, args.seed + 1):
        items = generate(seed, args.n)
        results[str(seed)] = measure(items)
        print(format_table(results[str(seed)], f"seed {seed}, {args.n} per kind"))
        if args.show_errors:
            for what, text in misses(items):
                print(f"  {what}: {text}")
        print()
    print(f"{time.perf_counter() - started:.2f} s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
