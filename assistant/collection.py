"""A collection on disk: one folder holding ``manifest.json``, ``docs.sqlite`` and ``vectors.faiss``.

Crash safety comes from one rule: SQLite is the source of truth. Documents, chunks, their vectors and
the FTS5 (BM25) rows are written in SQLite transactions, each of which bumps a ``generation`` counter.
``vectors.faiss`` is a checkpoint of the vectors, written atomically (temp file + rename) together with
the manifest that records which generation it holds. When a process dies between a commit and the next
checkpoint, the next open sees the generations differ and brings the FAISS index up to date from the
vectors in SQLite (adding missing ids, dropping deleted ones), so a killed ingest always leaves a
collection that opens, searches and passes ``check``.

Chunk ids are SQLite ``AUTOINCREMENT`` rowids, never reused, and double as FAISS ids.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator

import faiss
import numpy as np
from filelock import FileLock, Timeout
from pydantic import BaseModel, ValidationError

from assistant.errors import CollectionBusy, CollectionMismatch, CollectionNotFound, CorruptCollection, UserError
from assistant.storage import atomic_write_bytes, atomic_write_json
from assistant.types import Chunk, Document, Hit

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DATABASE = "docs.sqlite"
VECTORS = "vectors.faiss"
LOCK = ".write.lock"
# How often a read-only handle asks the database whether another process has committed since it loaded.
# Asking on every search (one SQL read) cost ~10 % of a search under load; commits made by this process
# are seen at once (see _commits_here).
STALE_CHECK_INTERVAL_S = 0.25
_commits_here: dict[Path, int] = {}  # commits made through this process's writable handles, per collection folder
_commits_guard = threading.Lock()
# FAISS's OpenMP team: one thread for a search (see Collection.dense), the default for adding vectors.
_OMP_DEFAULT = faiss.omp_get_max_threads()
_omp = threading.local()

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE files (
    path TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime REAL NOT NULL,
    documents INTEGER NOT NULL,
    ingested_at TEXT NOT NULL
);
CREATE TABLE documents (
    pk INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL,              -- content hash
    source TEXT NOT NULL,          -- absolute path of the file
    title TEXT NOT NULL,
    text TEXT NOT NULL,
    metadata TEXT NOT NULL,        -- JSON object
    added_at TEXT NOT NULL,
    UNIQUE (source, id)
);
CREATE INDEX documents_by_id ON documents (id);
CREATE TABLE chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,   -- also the FAISS id
    doc_pk INTEGER NOT NULL REFERENCES documents (pk) ON DELETE CASCADE,
    ordinal INTEGER NOT NULL,
    start_char INTEGER NOT NULL,            -- documents.text[start_char:end_char] == text
    end_char INTEGER NOT NULL,
    text TEXT NOT NULL,
    n_tokens INTEGER NOT NULL,
    embed_hash TEXT NOT NULL,               -- hash of the text that was embedded (title + chunk)
    vector BLOB NOT NULL                    -- float32[dim], L2-normalised
);
CREATE INDEX chunks_by_doc ON chunks (doc_pk);
CREATE INDEX chunks_by_embed_hash ON chunks (embed_hash);
-- BM25 over title + text; rowid = chunks.id. Porter stemming helps English medical and finance text.
CREATE VIRTUAL TABLE chunks_fts USING fts5 (title, text, tokenize = 'porter unicode61 remove_diacritics 2');
INSERT INTO meta (key, value) VALUES ('generation', '0');
"""
# Chunks the ingest rail flagged (e.g. text addressed to an AI model: indirect prompt injection), with the
# rule ids that fired. Added after format 1 shipped, so it is created on demand: a collection built before
# it simply has no flags until it is next written.
_FLAGS_SCHEMA = """
CREATE TABLE IF NOT EXISTS chunk_flags (
    chunk_id INTEGER PRIMARY KEY REFERENCES chunks (id) ON DELETE CASCADE,
    rules TEXT NOT NULL                     -- JSON list of rule ids
);
"""


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path / DATABASE, timeout=30, isolation_level=None, check_same_thread=False)
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA foreign_keys = ON")
    return db


def _has_table(db: sqlite3.Connection, name: str) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone() is not None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class EmbedderInfo(BaseModel):
    name: str
    dim: int


class ChunkingInfo(BaseModel):
    splitter: str
    chunk_tokens: int
    overlap_tokens: int
    embed_title: bool


