"""guardrails/pii.py: checksums, each kind's detector (what must and must not trigger), overlap resolution,
redaction, the rule-engine validators, and the labelled set of bench/pii_set.py against the targets."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from guardrails.pii import KINDS, VALIDATORS, PiiMatch, find_pii, iban_valid, luhn_valid, redact, ssn_valid

REPO = Path(__file__).resolve().parents[1]


def _load_bench():
    spec = importlib.util.spec_from_file_location("bench_pii_set", REPO / "bench" / "pii_set.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


bench = _load_bench()


def kinds_found(text: str) -> list[tuple[str, str]]:
    return [(m.kind, text[m.start : m.end]) for m in find_pii(text)]


# ------------------------------------------------------------------------------------------ checksums


@pytest.mark.parametrize(
    ("number", "valid"),
    [
        ("4111 1111 1111 1111", True),
        ("4111 1111 1111 1112", False),
        ("4111-1111-1111-1111", True),
        ("5500005555555559", True),
        ("378282246310005", True),  # Amex test number
        ("6011111111111117", True),  # Discover test number
        ("79927398713", True),  # the textbook Luhn example
        ("79927398710", False),
        ("", False),
        ("4111x1111", False),
    ],
)
def test_luhn(number, valid):
    assert luhn_valid(number) is valid


@pytest.mark.parametrize(
    ("iban", "valid"),
    [
        ("DE89 3704 0044 0532 0130 00", True),
        ("GB82 WEST 1234 5698 7654 32", True),
        ("GB82WEST12345698765432", True),
        ("FR14 2004 1010 0505 0001 3M02 606", True),
        ("NL91 ABNA 0417 1643 00", True),
        ("CH93 0076 2011 6238 5295 7", True),
        ("de89 3704 0044 0532 0130 00", True),  # typed in lower case
        ("DE89 3704 0044 0532 0130 01", False),  # one digit off: mod-97 fails
        ("DE88 3704 0044 0532 0130 00", False),  # wrong check digits
        ("DE89 3704 0044 0532 0130 0", False),  # DE is 22 characters
        ("GB82 WEST 1234 5698 7654", False),
        ("XX", False),
        ("1234", False),
    ],
)
def test_iban_valid(iban, valid):
    assert iban_valid(iban) is valid


def test_iban_generic_length_for_unlisted_countries():
    assert iban_valid("MT84 MALT 0110 0001 2345 MTLC AST0 01S")  # Malta, 31 characters, not in the table
    assert not iban_valid("MT84 MALT 0110 0001 2345 MTLC AST0 01T")


@pytest.mark.parametrize(
    ("parts", "valid"),
    [
        (("123", "45", "6789"), True),
        (("001", "01", "0001"), True),
        (("899", "99", "9999"), True),
        (("000", "12", "3456"), False),
        (("666", "12", "3456"), False),
        (("900", "12", "3456"), False),
        (("987", "65", "4321"), False),
        (("123", "00", "4567"), False),
        (("123", "45", "0000"), False),
        (("078", "05", "1120"), False),  # the Woolworth wallet card
        (("219", "09", "9999"), False),  # printed in an SSA pamphlet
        ((123, 45, 6789), True),
        (("12", "45", "6789"), True),  # ints / short strings are zero-padded: area 012
        (("1234", "45", "6789"), False),
    ],
)
def test_ssn_valid(parts, valid):
    assert ssn_valid(*parts) is valid


# ------------------------------------------------------------------------------------------ detectors: positives


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("Send it to anna.smith@example.com please", "email", "anna.smith@example.com"),
        ("mail JOHN+billing@Clinic.co.uk.", "email", "JOHN+billing@Clinic.co.uk"),
        ("Call (555) 123-4567 today", "phone", "(555) 123-4567"),
        ("Call 555-123-4567 today", "phone", "555-123-4567"),
        ("Call 555.123.4567 today", "phone", "555.123.4567"),
        ("Call +1 555 123 4567 today", "phone", "+1 555 123 4567"),
        ("Call 1-800-784-8669 today", "phone", "1-800-784-8669"),
        ("London office +44 20 7946 0958.", "phone", "+44 20 7946 0958"),
        ("Berlin: +49 30 123456, ask for Eva", "phone", "+49 30 123456"),
        ("UK +44 (0)20 7946 0958", "phone", "+44 (0)20 7946 0958"),
        ("Mobile +4917612345678", "phone", "+4917612345678"),
        ("My SSN is 123-45-6789.", "ssn", "123-45-6789"),
        ("number 123 45 6789 on the form", "ssn", "123 45 6789"),
        ("SSN: 123456789", "ssn", "123456789"),
        ("social security number is 123456789", "ssn", "123456789"),
        ("pay with 4111 1111 1111 1111 now", "credit_card", "4111 1111 1111 1111"),
        ("pay with 4111-1111-1111-1111 now", "credit_card", "4111-1111-1111-1111"),
        ("card 4111111111111111", "credit_card", "4111111111111111"),
        ("Amex 3782 822463 10005 ok", "credit_card", "3782 822463 10005"),
        ("Mastercard 2221 0000 0000 0009", "credit_card", "2221 0000 0000 0009"),
        ("card 4111 1111 1111 1111 12/25", "credit_card", "4111 1111 1111 1111"),  # expiry left out
        ("IBAN DE89 3704 0044 0532 0130 00 please", "iban", "DE89 3704 0044 0532 0130 00"),
        ("to GB82WEST12345698765432.", "iban", "GB82WEST12345698765432"),
        ("to GB82 WEST 1234 5698 7654 32 THANKS", "iban", "GB82 WEST 1234 5698 7654 32"),
        ("Patient DOB 03/14/1962, reports chest pain", "date_of_birth", "03/14/1962"),
        ("D.O.B.: 14.03.1962", "date_of_birth", "14.03.1962"),
        ("date of birth 1962-03-14", "date_of_birth", "1962-03-14"),
        ("I was born on 12 March 1985 in Ohio", "date_of_birth", "12 March 1985"),
        ("born in Boston on March 12, 1985", "date_of_birth", "March 12, 1985"),
        ("Geburtsdatum: 12. März 1985", "date_of_birth", "12. März 1985"),
        ("geboren am 01.02.1970", "date_of_birth", "01.02.1970"),
        ("birthday 3/4/62", "date_of_birth", "3/4/62"),
        ("Patient MRN 00482913, reports chest pain", "mrn", "00482913"),
        ("MRN#A1234567: stable", "mrn", "A1234567"),
        ("medical record no. H12-345678 admitted", "mrn", "H12-345678"),
        ("patient ID is 55512345", "mrn", "55512345"),
        ("Patientennummer 123456, Kontrolle", "mrn", "123456"),
    ],
)
def test_detects(text, kind, value):
    assert kinds_found(text) == [(kind, value)]


# ------------------------------------------------------------------------------------------ detectors: negatives


@pytest.mark.parametrize(
    "text",
    [
        # The ordinary text.
        "revenue of $1,234,567 in 2019",
        "take 500 mg twice daily",
        "ICD-10 E11.9",
        "the 10-K filed 2023-02-15",
        "call 911",
        "Revenue grew 12.5% in 2019, 2020 and 2021",
        "12,345 | 67,890 | 1,234,567",
        # Money, doses, lab values, codes, ratios, versions, times.
        "Shares rose +12.5% after the 10-Q; net change +1234567.89",
        "ratio 1.234.567 and budget 555.123.456 EUR",
        "BP 120/80, HR 72, SpO2 98%, K 3.5-5.0 mmol/L, HbA1c 6.5%",
        "EIN 12-3456789, NDC 0002-3227-30, CPT 99213, ICD-10 E11.65, I10, Z79.4",
        "Contribute to a 401(k); the S&P 500 closed at 4,567.89",
        "Glucose 145 mg/dL at 10:30-11:45",
        "version 10.2.3 of the app; ISBN 978-3-16-148410-0",
        "ZIP 94039-7850, account ending 4821",
        "coordinates +52.5200, +13.4050",
        "Order 5551234567 shipped",  # plain long number without separators or "+"
        "Population 123 456 789 in 2020",
        # Emails that are not: handles, prices, files.
        "Follow @cardio_clinic; buy 100 shares @ $45.10; see Q3_results.v2.pdf",
        "user@localhost is not an address with a domain",
        # Cards failing Luhn or with no known issuer prefix.
        "card 4111 1111 1111 1112",
        "card 4111-1111-1111-1113",
        "tracking 1234567812345670",  # Luhn-valid but no card issuer starts with 1
        "6011-0000-0000-0004-100",  # a longer number is not a card because its first 16 digits pass
        # IBANs failing mod-97 or the country length; look-alike codes.
        "IBAN DE89 3704 0044 0532 0130 01",
        "IBAN DE89 3704 0044 0532 0130 0",
        "ISIN US0378331005, SWIFT DEUTDEFF",
        # Impossible SSNs and bare 9-digit numbers without an SSN cue.
        "SSN 000-12-3456",
        "SSN 666-12-3456",
        "SSN 912-34-5678",
        "SSN 123-00-4567",
        "SSN 123-45-0000",
        "SSN 078-05-1120",
        "SSN 219-09-9999",
        "invoice 123456789 and CUSIP 037833100",
        # Dates with no birth cue, or a cue that does not apply.
        "Admitted on 03/14/2023 with ICD-10 E11.9",
        "Appointment on March 12, 1985 was cancelled",
        "DOB unknown, admitted 03/14/2023",
        "Born in 1962, admitted 03/14/2020 for pneumonia",
        "infants born at our hospital between 8/1/97, and 1/31/99",
        "The patient was born prematurely. Follow-up on 2023-02-15.",
        "newborn screening on 03/14/2023",
        # MRN cues with no id after them.
        "MRN pending, lab drawn 2023-02-15",
        "Patient ID was verified at the front desk",
        "Patient number 12 in the trial",
        "The medical record shows BP 140/90 on 2023-02-15",
    ],
)
def test_does_not_trigger(text):
    assert find_pii(text) == []


# ------------------------------------------------------------------------------------------ overlaps, redaction, API


def test_card_is_not_also_a_phone_and_iban_is_not_a_card():
    card = "4111-111-111-1111"  # not a printed card grouping
    assert find_pii(f"card {card}") == []
    text = "IBAN DE44 5001 0517 5407 3249 31 and card 5500-0055-5555-5559"
    assert [m.kind for m in find_pii(text)] == ["iban", "credit_card"]
    assert VALIDATORS["pii.phone"](text, {}) == []


def test_overlap_longest_then_most_specific_wins():
    # The MRN id "555-123-4567" is also phone-shaped: same span, the cue-based kind is more specific.
    text = "MRN 555-123-4567"
    assert find_pii(text) == [PiiMatch("mrn", 4, 16)]
    assert find_pii(text, ["phone"]) == []
    # An email containing a phone-shaped local part is one email.
    text = "write to 555-123-4567@sms.example.com"
    assert [(m.kind, m.start) for m in find_pii(text)] == [("email", 9)]


def test_find_pii_sorted_and_filtered():
    text = "DOB 03/14/1962, MRN 00482913, email a@b.org, SSN 123-45-6789"
    found = find_pii(text)
    assert [m.kind for m in found] == ["date_of_birth", "mrn", "email", "ssn"]
    assert [m.start for m in found] == sorted(m.start for m in found)
    assert [m.kind for m in find_pii(text, ["ssn", "email"])] == ["email", "ssn"]
    with pytest.raises(ValueError, match="unknown PII kind"):
        find_pii(text, ["passport"])


def test_match_holds_no_value():
    match = find_pii("SSN 123-45-6789")[0]
    assert set(vars(match)) == {"kind", "start", "end"}
    with pytest.raises(AttributeError):
        match.kind = "email"  # frozen


def test_redact():
    text = (
        "Patient DOB 03/14/1962, MRN 00482913, SSN 123-45-6789, call (555) 123-4567 or mail a.b@example.com; "
        "card 4111 1111 1111 1111, IBAN DE89 3704 0044 0532 0130 00. Take 500 mg in 2019."
    )
    assert redact(text, find_pii(text)) == (
        "Patient DOB [DOB], MRN [MRN], SSN [SSN], call [PHONE] or mail [EMAIL]; card [CARD], IBAN [IBAN]. Take 500 mg in 2019."
    )
    assert redact("nothing here", []) == "nothing here"
    # Unsorted input and an overlapping leftover are tolerated.
    leftovers = [PiiMatch("ssn", 3, 5), PiiMatch("email", 0, 2), PiiMatch("phone", 1, 3)]
    assert redact("abcdef", leftovers) == "[EMAIL]c[SSN]f"


def test_validators_follow_the_engine_signature():
    assert set(VALIDATORS) == {f"pii.{kind}" for kind in KINDS}
    text = "SSN 123-45-6789, card 4111111111111111, mail x@y.io"
    assert VALIDATORS["pii.ssn"](text, {}) == [(4, 15)]
    assert VALIDATORS["pii.credit_card"](text, {"stage": "input"}) == [(22, 38)]
    assert VALIDATORS["pii.email"](text, {}) == [(45, 51)]
    assert VALIDATORS["pii.iban"](text, {}) == []


# ------------------------------------------------------------------------------------------ labelled set


def test_generated_values_are_valid_and_spans_right():
    items = bench.generate(seed=3, n_per_kind=30)
    assert len(items) == 2 * 30 * len(KINDS)
    for item in items:
        if item["kind"] is None:
            assert item["value_span"] is None
            continue
        start, end = item["value_span"]
        value = item["text"][start:end]
        if item["kind"] == "credit_card":
            assert luhn_valid(value)
        elif item["kind"] == "iban":
            assert iban_valid(value)
        elif item["kind"] == "ssn":
            digits = value.replace("-", "").replace(" ", "")
            assert ssn_valid(digits[:3], digits[3:5], digits[5:])
    assert bench.generate(seed=3, n_per_kind=30) == items  # seeded


@pytest.mark.parametrize("seed", [0, 1])
def test_labelled_set_meets_targets(seed):
    result = bench.measure(bench.generate(seed=seed))
    overall = result["overall"]
    assert overall["positives"] == overall["negatives"] == 700
    assert overall["recall"] >= 0.95
    assert overall["fp_rate"] <= 0.02
    for kind, row in result["per_kind"].items():
        assert row["recall"] >= 0.9, kind


def test_bench_main_prints_both_seeds(tmp_path, capsys):
    out = tmp_path / "pii.json"
    assert bench.main(["--seed", "5", "--n", "20", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "seed 5" in printed and "seed 6" in printed and "overall" in printed
    assert out.exists()
