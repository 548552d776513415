"""Plain frozen dataclasses passed between components.

Offsets are character offsets (Python ``str`` indices) into ``Document.text`` after cleaning, so
``document.text[chunk.start:chunk.end] == chunk.text`` always holds.
"""

from __future__ import annotations

import hashlib
import json
from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Any

from core.tables import Table


def content_hash(*parts: str) -> str:
    """A stable hex id for content: the same parts always give the same id."""
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.hexdigest()[:32]


@dataclass(frozen=True)
class LoadedDocument:
    """What a loader produces from a file: no source, no id yet (the ingest pipeline adds them)."""

    title: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)
    tables: tuple[Table, ...] = ()  # the tables of the text, as cells (loaders that read table structure)


@dataclass(frozen=True)
class Document:
    id: str  # content hash of title, text and metadata
    source: str  # absolute path of the file it came from
    title: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)
    tables: tuple[Table, ...] = ()  # derived from the text, so not part of the id

    @classmethod
    def create(cls, source: str, title: str, text: str, metadata: dict[str, Any] | None = None, tables: tuple[Table, ...] = ()) -> Document:
        metadata = dict(metadata or {})
        doc_id = content_hash(title, text, json.dumps(metadata, sort_keys=True, ensure_ascii=False, default=str))
        return cls(id=doc_id, source=source, title=title, text=text, metadata=metadata, tables=tables)


@dataclass(frozen=True)
class Chunk:
    document_id: str
    ordinal: int  # position of the chunk inside its document
    start: int  # character offsets into Document.text
    end: int
    text: str
    n_tokens: int
    flags: tuple[str, ...] = ()  # ids of ingest-rail rules that fired on the text (e.g. indirect injection)


@dataclass(frozen=True)
class Hit:
    """One retrieved passage."""

    chunk_id: int
    score: float
    text: str
    document_id: str
    title: str
    source: str
    start: int
    end: int
    metadata: dict[str, Any] = field(default_factory=dict)
    # Component scores behind `score` (e.g. {"dense": 0.71, "bm25": 12.3}), for display and debugging.
    scores: dict[str, float] = field(default_factory=dict)
    flags: tuple[str, ...] = ()  # ingest-rail rules that flagged this chunk (its text addresses the model)
    ingested_at: str = ""  # when this version of its document was ingested (documents keep their versions)

    @property
    def page(self) -> int | None:
        """The page (1-based) the passage starts on, for documents read page by page (PDF, scans: their
        loaders record where each page starts in the text, ``page_starts``)."""
        starts = self.metadata.get("page_starts")
        return page_of(self.start, starts) if isinstance(starts, list) and starts else None


def page_of(offset: int, page_starts: list[int]) -> int:
    """The 1-based page holding character ``offset`` of a paged document's text (ingest/loaders/pages.py
    records ``page_starts``; empty pages are skipped over)."""
    if not page_starts:
        raise ValueError("page_starts is empty")
    # The last page starting at or before the offset; several empty pages share an offset, so take the
    # rightmost one, which is the page whose text actually begins there.
    return max(1, bisect_right(page_starts, offset))
