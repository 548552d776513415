"""The evaluation suite's metrics (eval/metrics.py) on hand-computed cases, edge cases included: empty answers,
no citations, all refused, empty lists."""

from __future__ import annotations

import math

import pytest

from core.citations import NO_ANSWER
from eval.metrics import (
    answer_words,
    bootstrap_ci,
    citation_precision_recall,
    gold_key,
    gold_numbers,
    gold_qrels,
    gold_run,
    guardrail_metrics,
    has_valid_citation,
    is_refusal,
    matches_gold,
    normalise_tokens,
    numbers_in_text,
    numeric_match,
    percentile,
    percentiles,
    refusal_accuracy,
    refusal_messages,
    retrieval_metrics,
    rouge_l,
    supported_share,
    token_f1,
)

# --- token F1, citations, faithfulness --------------------------------------------------------------------


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


# --- ROUGE-L -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "prediction, reference, expected",
    [
        # LCS "the cat on mat" = 4 of 6 tokens each side: P = R = 4/6, F = 2/3
        ("the cat lay on a mat", "the cat sat on the mat", 2 / 3),
        # LCS 2; P = 2/4, R = 2/2, F = 2 * 0.5 * 1 / 1.5 = 2/3
        ("metformin lowers blood glucose", "metformin glucose", 2 / 3),
        # order matters (token F1 would be 1): LCS 1 of 3, F = 1/3
        ("glucose lowers metformin", "metformin lowers glucose", 1 / 3),
        ("Running dogs", "run dog", 1.0),  # Porter stemming
        ("metformin lowers glucose [1][2].", "Metformin lowers glucose.", 1.0),  # markers stripped, case ignored
        ("", "", 1.0),  # both empty: agree (as token_f1)
        ("[1]", "", 1.0),  # markers only is empty
        ("", "metformin", 0.0),  # empty answer
        ("metformin", "", 0.0),
        ("nothing shared", "metformin", 0.0),
    ],
)
def test_rouge_l(prediction, reference, expected):
    assert rouge_l(prediction, reference) == pytest.approx(expected)


def test_rouge_l_differs_from_token_f1_on_order():
    assert token_f1("glucose lowers metformin", "metformin lowers glucose") == 1.0
    assert rouge_l("glucose lowers metformin", "metformin lowers glucose") < 0.5


def test_answer_words_ignores_markers_and_punctuation():
    assert answer_words("Metformin lowers glucose [1][2] .") == 3
    assert answer_words("") == 0 and answer_words("[1] .") == 0


