"""Answer metrics on hand-computed cases, edge cases included."""

from __future__ import annotations

import pytest

from eval.metrics import has_valid_citation, normalise_tokens, supported_share, token_f1
from guardrails.output_checks import lexical_support


def test_normalise_drops_case_punctuation_articles_and_markers():
    assert normalise_tokens("The Answer, [2] is: an ACE-inhibitor!") == ["answer", "is", "ace", "inhibitor"]


@pytest.mark.parametrize(
    "prediction, reference, expected",
    [
        ("metformin lowers glucose", "metformin lowers glucose", 1.0),
        # 2 common of 3 predicted and 4 reference tokens: P = 2/3, R = 1/2, F1 = 2PR/(P+R) = 4/7
        ("metformin lowers sugar", "metformin lowers blood glucose", 4 / 7),
        ("nothing shared", "metformin", 0.0),
        ("", "", 1.0),  # both empty: agree
        ("", "metformin", 0.0),
        ("metformin [1]", "metformin", 1.0),  # citation markers do not count
        # articles go: prediction ["glucose"], reference ["glucose", "glucose"]: P = 1, R = 1/2, F1 = 2/3
        ("the the glucose", "glucose glucose", 2 / 3),
    ],
)
def test_token_f1(prediction, reference, expected):
    assert token_f1(prediction, reference) == pytest.approx(expected)


def test_valid_citation_needs_a_marker_within_range():
    assert has_valid_citation("Yes [2].", 2)
    assert not has_valid_citation("Yes [3].", 2)
    assert not has_valid_citation("Yes.", 2)
    assert not has_valid_citation("", 0)


def test_lexical_support_counts_content_words_only():
    # content words: metformin, lowers, liver, glucose -> 3 of 4 in the passage
    assert lexical_support("Metformin lowers glucose in the liver.", ["Metformin lowers glucose production."]) == pytest.approx(3 / 4)
    assert lexical_support("It is what it is.", ["unrelated"]) == 1.0  # nothing to check


def test_supported_share_per_sentence():
    passages = ["Metformin is first-line for type 2 diabetes.", "Dividends are paid from profits."]
    answer = (
        "Metformin is first-line for type 2 diabetes [1]. "  # supported by [1]
        "Dividends are paid from profits [1]. "  # cites the wrong passage: unsupported
        "Metformin cures cancer quickly [1]. "  # 1 of 4 content words found: unsupported
        "Dividends are paid from profits."  # no citation: unsupported
    )
    assert supported_share(answer, passages) == pytest.approx(1 / 4)
    assert supported_share("", passages) == 0.0
    assert supported_share("Metformin is first-line [3].", passages) == 0.0  # invalid marker supports nothing
