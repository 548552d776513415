"""One JSON shape per object: what ``assistant ... --json``, the HTTP API, the chat and the evaluation
report show of an answer, a passage, a search hit, a search and a collection. The API's response models
(api/schemas.py) document these shapes; tests/test_views.py keeps them equal."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.collection import CommitResult, Manifest
from core.collection.history import DocumentVersion, Version
from core.types import Hit

if TYPE_CHECKING:
    from assistant.pipeline import Answer, Source
    from retriever.hybrid import Retrieval


def _ms(timings: dict[str, float]) -> dict[str, float]:
    return {name: round(ms, 2) for name, ms in timings.items()}


def passage_view(source: Source) -> dict[str, Any]:
    """A passage the model was given, numbered as the answer cites it."""
    return {
        "number": source.number,
        "chunk_id": source.chunk_id,
        "document_id": source.document_id,
        "title": source.title,
        "source": source.source,
        "snippet": source.text,
        "start": source.start,
        "end": source.end,
        "score": source.score,
        "flags": list(source.flags),
        "ingested_at": source.ingested_at,
        "page": source.page,
    }


def guard_event_view(event: dict[str, Any]) -> dict[str, Any]:
    span = event.get("span")
    return {**{k: event[k] for k in ("rule_id", "stage", "action", "category", "message")}, "span": list(span) if span else None}


def answer_view(answer: Answer) -> dict[str, Any]:
    """An answer with its passages, citations, guardrail decisions and timings. ``answer`` is the checked
    text to show; ``raw_text`` what the model generated (and was streamed) before the output rails."""
    return {
        "answer": answer.text,
        "question": answer.question,
        # In a conversation, the question searched: the message made standalone (``rewritten``) or as written.
        "standalone": answer.standalone or answer.question,
        "rewritten": answer.rewritten,
        "history_cut": answer.history_cut,
        "collection": answer.collection,
        "citations": [passage_view(s) for s in answer.citations],
        "sources": [passage_view(s) for s in answer.sources],
        "cited": list(answer.cited),
        "invalid_citations": list(answer.invalid_citations),
        "answerable": answer.answerable,
        "answerability": answer.answerability,
        "reason": answer.reason,
        "computation": answer.computation.to_dict() if answer.computation else None,
        "finish_reason": answer.finish_reason,
        "blocked": answer.blocked,
        "relevant": answer.relevant,
        "relevance": answer.relevance,
        "guard_events": [guard_event_view(e) for e in answer.guard_events],
        "raw_text": answer.raw_text,
        "tokens": answer.tokens,
        "prompt_tokens": answer.prompt_tokens,
        "generator": answer.generator,
        "collection_version": answer.collection_version,
        "timings_ms": _ms(answer.timings_ms),
    }


def hit_view(hit: Hit, rank: int) -> dict[str, Any]:
    """A retrieved passage with its rank (1 = best), fused score and the component scores behind it."""
    return {
        "rank": rank,
        "chunk_id": hit.chunk_id,
        "document_id": hit.document_id,
        "title": hit.title,
        "source": hit.source,
        "snippet": hit.text,
        "start": hit.start,
        "end": hit.end,
        "score": hit.score,
        "scores": dict(hit.scores),
        "flags": list(hit.flags),
        "metadata": hit.metadata,
        "ingested_at": hit.ingested_at,
        "page": hit.page,
    }


def search_view(query: str, collection: str, result: Retrieval, version: int) -> dict[str, Any]:
    """A search: its hits best first, whether anything relevant was found, and the collection version."""
    return {
        "query": " ".join(query.split()),
        "collection": collection,
        "hits": [hit_view(h, rank) for rank, h in enumerate(result.hits, start=1)],
        "relevant": result.relevant,
        "relevance": result.relevance,
        "collection_version": version,
        "timings_ms": _ms(result.timings_ms),
    }


def version_view(version: Version) -> dict[str, Any]:
    """One version of a collection, as ``assistant collections --history`` lists it."""
    return version.to_dict()


def history_view(collection: str, current: int, oldest: int, versions: list[Version]) -> dict[str, Any]:
    """A collection's versions, newest first: ``oldest_kept`` to ``version`` can be restored or read as of."""
    return {"collection": collection, "version": current, "oldest_kept": oldest, "versions": [version_view(v) for v in versions]}


def rollback_view(collection: str, to: int, version: int, result: CommitResult, totals: dict[str, int]) -> dict[str, Any]:
    """What a rollback did: back to ``to``, recorded as the new ``version``."""
    return {
        "collection": collection,
        "to": to,
        "version": version,
        "documents_restored": result.documents_added,
        "chunks_restored": result.chunks_added,
        "documents_removed": result.documents_removed,
        "chunks_removed": result.chunks_removed,
        "totals": totals,
    }


def document_version_view(version: DocumentVersion) -> dict[str, Any]:
    """One version of a source file's document: content hash, ingest time, the collection versions it was in."""
    return version.to_dict()


def collection_view(manifest: Manifest) -> dict[str, Any]:
    """A collection as its manifest describes it."""
    chunking = manifest.chunking
    return {
        "name": manifest.name,
        "documents": manifest.documents,
        "chunks": manifest.index.chunks,
        "files": manifest.files,
        "embedder": manifest.embedder.name,
        "dim": manifest.embedder.dim,
        "index_kind": manifest.index.kind,
        "version": manifest.index.generation,
        "chunking": chunking.model_dump(),
        "format_version": manifest.format_version,
        "created_at": manifest.created_at,
        "updated_at": manifest.updated_at,
    }
