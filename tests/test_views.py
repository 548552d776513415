"""One JSON shape per object (assistant/views.py): the API's response models document exactly the keys the
views produce, and the command line, the API, the chat and the eval report all print those views."""

from __future__ import annotations

import json

from conftest import ingest_once

from api import schemas
from assistant.pipeline import Answer, Source
from assistant.views import answer_view, collection_view, hit_view, passage_view, search_view
from core.collection import Collection, list_collections
from core.types import Hit
from retriever.hybrid import Retrieval

SOURCE = Source(
    number=1,
    chunk_id=7,
    document_id="d1",
    title="Metformin",
    source="/docs/metformin.md",
    start=0,
    end=42,
    score=0.8,
    text="Metformin lowers glucose production.",
    flags=("ingest.addressed_to_model",),
)
HIT = Hit(
    chunk_id=7,
    score=0.8,
    text="Metformin lowers glucose production.",
    document_id="d1",
    title="Metformin",
    source="/docs/metformin.md",
    start=0,
    end=42,
    metadata={"kind": "text"},
    scores={"dense": 0.7, "bm25": 3.1},
)
ANSWER = Answer(
    question="What does metformin do?",
    collection="medical",
    text="It lowers glucose production [1].\n\nNot advice.",
    sources=[SOURCE],
    cited=[1],
    invalid_citations=[3],
    relevant=True,
    relevance=0.61,
    finish_reason="stop",
    tokens=9,
    generator="fake",
    collection_version=4,
    timings_ms={"total": 12.3456},
    guard_events=[{"rule_id": "r", "stage": "output", "action": "annotate", "category": "disclaimer", "message": "m", "span": (0, 2)}],
    raw_text="It lowers glucose production [1] [3].",
    prompt_tokens=120,
)


def fields(model) -> set[str]:
    return set(model.model_fields)


def test_the_answer_view_is_the_api_answer_and_keeps_what_the_cli_printed():
    view = answer_view(ANSWER)
    assert set(view) == fields(schemas.AskResponse)
    assert set(view["citations"][0]) == set(view["sources"][0]) == fields(schemas.Passage)
    schemas.AskResponse.model_validate(view)  # every value has the documented type
    assert view["answer"] == ANSWER.text and view["raw_text"] == ANSWER.raw_text
    assert view["cited"] == [1] and view["invalid_citations"] == [3] and view["citations"][0]["snippet"] == SOURCE.text
    assert view["guard_events"][0]["span"] == [0, 2] and view["timings_ms"] == {"total": 12.35}
    assert json.loads(json.dumps(view)) == view  # plain JSON types only: no tuples, no dataclasses


def test_the_hit_and_search_views_are_the_api_search_response():
    view = search_view("  metformin   glucose ", "medical", Retrieval(hits=[HIT, HIT], relevance=0.61, relevant=True), 4)
    assert set(view) == fields(schemas.SearchResponse) and set(view["hits"][0]) == fields(schemas.Hit)
    schemas.SearchResponse.model_validate(view)
    assert view["query"] == "metformin glucose" and [h["rank"] for h in view["hits"]] == [1, 2]
    assert hit_view(HIT, 3)["scores"] == {"dense": 0.7, "bm25": 3.1} and hit_view(HIT, 3)["snippet"] == HIT.text
    assert passage_view(SOURCE)["flags"] == ["ingest.addressed_to_model"]


def test_the_collection_view_is_the_api_collection(tmp_path, corpus, embedder):
    ingest_once(tmp_path / "idx" / "docs", embedder, [corpus])
    (manifest,) = list_collections(tmp_path / "idx")
    view = collection_view(manifest)
    assert set(view) == fields(schemas.CollectionInfo)
    schemas.CollectionInfo.model_validate(view)
    with Collection.open(tmp_path / "idx" / "docs") as store:
        assert (view["documents"], view["chunks"], view["version"]) == (5, store.counts()["chunks"], store.generation)
