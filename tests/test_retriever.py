"""Hybrid retrieval over a real collection (SQLite FTS5 + FAISS), with the hash embedder."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ingest_once

from core.collection import Collection, IndexParams
from core.errors import UserError
from retriever.fusion import reciprocal_rank_fusion, weighted_fusion
from retriever.hybrid import Retriever, RetrieverConfig
from retriever.lexical import query_terms
from retriever.mmr import mmr


@pytest.fixture
def collection(tmp_path, corpus, embedder):
    ingest_once(tmp_path / "c", embedder, [corpus])
    with Collection.open(tmp_path / "c") as c:
        yield c


def test_fusion_formulas_on_hand_computed_cases():
    rankings = {"dense": [(1, 0.9), (2, 0.5)], "bm25": [(2, 10.0), (3, 4.0)]}
    rrf = dict(reciprocal_rank_fusion(rankings, k=60))
    assert rrf[2] == pytest.approx(1 / 62 + 1 / 61)
    assert rrf[1] == pytest.approx(1 / 61) and rrf[3] == pytest.approx(1 / 62)
    assert [d for d, _ in reciprocal_rank_fusion(rankings, k=60)] == [2, 1, 3]
    weighted = dict(weighted_fusion(rankings, {"dense": 0.5, "bm25": 0.5}))
    # min-max: dense 1 -> 1.0, 2 -> 0.0; bm25 2 -> 1.0, 3 -> 0.0
    assert weighted == pytest.approx({1: 0.5, 2: 0.5, 3: 0.0})
    assert dict(weighted_fusion({"dense": [(7, 0.3)]}, {"dense": 0.4})) == pytest.approx({7: 0.4})


def test_mmr_prefers_a_different_passage_over_a_near_duplicate():
    query = np.array([1.0, 0.0, 0.0], dtype=np.float32)
    vectors = np.array([[0.9, 0.436, 0.0], [0.9, 0.436, 0.0], [0.8, 0.0, 0.6]], dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    assert mmr(query, vectors, 2, lambda_=1.0) == [0, 1]  # pure relevance keeps the duplicate
    assert mmr(query, vectors, 2, lambda_=0.5) == [0, 2]  # diversity swaps it for the other passage
    with pytest.raises(ValueError):
        mmr(query, vectors, 2, lambda_=1.5)


@pytest.mark.parametrize(
    "text,expected",
    [
        ('asthma "inhaler" NEAR(a b) OR *', ["asthma", "inhaler", "near", "b"]),
        ("the of and", ["the", "of", "and"]),  # only stop words: keep them rather than match nothing
        ("Diabète  糖尿病", ["diabète", "糖尿病"]),
        ("!!! ()*", []),
    ],
)
def test_query_terms_are_the_distinct_content_words(text, expected):
    assert query_terms(text) == expected


def test_fts5_syntax_in_a_question_is_searched_as_plain_words(collection, embedder):
    bm25 = Retriever(collection, embedder, RetrieverConfig(mode="bm25")).bm25
    hits = bm25.scored('asthma "inhalers" NEAR(airways) OR * title: AND', 5)
    assert hits and collection.hits(hits[:1])[0].source.endswith("asthma.txt")
    assert bm25.scored("!!! ()*", 5) == []


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_each_mode_finds_the_obvious_document(collection, embedder, mode):
    retriever = Retriever(collection, embedder, RetrieverConfig(mode=mode, min_relevance=0.0))
    result = retriever.search("inhalers airways asthma attack", k=3)
    assert result.hits[0].source.endswith("asthma.txt")
    assert result.relevant and 0 < result.relevance <= 1.0001
    assert "total" in result.timings_ms and "embed" in result.timings_ms
    top = result.hits[0]
    assert "cosine" in top.scores and (mode == "bm25" or "dense" in top.scores)
    assert collection.db.execute("SELECT text FROM chunks WHERE id = ?", (top.chunk_id,)).fetchone()[0] == top.text


def test_hybrid_weighted_equals_fusing_the_two_lists_by_hand(collection, embedder):
    base = Retriever(collection, embedder, RetrieverConfig(mode="hybrid", fusion="weighted", dense_weight=0.7, candidates=50))
    query = "revenue liability customer"
    dense = collection.dense(embedder.embed_query(query), 50)
    bm25 = base.bm25.scored(query, 50)
    expected = [cid for cid, _ in weighted_fusion({"dense": dense, "bm25": bm25}, {"dense": 0.7, "bm25": 0.3})][:4]
    assert [h.chunk_id for h in base.retrieve(query, k=4)] == expected


def test_hybrid_rrf_equals_fusing_the_two_lists_by_hand(collection, embedder):
    base = Retriever(collection, embedder, RetrieverConfig(mode="hybrid", fusion="rrf", candidates=50))
    query = "revenue liability customer"
    dense = collection.dense(embedder.embed_query(query), 50)
    bm25 = base.bm25.scored(query, 50)
    expected = [cid for cid, _ in reciprocal_rank_fusion({"dense": dense, "bm25": bm25}, 60)][:4]
    assert [h.chunk_id for h in base.retrieve(query, k=4)] == expected


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_filters_apply_before_the_top_k_cut(collection, embedder, mode):
    retriever = Retriever(collection, embedder, RetrieverConfig(mode=mode))
    # The best match for this query is asthma.txt; restricted to the finance files, k results still come back.
    finance = [str(p) for p in collection.sources() if p.endswith(("revenue.md", "dividends.txt"))]
    hits = retriever.retrieve("asthma inhalers revenue dividends", k=2, filters={"source": finance})
    assert len(hits) == 2 and {h.source for h in hits} == set(finance)
    one = retriever.retrieve("asthma revenue dividend", k=5, filters={"source": finance[0]})
    assert one and {h.source for h in one} == {finance[0]}
    assert retriever.retrieve("asthma", k=5, filters={"source": "/nowhere"}) == []


def test_metadata_and_document_id_filters(tmp_path, embedder):
    import json

    corpus = tmp_path / "beir"
    corpus.mkdir()
    records = [
        {
            "_id": f"D{i}",
            "title": f"Doc {i}",
            "text": f"shared words about topic {i % 3}",
            "metadata": {"kind": "table" if i % 2 else "text"},
        }
        for i in range(12)
    ]
    (corpus / "corpus.jsonl").write_text("\n".join(json.dumps(r) for r in records))
    ingest_once(tmp_path / "c", embedder, [corpus])
    with Collection.open(tmp_path / "c") as c:
        retriever = Retriever(c, embedder)
        hits = retriever.retrieve("shared words topic", k=12, filters={"beir_id": ["D1", "D4"]})
        assert sorted(h.metadata["beir_id"] for h in hits) == ["D1", "D4"]
        doc_id = hits[0].document_id
        assert {h.document_id for h in retriever.retrieve("words", k=5, filters={"document_id": doc_id})} == {doc_id}
        with pytest.raises(UserError, match="invalid filter key"):
            retriever.retrieve("words", filters={"bad key'": "x"})
        with pytest.raises(UserError, match="empty list"):
            retriever.retrieve("words", filters={"beir_id": []})


def test_filters_work_on_an_hnsw_index(tmp_path, corpus, embedder):
    params = IndexParams(approx_threshold=2)
    ingest_once(tmp_path / "c", embedder, [corpus], params=params)
    with Collection.open(tmp_path / "c", params=params) as c:
        assert c.index_kind == "hnsw"
        target = [s for s in c.sources() if s.endswith("metformin.md")]
        hits = Retriever(c, embedder, RetrieverConfig(mode="dense")).retrieve("dividends", k=3, filters={"source": target})
        assert hits and {h.source for h in hits} == set(target)


def test_mmr_mode_returns_k_distinct_chunks(collection, embedder):
    retriever = Retriever(collection, embedder, RetrieverConfig(mmr_lambda=0.3))
    hits = retriever.retrieve("revenue dividends asthma", k=4)
    assert len(hits) == 4 and len({h.chunk_id for h in hits}) == 4


def test_relevance_threshold_flags_queries_the_documents_do_not_cover(collection, embedder):
    # Hash-embedder cosines: 0.40 for the covered question, 0.21 for the uncovered one.
    strict = Retriever(collection, embedder, RetrieverConfig(min_relevance=0.3))
    covered = strict.search("dividend payout ratio net income shareholders")
    uncovered = strict.search("volcano eruption lava tectonic plates")
    assert covered.relevant and covered.relevance > 0.3
    assert not uncovered.relevant and uncovered.relevance < 0.3
    assert uncovered.hits  # the hits are still there for callers who want them


@pytest.mark.parametrize(
    "query",
    [
        "x" * 10_000,
        "asthma " * 3000,
        "糖尿病の治療",
        "Диабет лечение",
        '"unbalanced quote',
        "NEAR(asthma inhaler, 2) AND (* OR ^) : title: -",
        "\u200b\u0000\x07 asthma",
    ],
)
def test_any_query_gives_ranked_stored_passages_not_a_crash(collection, embedder, query):
    result = Retriever(collection, embedder).search(query, k=3)
    assert 1 <= len(result.hits) <= 3 and len({h.chunk_id for h in result.hits}) == len(result.hits)
    scores = [h.score for h in result.hits]
    assert scores == sorted(scores, reverse=True)  # best first
    for hit in result.hits:  # real passages, with their stored text
        assert collection.db.execute("SELECT text FROM chunks WHERE id = ?", (hit.chunk_id,)).fetchone()[0] == hit.text
    if "asthma" in query:  # whatever surrounds it, the word still finds its document
        assert result.hits[0].source.endswith("asthma.txt")


@pytest.mark.parametrize("query", ["", "   \n\t "])
def test_empty_query_is_a_clear_error(collection, embedder, query):
    with pytest.raises(UserError, match="the query is empty"):
        Retriever(collection, embedder).search(query)


def test_bad_configuration_is_refused_with_its_reason():
    with pytest.raises(UserError, match="unknown retrieval mode"):
        RetrieverConfig(mode="magic")  # type: ignore[arg-type]
    with pytest.raises(UserError, match="dense_weight"):
        RetrieverConfig(dense_weight=2.0)


def test_terms_in_half_the_chunks_are_pruned_without_changing_the_ranking(tmp_path, embedder):
    folder = tmp_path / "docs"
    folder.mkdir()
    topics = ["asthma inhaler", "asthma attack airways", "diabetes insulin", "revenue growth", "dividend yield", "gout triggers"]
    for i, topic in enumerate(topics):
        (folder / f"{i}.txt").write_text(f"What about {topic}? Frequently asked question number {i}.")
    ingest_once(tmp_path / "c", embedder, [folder])
    with Collection.open(tmp_path / "c") as c:
        bm25 = Retriever(c, embedder, RetrieverConfig(mode="bm25")).bm25
        assert bm25._common(["what", "frequently", "asthma"]) == {"what", "frequently"}
        pruned = bm25.scored("what frequently asthma", 10)
        plain = c.bm25('"asthma"', 10)
        assert [cid for cid, _ in pruned] == [cid for cid, _ in plain]
        assert len(pruned) == 2
        assert bm25.scored("what", 10)  # nothing else left: the common term is kept


def test_a_vector_embedded_by_the_caller_gives_the_same_result(collection, embedder):
    retriever = Retriever(collection, embedder)
    query = "asthma inhalers airways"
    own = retriever.search(query, 3)
    given = retriever.search(query, 3, vector=embedder.embed_query(query), embed_ms=7.5)
    assert [h.chunk_id for h in given.hits] == [h.chunk_id for h in own.hits]
    assert [h.scores for h in given.hits] == [h.scores for h in own.hits]
    assert given.relevance == own.relevance
    assert given.timings_ms["embed"] >= 7.5 and given.timings_ms["total"] >= 7.5
