"""The LangChain and LlamaIndex adapters, called through each framework's own API over a real collection."""

from __future__ import annotations

import asyncio
import importlib
import socket
import sys

import pytest
from conftest import ingest_once

from core.collection import Collection
from core.errors import UserError
from core.types import Hit
from retriever.adapters import hit_metadata
from retriever.hybrid import Retriever

# Guards only: `make install` installs both extras, so in CI neither skips.
pytest.importorskip("langchain_core", reason="needs the [langchain] extra")
pytest.importorskip("llama_index.core", reason="needs the [llamaindex] extra")

from retriever.adapters.langchain import AssistantRetriever  # noqa: E402
from retriever.adapters.llamaindex import AssistantLlamaRetriever  # noqa: E402

HIT_KEYS = {"chunk_id", "document_id", "title", "source", "start", "end", "score", "scores"}
QUERY = "inhalers airways asthma attack"


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any connection attempt (NLTK or tiktoken downloads, LangSmith tracing) fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args!r}")

    for name in ("LANGSMITH_TRACING", "LANGCHAIN_TRACING_V2", "LANGCHAIN_TRACING"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.fixture
def search(tmp_path, corpus, embedder):
    ingest_once(tmp_path / "c", embedder, [corpus])
    with Collection.open(tmp_path / "c") as collection:
        yield Retriever(collection, embedder)


def source_of(search: Retriever, name: str) -> str:
    return next(s for s in search.collection.sources() if s.endswith(name))


def test_hit_metadata_keeps_document_metadata_and_our_fields_win():
    hit = Hit(1, 0.5, "t", "doc", "Title", "/a.txt", 0, 1, metadata={"beir_id": "D1", "source": "spoof"}, scores={"bm25": 2.0})
    meta = hit_metadata(hit)
    assert meta["beir_id"] == "D1" and meta["source"] == "/a.txt" and meta["scores"] == {"bm25": 2.0}
    assert set(meta) == HIT_KEYS | {"beir_id"}


# ------------------------------------------------------------------ LangChain


def test_langchain_invoke_returns_documents_with_our_fields(search):
    from langchain_core.documents import Document

    expected = search.retrieve(QUERY, k=3)
    docs = AssistantRetriever(retriever=search, k=3).invoke(QUERY)
    assert len(docs) == 3 and all(isinstance(d, Document) for d in docs)
    top = docs[0]
    assert top.metadata["source"] == source_of(search, "asthma.txt") and top.metadata["title"] == "asthma"
    assert set(top.metadata) == HIT_KEYS
    assert [d.id for d in docs] == [str(h.chunk_id) for h in expected]
    assert [d.page_content for d in docs] == [h.text for h in expected]
    assert top.metadata["chunk_id"] == expected[0].chunk_id and top.metadata["score"] == expected[0].score
    assert top.metadata["scores"] == expected[0].scores and "cosine" in top.metadata["scores"]
    text = search.collection.db.execute("SELECT text FROM documents WHERE id = ?", (top.metadata["document_id"],)).fetchone()[0]
    assert text[top.metadata["start"] : top.metadata["end"]] == top.page_content


def test_langchain_k_filters_batch_and_async(search):
    finance = [source_of(search, "revenue.md"), source_of(search, "dividends.txt")]
    lc = AssistantRetriever(retriever=search, k=2, filters={"source": finance})
    assert {d.metadata["source"] for d in lc.invoke("asthma inhalers revenue dividends")} == set(finance)
    assert len(AssistantRetriever(retriever=search, k=1).invoke(QUERY)) == 1
    batched = AssistantRetriever(retriever=search, k=1).batch([QUERY, "metformin diabetes glucose"])
    assert [docs[0].metadata["source"] for docs in batched] == [source_of(search, "asthma.txt"), source_of(search, "metformin.md")]
    docs = asyncio.run(AssistantRetriever(retriever=search, k=2).ainvoke("dividends payout ratio"))
    assert docs[0].metadata["source"] == source_of(search, "dividends.txt")


def test_langchain_passes_our_errors_through(search):
    with pytest.raises(UserError, match="the query is empty"):
        AssistantRetriever(retriever=search).invoke("   ")
    with pytest.raises(UserError, match="k must be at least 1"):
        AssistantRetriever(retriever=search, k=0).invoke(QUERY)


# ------------------------------------------------------------------ LlamaIndex


def test_llamaindex_retrieve_returns_scored_text_nodes(search):
    from llama_index.core.schema import MetadataMode, NodeWithScore, TextNode

    expected = search.retrieve(QUERY, k=3)
    nodes = AssistantLlamaRetriever(search, k=3).retrieve(QUERY)
    assert len(nodes) == 3 and all(isinstance(n, NodeWithScore) and isinstance(n.node, TextNode) for n in nodes)
    top = nodes[0]
    assert top.node.metadata["source"] == source_of(search, "asthma.txt") and top.node.metadata["title"] == "asthma"
    assert set(top.node.metadata) == HIT_KEYS
    assert [n.node.node_id for n in nodes] == [str(h.chunk_id) for h in expected]
    assert [n.score for n in nodes] == [h.score for h in expected]
    assert top.node.get_content() == expected[0].text
    assert (top.node.start_char_idx, top.node.end_char_idx) == (expected[0].start, expected[0].end)
    # What an LLM sees: the title and source, not our bookkeeping.
    for_llm = top.node.get_content(MetadataMode.LLM)
    assert "title: asthma" in for_llm and "chunk_id" not in for_llm and "scores" not in for_llm


def test_llamaindex_k_filters_and_async(search):
    from llama_index.core.schema import QueryBundle

    finance = [source_of(search, "revenue.md"), source_of(search, "dividends.txt")]
    nodes = AssistantLlamaRetriever(search, k=2, filters={"source": finance}).retrieve("asthma inhalers revenue dividends")
    assert len(nodes) == 2 and {n.node.metadata["source"] for n in nodes} == set(finance)
    assert len(AssistantLlamaRetriever(search, k=1).retrieve(QueryBundle(QUERY))) == 1
    nodes = asyncio.run(AssistantLlamaRetriever(search, k=2).aretrieve("metformin diabetes glucose"))
    assert nodes[0].node.metadata["source"] == source_of(search, "metformin.md")


def test_llamaindex_passes_our_errors_through(search):
    with pytest.raises(UserError, match="the query is empty"):
        AssistantLlamaRetriever(search).retrieve("")


# ------------------------------------------------------------------ without the extras


@pytest.mark.parametrize(
    "module,framework,extra",
    [
        ("retriever.adapters.langchain", "langchain_core", "langchain"),
        ("retriever.adapters.llamaindex", "llama_index", "llamaindex"),
    ],
)
def test_missing_extra_names_the_install_command(monkeypatch, module, framework, extra):
    for name in [m for m in sys.modules if m == framework or m.startswith(framework + ".")]:
        monkeypatch.setitem(sys.modules, name, None)  # makes any import of it fail
    monkeypatch.delitem(sys.modules, module)
    with pytest.raises(ImportError, match=rf"pip install 'domain-assistant\[{extra}\]'"):
        importlib.import_module(module)
    import retriever.adapters  # the package itself needs no framework

    assert callable(retriever.adapters.hit_metadata)
