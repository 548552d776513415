"""The answerability decision (retriever/answerability.py): which words are key terms, the signals on a real
collection (FTS5 document frequencies, the passages retrieved), the reason in words, the evidence passages,
and the model file's checks. The fitted figures live in bench/answerability.py and the eval suite."""

from __future__ import annotations

import json

import pytest
from conftest import ingest_once

from core.collection import Collection
from core.errors import UserError
from retriever.answerability import FEATURES, Answerability, AnswerabilityModel, key_terms, reason_for
from retriever.hybrid import Retriever, RetrieverConfig


def keys(question: str) -> list[str]:
    return [t.key for t in key_terms(question)]


def test_key_terms_drop_question_everyday_and_function_words():
    assert keys("What is metformin used for?") == ["metformin"]
    assert keys("What are the years that information regarding personnel expenses is made available?") == [
        "years",
        "personnel",
        "expenses",
    ]
    assert keys("Suppose you are an equity analyst; using mainly the balance sheet, answer: what was total debt in 2019?") == [
        "equity",
        "balance",
        "sheet",
        "total",
        "debt",
        "2019",
    ]
    assert keys("hi, my mom was wondering how common is botulism?") == ["botulism"]


def test_key_terms_mark_names_and_years():
    terms = {t.key: t for t in key_terms("What was Tesla's revenue in FY2018 and 2019 under IFRS9 in the Annual Report?")}
    assert terms["tesla"].name and terms["tesla"].text == "Tesla"  # the possessive is dropped
    assert terms["fy2018"].year and terms["2019"].year and not terms["2019"].name
    assert terms["ifrs9"].name  # letters with digits
    assert not terms["annual"].name and not terms["report"].name  # a document's parts are not names
    assert not terms["revenue"].name
    assert "12" not in keys("Is 12 mg a lot?")  # a bare number is not a key term; a year is


def test_reason_names_the_most_specific_missing_term():
    absent = key_terms("Does the leaflet mention metformin for Tesla?")
    assert reason_for([t for t in absent if t.key in ("leaflet", "metformin")], []) == "The documents do not mention metformin or leaflet."
    assert reason_for([t for t in absent if t.key in ("leaflet", "tesla")], []) == "The documents do not mention Tesla."
    year = key_terms("revenue in 2023")
    assert reason_for([], [t for t in year if t.year]) == "No passage covers 2023."
    assert reason_for([], [t for t in key_terms("What about Acme?") if t.name]) == "No passage found is about Acme."
    assert reason_for([], []) == "The passages found do not answer this question."


@pytest.fixture
def collection(tmp_path, corpus, embedder):
    ingest_once(tmp_path / "c", embedder, [corpus])
    with Collection.open(tmp_path / "c") as c:
        yield c


def decide(collection, embedder, question: str, threshold: float = 0.5):
    model = AnswerabilityModel(FEATURES, (0.0, 4.0, 4.0, -4.0, -2.0, -2.0), -3.0, threshold)
    result = Retriever(collection, embedder, RetrieverConfig(mode="bm25", min_relevance=-1)).search(question, 3)
    return result, Answerability(collection, model).decide(question, result.hits, result.relevance)


def test_a_covered_question_is_answerable_with_its_passage_as_evidence(collection, embedder):
    result, decision = decide(collection, embedder, "What are the side effects of metformin?")
    assert decision.answerable and decision.signals["coverage"] == 1.0 and decision.signals["absent"] == 0.0
    assert decision.terms == ("side", "effects", "metformin")
    assert [result.hits[i].title for i in decision.evidence] == ["Metformin"]
    assert set(decision.signals) == set(FEATURES) and decision.ms < 1000


def test_a_term_no_document_mentions_is_named(collection, embedder):
    _, decision = decide(collection, embedder, "What are the side effects of Ozempic?")
    assert not decision.answerable
    assert decision.absent_terms == ("Ozempic",) and decision.reason == "The documents do not mention Ozempic."
    assert decision.signals["absent"] > 0.4 and decision.evidence == ()  # the rarest term weighs most; no passage names it


def test_a_year_in_the_documents_but_not_in_the_passages_found_is_named(tmp_path, embedder):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text("Revenue in 2019 was 4.2 million, up from 3.9 million.")
    (folder / "b.txt").write_text("The 2023 annual general meeting elected three new directors to the board.")
    ingest_once(tmp_path / "c", embedder, [folder])
    with Collection.open(tmp_path / "c") as c:
        model = AnswerabilityModel(FEATURES, (0.0, 4.0, 4.0, -4.0, -2.0, -2.0), -3.0, 0.5)
        hits = [
            h
            for h in Retriever(c, embedder, RetrieverConfig(mode="bm25", min_relevance=-1)).search("revenue", 3).hits
            if "Revenue" in h.text
        ]
        decision = Answerability(c, model).decide("What was revenue in 2023?", hits, 0.5)
    assert decision.missing_terms == ("2023",) and decision.signals["year_missing"] == 1.0
    assert decision.reason == "No passage covers 2023."


def test_no_passages_is_never_answerable(collection):
    model = AnswerabilityModel(FEATURES, (0.0,) * 6, 10.0, 0.5)  # would say yes to anything retrieved
    decision = Answerability(collection, model).decide("What are the side effects of metformin?", [], 0.0)
    assert not decision.answerable and decision.score == 0.0


def test_model_files_load_by_name_or_path_and_bad_ones_say_why(tmp_path):
    for name in ("general", "medical", "finance"):
        model = AnswerabilityModel.load(name)
        assert model.features == FEATURES and 0 < model.threshold < 1 and model.card["fitted_by"]
    model = AnswerabilityModel.load("general")
    model.with_threshold(0.25).save(tmp_path / "mine.json")
    again = AnswerabilityModel.load(tmp_path / "mine.json")
    assert again.threshold == 0.25 and again.coef == model.coef
    assert 0.0 < again.probability(dict.fromkeys(FEATURES, 0.5)) < 1.0
    with pytest.raises(UserError, match="not found.*bench/answerability.py --fit"):
        AnswerabilityModel.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text(json.dumps({"features": ["cosine", "shoe_size"], "coef": [1, 2], "intercept": 0, "threshold": 0.5}))
    with pytest.raises(UserError, match="unknown features \\['shoe_size'\\]"):
        AnswerabilityModel.load(tmp_path / "bad.json")
    (tmp_path / "bad.json").write_text(json.dumps({"features": ["cosine"], "coef": [1], "intercept": 0, "threshold": 1.5}))
    with pytest.raises(UserError, match="threshold must be between 0 and 1"):
        AnswerabilityModel.load(tmp_path / "bad.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(UserError, match="is not an answerability model"):
        AnswerabilityModel.load(tmp_path / "bad.json")