# --- numeric match -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "prediction, value, scale, expected",
    [
        # scale words are converted to units, then to the reference's scale
        ("$1.2 million", 1200, "thousand", True),
        ("$1.2 million", 1_200_000, "", True),
        ("1.2 billion", 1200, "million", True),
        ("$5m", 5, "million", True),
        ("12k", 12_000, "", True),
        ("3 bn", 3000, "million", True),
        ("$1.2 million", 1200, "million", False),  # 1.2 million is 1.2, not 1,200, in millions
        # a bare number is in the reference's scale or in full units
        ("1,200", 1200, "thousand", True),
        ("1,200,000", 1200, "thousand", True),
        ("1,200,000", 1.2, "million", True),
        # percent
        ("12.5%", 12.5, "percent", True),
        ("12.5 %", 12.5, "percent", True),
        ("12.5 percent", 12.5, "percent", True),
        ("12.5 per cent", 12.5, "percent", True),
        ("12.5", 12.5, "percent", True),
        ("0.125", 12.5, "percent", False),  # a fraction is not read as a percentage
        ("12.5%", 12.5, "million", False),  # a percentage is not an amount
        # tolerance: 1 % relative, or equal when rounded to the reference's decimals
        ("3.6%", 3.57, "percent", True),  # 0.84 % off
        ("3.7%", 3.57, "percent", False),  # 3.6 % off
        ("12.5327", 12.53, "", True),  # rounds to 12.53
        ("0.52", 0.5, "", True),  # 4 % off, but rounds to 0.5
        ("0.56", 0.5, "", False),  # rounds to 0.6
        ("1,211", 1200, "", True),  # 0.92 % off
        ("1,213", 1200, "", False),  # 1.08 % off, and 1213 is not 1200
        ("0", 0, "", True),
        ("0.4", 0, "", True),  # an integer reference: rounds to 0
        ("0.6", 0, "", False),
        # sign
        ("-5.2%", -5.2, "percent", True),
        ("\u22125.2%", -5.2, "percent", True),  # Unicode minus
        ("(5.2)%", -5.2, "percent", True),  # accounting negative
        ("(594)", -594, "million", True),
        ("5.2%", -5.2, "percent", False),
        ("It decreased by 5.2%.", -5.2, "percent", True),  # the direction is in words
        ("It increased by 5.2%.", -5.2, "percent", False),
        ("-5.2", 5.2, "", False),
        ("COVID-19 cases", -19, "", False),  # a hyphen inside a word is not a minus
        ("COVID-19 cases", 19, "", True),
        # any number may match; citation markers are not numbers
        ("In 2019 revenue was $4.7 million [1].", 4.7, "million", True),
        ("Revenue rose [4].", 4, "", False),
        ("2019, 2018 and 2017", 2018, "", True),
        # empty answers
        ("", 5, "", False),
        ("The passages do not contain the answer.", 5, "", False),
    ],
)
def test_numeric_match(prediction, value, scale, expected):
    assert numeric_match(prediction, value, scale) is expected


def test_numeric_match_reads_a_reference_given_as_text_and_rejects_bad_input():
    assert numeric_match("$1,327.9 million", "$1,327.9", "million")
    with pytest.raises(ValueError):
        numeric_match("5", None, "")
    with pytest.raises(ValueError):
        numeric_match("5", 5, "dozens")
    with pytest.raises(ValueError):
        numeric_match("5", "five", "")


def test_numbers_in_text_units_and_signs():
    assert numbers_in_text("$1.2 million [2], (5.2)%, 12k, -3 and 7 m") == [
        (1.2, "million", False, False),
        (5.2, "%", False, True),
        (12.0, "thousand", False, False),
        (-3.0, "", True, False),
        (7.0, "", False, False),  # "7 m" could be metres: no scale
    ]
    assert numbers_in_text("") == []


# --- citations -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cited, gold, expected",
    [
        ([1, 2], [2, 3], (0.5, 0.5)),
        ([2], [2], (1.0, 1.0)),
        ([1, 1, 2], [2], (0.5, 1.0)),  # repeats count once
        ([3], [1, 2], (0.0, 0.0)),
        ([], [1], (None, 0.0)),  # nothing cited: precision undefined, the miss shows in recall
        ([1], [], (0.0, None)),  # no gold given: recall undefined
        ([], [], (None, None)),
    ],
)
def test_citation_precision_recall(cited, gold, expected):
    assert citation_precision_recall(cited, gold) == expected


# --- gold passages -------------------------------------------------------------------------------------------

MED = {
    "key": "medquad:2_GARD_QA/0000001-1",
    "document_id": "a" * 32,
    "source_suffix": "2_GARD_QA/0000001.xml",
    "metadata": {"qid": "0000001-1"},
}
FIN = {"key": "tatqa:r1/p2", "document_id": "b" * 32, "metadata": {"report_uid": "r1", "kind": "paragraph", "order": 2}}


def hit(document_id="x" * 32, source="", **metadata):
    return {"document_id": document_id, "source": source, "metadata": metadata}


