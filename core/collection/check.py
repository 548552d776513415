"""``assistant check``: do the manifest, the store, the FTS5 table and the FAISS index agree?"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from core.collection.codec import stored_bytes
from core.collection.manifest import read_manifest

if TYPE_CHECKING:
    from core.collection.collection import Collection


@dataclass
class CheckReport:
    ok: bool
    problems: list[str]
    repaired: list[str]
    stats: dict[str, Any]
    advice: list[str]  # not problems: what would keep the collection fast (e.g. `assistant reindex`)


def check(collection: Collection) -> CheckReport:
    """Every problem found, in words; what opening the collection repaired; its counts."""
    problems: list[str] = []
    db, one, dim = collection.db, collection.store.scalar, collection.dim
    integrity = one("PRAGMA integrity_check")
    if integrity != "ok":
        problems.append(f"SQLite integrity check failed: {integrity}")
    try:
        db.execute("INSERT INTO chunks_fts (chunks_fts, rank) VALUES ('integrity-check', 1)")
    except sqlite3.DatabaseError as exc:
        problems.append(f"FTS5 index does not match its content: {exc}")
    counts = collection.counts()
    if n := one("SELECT COUNT(*) FROM chunks WHERE doc_pk NOT IN (SELECT pk FROM documents)"):
        problems.append(f"{n} chunks belong to no document")
    if n := one("SELECT COUNT(*) FROM documents WHERE pk NOT IN (SELECT doc_pk FROM chunks)"):
        problems.append(f"{n} documents have no chunks")
    if n := one(
        """SELECT COUNT(*) FROM chunks c JOIN documents d ON d.pk = c.doc_pk
           WHERE substr(d.text, c.start_char + 1, c.end_char - c.start_char) != c.text"""
    ):
        problems.append(f"{n} chunks do not match their document text at their offsets")
    widths = ", ".join(map(str, stored_bytes(dim)))  # float16 or float32 (codec.py)
    if bad_vectors := one(f"SELECT COUNT(*) FROM chunks WHERE length(vector) NOT IN ({widths})"):
        problems.append(f"{bad_vectors} stored vectors do not have dimension {dim}")
    fts_rows = one("SELECT COUNT(*) FROM chunks_fts")
    if fts_rows != counts["chunks"] or one("SELECT COUNT(*) FROM chunks WHERE id NOT IN (SELECT rowid FROM chunks_fts)"):
        problems.append(f"FTS5 table has {fts_rows} rows for {counts['chunks']} chunks")
    stored = np.sort(collection.store.chunk_ids())
    indexed = np.sort(collection.vectors.ids())
    if not np.array_equal(stored, indexed):
        problems.append(
            f"FAISS index holds {len(indexed)} ids, the store {len(stored)} chunks "
            f"({len(np.setdiff1d(stored, indexed))} missing, {len(np.setdiff1d(indexed, stored))} extra)"
        )
    elif len(stored) and not bad_vectors:
        # Spot-check that the indexed vectors are the stored ones (as closely as the index encodes them).
        sample = stored[np.linspace(0, len(stored) - 1, num=min(len(stored), 64)).astype(int)]
        if not collection.vectors.holds(sample, collection.vectors_for(sample)):
            problems.append("FAISS vectors differ from the stored vectors")
    bad_files = one("SELECT COUNT(*) FROM files f WHERE documents != (SELECT COUNT(*) FROM documents d WHERE d.source = f.path)")
    if bad_files:
        problems.append(f"{bad_files} file records disagree with their document counts")
    generation = collection.generation
    if read_manifest(collection.path).index.generation != generation and not collection.writable:
        # A reader brought the index up to date in memory only; a writer would have saved it.
        collection.repaired.append("FAISS checkpoint on disk is behind the store; open it for writing to save the repair")
    return CheckReport(
        ok=not problems,
        problems=problems,
        repaired=list(collection.repaired),
        advice=[advice] if (advice := collection.retrain_advice) else [],
        stats={**counts, "index_kind": collection.index_kind, "indexed_vectors": collection.vectors.ntotal, "generation": generation},
    )
