"""Guardrails: rule packs (loading, validation messages), normalisation with span mapping, the Guard engine's
actions, the built-in medical/finance rules, the output checks, the audit log and `assistant guard`.

The injection/harmful rules of common.yaml and the PII validators are tested elsewhere."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest
from conftest import run_cli

from core.citations import COULD_NOT_ANSWER, NO_ANSWER
from guardrails import output_checks as oc
from guardrails.audit import AuditLog
from guardrails.engine import Guard
from guardrails.events import GuardEvent, GuardResult
from guardrails.normalize import normalise
from guardrails.packs import BUILTIN, Pack, PackError, Rule, load_pack

# --- helpers ----------------------------------------------------------------------------------------------


def rule(**fields) -> Rule:
    base = dict(id="t.rule", stage="input", kind="pattern", patterns=("secret",), action="annotate", category="test", message="note")
    base.update(fields)
    return Rule(**base)


def guard(*rules: Rule, name: str = "t") -> Guard:
    return Guard([Pack(name=name, rules=tuple(rules))])


def ids(result: GuardResult) -> list[str]:
    return [e.rule_id for e in result.events]


def write_pack(tmp_path: Path, body: str, name: str = "pack.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


RULE_HEAD = """\
name: mine
rules:
  - id: my.rule
    stage: input
    category: test