def test_matches_gold_by_document_id_or_by_source_and_metadata():
    assert matches_gold(hit("a" * 32), MED)  # the id alone (an answer's source has no metadata)
    assert matches_gold(hit(source="/data/samples/medical/medquad/2_GARD_QA/0000001.xml", qid="0000001-1", qtype="x"), MED)
    assert matches_gold(hit(source="C:\\samples\\2_GARD_QA\\0000001.xml", qid="0000001-1"), MED)  # Windows paths
    assert not matches_gold(hit(source="/x/12_GARD_QA/0000001.xml", qid="0000001-1"), MED)  # whole path parts only
    assert not matches_gold(hit(source="/x/2_GARD_QA/0000001.xml", qid="0000001-2"), MED)
    assert not matches_gold(hit(source="/x/2_GARD_QA/0000001.xml"), MED)  # no metadata, other id
    assert matches_gold(hit(source="/any/tatqa.json", report_uid="r1", kind="paragraph", order=2), FIN)  # no suffix
    assert matches_gold(hit(report_uid="r1", kind="paragraph", order="2"), FIN)  # "2" == 2 as text
    assert not matches_gold(hit(report_uid="r1", kind="table"), FIN)
    assert not matches_gold(hit(report_uid="r1"), {**FIN, "document_id": None, "metadata": {}})  # empty spec: nothing


def test_gold_run_qrels_and_numbers():
    gold = [MED, {**FIN, "key": "other"}]
    hits = [hit("c" * 32), hit("a" * 32), hit("a" * 32), hit("d" * 32)]  # a second chunk of the gold document
    assert gold_key(hits[1], gold) == MED["key"] and gold_key(hits[0], gold) is None
    assert gold_run(hits, gold) == {"doc:" + "c" * 32: 4.0, MED["key"]: 3.0, "doc:" + "d" * 32: 2.0}
    assert gold_run([], gold) == {}
    assert gold_qrels(gold) == {MED["key"]: 1, "other": 1}
    assert gold_numbers(hits, gold) == [2, 3]  # positions when the sources carry no number
    sources = [{"number": 5, "document_id": "a" * 32}, {"number": 6, "document_id": "c" * 32}]
    assert gold_numbers(sources, gold) == [5] and gold_numbers([], gold) == [] and gold_numbers(sources, []) == []


# --- refusals ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        (NO_ANSWER, True),
        ("the passages do not contain the answer", True),
        ("The documents do not cover this question, so I cannot answer it from them.", True),  # the not-covered rail
        ("The passages do not contain information about Tesla.", True),  # a paraphrase
        ("The provided context doesn't mention the dose.", True),
        ("I cannot answer this from the documents.", True),
        ("Metformin lowers glucose production in the liver [1].", False),
        ("The documents show that metformin is first-line [1].", False),
        ("The tablet does not contain gluten [2].", False),
        ("", False),  # an empty answer is not a refusal
    ],
)
def test_is_refusal(text, expected):
    assert is_refusal(text) is expected


def test_refusal_messages_include_the_rails_fixed_replies():
    messages = refusal_messages()
    assert NO_ANSWER in messages and any("do not cover" in m for m in messages)
    assert all(is_refusal(m) for m in messages)


def test_refusal_accuracy_counts():
    items = [
        {"answerable": False, "text": NO_ANSWER},  # right
        {"answerable": False, "text": "It is 42 [1]."},  # answered the unanswerable: wrong
        {"answerable": True, "text": "It is 42 [1]."},  # right
        {"answerable": True, "refused": True},  # a false refusal (judged by the flag, not text)
        {"text": "It is 42 [1]."},  # answerable by default: right
    ]
    assert refusal_accuracy(items) == {
        "accuracy": 3 / 5,
        "refusal_rate": 1 / 2,
        "false_refusal_rate": 1 / 3,
        "n": 5,
        "n_unanswerable": 2,
        "n_answerable": 3,
    }