class IndexInfo(BaseModel):
    kind: str  # "flat" (exact inner product) or "hnsw"
    generation: int  # SQLite generation the FAISS file reflects
    chunks: int


class Manifest(BaseModel):
    format_version: int
    name: str
    embedder: EmbedderInfo
    chunking: ChunkingInfo
    index: IndexInfo
    documents: int
    files: int
    created_at: str
    updated_at: str


@dataclass(frozen=True)
class IndexParams:
    approx_threshold: int = 100_000
    hnsw_m: int = 32
    hnsw_ef_construction: int = 80
    hnsw_ef_search: int = 64


@dataclass
class DocumentBatch:
    """Documents to add in one transaction, with their chunks and one vector per chunk."""

    documents: list[Document] = field(default_factory=list)
    chunks: list[list[Chunk]] = field(default_factory=list)
    embed_hashes: list[list[str]] = field(default_factory=list)
    vectors: list[np.ndarray] = field(default_factory=list)  # per document: (n_chunks, dim)


@dataclass(frozen=True)
class FileRecord:
    path: str
    sha256: str
    size: int
    mtime: float
    keep_ids: frozenset[str]  # document ids the file holds now; others from this source are removed


@dataclass(frozen=True)
class CommitResult:
    documents_added: int
    chunks_added: int
    documents_removed: int
    chunks_removed: int


@dataclass
class CheckReport:
    ok: bool
    problems: list[str]
    repaired: list[str]
    stats: dict[str, Any]