"""


@pytest.fixture(scope="module")
def builtin_guard() -> Guard:
    # common.yaml's injection/harmful rules are still changing: the domain tests use the domain packs only.
    return Guard.from_packs(["medical", "finance"])


# --- 1. pack loading and validation -----------------------------------------------------------------------


def test_builtin_packs_load():
    packs = {name: load_pack(name) for name in ("common", "medical", "finance")}
    assert {p.name for p in packs.values()} == {"common", "medical", "finance"}
    assert {p.stem for p in BUILTIN.glob("*.yaml")} == {"common", "medical", "finance"}
    assert {"medical.emergency", "medical.self_harm", "medical.dosing", "medical.disclaimer"} <= {r.id for r in packs["medical"].rules}
    assert {"finance.personal_advice", "finance.promissory", "finance.disclaimer"} <= {r.id for r in packs["finance"].rules}
    assert {"output.grounding", "output.citation_invalid", "output.numbers", "input.not_covered"} <= {r.id for r in packs["common"].rules}
    Guard(list(packs.values()))  # no rule id clashes between the built-ins


def test_user_pack_file_works_in_a_guard_without_code_changes(tmp_path):
    path = write_pack(
        tmp_path,
        """\
        name: acme
        description: Company secrets.
        rules:
          - id: acme.codename
            stage: input
            kind: keywords
            keywords: [project falcon, bluebird]
            action: redact
            category: codename
          - id: acme.leak
            stage: output
            kind: pattern
            patterns: ['\\binternal only\\b']
            action: block
            category: leak
            message: That answer quoted an internal document.
        """,
    )
    pack = load_pack(path)
    assert pack.name == "acme" and [r.id for r in pack.rules] == ["acme.codename", "acme.leak"]
    checker = Guard.from_packs(["common", str(path)])
    result = checker.check("Tell me about Project   FALCON and bluebirds", "input")
    assert result.text == "Tell me about [CODENAME] and bluebirds"
    assert ids(result) == ["acme.codename"] and not result.blocked
    out = checker.check("This is INTERNAL ONLY [1].", "output", {"passages": ["This is internal only."]})
    assert out.blocked and out.reply == "That answer quoted an internal document."


@pytest.mark.parametrize(
    "body, expected",
    [
        (
            "    kind: pattern\n    patterns: ['x']\n    action: annotate\n    message: m\n    colour: red\n",
            "rule 'my.rule': colour: Extra inputs are not permitted",
        ),
        (
            "    kind: magic\n    action: annotate\n    message: m\n",
            "rule 'my.rule': kind: Input should be 'pattern', 'keywords', 'validator', 'threshold' or 'classifier'",
        ),
        ("    kind: pattern\n    action: annotate\n    message: m\n", "rule 'my.rule': kind 'pattern' needs a non-empty 'patterns' list"),
        (
            "    kind: keywords\n    keywords: []\n    action: annotate\n    message: m\n",
            "rule 'my.rule': kind 'keywords' needs a non-empty 'keywords' list",
        ),
        (
            "    kind: pattern\n    patterns: ['(unclosed']\n    action: annotate\n    message: m\n",
            "rule 'my.rule': patterns: pattern '(unclosed' is not a valid regular expression",
        ),
        (
            "    kind: pattern\n    patterns: ['x']\n    requires: ['[a-']\n    action: annotate\n    message: m\n",
            "rule 'my.rule': requires: pattern '[a-' is not a valid regular expression",
        ),
        (
            "    kind: validator\n    validator: pii.shoe_size\n    action: annotate\n    message: m\n",
            "rule 'my.rule': unknown validator 'pii.shoe_size'; known: always, citations.invalid, citations.missing, grounding, numbers, numbers.doses, numbers.unshown, pii.",
        ),
        ("    kind: pattern\n    patterns: ['x']\n    action: block\n", "rule 'my.rule': action 'block' needs a 'message'"),
        (
            "    kind: pattern\n    patterns: ['x']\n    action: disclaimer\n    message: '   '\n",
            "rule 'my.rule': action 'disclaimer' needs a 'message'",
        ),
        ("    kind: pattern\n    patterns: ['x']\n    action: rewrite\n", "rule 'my.rule': action 'rewrite' needs a 'replacement'"),
        (
            "    kind: threshold\n    signal: relevance\n    below: 0.5\n    action: redact\n",
            "rule 'my.rule': a threshold rule has no span to redact or rewrite",
        ),
        (
            "    kind: threshold\n    signal: relevance\n    action: block\n    message: m\n",
            "rule 'my.rule': kind 'threshold' needs 'signal' and 'below'",
        ),
        (
            "    kind: pattern\n    patterns: ['x']\n    action: explode\n    message: m\n",
            "rule 'my.rule': action: Input should be 'block', 'redact', 'rewrite', 'annotate' or 'disclaimer'",
        ),
        (
            "    kind: classifier\n    model: injection\n    action: block\n    message: m\n",
            "rule 'my.rule': kind 'classifier' needs 'model' and 'above'",
        ),
        (
            "    kind: classifier\n    model: injection\n    above: 1.5\n    action: block\n    message: m\n",
            "rule 'my.rule': above: Input should be less than or equal to 1",
        ),
        (
            "    kind: classifier\n    model: injection\n    above: 0.9\n    action: redact\n",
            "rule 'my.rule': a classifier rule has no span to redact or rewrite",
        ),
        (
            "    kind: classifier\n    model: no-such-model\n    above: 0.9\n    action: block\n    message: m\n",
            "rule 'my.rule': no classifier model 'no-such-model': not a built-in model (injection) nor a file",
        ),
    ],
    ids=[
        "unknown-field",
        "bad-kind",
        "pattern-without-patterns",
        "empty-keywords",
        "invalid-regex",
        "invalid-requires",
        "unknown-validator",
        "block-without-message",
        "disclaimer-blank-message",
        "rewrite-without-replacement",
        "threshold-with-redact",
        "threshold-without-below",
        "bad-action",
        "classifier-without-above",
        "classifier-above-out-of-range",
        "classifier-with-redact",
        "classifier-unknown-model",
    ],
)
def test_validation_errors_name_file_rule_and_problem(tmp_path, body, expected):
    path = write_pack(tmp_path, RULE_HEAD + body)
    with pytest.raises(PackError) as err:
        load_pack(path)
    message = str(err.value)
    assert message.startswith(f"{path}: "), message
    assert expected in message
    assert "\n" not in message


def test_validation_error_names_bad_stage(tmp_path):
    path = write_pack(
        tmp_path,
        RULE_HEAD.replace("stage: input", "stage: retrieval")
        + "    kind: pattern\n    patterns: ['x']\n    action: annotate\n    message: m\n",
    )
    with pytest.raises(PackError, match=r"rule 'my.rule': stage: Input should be 'input', 'ingest' or 'output'") as err:
        load_pack(path)
    assert str(path) in str(err.value)


def test_unknown_validator_lists_the_known_ones(tmp_path):
    path = write_pack(tmp_path, RULE_HEAD + "    kind: validator\n    validator: nope\n    action: redact\n")
    with pytest.raises(PackError) as err:
        load_pack(path)
    known = str(err.value).split("known: ", 1)[1].split(", ")
    assert {"always", "grounding", "numbers", "citations.missing", "citations.invalid", "pii.email", "pii.iban"} <= set(known)
    assert known == sorted(known)


def test_rule_without_id_is_named_by_position(tmp_path):
    path = write_pack(
        tmp_path,
        """\
        name: t
        rules:
          - {id: ok, stage: input, category: c, kind: pattern, patterns: [x], action: annotate, message: m}
          - {stage: input, category: c, kind: pattern, patterns: [y], action: annotate, message: m}
        """,
    )
    with pytest.raises(PackError, match=r"rule '#2': id: Field required"):
        load_pack(path)


def test_duplicate_rule_id_in_one_pack(tmp_path):
    path = write_pack(
        tmp_path,
        """\
        name: t
        rules:
          - {id: dup.rule, stage: input, category: c, kind: pattern, patterns: [x], action: annotate, message: m}
          - {id: dup.rule, stage: output, category: c, kind: pattern, patterns: [y], action: annotate, message: m}
        """,
    )
    with pytest.raises(PackError) as err:
        load_pack(path)
    assert str(err.value) == f"{path}: rule 'dup.rule' appears twice"


def test_duplicate_rule_id_across_two_packs_given_to_guard(tmp_path):
    a = write_pack(
        tmp_path,
        "name: alpha\nrules:\n  - {id: same.id, stage: input, category: c, kind: pattern, patterns: [x], action: annotate, message: m}\n",
        "a.yaml",
    )
    b = write_pack(
        tmp_path,
        "name: beta\nrules:\n  - {id: same.id, stage: output, category: c, kind: pattern, patterns: [y], action: annotate, message: m}\n",
        "b.yaml",
    )
    load_pack(a), load_pack(b)  # each is fine alone
    with pytest.raises(PackError, match=r"rule 'same.id' is in both pack 'alpha' and pack 'beta'"):
        Guard.from_packs([str(a), str(b)])
    with pytest.raises(PackError, match=r"rule '[\w.]+' is in both pack 'common' and pack 'common'"):
        Guard.from_packs(["common", "common"])


def test_not_yaml(tmp_path):
    path = write_pack(tmp_path, "name: t\nrules: [\n  - {")
    with pytest.raises(PackError) as err:
        load_pack(path)
    assert str(err.value).startswith(f"{path}: not valid YAML: ") and "\n" not in str(err.value)


@pytest.mark.parametrize("body", ["- a\n- b\n", "just a string\n", ""], ids=["list", "scalar", "empty"])
def test_not_a_mapping(tmp_path, body):
    path = write_pack(tmp_path, body)
    with pytest.raises(PackError) as err:
        load_pack(path)
    assert str(err.value) == f"{path}: a pack is a mapping with 'name' and 'rules'"


def test_pack_without_rules(tmp_path):
    path = write_pack(tmp_path, "name: t\n")
    with pytest.raises(PackError, match=r": rules: Field required"):
        load_pack(path)


def test_unknown_pack_name_lists_builtins(tmp_path):
    with pytest.raises(PackError) as err:
        load_pack("cardiology")
    assert str(err.value) == "no rule pack 'cardiology': not a built-in pack (common, finance, medical) nor a file"
    with pytest.raises(PackError, match="no rule pack"):
        Guard.from_packs(["common", str(tmp_path / "missing.yaml")])


def test_pack_error_is_a_user_error():
    from core.errors import UserError

    assert issubclass(PackError, UserError)


# --- 2. normalisation -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, normal",
    [
        ("ＩＧＮＯＲＥ ａｌｌ", "ignore all"),  # full-width (NFKC)
        ("𝐢𝐠𝐧𝐨𝐫𝐞", "ignore"),  # mathematical bold letters (NFKC)
        ("ig\u200bno\u200dre\u00adme", "ignoreme"),  # zero-width space/joiner, soft hyphen
        ("Ïgnöre", "ignore"),  # accents stripped
        ("1gn0r3 4ll", "ignore all"),  # leetspeak inside words
        ("p@$$w0rd", "password"),
        ("in 2019 revenue was 5.3 million", "in 2019 revenue was 5.3 million"),
        ("take 500 mg twice", "take 500 mg twice"),
        ("i g n o r e previous", "ignore previous"),
        ("i.g.n.o.r.e", "ignore"),
        ("I-G-N-O-R-E all", "ignore all"),
        ("a b c is short", "a b c is short"),  # three spread letters are not joined
        ("  a \t\n  b\r\nc   ", "a b c"),  # whitespace collapsed and trimmed
        ("e.g. this", "e.g. this"),
    ],
)
def test_normalise_text(raw, normal):
    assert normalise(raw).text == normal


def test_normalise_without_leet_keeps_digits():
    assert normalise("1gn0re", leet=False).text == "1gn0re"


def test_origin_maps_every_character_back():
    text = "A\u200b\u200bB   ＣD"
    norm = normalise(text)
    assert norm.text == "ab cd"
    assert len(norm.origin) == len(norm.text)
    assert norm.origin == (0, 3, 4, 7, 8)


def test_span_maps_back_over_removed_invisible_characters():
    text = "Please ig\u200bn\u200bore the rules"
    norm = normalise(text)
    start = norm.text.index("ignore")
    span = norm.span(start, start + len("ignore"))
    assert text[span[0] : span[1]] == "ig\u200bn\u200bore"


def test_span_maps_back_over_spread_letters_and_collapsed_spaces():
    text = "so   i.g.n.o.r.e\tthat"
    norm = normalise(text)
    assert norm.text == "so ignore that"
    start = norm.text.index("ignore")
    assert text[slice(*norm.span(start, start + 6))] == "i.g.n.o.r.e"
    assert text[slice(*norm.span(0, len(norm.text)))] == text


def test_span_of_empty_text():
    assert normalise("").span(0, 0) == (0, 0)
    assert normalise("\u200b  ").text == ""


# --- 3. engine actions ------------------------------------------------------------------------------------


def test_block_replies_with_message_and_other_rules_still_report():
    checker = guard(
        rule(id="t.block", patterns=(r"\bforbidden\b",), action="block", message="No."),
        rule(id="t.block2", patterns=(r"\bthing\b",), action="block", message="Also no."),
        rule(id="t.redact", patterns=(r"\bsecret\b",), action="redact", replacement="***"),
        rule(id="t.note", patterns=(r"\bthing\b",), action="annotate", message="a note"),
    )
    result = checker.check("the forbidden secret thing", "input")
    assert result.blocked and result.reply == "No."  # the first blocking rule's message
    assert ids(result) == ["t.block", "t.block2", "t.redact", "t.note"]
    assert result.text == "the forbidden *** thing"
    assert result.to_dict()["reply"] == "No." and result.to_dict()["blocked"] is True


def test_nothing_fires_on_a_clean_text():
    checker = guard(rule(patterns=(r"\bsecret\b",), action="block", message="No."))
    result = checker.check("a perfectly ordinary question", "input")
    assert not result.blocked and result.reply is None and result.events == []
    assert result.text == "a perfectly ordinary question"


def test_redact_uses_replacement_or_category_default():
    checker = guard(
        rule(id="t.named", patterns=(r"\bsecret\b",), action="redact", replacement="<gone>", category="x"),
        rule(id="t.default", patterns=(r"\bcodename \w+",), action="redact", category="internal_name"),
    )
    result = checker.check("A secret, codename falcon, another secret.", "input")
    assert result.text == "A <gone>, [INTERNAL_NAME], another <gone>."
    assert [(e.rule_id, e.action, e.span) for e in result.events] == [
        ("t.named", "redact", (2, 8)),
        ("t.named", "redact", (35, 41)),
        ("t.default", "redact", (10, 25)),
    ]


def test_redact_maps_spans_from_normalised_to_original_text():
    checker = guard(rule(patterns=(r"\bpassword\b",), action="redact", category="cred"))
    text = "my P@ss\u200bw0rd is hunter2"
    result = checker.check(text, "input")
    (event,) = result.events
    assert text[event.span[0] : event.span[1]] == "P@ss\u200bw0rd"
    assert result.text == "my [CRED] is hunter2"


def test_overlapping_redactions_earlier_then_longer_wins():
    checker = guard(
        rule(id="t.a", patterns=(r"abc def",), action="redact", replacement="[A]"),
        rule(id="t.b", patterns=(r"def ghi",), action="redact", replacement="[B]"),
        rule(id="t.c", patterns=(r"xyz",), action="redact", replacement="[C]"),
        rule(id="t.d", patterns=(r"xyz uvw",), action="redact", replacement="[D]"),
    )
    result = checker.check("abc def ghi xyz uvw", "input")
    assert result.text == "[A] ghi [D]"
    assert ids(result) == ["t.a", "t.b", "t.c", "t.d"]  # all reported, even the ones that lost


def test_rewrite_keeps_matched_text_with_placeholder():
    checker = guard(rule(patterns=(r"\bmaybe \w+",), action="rewrite", replacement="<<{text}>>", message="marked"))
    result = checker.check("It is maybe true and Maybe  False.", "input")
    assert result.text == "It is <<maybe true>> and <<Maybe  False>>."
    assert [e.action for e in result.events] == ["rewrite", "rewrite"]


def test_annotate_leaves_text_unchanged():
    checker = guard(rule(patterns=(r"\bsecret\b",), action="annotate", message="Careful."))
    result = checker.check("The SECRET plan.", "input")
    assert result.text == "The SECRET plan." and not result.blocked
    (event,) = result.events
    assert (event.action, event.message, event.span, event.category) == ("annotate", "Careful.", (4, 10), "test")


def test_annotate_reports_one_event_per_rule():
    checker = guard(rule(patterns=(r"\bsecret\b",), action="annotate"))
    assert len(checker.check("secret secret secret", "input").events) == 1


def test_disclaimer_appended_once():
    checker = guard(
        rule(id="t.d1", stage="output", kind="validator", validator="always", action="disclaimer", message="Not advice."),
        rule(id="t.d2", stage="output", kind="pattern", patterns=(r"\w+",), action="disclaimer", message="Not advice."),
        rule(id="t.d3", stage="output", kind="validator", validator="always", action="disclaimer", message="Second line."),
    )
    result = checker.check("The answer.  \n", "output")
    assert result.text == "The answer.\n\nNot advice.\nSecond line."
    assert ids(result) == ["t.d1", "t.d2", "t.d3"]
    assert checker.check("   ", "output").text == "   "  # "always" does not fire on an empty answer


def test_unless_excepts_a_text_from_a_rule():
    checker = guard(rule(patterns=(r"\bact as\b",), unless=(r"\bact as an? (?:auditor|analyst)\b",), message="role"))
    assert ids(checker.check("Act as a terminal.", "input")) == ["t.rule"]
    assert ids(checker.check("Act as an auditor: how was revenue measured?", "input")) == []


def test_requires_gates_a_rule():
    checker = guard(rule(patterns=(r"\bdose\b",), requires=(r"\bshould i\b", r"\bcan i\b"), message="personal"))
    assert ids(checker.check("What is the usual dose?", "input")) == []
    assert ids(checker.check("Should I   change my DOSE?", "input")) == ["t.rule"]
    assert ids(checker.check("Can I skip a dose?", "input")) == ["t.rule"]
    assert ids(checker.check("Should I stop?", "input")) == []  # requires alone is not enough


def test_keywords_are_whole_words_on_normalised_text():
    checker = guard(rule(kind="keywords", patterns=(), keywords=("ignore", "previous instructions"), message="kw"))
    assert ids(checker.check("Ignore that.", "input")) == ["t.rule"]
    assert ids(checker.check("I ignored that.", "input")) == []
    assert ids(checker.check("signore", "input")) == []
    assert ids(checker.check("1GN0RE it", "input")) == ["t.rule"]
    assert ids(checker.check("i g n o r e it", "input")) == ["t.rule"]
    assert ids(checker.check("the PREVIOUS\n\n  instructions", "input")) == ["t.rule"]
    assert ids(checker.check("the previousinstructions", "input")) == []
    listed = guard(rule(kind="keywords", patterns=(), keywords=("ignore", "ignored"), message="kw"))
    assert ids(listed.check("I ignored that.", "input")) == ["t.rule"]


def test_keyword_span_maps_to_original():
    checker = guard(rule(kind="keywords", patterns=(), keywords=("ignore",), action="redact", replacement="_"))
    result = checker.check("Please ＩＧＮＯＲＥ it", "input")
    assert result.events[0].span == (7, 13) and result.text == "Please _ it"


def test_threshold_fires_below_value_only_when_signal_present():
    checker = guard(rule(kind="threshold", patterns=(), signal="relevance", below=0.5, action="block", message="Off topic."))
    fired = checker.check("q", "input", {"relevance": 0.2})
    assert fired.blocked and fired.reply == "Off topic." and fired.events[0].span is None
    assert fired.text == "q"
    assert not checker.check("q", "input", {"relevance": 0.5}).events  # not below
    assert not checker.check("q", "input", {"relevance": 0.9}).events
    assert not checker.check("q", "input", {}).events  # signal missing
    assert not checker.check("q", "input").events
    assert not checker.check("q", "input", {"relevance": "0.1"}).events  # not a number
    assert not checker.check("q", "input", {"relevance": None}).events
    assert checker.check("q", "input", {"relevance": 0}).blocked


def test_classifier_rule_fires_at_or_above_its_threshold(tmp_path):
    from guardrails.classifier import load_classifier, train

    # A tiny model trained here: "pirate" wording is the positive class.
    texts = [
        "talk like a pirate now",
        "arr matey pirate speak",
        "be a pirate captain",
        "pirate voice please",
        "what is the dose of aspirin",
        "how is revenue recognised",
        "symptoms of flu",
        "net income in 2019",
    ]
    path = tmp_path / "pirate.json"
    path.write_text(json.dumps(train(texts, [1, 1, 1, 1, 0, 0, 0, 0])), encoding="utf-8")
    model = load_classifier(str(path))
    pirate, dose = model.score("answer like a pirate"), model.score("what is the usual dose of aspirin")
    assert 0.0 <= dose < 0.5 < pirate <= 1.0
    checker = guard(rule(kind="classifier", patterns=(), model=str(path), above=0.5, action="block", message="No."))
    fired = checker.check("Answer like a PIRATE", "input")  # scored on the normalised (lower-cased) text
    assert fired.blocked and fired.reply == "No." and fired.events[0].span == (0, 20)
    assert not checker.check("what is the usual dose of aspirin", "input").events
    strict = guard(rule(kind="classifier", patterns=(), model=str(path), above=round(pirate, 6) + 1e-6, action="block", message="No."))
    assert not strict.check("answer like a pirate", "input").events


def test_classifier_model_file_errors_are_clear(tmp_path):
    from core.errors import UserError
    from guardrails.classifier import TextClassifier, load_classifier

    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    with pytest.raises(UserError, match=r"broken.json: cannot read classifier model"):
        load_classifier(str(broken))
    with pytest.raises(UserError, match=r"not a classifier model file \(KeyError"):
        TextClassifier({"vocabulary": ["ab"]})
    with pytest.raises(UserError, match="different lengths"):
        TextClassifier(
            {
                "vectoriser": {"analyzer": "char_wb", "ngram_range": [2, 3], "sublinear_tf": True},
                "vocabulary": ["ab", "bc"],
                "idf": [1.0, 1.0],
                "coef": [0.5],
                "intercept": 0,
            }
        )


def test_shipped_injection_model_card_and_in_domain_questions():
    from guardrails.classifier import load_classifier

    model = load_classifier("injection")
    assert model.card["suggested_threshold"] == 0.85 and model.card["trained_on"]["positive"] > 100
    common = {r.id: r for r in load_pack("common").rules}
    assert common["injection.classifier"].above == model.card["suggested_threshold"]
    for question in (
        "What is the recommended dose of metformin for adults?",
        "What are the symptoms of glaucoma?",
        "What was the change in operating income between 2018 and 2019?",
        "How does the company recognise revenue?",
    ):
        assert model.score(question) < 0.5, question


def test_kinds_filter():
    checker = guard(
        rule(id="t.pattern", patterns=(r"\bq\b",), message="p"),
        rule(id="t.threshold", kind="threshold", patterns=(), signal="relevant", below=0.5, action="block", message="Off."),
        rule(id="t.always", kind="validator", patterns=(), validator="always", action="annotate", message="a"),
    )
    context = {"relevant": 0.0}
    assert ids(checker.check("q", "input", context)) == ["t.pattern", "t.threshold", "t.always"]
    assert ids(checker.check("q", "input", context, kinds={"threshold"})) == ["t.threshold"]
    assert ids(checker.check("q", "input", context, kinds={"pattern", "validator"})) == ["t.pattern", "t.always"]
    assert ids(checker.check("q", "input", context, kinds=set())) == []


def test_stages_are_separate():
    checker = guard(
        rule(id="t.in", stage="input", patterns=(r"\bword\b",), message="in"),
        rule(id="t.ingest", stage="ingest", patterns=(r"\bword\b",), message="ingest"),
        rule(id="t.out", stage="output", patterns=(r"\bword\b",), message="out"),
    )
    for stage, rule_id in [("input", "t.in"), ("ingest", "t.ingest"), ("output", "t.out")]:
        result = checker.check("a word", stage)
        assert ids(result) == [rule_id] and result.events[0].stage == stage


def test_pattern_matching_is_case_insensitive_even_for_uppercase_patterns():
    checker = guard(rule(patterns=(r"\bSECRET\b",), message="x"))
    assert ids(checker.check("a secret", "input")) == ["t.rule"]


def test_event_dict_is_safe_and_complete():
    event = GuardEvent("r.id", "input", "redact", "pii", "", (1, 5))
    assert event.to_dict() == {"rule_id": "r.id", "stage": "input", "action": "redact", "category": "pii", "message": "", "span": (1, 5)}


# --- 4. built-in medical and finance rules ----------------------------------------------------------------


EMERGENCY = load_pack("medical").rules[0].message
SELF_HARM = load_pack("medical").rules[1].message


@pytest.mark.parametrize(
    "text",
    [
        "I am having chest pain right now",
        "I'm having a heart attack right now",
        "My husband is unconscious",
        "My son can't breathe",
        "She's having a seizure right now",
        "I took too many pills",
        "I overdosed on paracetamol",
        "What should I do, my dad has chest pain right now",
        "Ich habe starke Brustschmerzen jetzt",
        "Er bekommt keine Luft",
        "Mein Vater ist bewusstlos",
    ],
)
def test_emergencies_block_with_emergency_message(builtin_guard, text):
    result = builtin_guard.check(text, "input", {"relevant": 1})
    assert result.blocked, text
    assert result.reply == EMERGENCY and "112" in result.reply and "911" in result.reply
    assert ids(result) == ["medical.emergency"]


@pytest.mark.parametrize(
    "text",
    [
        "What are the symptoms of a heart attack?",
        "What is the suicide rate in Europe?",
        "How is an overdose of paracetamol treated?",
        "How do you recognise a stroke?",
        "What causes chest pain after exercise?",
        "Was sind die Symptome eines Herzinfarkts?",
        "What is the usual dose of metformin?",
    ],
)
def test_informational_medical_questions_do_not_block(builtin_guard, text):
    result = builtin_guard.check(text, "input", {"relevant": 1})
    assert not result.blocked and result.events == [], ids(result)
    assert result.text == text


@pytest.mark.parametrize(
    "text",
    [
        "I want to kill myself",
        "I'm thinking about ending it, I want to end my life",
        "I don't want to live anymore",
        "Ich will mich umbringen",
        "Ich will nicht mehr leben",
    ],
)
def test_self_harm_blocks_with_crisis_lines(builtin_guard, text):
    result = builtin_guard.check(text, "input")
    assert result.blocked and result.reply == SELF_HARM
    assert "988" in result.reply and "116 123" in result.reply and "0800 111 0 111" in result.reply
    assert "medical.self_harm" in ids(result)


@pytest.mark.parametrize(
    "text",
    [
        "Should I double my dose of metformin?",
        "How much insulin should I take?",
        "Can I take 500 mg of ibuprofen?",
        "Is it safe for me to double my dose?",
        "Soll ich die Dosis erhöhen?",
    ],
)
def test_personal_dosing_questions_are_annotated(builtin_guard, text):
    result = builtin_guard.check(text, "input")
    assert ids(result) == ["medical.dosing"] and not result.blocked
    assert result.text == text
    assert "clinician or pharmacist" in result.events[0].message


@pytest.mark.parametrize(
    "text",
    [
        "Should I buy Apple stock?",
        "Soll ich Aktien kaufen?",
        "Is Tesla a good investment?",
        "Which stocks should I buy?",
        "How should I invest my savings?",
        "Sollte ich in ETFs investieren?",
    ],
)
def test_personal_finance_advice_is_annotated(builtin_guard, text):
    result = builtin_guard.check(text, "input")
    assert ids(result) == ["finance.personal_advice"] and not result.blocked
    assert result.text == text and "not financial advice" in result.events[0].message


@pytest.mark.parametrize(
    "text",
    ["What was Apple's revenue in 2019?", "What is a dividend payout ratio?", "How are bonds priced?", "When is revenue recognised?"],
)
def test_general_finance_questions_are_not_annotated(builtin_guard, text):
    assert builtin_guard.check(text, "input").events == []


FIN_CONTEXT = {"passages": ["The fund had returns of 10% and the risk-free rate was 2%; notes guaranteed by the parent company pay 5%."]}
PROMISSORY = "[promissory wording removed: no investment return is guaranteed]"


def test_promissory_output_is_rewritten():
    checker = Guard.from_packs(["finance"])
    result = checker.check("The fund offers guaranteed returns of 10% [1]. You can't lose.", "output", FIN_CONTEXT)
    assert result.text.startswith(f"The fund offers {PROMISSORY} of 10% [1]. {PROMISSORY}.")
    assert [e.rule_id for e in result.events if e.action == "rewrite"] == ["finance.promissory"] * 2


@pytest.mark.parametrize("text", ["The risk-free rate was 2% [1].", "The notes guaranteed by the parent company pay 5% [1]."])
def test_non_promissory_finance_wording_is_left_alone(text):
    result = Guard.from_packs(["finance"]).check(text, "output", FIN_CONTEXT)
    assert "finance.promissory" not in ids(result)
    assert result.text.startswith(text)


def test_output_disclaimers_appended():
    checker = Guard.from_packs(["common", "medical", "finance"])
    passages = ["Metformin is a first-line medicine for type 2 diabetes."]
    result = checker.check("Metformin is a first-line medicine for type 2 diabetes [1].", "output", {"passages": passages})
    med, fin = load_pack("medical").rules[-1].message, load_pack("finance").rules[-1].message
    assert result.text == f"Metformin is a first-line medicine for type 2 diabetes [1].\n\n{med}\n{fin}"
    assert ids(result) == ["medical.disclaimer", "finance.disclaimer"]
    # disclaimers are output-only
    assert checker.check("Metformin dosing in general", "input").text == "Metformin dosing in general"


def test_not_covered_threshold_from_common_pack():
    checker = Guard.from_packs(["common"])
    blocked = checker.check("What is the capital of Peru?", "input", {"answerable": 0.0}, kinds={"threshold"})
    assert blocked.blocked and "do not cover" in blocked.reply
    assert not checker.check("What is metformin?", "input", {"answerable": 1.0}, kinds={"threshold"}).events
    assert not checker.check("What is metformin?", "input").events  # before retrieval there is no signal


# --- 5. output checks -------------------------------------------------------------------------------------


PASSAGES = [
    "Metformin is a first-line medicine for type 2 diabetes. It lowers glucose production in the liver.",
    "Common side effects are nausea and diarrhoea; take it with meals. The usual dose is 500 mg twice daily.",
]
CTX = {"passages": PASSAGES, "question": "What are the side effects of metformin?"}


def test_invalid_citation_spans():
    text = "A [1]. B [3]. C [1, 4]. D [0]."
    assert oc.invalid_citations(text, {"passages": ["x", "y"]}) == [(9, 12), (16, 22), (26, 29)]
    assert oc.invalid_citations("A [1][2].", {"passages": ["x", "y"]}) == []
    assert oc.invalid_citations("A [1].", {}) == [(2, 5)]  # no passages: every marker is invalid


def test_invalid_citation_removed_by_common_pack():
    checker = Guard.from_packs(["common"])
    result = checker.check("Metformin is a first-line medicine for type 2 diabetes [1][9].", "output", CTX)
    assert result.text == "Metformin is a first-line medicine for type 2 diabetes [1]."
    assert ids(result) == ["output.citation_invalid"]


def test_missing_citation():
    assert oc.missing_citation("Metformin treats diabetes.", CTX) == [None]
    assert oc.missing_citation("Metformin treats diabetes [5].", CTX) == [None]  # only an invalid marker
    assert oc.missing_citation("Metformin treats diabetes [2].", CTX) == []
    assert oc.missing_citation(NO_ANSWER, CTX) == []  # a refusal needs no citation
    assert oc.missing_citation("Sorry: the passages do not contain the answer", CTX) == []
    assert oc.missing_citation("  ", CTX) == []


def test_grounding_keeps_supported_and_removes_unsupported_sentences():
    text = "Metformin is a first-line medicine for type 2 diabetes [1]. Metformin cures cancer quickly [2]."
    assert oc.unsupported_sentences(text, CTX) == [(60, 95)]
    result = Guard.from_packs(["common"]).check(text, "output", CTX)
    assert result.text.strip() == "Metformin is a first-line medicine for type 2 diabetes [1]."
    assert ids(result) == ["output.grounding"]


def test_grounding_checks_the_cited_passage_not_all_of_them():
    # supported by passage 2, but cites passage 1
    text = "Common side effects are nausea and diarrhoea [1]."
    assert oc.unsupported_sentences(text, CTX) == [(0, len(text))]
    assert oc.unsupported_sentences(text.replace("[1]", "[2]"), CTX) == []


def test_sentence_without_citation_is_removed():
    text = "Metformin is a first-line medicine for type 2 diabetes [1]. It lowers glucose production in the liver."
    assert oc.unsupported_sentences(text, CTX) == [(60, len(text))]
    assert oc.unsupported_sentences(NO_ANSWER, CTX) == []


def test_embedding_support_rescues_a_paraphrase():
    text = "The drug reduces sugar made by the body's biggest gland [1]."
    assert oc.unsupported_sentences(text, CTX) == [(0, len(text))]
    seen = []

    def support(sentence, sources):
        seen.append((sentence, sources))
        return 0.9

    assert oc.unsupported_sentences(text, {**CTX, "support": support}) == []
    assert seen == [("The drug reduces sugar made by the body's biggest gland .", [PASSAGES[0]])]
    assert oc.unsupported_sentences(text, {**CTX, "support": lambda s, p: 0.5}) == [(0, len(text))]
    # the scorer never rescues a sentence that cites nothing
    assert oc.unsupported_sentences("Paraphrase without a citation.", {**CTX, "support": lambda s, p: 1.0}) != []


def test_quote_fallback_when_nothing_is_supported():
    result = Guard.from_packs(["common"]).check("Metformin cures cancer [1]. Unicorns fly [2].", "output", CTX)
    assert result.text == f'{COULD_NOT_ANSWER}\n"Common side effects are nausea and diarrhoea; take it with meals." [2]'
    assert ids(result)[-1] == "output.grounding_fallback"
    assert result.events[-1].action == "rewrite" and result.events[-1].category == "grounding"
    # Only the passages the answerability check accepted are quoted; with none, the answer is the refusal.
    only_first = Guard.from_packs(["common"]).check("Unicorns fly [2].", "output", {**CTX, "evidence": [1]})
    assert only_first.text == NO_ANSWER and "no passage sentence bears on the question" in only_first.events[-1].message


def test_quote_fallback_picks_sentences_overlapping_the_question():
    assert (
        oc.quote_fallback("What does it do to glucose in the liver?", PASSAGES, k=1) == '"It lowers glucose production in the liver." [1]'
    )
    assert oc.quote_fallback("What is the usual dose?", PASSAGES, k=1) == '"The usual dose is 500 mg twice daily." [2]'
    assert oc.quote_fallback("zebra migration", PASSAGES) == ""
    assert oc.quote_fallback("anything", []) == ""
    assert oc.quote_fallback("What is the usual dose?", PASSAGES, evidence=[1]) == ""  # passage 2 was not accepted


def test_quote_fallback_with_key_terms_needs_the_subject_not_the_question_words():
    passages = [
        "Women who have had their ovaries removed have a higher risk of ovarian cancer in the peritoneum.",
        "Women who have had their ovaries removed have a higher risk of osteoporosis later in life.",
    ]
    question = "Who is at risk for osteoporosis?"
    # Content words alone let "who" and "risk" carry a sentence about another disease ...
    assert oc.quote_fallback(question, passages, k=2).count("[") == 2
    # ... the key terms ("risk", "osteoporosis") do not.
    assert oc.quote_fallback(question, passages, terms=["risk", "osteoporosis"]) == f'"{passages[1]}" [2]'
    assert (
        oc.quote_fallback("Skin cancer?", ["A skin disorder present at birth makes the skin thick and scaly."], terms=["skin", "cancer"])
        == ""
    )
    # Plurals meet singulars; a term of several words needs them all.
    losses = "No asset impairment losses were recognized in 2019 on property, plant and equipment."
    assert oc.quote_fallback("q", [losses], terms=["impairment", "loss", "2019"]) == f'"{losses}" [1]'
    assert oc.quote_fallback("q", [losses], terms=["plant-machinery", "loss"]) == ""


def test_a_lead_in_ending_in_a_colon_or_a_question_is_not_evidence():
    assert not oc.quotable("Revenue based on the geographic location of our customers was as follows:")
    assert oc.quotable("Revenue based on the geographic location of our customers grew in every region.")
    assert not oc.quotable("How might limb-girdle muscular dystrophy be treated?")


@pytest.mark.parametrize(
    "sentence, fit",
    [
        ("The usual dose is 500 mg twice daily.", True),
        ("Consolidated Statements of Cash Flows", False),  # a statement's title
        ("Item 7. Management's Discussion and Analysis of Financial Condition", False),  # a page heading
        ("Revenue | 2019: 1,496 | 2018: 1,334 | 2017: 1,201", True),  # a row with its label and column headers
        ("| 1,496 | 1,334 | 1,201 | (12) |", False),  # bare cells
        ("Total | 1,496 | 1,334 | 1,201", False),  # cells without their column headers
        ("2019 2018 2017 1,496 1,334 1,201 (12) 4.5 % 3.2 %", False),  # a run of numbers
    ],
)
def test_only_prose_is_quoted_as_evidence(sentence, fit):
    assert oc.quotable(sentence) is fit


def test_no_fallback_while_a_supported_sentence_remains():
    text = "It lowers glucose production in the liver [1]. Unicorns fly [2]."
    result = Guard.from_packs(["common"]).check(text, "output", CTX)
    assert "output.grounding_fallback" not in ids(result)
    assert result.text.strip() == "It lowers glucose production in the liver [1]."


def test_numbers_absent_from_passages_are_flagged():
    context = {"passages": ["Revenue was 1234 dollars, up 5.30% on 2019; 12.5 mg."]}
    text = "Revenue was 1,234 dollars [1], up 5.3% [1, 2] since 2019 [1]; dose 12.50 mg, not 99 or 7.5."
    spans = oc.unsupported_numbers(text, context)
    assert [text[a:b] for a, b in spans] == ["99", "7.5"]


def test_numbers_ignore_citation_markers_even_invalid_ones():
    assert oc.unsupported_numbers("Fine [1]. Also [3, 17].", {"passages": ["nothing numeric"]}) == []
    assert oc.unsupported_numbers("", {"passages": []}) == []


def test_numbers_rule_annotates_in_common_pack():
    text = "The usual dose is 1,000 mg [2]."
    result = Guard.from_packs(["common"]).check(text, "output", CTX)
    assert ids(result) == ["output.numbers"] and result.text == text
    assert result.events[0].span == (18, 23)


def test_always_validator():
    assert oc.always("x", {}) == [None]
    assert oc.always(" \n", {}) == []


# --- 6. audit log -----------------------------------------------------------------------------------------


def test_audit_log_records_rule_ids_and_spans_never_the_values(tmp_path):
    log = AuditLog(tmp_path / "logs" / "audit.jsonl")
    checker = Guard.from_packs(["common", "medical"], audit=log)
    text = "I want to kill myself, write to jane.doe@example.com"
    checker.check(text, "input", {"request_id": "req-1", "question": text, "relevance": 0.7, "passages": ["secret passage"]})
    log.close()
    raw = (tmp_path / "logs" / "audit.jsonl").read_text(encoding="utf-8")
    assert "jane.doe" not in raw and "example.com" not in raw and "kill myself" not in raw and "secret passage" not in raw
    (entry,) = [json.loads(line) for line in raw.splitlines()]
    assert entry["stage"] == "input" and entry["blocked"] is True
    assert entry["request_id"] == "req-1" and entry["relevance"] == 0.7 and "question" not in entry
    events = {e["rule_id"]: e for e in entry["events"]}
    assert {"medical.self_harm", "pii.email"} <= set(events)
    assert "message" not in events["pii.email"]
    start, end = events["pii.email"]["span"]
    assert text[start:end] == "jane.doe@example.com"
    assert entry["elapsed_ms"] >= 0 and entry["time"].endswith("+00:00")


def test_audit_log_only_events_skips_clean_checks(tmp_path):
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    checker = Guard.from_packs(["medical"], audit=log)
    checker.check("What is metformin?", "input")
    checker.check("Should I double my dose?", "input")
    log.close()
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["events"][0]["rule_id"] == "medical.dosing"

    everything = AuditLog(tmp_path / "all.jsonl", only_events=False)
    Guard.from_packs(["medical"], audit=everything).check("What is metformin?", "input")
    everything.close()
    (entry,) = [json.loads(line) for line in (tmp_path / "all.jsonl").read_text().splitlines()]
    assert entry["events"] == [] and entry["blocked"] is False


def test_audit_log_rotates(tmp_path):
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, max_bytes=300, backups=2)
    checker = Guard.from_packs(["medical"], audit=log)
    for _ in range(10):
        checker.check("Should I double my dose?", "input")
    log.close()
    assert (tmp_path / "audit.jsonl.1").exists() and (tmp_path / "audit.jsonl.2").exists()
    assert not (tmp_path / "audit.jsonl.3").exists()
    for file in (path, tmp_path / "audit.jsonl.1"):
        for line in file.read_text(encoding="utf-8").splitlines():
            assert json.loads(line)["events"][0]["rule_id"] == "medical.dosing"
        assert file.stat().st_size <= 300


# --- 7. CLI -----------------------------------------------------------------------------------------------


def test_cli_guard_json(cli_env):
    out = run_cli(["guard", "I am having chest pain right now", "--pack", "common", "--pack", "medical", "--json"], cli_env)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert set(result) == {"blocked", "reply", "text", "events"}
    assert result["blocked"] is True and result["reply"] == EMERGENCY
    assert result["text"] == "I am having chest pain right now"
    (event,) = [e for e in result["events"] if e["rule_id"] == "medical.emergency"]
    assert event == {
        "rule_id": "medical.emergency",
        "stage": "input",
        "action": "block",
        "category": "emergency",
        "message": EMERGENCY,
        "span": [0, 32],
    }


def test_cli_guard_human_output(cli_env):
    out = run_cli(["guard", "mail me at jane@example.com"], cli_env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == "allowed: mail me at [EMAIL]"
    assert "pii.email [pii] redact at 11-27" in out.stdout


def test_cli_guard_file_jsonl(tmp_path, cli_env):
    lines = [
        {"text": "Should I buy Apple stock?"},
        {"text": "What was Apple's revenue in 2019?"},
        {"text": "Ich will mich umbringen"},
    ]
    path = tmp_path / "items.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines[:2]) + "\n\n" + json.dumps(lines[2]) + "\n", encoding="utf-8")
    out = run_cli(["guard", "--file", str(path), "--pack", "medical", "--pack", "finance"], cli_env)
    assert out.returncode == 0, out.stderr
    results = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["line"] for r in results] == [1, 2, 4]  # the blank line is skipped, numbering kept
    assert [r["blocked"] for r in results] == [False, False, True]
    assert [[e["rule_id"] for e in r["events"]] for r in results] == [["finance.personal_advice"], [], ["medical.self_harm"]]


def test_cli_guard_file_output_stage_with_passages(tmp_path, cli_env):
    path = tmp_path / "answers.jsonl"
    path.write_text(
        json.dumps({"text": "Metformin cures cancer [1].", "passages": PASSAGES, "question": "side effects of metformin?"}) + "\n"
    )
    out = run_cli(["guard", "--file", str(path), "--stage", "output", "--json"], cli_env)
    assert out.returncode == 0, out.stderr
    (result,) = [json.loads(line) for line in out.stdout.splitlines()]
    assert result["text"].startswith(f'{COULD_NOT_ANSWER}\n"Common side effects are nausea and diarrhoea; take it with meals." [2]')
    assert [e["rule_id"] for e in result["events"]] == ["output.grounding", "output.grounding_fallback"]


@pytest.mark.parametrize("bad", ["not json", '["a list"]', '{"text": 5}', '{"question": "no text"}'])
def test_cli_guard_file_bad_line(tmp_path, cli_env, bad):
    path = tmp_path / "items.jsonl"
    path.write_text(json.dumps({"text": "fine"}) + "\n" + bad + "\n", encoding="utf-8")
    out = run_cli(["guard", "--file", str(path)], cli_env)
    assert out.returncode == 2
    assert out.stderr.startswith(f"error: {path}:2: ") and "Traceback" not in out.stderr


def test_cli_guard_unknown_pack(cli_env):
    out = run_cli(["guard", "hello", "--pack", "cardiology"], cli_env)
    assert out.returncode == 2
    assert out.stderr.strip() == "error: no rule pack 'cardiology': not a built-in pack (common, finance, medical) nor a file"


def test_cli_guard_invalid_user_pack(tmp_path, cli_env):
    path = write_pack(tmp_path, RULE_HEAD + "    kind: pattern\n    patterns: ['(']\n    action: annotate\n    message: m\n")
    out = run_cli(["guard", "hello", "--pack", str(path)], cli_env)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert f"{path}: rule 'my.rule': patterns: pattern '(' is not a valid regular expression" in out.stderr


@pytest.mark.parametrize("args", [[], ["some text", "--file", "FILE"]], ids=["neither", "both"])
def test_cli_guard_needs_text_or_file(tmp_path, cli_env, args):
    path = tmp_path / "x.jsonl"
    path.write_text('{"text": "a"}\n')
    out = run_cli(["guard", *[str(path) if a == "FILE" else a for a in args]], cli_env)
    assert out.returncode == 2
    assert out.stderr.strip() == "error: give either TEXT or --file FILE.jsonl"


# --- regressions: bugs found by these tests and fixed -------------------------------------------------------


# Was: normalise() reads '!' after a letter as leetspeak 'i' ('now!' -> 'nowi'), so the word boundary the medical.emergency patterns end with is lost: an emergency ending in '!' is not blocked
@pytest.mark.parametrize("text", ["I am having chest pain right now!", "My son can't breathe!", "My husband is unconscious!"])
def test_regression_exclamation_mark_hides_an_emergency(builtin_guard, text):
    assert builtin_guard.check(text, "input").blocked


# Was: keyword 'stop' does not match 'Stop!': trailing '!' becomes 'i' in the normalised text
def test_regression_keyword_followed_by_exclamation_mark():
    checker = guard(rule(kind="keywords", patterns=(), keywords=("stop",), message="kw"))
    assert ids(checker.check("Stop!", "input")) == ["t.rule"]


# Was: normalise() strips umlauts (ö -> o) from the text but rule patterns are not normalised, so medical.self_harm's 'ich möchte' / 'töten' can never match
@pytest.mark.parametrize("text", ["Ich möchte mich umbringen", "Ich will mich töten"])
def test_regression_umlaut_patterns_never_match(builtin_guard, text):
    assert builtin_guard.check(text, "input").blocked


# Was: leetspeak turns digits glued to a unit into letters ('500mg' -> 'soomg'), so medical.dosing misses 'Can I take 500mg of ibuprofen?' while '500 mg' is annotated
def test_regression_number_glued_to_unit_hides_dosing_question(builtin_guard):
    assert normalise("500mg").text == "500mg"
    assert ids(builtin_guard.check("Can I take 500mg of ibuprofen?", "input")) == ["medical.dosing"]


# Was: keywords are normalised with leet=False but the text with leet=True, so a keyword containing digits ('b12', '401k') never matches its own spelling
@pytest.mark.parametrize("keyword, text", [("b12", "take vitamin B12 daily"), ("401k", "my 401k plan")])
def test_regression_keyword_with_digits_never_matches(keyword, text):
    checker = guard(rule(kind="keywords", patterns=(), keywords=(keyword,), message="kw"))
    assert ids(checker.check(text, "input")) == ["t.rule"]


# Was: Guard raises a plain ValueError (not PackError/UserError) for a rule id in two packs, so `assistant guard --pack common --pack common` prints a traceback and exits 1 instead of 2
def test_regression_duplicate_rule_across_packs_is_a_user_error(cli_env):
    out = run_cli(["guard", "hello", "--pack", "common", "--pack", "common"], cli_env)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert re.search(r"rule '[\w.]+' is in both pack 'common' and pack 'common'", out.stderr)


def test_lexical_support_counts_content_words_only():
    # content words: metformin, lowers, liver, glucose -> 3 of 4 in the passage
    assert oc.lexical_support("Metformin lowers glucose in the liver.", ["Metformin lowers glucose production."]) == pytest.approx(3 / 4)
    assert oc.lexical_support("It is what it is.", ["unrelated"]) == 1.0  # nothing to check


NUMBER_PASSAGES = ["Revenue | 2019: 1,496 | 2018: 1,334", "Operating costs were $620 million in 2019."]


def test_a_number_in_no_cited_passage_is_mental_arithmetic_and_its_sentence_goes():
    checker = Guard.from_packs(["common", "finance"])
    text = "Revenue was 1,496 in 2019 [1]. Revenue grew by 162 [1]."
    result = checker.check(text, "output", {"passages": NUMBER_PASSAGES})
    assert result.text.startswith("Revenue was 1,496 in 2019 [1].")
    assert "162" not in result.text
    assert "finance.numbers_unshown" in ids(result)
    # the common rail's note about the removed number points at nothing the user sees, so it is dropped
    assert "output.numbers" not in ids(result)


def test_a_number_must_be_in_the_passage_the_sentence_cites():
    checker = Guard.from_packs(["finance"])
    result = checker.check("Operating costs were $620 million [1].", "output", {"passages": NUMBER_PASSAGES})
    assert "620" not in result.text  # [2] holds it, [1] does not
    kept = checker.check("Operating costs were $620 million [2].", "output", {"passages": NUMBER_PASSAGES})
    assert kept.text.startswith("Operating costs were $620 million [2].")


def test_a_shown_amount_rounded_or_a_list_number_is_not_mental_arithmetic():
    from guardrails.output_checks import unshown_numbers

    passages = {"passages": ["Net income was $5,067 million for 2023.", "The pipeline spans 118 countries."]}
    # Found on financial-qa-10k answers: a figure restated at another scale and a numbered list were removed.
    assert unshown_numbers("Net income totaled $5.1 billion in 2023 [1].", passages) == []
    assert unshown_numbers("The functions are: 1) bookkeeping and 2) payroll [1].", passages) == []
    # A different amount, or a different count, is still stated without being shown.
    assert unshown_numbers("Net income totaled $5.2 billion in 2023 [1].", passages)
    assert unshown_numbers("The pipeline spans 126 countries [2].", passages)
    assert unshown_numbers("The loss was (5) million [1].", passages)
    assert unshown_numbers("It was audited by the firm (PCAOB ID 238) [1].", passages)  # a parenthesis is no list


def test_computed_sentences_and_numbers_pass_the_rails():
    checker = Guard.from_packs(["common", "finance"])
    computed = (
        "The change in Revenue from 2018 to 2019 is 162 [1].\n"
        "Computed in code from the cited cells (Revenue, 2019: 1,496 [1]; Revenue, 2018: 1,334 [1]): 1,496 - 1,334 = 162."
    )
    result = checker.check(computed, "output", {"passages": NUMBER_PASSAGES, "computed": computed})
    assert result.text.startswith(computed)
    assert not {"finance.numbers_unshown", "output.numbers", "output.grounding"} & set(ids(result))
    # the same text without the computation behind it is mental arithmetic
    assert "finance.numbers_unshown" in ids(checker.check(computed, "output", {"passages": NUMBER_PASSAGES}))


DOSE_PASSAGES = ["The usual adult dose is 500 mg twice a day; children take 10 mg/kg.", "Inhale 2 puffs 4 times a day."]


@pytest.mark.parametrize(
    "answer",
    [
        "The usual dose is 500 mg [1].",
        "Adults take 500mg [1].",  # the same dose written without a space
        "Children take 10 mg/kg [1]. Use 2 puffs 4 times a day [2].",
        "The usual dose is 500 milligrams [1].",
    ],
)
def test_doses_copied_from_the_cited_passage_pass(answer):
    result = Guard.from_packs(["medical"]).check(answer, "output", {"passages": DOSE_PASSAGES})
    assert "medical.dose_not_copied" not in ids(result)


@pytest.mark.parametrize(
    ("answer", "dose"),
    [
        ("The usual dose is 1000 mg [1].", "1000 mg"),  # recalled, not copied
        ("The usual dose is 0.5 g [1].", "0.5 g"),  # converted
        ("Use 2 puffs 3 times a day [2].", "3 times a day"),
        ("Children take 10 mg/kg [2].", "10 mg/kg"),  # in [1], not in the passage this sentence cites
    ],
)
def test_a_dose_not_written_so_in_the_cited_passage_is_flagged_where_it_stands(answer, dose):
    result = Guard.from_packs(["medical"]).check(answer, "output", {"passages": DOSE_PASSAGES})
    (event,) = [e for e in result.events if e.rule_id == "medical.dose_not_copied"]
    assert answer[event.span[0] : event.span[1]] == dose
    assert result.text.startswith(answer)  # flagged, not removed