def test_refusal_accuracy_edge_cases():
    all_refused = [{"answerable": a, "text": NO_ANSWER} for a in (True, True, False, False)]
    assert refusal_accuracy(all_refused) == {
        "accuracy": 0.5,
        "refusal_rate": 1.0,
        "false_refusal_rate": 1.0,
        "n": 4,
        "n_unanswerable": 2,
        "n_answerable": 2,
    }
    empty_answer = refusal_accuracy([{"answerable": False, "text": ""}])  # an empty answer does not refuse
    assert empty_answer["accuracy"] == 0.0 and empty_answer["false_refusal_rate"] is None
    assert refusal_accuracy([]) == {
        "accuracy": None,
        "refusal_rate": None,
        "false_refusal_rate": None,
        "n": 0,
        "n_unanswerable": 0,
        "n_answerable": 0,
    }


# --- retrieval -----------------------------------------------------------------------------------------------


def test_retrieval_metrics_hand_computed():
    qrels = {"q1": {"a": 1, "b": 1}, "q2": {"c": 1}, "q3": {"d": 1}, "q4": {}, "q5": {"e": 0}}
    run = {
        "q1": {"a": 3.0, "x": 2.0, "b": 1.0},  # gold at ranks 1 and 3
        "q2": {"y": 2.0, "z": 1.5, "c": 1.0},  # gold at rank 3
        # q3 missing from the run: scores 0; q4, q5 have no relevant document: not counted
        "q9": {"a": 1.0},  # not judged: ignored
    }
    scores = retrieval_metrics(run, qrels, ks=(1, 3), per_query=True)
    ndcg_q1 = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))  # DCG of ranks 1 and 3 over the ideal ranks 1 and 2
    ndcg_q2 = (1 / math.log2(4)) / 1
    assert scores["n_queries"] == 3
    assert scores["recall@1"] == pytest.approx((1 / 2 + 0 + 0) / 3)
    assert scores["recall@3"] == pytest.approx((1 + 1 + 0) / 3)
    assert scores["mrr@10"] == pytest.approx((1 + 1 / 3 + 0) / 3)
    assert scores["ndcg@10"] == pytest.approx((ndcg_q1 + ndcg_q2 + 0) / 3)
    assert scores["per_query"]["mrr@10"] == pytest.approx({"q1": 1.0, "q2": 1 / 3, "q3": 0.0})


def test_retrieval_metrics_edge_cases():
    nothing_retrieved = retrieval_metrics({}, {"q1": {"a": 1}}, ks=(5,))
    assert nothing_retrieved == {"recall@5": 0.0, "mrr@10": 0.0, "ndcg@10": 0.0, "n_queries": 1}
    assert retrieval_metrics({"q1": {}}, {"q1": {"a": 1}}, ks=(5,))["mrr@10"] == 0.0
    no_gold = retrieval_metrics({"q1": {"a": 1.0}}, {"q1": {}}, ks=(5,), per_query=True)
    assert no_gold["n_queries"] == 0 and no_gold["mrr@10"] is None and no_gold["per_query"]["mrr@10"] == {}
    assert retrieval_metrics({}, {}, ks=(1,))["recall@1"] is None


# --- guardrails ----------------------------------------------------------------------------------------------


def test_guardrail_metrics_per_rail():
    results = [
        ("injection", {"injection"}),  # tp
        ("injection", set()),  # fn
        ("harmful", {"harmful", "injection"}),  # tp for harmful, fp for injection
        ("none", {"injection"}),  # fp
        ("none", set()),  # tn
    ]
    out = guardrail_metrics(results)
    assert out["injection"] == pytest.approx(
        {"precision": 1 / 3, "recall": 1 / 2, "f1": 0.4, "fp_rate": 2 / 3, "tp": 1, "fp": 2, "fn": 1, "tn": 1}
    )
    assert out["harmful"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "fp_rate": 0.0, "tp": 1, "fp": 0, "fn": 0, "tn": 4}
    nothing = guardrail_metrics([("none", set())])["injection"]
    assert nothing["precision"] is None and nothing["recall"] is None and nothing["f1"] is None and nothing["fp_rate"] == 0.0
    assert guardrail_metrics([])["harmful"]["fp_rate"] is None
    missed_all = guardrail_metrics([("harmful", {"injection"})])["harmful"]
    assert missed_all["recall"] == 0.0 and missed_all["precision"] is None