def _new_index(kind: str, dim: int, params: IndexParams) -> faiss.Index:
    if kind == "flat":
        inner = faiss.IndexFlatIP(dim)
    elif kind == "hnsw":
        inner = faiss.IndexHNSWFlat(dim, params.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = params.hnsw_ef_construction
        inner.hnsw.efSearch = params.hnsw_ef_search
    else:
        raise CorruptCollection(f"unknown index kind {kind!r}")
    # IDMap2 keys vectors by chunk id and supports reconstruct(), used by `check`.
    return faiss.IndexIDMap2(inner)


def _search_threads() -> None:
    """One OpenMP thread for this thread's searches. Set once per thread, not around every search: under
    load the two calls (each a GIL release) showed as 5 % of a search's samples."""
    if not getattr(_omp, "single", False):
        faiss.omp_set_num_threads(1)
        _omp.single = True


@contextmanager
def _build_threads() -> Iterator[None]:
    """Every core for adding vectors (an HNSW graph builds in parallel); searches on this thread go back
    to one afterwards."""
    faiss.omp_set_num_threads(_OMP_DEFAULT)
    _omp.single = False
    try:
        yield
    finally:
        _search_threads()


def _index_ids(index: faiss.Index) -> np.ndarray:
    return faiss.vector_to_array(index.id_map).astype(np.int64)


class Collection:
    """Open with ``Collection.open`` or ``Collection.create``; use as a context manager."""

    def __init__(self, path: Path, manifest: Manifest, db: sqlite3.Connection, params: IndexParams, lock: FileLock | None):
        self.path = path
        self.manifest = manifest
        self._db: sqlite3.Connection | None = db
        # A read-only handle gives every thread its own connection: one connection serialises its queries
        # (SQLite's per-connection mutex), and BM25 queries from concurrent API searches queued on it for
        # 20 ms on average. WAL lets the readers run beside a writer.
        self._thread_db = threading.local()
        self._thread_dbs: list[sqlite3.Connection] = []
        self._thread_dbs_guard = threading.Lock()
        self._has_flags: bool | None = None
        self.params = params
        self._lock = lock
        self.index: faiss.Index = _new_index("flat", manifest.embedder.dim, params)
        self._index_needs_rebuild = False
        self.repaired: list[str] = []
        self._key = path.resolve()
        self._seen_here = _commits_here.get(self._key, 0)
        self._next_check = 0.0
        self._found_stale = False

    # ------------------------------------------------------------------ opening

    @classmethod
    def create(
        cls,
        path: Path,
        *,
        embedder: EmbedderInfo,
        chunking: ChunkingInfo,
        params: IndexParams = IndexParams(),
        name: str | None = None,
    ) -> "Collection":
        """Create an empty collection. The folder appears complete or not at all (built aside, then renamed)."""
        path = Path(path)
        if (path / MANIFEST).exists():
            raise UserError(f"collection already exists at {path}")
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            # Never delete what is not ours: a folder of the user's own files may carry this name.
            raise UserError(f"{path} exists and is not a collection; choose another collection name or ASSISTANT_INDEX_DIR")
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = path.parent / f".{path.name}.creating"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        db = sqlite3.connect(staging / DATABASE)
        db.executescript(_SCHEMA + _FLAGS_SCHEMA)
        db.commit()
        db.close()
        index = _new_index("flat", embedder.dim, params)
        atomic_write_bytes(staging / VECTORS, faiss.serialize_index(index).tobytes())
        now = _now()
        manifest = Manifest(
            format_version=FORMAT_VERSION,
            name=name or path.name,
            embedder=embedder,
            chunking=chunking,
            index=IndexInfo(kind="flat", generation=0, chunks=0),
            documents=0,
            files=0,
            created_at=now,
            updated_at=now,
        )
        atomic_write_json(staging / MANIFEST, manifest.model_dump())
        if path.exists():  # an empty folder (checked above)
            path.rmdir()
        staging.rename(path)
        return cls.open(path, writable=True, params=params)

    @classmethod
    def open(cls, path: Path, *, writable: bool = False, params: IndexParams = IndexParams()) -> "Collection":
        path = Path(path)
        manifest = read_manifest(path)
        lock = None
        if writable:
            lock = FileLock(str(path / LOCK))
            try:
                lock.acquire(timeout=0)
            except Timeout:
                raise CollectionBusy(
                    f"collection {path.name!r} is being written by another process; wait for it to finish"
                ) from None
        try:
            db = _connect(path)
            if writable:
                # WAL + NORMAL: a killed process never corrupts the database; commits stay fast.
                db.execute("PRAGMA journal_mode = WAL")
                db.execute("PRAGMA synchronous = NORMAL")
                db.executescript(_FLAGS_SCHEMA)
            db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
        except sqlite3.DatabaseError as exc:
            if lock:
                lock.release()
            raise CorruptCollection(f"{path / DATABASE} is not a readable SQLite database: {exc}") from exc
        collection = cls(path, manifest, db, params, lock)
        collection._load_index()
        return collection

    @property
    def db(self) -> sqlite3.Connection:
        """This thread's connection: the one connection of a writer, a connection per thread for a reader."""
        if self._db is None:
            raise RuntimeError("collection closed")
        if self._lock is not None:
            return self._db
        db = getattr(self._thread_db, "db", None)
        if db is None:
            db = self._thread_db.db = _connect(self.path)
            with self._thread_dbs_guard:
                self._thread_dbs.append(db)
        return db

    def close(self) -> None:
        if self._db is not None:
            with self._thread_dbs_guard:
                for db in [self._db, *self._thread_dbs]:
                    db.close()
                self._thread_dbs.clear()
            self._db = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> "Collection":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def writable(self) -> bool:
        return self._lock is not None

    @property
    def dim(self) -> int:
        return self.manifest.embedder.dim

    @property
    def generation(self) -> int:
        return int(self.db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0])

    def _load_index(self) -> None:
        """Read the FAISS checkpoint and bring it up to the database's generation."""
        file = self.path / VECTORS
        index = None
        try:
            index = faiss.read_index(str(file))
            if index.d != self.dim:
                self.repaired.append(f"{VECTORS} had dimension {index.d}, expected {self.dim}; rebuilt it")
                index = None
        except RuntimeError as exc:  # faiss raises RuntimeError for missing or unreadable files
            self.repaired.append(f"{VECTORS} was unreadable ({str(exc).splitlines()[0][:120]}); rebuilt it from the store")
        if index is None:
            self._rebuild_index()
        else:
            self.index = index
            self._set_search_params()
            if self.manifest.index.generation != self.generation:
                self._sync_index()
        if self.repaired and self.writable:
            self.checkpoint()
        self.loaded_generation = self.generation

    @property
    def version(self) -> int:
        """The generation searches on this handle reflect: the one its index was loaded at for a read-only
        handle (its owner reopens it when stale), the live one for the writer. Reads no SQL for a reader."""
        return self.generation if self.writable else self.loaded_generation

    @property
    def stale(self) -> bool:
        """A read-only handle whose index predates a commit made since: by this process, seen at once; by
        another, seen within STALE_CHECK_INTERVAL_S."""
        if self.writable:
            return False
        if not self._found_stale:
            here, now = _commits_here.get(self._key, 0), time.monotonic()
            if here != self._seen_here or now >= self._next_check:
                self._seen_here, self._next_check = here, now + STALE_CHECK_INTERVAL_S
                self._found_stale = self.generation != self.loaded_generation
        return self._found_stale

    def _set_search_params(self) -> None:
        inner = faiss.downcast_index(self.index.index)
        if isinstance(inner, faiss.IndexHNSW):
            inner.hnsw.efSearch = self.params.hnsw_ef_search

    def _sync_index(self) -> None:
        stored = np.array([r[0] for r in self.db.execute("SELECT id FROM chunks")], dtype=np.int64)
        indexed = _index_ids(self.index)
        missing = np.setdiff1d(stored, indexed, assume_unique=True)
        extra = np.setdiff1d(indexed, stored, assume_unique=True)
        if len(extra):
            self._remove_from_index(extra)
        if len(missing):
            self._add_to_index(missing, self.vectors_for(missing))
        self.repaired.append(
            f"{VECTORS} was behind the store (generation {self.manifest.index.generation} < {self.generation}): "
            f"added {len(missing)} vectors, removed {len(extra)}"
        )

    def vectors_for(self, ids: np.ndarray) -> np.ndarray:
        out = np.zeros((len(ids), self.dim), dtype=np.float32)
        for start in range(0, len(ids), 900):  # stay under SQLite's bound-parameter limit
            part = ids[start : start + 900].tolist()
            marks = ",".join("?" * len(part))
            rows = dict(self.db.execute(f"SELECT id, vector FROM chunks WHERE id IN ({marks})", part).fetchall())
            for j, cid in enumerate(part):
                out[start + j] = np.frombuffer(rows[cid], dtype=np.float32)
        return out

    def _wanted_kind(self, n_chunks: int) -> str:
        return "hnsw" if n_chunks > self.params.approx_threshold else "flat"

    def _rebuild_index(self) -> None:
        n = self.db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
        index = _new_index(self._wanted_kind(n), self.dim, self.params)
        ids, vecs = [], []
        for cid, blob in self.db.execute("SELECT id, vector FROM chunks ORDER BY id"):
            ids.append(cid)
            vecs.append(np.frombuffer(blob, dtype=np.float32))
        if ids:
            with _build_threads():
                index.add_with_ids(np.vstack(vecs), np.array(ids, dtype=np.int64))
        self.index = index
        self._set_search_params()
        self._index_needs_rebuild = False

    def _add_to_index(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        with _build_threads():
            self.index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids.astype(np.int64))

    def _remove_from_index(self, ids: np.ndarray) -> None:
        if self.index_kind == "hnsw":
            self._index_needs_rebuild = True  # HNSW cannot remove: rebuilt from the store at the checkpoint
        else:
            self.index.remove_ids(faiss.IDSelectorArray(ids.astype(np.int64)))

    @property
    def index_kind(self) -> str:
        return "hnsw" if isinstance(faiss.downcast_index(self.index.index), faiss.IndexHNSW) else "flat"

    # ------------------------------------------------------------------ reading

    def _scalar(self, sql: str) -> int:
        return self.db.execute(sql).fetchone()[0]

    def counts(self) -> dict[str, int]:
        one = self._scalar
        return {
            "files": one("SELECT COUNT(*) FROM files"),
            "documents": one("SELECT COUNT(*) FROM documents"),
            "chunks": one("SELECT COUNT(*) FROM chunks"),
        }

    def file_sha256(self, path: str) -> str | None:
        row = self.db.execute("SELECT sha256 FROM files WHERE path = ?", (path,)).fetchone()
        return row[0] if row else None

    def document_ids(self, source: str) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT id FROM documents WHERE source = ?", (source,))}

    def sources(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT DISTINCT source FROM documents ORDER BY source")]

    def vectors_by_embed_hash(self, hashes: Iterable[str]) -> dict[str, np.ndarray]:
        """Vectors already computed for these embedding inputs (re-used instead of embedding again)."""
        hashes = list(set(hashes))
        found: dict[str, np.ndarray] = {}
        for start in range(0, len(hashes), 900):
            part = hashes[start : start + 900]
            marks = ",".join("?" * len(part))
            for h, blob in self.db.execute(f"SELECT embed_hash, vector FROM chunks WHERE embed_hash IN ({marks})", part):
                found[h] = np.frombuffer(blob, dtype=np.float32)
        return found

    def dense(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        """Dense top-k as (chunk id, cosine) pairs, best first (inner product of normalised vectors);
        ``allowed`` restricts the search to those chunk ids."""
        if k <= 0 or self.index.ntotal == 0 or (allowed is not None and len(allowed) == 0):
            return []
        query = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
        if query.shape[1] != self.dim:
            raise UserError(f"query vector has dimension {query.shape[1]}, collection {self.manifest.name!r} uses {self.dim}")
        params = selector = None
        if allowed is not None:
            # The filter is applied inside the search, before the top-k cut (IDMap translates the ids).
            # SWIG does not keep the selector alive through the parameters object: hold it in a local.
            selector = faiss.IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64))
            if self.index_kind == "hnsw":
                params = faiss.SearchParametersHNSW(sel=selector, efSearch=max(self.params.hnsw_ef_search, k))
            else:
                params = faiss.SearchParameters(sel=selector)
        # One query is a memory-bound scan: FAISS's default of one OpenMP thread per core made it 7x slower
        # on 2 cores (15.7 vs 2.1 ms on 35k chunks) and starved the query embedding running beside it.
        _search_threads()
        scores, ids = self.index.search(query, min(k, self.index.ntotal), params=params)
        del selector  # only now may it be freed
        return [(i, s) for i, s in zip(ids[0].tolist(), scores[0].tolist()) if i >= 0]  # tolist: 10x faster than numpy scalars

    def bm25(self, match: str, k: int, filters: dict[str, Any] | None = None, title_weight: float = 1.0) -> list[tuple[int, float]]:
        """(chunk id, BM25 score) pairs from the FTS5 table, best first. ``match`` is an FTS5 query."""
        where, params = self.filter_clause(filters)
        restrict = f"AND rowid IN (SELECT c.id FROM chunks c JOIN documents d ON d.pk = c.doc_pk WHERE {where})" if where else ""
        # FTS5's bm25() is lower-is-better; negate it so every retriever's scores are higher-is-better.
        rows = self.db.execute(
            f"""SELECT rowid, -bm25(chunks_fts, ?, 1.0) AS score FROM chunks_fts
                WHERE chunks_fts MATCH ? {restrict} ORDER BY score DESC LIMIT ?""",
            (title_weight, match, *params, k),
        ).fetchall()
        return [(int(r[0]), float(r[1])) for r in rows]

    def chunk_ids_matching(self, filters: dict[str, Any]) -> np.ndarray:
        where, params = self.filter_clause(filters)
        rows = self.db.execute(f"SELECT c.id FROM chunks c JOIN documents d ON d.pk = c.doc_pk WHERE {where}", params)
        return np.fromiter((r[0] for r in rows), dtype=np.int64)

    @staticmethod
    def filter_clause(filters: dict[str, Any] | None) -> tuple[str, list[Any]]:
        """SQL over chunks ``c`` and documents ``d`` for metadata filters.

        Keys: ``source`` (absolute path), ``document_id``, or any metadata key; values: a scalar (equality)
        or a list (any of). Conditions are ANDed.
        """
        if not filters:
            return "", []
        clauses, params = [], []
        for key, value in filters.items():
            if key == "source":
                column = "d.source"
            elif key == "document_id":
                column = "d.id"
            else:
                if not key or not all(ch.isalnum() or ch in "_-." for ch in key):
                    raise UserError(f"invalid filter key {key!r}: use letters, digits, '_', '-' and '.'")
                column = "json_extract(d.metadata, ?)"
                params.append(f'$."{key}"')
            values = list(value) if isinstance(value, (list, tuple, set, frozenset)) else [value]
            if not values:
                raise UserError(f"filter {key!r} has an empty list of values")
            for v in values:
                if not isinstance(v, (str, int, float, bool)) or v is None:
                    raise UserError(f"filter {key!r}: values must be strings, numbers or booleans, got {v!r}")
            clauses.append(f"{column} IN ({','.join('?' * len(values))})")
            params += values
        return " AND ".join(clauses), params

    def hits(self, scored_ids: list[tuple[int, float]]) -> list[Hit]:
        """Turn (chunk id, score) pairs into Hits, keeping their order."""
        if not scored_ids:
            return []
        ids = [cid for cid, _ in scored_ids]
        marks = ",".join("?" * len(ids))
        flags: dict[int, tuple[str, ...]] = {}
        if self._has_flags is None or self.writable:  # a reader asks once (a writer creates the table on open)
            self._has_flags = _has_table(self.db, "chunk_flags")
        if self._has_flags:
            flags = {r[0]: tuple(json.loads(r[1])) for r in self.db.execute(f"SELECT chunk_id, rules FROM chunk_flags WHERE chunk_id IN ({marks})", ids)}
        rows = {
            r["id"]: r
            for r in self.db.execute(
                f"""SELECT c.id, c.text, c.start_char, c.end_char, d.id AS doc_id, d.title, d.source, d.metadata
                    FROM chunks c JOIN documents d ON d.pk = c.doc_pk WHERE c.id IN ({marks})""",
                ids,
            )
        }
        return [
            Hit(
                chunk_id=cid,
                score=score,
                text=rows[cid]["text"],
                document_id=rows[cid]["doc_id"],
                title=rows[cid]["title"],
                source=rows[cid]["source"],
                start=rows[cid]["start_char"],
                end=rows[cid]["end_char"],
                metadata=json.loads(rows[cid]["metadata"]),
                flags=flags.get(cid, ()),
            )
            for cid, score in scored_ids
            if cid in rows  # a chunk deleted between the index search and this read is dropped
        ]

    # ------------------------------------------------------------------ writing

    def _require_writable(self) -> None:
        if not self.writable:
            raise RuntimeError("collection opened read-only")

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._require_writable()
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
            self.db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")
            self.db.execute("COMMIT")
            with _commits_guard:
                _commits_here[self._key] = _commits_here.get(self._key, 0) + 1
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def commit(self, batch: DocumentBatch, finished_files: list[FileRecord]) -> "CommitResult":
        """Add documents with their chunks and vectors, then finalise the files whose documents are all in.

        One transaction: either everything in the call is stored, or nothing is.
        """
        added_ids: list[int] = []
        added_vecs: list[np.ndarray] = []
        removed: list[int] = []
        docs_added = docs_removed = 0
        now = _now()
        with self._transaction() as db:
            for doc, chunks, hashes, vectors in zip(batch.documents, batch.chunks, batch.embed_hashes, batch.vectors):
                cur = db.execute(
                    "INSERT OR IGNORE INTO documents (id, source, title, text, metadata, added_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (doc.id, doc.source, doc.title, doc.text, json.dumps(doc.metadata, ensure_ascii=False, sort_keys=True), now),
                )
                if cur.rowcount == 0:
                    continue  # already stored (a resumed ingest): keep the stored copy
                docs_added += 1
                doc_pk = cur.lastrowid
                for chunk, h, vec in zip(chunks, hashes, vectors):
                    cid = db.execute(
                        """INSERT INTO chunks (doc_pk, ordinal, start_char, end_char, text, n_tokens, embed_hash, vector)
                           VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
                        (doc_pk, chunk.ordinal, chunk.start, chunk.end, chunk.text, chunk.n_tokens, h, vec.astype(np.float32).tobytes()),
                    ).lastrowid
                    db.execute("INSERT INTO chunks_fts (rowid, title, text) VALUES (?, ?, ?)", (cid, doc.title, chunk.text))
                    if chunk.flags:
                        db.execute("INSERT INTO chunk_flags (chunk_id, rules) VALUES (?, ?)", (cid, json.dumps(list(chunk.flags))))
                    added_ids.append(cid)
                    added_vecs.append(vec)
            for record in finished_files:
                stale = [
                    pk
                    for pk, doc_id in db.execute("SELECT pk, id FROM documents WHERE source = ?", (record.path,))
                    if doc_id not in record.keep_ids
                ]
                removed += self._delete_documents(db, stale)
                docs_removed += len(stale)
                db.execute(
                    """INSERT INTO files (path, sha256, size, mtime, documents, ingested_at) VALUES (?, ?, ?, ?, ?, ?)
                       ON CONFLICT (path) DO UPDATE SET sha256 = excluded.sha256, size = excluded.size,
                       mtime = excluded.mtime, documents = excluded.documents, ingested_at = excluded.ingested_at""",
                    (record.path, record.sha256, record.size, record.mtime, len(record.keep_ids), now),
                )
        # The transaction is durable; now mirror it in the in-memory index (the checkpoint writes it out).
        if removed:
            self._remove_from_index(np.array(removed, dtype=np.int64))
        if added_ids:
            self._add_to_index(np.array(added_ids, dtype=np.int64), np.vstack(added_vecs))
        return CommitResult(docs_added, len(added_ids), docs_removed, len(removed))

    @staticmethod
    def _delete_documents(db: sqlite3.Connection, doc_pks: list[int]) -> list[int]:
        """Delete documents with their chunks and FTS rows; returns the removed chunk ids."""
        removed: list[int] = []
        for pk in doc_pks:
            ids = [r[0] for r in db.execute("SELECT id FROM chunks WHERE doc_pk = ?", (pk,))]
            db.executemany("DELETE FROM chunks_fts WHERE rowid = ?", [(i,) for i in ids])
            if _has_table(db, "chunk_flags"):  # foreign keys cascade, but only where the table exists
                db.executemany("DELETE FROM chunk_flags WHERE chunk_id = ?", [(i,) for i in ids])
            db.execute("DELETE FROM chunks WHERE doc_pk = ?", (pk,))
            db.execute("DELETE FROM documents WHERE pk = ?", (pk,))
            removed += ids
        return removed

    def delete_source(self, source: str) -> tuple[int, int]:
        """Remove every document of a source file (and its file record). Returns (documents, chunks) removed."""
        with self._transaction() as db:
            pks = [r[0] for r in db.execute("SELECT pk FROM documents WHERE source = ?", (source,))]
            removed = self._delete_documents(db, pks)
            db.execute("DELETE FROM files WHERE path = ?", (source,))
        if removed:
            self._remove_from_index(np.array(removed, dtype=np.int64))
        return len(pks), len(removed)

    def delete_document(self, document_id: str) -> tuple[int, int]:
        """Remove one document (its chunks, vectors and BM25 rows). The source file's record stays, so
        re-ingesting the unchanged file does not bring the document back. Returns (documents, chunks)."""
        with self._transaction() as db:
            pks = [r[0] for r in db.execute("SELECT pk FROM documents WHERE id = ?", (document_id,))]
            removed = self._delete_documents(db, pks)
        if removed:
            self._remove_from_index(np.array(removed, dtype=np.int64))
        return len(pks), len(removed)

    def checkpoint(self) -> None:
        """Write the FAISS index and the manifest atomically, recording the generation they reflect."""
        self._require_writable()
        n = self.index.ntotal
        if self._index_needs_rebuild or self._wanted_kind(n) != self.index_kind:
            self._rebuild_index()
        generation = self.generation
        atomic_write_bytes(self.path / VECTORS, faiss.serialize_index(self.index).tobytes())
        counts = self.counts()
        self.manifest = self.manifest.model_copy(
            update={
                "index": IndexInfo(kind=self.index_kind, generation=generation, chunks=int(self.index.ntotal)),
                "documents": counts["documents"],
                "files": counts["files"],
                "updated_at": _now(),
            }
        )
        atomic_write_json(self.path / MANIFEST, self.manifest.model_dump())
        # Fold the WAL back into the database file so the folder is compact when copied.
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # ------------------------------------------------------------------ checking

    def check(self) -> CheckReport:
        """Verify that the manifest, the store, the FTS table and the FAISS index agree."""
        problems: list[str] = []
        db = self.db
        integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
        if integrity != "ok":
            problems.append(f"SQLite integrity check failed: {integrity}")
        try:
            db.execute("INSERT INTO chunks_fts (chunks_fts, rank) VALUES ('integrity-check', 1)")
        except sqlite3.DatabaseError as exc:
            problems.append(f"FTS5 index does not match its content: {exc}")
        counts = self.counts()
        one = self._scalar
        if n := one("SELECT COUNT(*) FROM chunks WHERE doc_pk NOT IN (SELECT pk FROM documents)"):
            problems.append(f"{n} chunks belong to no document")
        if n := one("SELECT COUNT(*) FROM documents WHERE pk NOT IN (SELECT doc_pk FROM chunks)"):
            problems.append(f"{n} documents have no chunks")
        if n := one(
            """SELECT COUNT(*) FROM chunks c JOIN documents d ON d.pk = c.doc_pk
               WHERE substr(d.text, c.start_char + 1, c.end_char - c.start_char) != c.text"""
        ):
            problems.append(f"{n} chunks do not match their document text at their offsets")
        if n := one(f"SELECT COUNT(*) FROM chunks WHERE length(vector) != {4 * self.dim}"):
            problems.append(f"{n} stored vectors do not have dimension {self.dim}")
        fts_rows = one("SELECT COUNT(*) FROM chunks_fts")
        if fts_rows != counts["chunks"] or one("SELECT COUNT(*) FROM chunks WHERE id NOT IN (SELECT rowid FROM chunks_fts)"):
            problems.append(f"FTS5 table has {fts_rows} rows for {counts['chunks']} chunks")
        stored = np.array(sorted(r[0] for r in db.execute("SELECT id FROM chunks")), dtype=np.int64)
        indexed = np.sort(_index_ids(self.index))
        if not np.array_equal(stored, indexed):
            problems.append(
                f"FAISS index holds {len(indexed)} ids, the store {len(stored)} chunks "
                f"({len(np.setdiff1d(stored, indexed))} missing, {len(np.setdiff1d(indexed, stored))} extra)"
            )
        elif len(stored):
            # Spot-check that the indexed vectors are the stored ones.
            sample = stored[np.linspace(0, len(stored) - 1, num=min(len(stored), 64)).astype(int)]
            got = np.vstack([self.index.reconstruct(int(i)) for i in sample])
            if not np.allclose(got, self.vectors_for(sample), atol=1e-5):
                problems.append("FAISS vectors differ from the stored vectors")
        bad_files = one("SELECT COUNT(*) FROM files f WHERE documents != (SELECT COUNT(*) FROM documents d WHERE d.source = f.path)")
        if bad_files:
            problems.append(f"{bad_files} file records disagree with their document counts")
        on_disk = read_manifest(self.path)
        if on_disk.index.generation != self.generation and not self.writable:
            # A reader brought the index up to date in memory only; a writer would have saved it.
            self.repaired.append("FAISS checkpoint on disk is behind the store; open it for writing to save the repair")
        return CheckReport(
            ok=not problems,
            problems=problems,
            repaired=list(self.repaired),
            stats={**counts, "index_kind": self.index_kind, "indexed_vectors": int(self.index.ntotal), "generation": self.generation},
        )


def read_manifest(path: Path) -> Manifest:
    file = Path(path) / MANIFEST
    if not file.exists():
        raise CollectionNotFound(f"no collection at {path} (missing {MANIFEST}); create it with `assistant ingest PATH --collection NAME`")
    try:
        manifest = Manifest.model_validate_json(file.read_text(encoding="utf-8"))
    except (ValidationError, ValueError) as exc:
        raise CorruptCollection(f"{file} is not a valid manifest: {exc}") from exc
    if manifest.format_version != FORMAT_VERSION:
        raise CollectionMismatch(
            f"collection {path} has format version {manifest.format_version}, this version reads {FORMAT_VERSION}; "
            "rebuild it with `assistant ingest PATH... --collection NAME --rebuild`"
        )
    return manifest


def ensure_compatible(manifest: Manifest, embedder: EmbedderInfo, chunking: ChunkingInfo) -> None:
    """Refuse to mix vectors or chunks made with different settings in one collection."""
    differences = []
    if manifest.embedder != embedder:
        differences.append(
            f"embedder {manifest.embedder.name} ({manifest.embedder.dim}-d) on disk, {embedder.name} ({embedder.dim}-d) now"
        )
    if manifest.chunking != chunking:
        was, now = manifest.chunking, chunking
        differences.append(
            f"chunking {was.chunk_tokens}/{was.overlap_tokens} tokens (title embedded: {was.embed_title}, {was.splitter}) on disk, "
            f"{now.chunk_tokens}/{now.overlap_tokens} (title embedded: {now.embed_title}, {now.splitter}) now"
        )
    if differences:
        raise CollectionMismatch(
            f"collection {manifest.name!r} was built with other settings: {'; '.join(differences)}. "
            f"Either restore the settings it was built with, or rebuild it: "
            f"`assistant ingest PATH... --collection {manifest.name} --rebuild`"
        )


def collection_path(index_dir: Path, name: str) -> Path:
    if not name or name.startswith(".") or "/" in name or "\\" in name or name in {"..", "."}:
        raise UserError(f"invalid collection name {name!r}: use letters, digits, '-' and '_'")
    if not all(ch.isalnum() or ch in "-_" for ch in name):
        raise UserError(f"invalid collection name {name!r}: use letters, digits, '-' and '_'")
    return Path(index_dir) / name


def list_collections(index_dir: Path) -> list[Manifest]:
    index_dir = Path(index_dir)
    if not index_dir.is_dir():
        return []
    out = []
    for child in sorted(index_dir.iterdir()):
        if (child / MANIFEST).exists() and not child.name.startswith("."):
            try:
                out.append(read_manifest(child))
            except UserError:
                continue
    return out



def replace_collection(staging: Path, target: Path) -> None:
    """Swap a freshly built collection into place. A crash leaves either the old or the new one at ``target``."""
    old = target.parent / f".{target.name}.old"
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    staging.rename(target)
    shutil.rmtree(old, ignore_errors=True)