# --- statistics ----------------------------------------------------------------------------------------------


def test_percentiles():
    # numpy's linear rule: p95 of 5 values sits at index 0.95 * 4 = 3.8 -> 4 + 0.8 * (100 - 4) = 80.8
    assert percentiles([100, 1, 3, 2, 4]) == pytest.approx({"p50": 3.0, "p95": 80.8})
    assert percentiles([7.0]) == {"p50": 7.0, "p95": 7.0}
    assert percentiles([]) == {"p50": None, "p95": None}
    assert percentiles([1, 2, 3, 4], qs=(25, 99.5)).keys() == {"p25", "p99.5"}


def test_percentile_interpolates_between_order_statistics():
    assert percentile([], 50) is None
    assert percentile([7.0], 95) == 7.0
    assert percentile([4, 1, 3, 2], 50) == 2.5  # sorted 1 2 3 4: halfway between 2 and 3
    assert percentile([1, 2, 3, 4, 5], 50) == 3
    assert percentile([1, 2, 3, 4, 10], 95) == pytest.approx(8.8)  # index 3.8: 4 + 0.8 * (10 - 4)
    assert percentile([1, 2, 3, 4, 10], 0) == 1 and percentile([1, 2, 3, 4, 10], 100) == 10
    assert percentile(iter([3.0, 1.0]), 50) == 2.0  # any iterable, as the benchmarks pass generators


def test_bootstrap_ci_mean_and_paired_difference():
    assert bootstrap_ci([2, 2, 2]) == {"mean": 2.0, "low": 2.0, "high": 2.0, "n": 3, "resamples": 1000}
    assert bootstrap_ci([3, 4, 5], [1, 2, 3]) == {"mean": 2.0, "low": 2.0, "high": 2.0, "n": 3, "resamples": 1000}
    assert bootstrap_ci([5]) == {"mean": 5.0, "low": 5.0, "high": 5.0, "n": 1, "resamples": 1000}
    # 50 ones and 50 zeros: mean 0.5, standard error 0.05, so the 95 % interval is about 0.5 +- 0.098
    values = [1.0, 0.0] * 50
    ci = bootstrap_ci(values, n=2000)
    assert ci["mean"] == 0.5 and ci["low"] == pytest.approx(0.4, abs=0.03) and ci["high"] == pytest.approx(0.6, abs=0.03)
    assert bootstrap_ci(values, n=2000) == ci  # seeded: reproducible
    assert bootstrap_ci(values, seed=1)["low"] <= 0.5 <= bootstrap_ci(values, seed=1)["high"]
    # the pairing matters: b = a + 0.1 everywhere -> the difference is exactly -0.1 whatever the spread of a
    a = [float(i) for i in range(20)]
    paired = bootstrap_ci(a, [x + 0.1 for x in a])
    assert paired["mean"] == pytest.approx(-0.1) and paired["low"] == pytest.approx(-0.1) and paired["high"] == pytest.approx(-0.1)
    assert bootstrap_ci(a)["high"] - bootstrap_ci(a)["low"] > 3  # unpaired, the spread of a shows


def test_bootstrap_ci_edge_cases():
    assert bootstrap_ci([]) == {"mean": None, "low": None, "high": None, "n": 0, "resamples": 1000}
    assert bootstrap_ci([], [])["mean"] is None
    with pytest.raises(ValueError, match="length"):
        bootstrap_ci([1, 2], [1])
    with pytest.raises(ValueError):
        bootstrap_ci([1, 2], alpha=1.5)
    with pytest.raises(ValueError):
        bootstrap_ci([1, 2], n=0)
    with pytest.raises(ValueError, match="NaN"):
        bootstrap_ci([1.0, float("nan")])
