"""``docs.sqlite``: the source of truth of a collection. Files, documents, chunks with their character
offsets and vectors, the FTS5 table BM25 reads, the rule ids the ingest rail flagged, and a ``generation``
counter every write transaction bumps. Every SQL statement of the collection lives here (and in history.py,
which keeps what writes remove so that earlier versions can be restored, and check.py).

Chunk ids are SQLite ``AUTOINCREMENT`` rowids, never reused, and double as FAISS ids.
"""

from __future__ import annotations

import errno
import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from core.collection import codec, history
from core.collection.filters import Filters, filter_clause
from core.errors import CollectionBusy, DiskFull
from core.tables import Table
from core.types import Chunk, Document, Hit

DATABASE = "docs.sqlite"
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
    vector BLOB NOT NULL                    -- float16[dim], L2-normalised (float32 in collections written before: codec.py)
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
# The tables of a document as cells (core/tables.py: Table.to_dict), for computations over their values.
# Added after format 1 too and created on demand: a collection built before it computes nothing until its
# documents are ingested again (`assistant ingest --rebuild`).
_TABLES_SCHEMA = """
CREATE TABLE IF NOT EXISTS document_tables (
    doc_pk INTEGER NOT NULL REFERENCES documents (pk) ON DELETE CASCADE,
    ordinal INTEGER NOT NULL,               -- position of the table in its document
    data TEXT NOT NULL,                     -- JSON: Table.to_dict()
    PRIMARY KEY (doc_pk, ordinal)
);
"""
_PARAMS_PER_QUERY = 900  # stay under SQLite's bound-parameter limit
# How long a write waits for SQLite's own lock, held by a process outside this project's write lock (the
# collection's .write.lock keeps our writers apart), before it gives up with CollectionBusy.
BUSY_TIMEOUT_S = 30.0
_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_FULL = 5, 6, 13  # SQLite's primary result codes


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


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


@dataclass
class Changes:
    """What one write transaction did, for the FAISS index to mirror."""

    documents_added: int = 0
    documents_removed: int = 0
    added_ids: list[int] = field(default_factory=list)
    added_vectors: list[np.ndarray] = field(default_factory=list)  # as stored (codec.as_stored), for the index
    removed_ids: list[int] = field(default_factory=list)


@contextmanager
def sqlite_errors(folder: Path) -> Iterator[None]:
    """SQLite's errors that are the machine's, not a bug, as the project's: a full disk as DiskFull, the
    database locked by another process past BUSY_TIMEOUT_S as CollectionBusy (409 in the API)."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        code = getattr(exc, "sqlite_errorcode", None) or 0
        if code & 0xFF == _SQLITE_FULL:
            raise DiskFull(
                f"no space left on the disk holding collection {folder.name!r} ({exc}); nothing of this write was stored; "
                "free space and retry"
            ) from exc
        if code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED):
            raise CollectionBusy(
                f"collection {folder.name!r} is locked by another process (its SQLite database, for over {BUSY_TIMEOUT_S:g} s); retry later"
            ) from exc
        raise
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFull(f"no space left on the disk holding collection {folder.name!r}; free space and retry") from exc
        raise


def _connect(folder: Path) -> sqlite3.Connection:
    db = sqlite3.connect(folder / DATABASE, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA foreign_keys = ON")
    return db


def _has_table(db: sqlite3.Connection, name: str) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone() is not None


def _marks(values: list[Any]) -> str:
    return ",".join("?" * len(values))


class Store:
    """The SQLite side of a collection. A writer holds one connection; a reader gives every thread its own
    (one connection serialises its queries behind SQLite's per-connection mutex, and BM25 queries from
    concurrent API searches queued on it for 20 ms on average). WAL lets the readers run beside a writer.

    Raises ``sqlite3.DatabaseError`` when the file is not a readable database."""

    def __init__(self, folder: Path, *, writable: bool):
        self.folder = folder
        self.writable = writable
        self._db: sqlite3.Connection | None = _connect(folder)
        try:
            with sqlite_errors(folder):
                if writable:
                    # WAL + NORMAL: a killed process never corrupts the database; commits stay fast.
                    self._db.execute("PRAGMA journal_mode = WAL")
                    self._db.execute("PRAGMA synchronous = NORMAL")
                    self._db.executescript(_FLAGS_SCHEMA + _TABLES_SCHEMA)
                    history.migrate(self._db)
                self._db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
        except BaseException:
            self._db.close()
            raise
        self._thread_db = threading.local()
        self._thread_dbs: dict[threading.Thread, sqlite3.Connection] = {}
        self._thread_dbs_guard = threading.Lock()
        self._has_flags: bool | None = None
        self._has_tables: bool | None = None

    @staticmethod
    def create(folder: Path) -> None:
        """A new, empty database in ``folder``."""
        db = sqlite3.connect(folder / DATABASE)
        db.executescript(_SCHEMA + _FLAGS_SCHEMA + _TABLES_SCHEMA)
        history.migrate(db)
        db.commit()
        db.close()

    @property
    def db(self) -> sqlite3.Connection:
        """This thread's connection: the one connection of a writer, a connection per thread for a reader."""
        if self._db is None:
            raise RuntimeError("collection closed")
        if self.writable:
            return self._db
        db = getattr(self._thread_db, "db", None)
        if db is None:
            db = self._thread_db.db = _connect(self.folder)
            with self._thread_dbs_guard:
                # The connections of threads that have ended are closed here. The API answers each question on a
                # thread of its own: kept until the collection closed, every answer left a connection behind
                # (its page cache and three file descriptors), and a server ran out of both in hours.
                for thread in [t for t in self._thread_dbs if not t.is_alive()]:
                    self._thread_dbs.pop(thread).close()
                self._thread_dbs[threading.current_thread()] = db
        return db

    def __del__(self) -> None:
        # A handle dropped without close (a server drops a reader that went stale: another thread may still be
        # searching it) closes its connections now. Left to themselves they would wait for a full garbage
        # collection: a sqlite3.Connection is in a reference cycle with its own statement cache, and meanwhile
        # each holds its file descriptors and page cache (the soak counted 30 such connections on one
        # collection after eight minutes of uploads).
        if not hasattr(self, "_thread_dbs_guard"):
            return  # __init__ failed, and closed what it had opened
        try:
            self.close()
        except Exception:  # at interpreter exit: nothing left worth reporting
            pass

    def close(self) -> None:
        if self._db is not None:
            with self._thread_dbs_guard:
                for db in [self._db, *self._thread_dbs.values()]:
                    db.close()
                self._thread_dbs.clear()
            self._db = None

    def scalar(self, sql: str) -> Any:
        return self.db.execute(sql).fetchone()[0]

    @property
    def generation(self) -> int:
        return int(self.scalar("SELECT value FROM meta WHERE key = 'generation'"))

    # ------------------------------------------------------------------ writing

    @contextmanager
    def _transaction(self, *, bump: bool = True) -> Iterator[tuple[sqlite3.Connection, int, str]]:
        """A write transaction, with the generation it makes and its time (history stamps what it archives).
        ``bump`` False: one that changes no content (the list of versions), so makes no generation."""
        if not self.writable:
            raise RuntimeError("collection opened read-only")
        db = self.db
        with sqlite_errors(self.folder):
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db, self.generation + 1, now()
                if bump:
                    db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")
                db.execute("COMMIT")
            except BaseException:
                # SQLite rolls a transaction back by itself on some errors (a full disk: SQLITE_FULL); a second
                # ROLLBACK would fail and hide the error that matters.
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise

    def commit(self, batch: DocumentBatch, finished_files: list[FileRecord]) -> Changes:
        """Add documents with their chunks and vectors, then finalise the files whose documents are all in.
        One transaction: either everything in the call is stored, or nothing is."""
        changes = Changes()
        with self._transaction() as (db, generation, stamp):
            for doc, chunks, hashes, vectors in zip(batch.documents, batch.chunks, batch.embed_hashes, batch.vectors):
                metadata = json.dumps(doc.metadata, ensure_ascii=False, sort_keys=True)
                cur = db.execute(
                    "INSERT OR IGNORE INTO documents (id, source, title, text, metadata, added_at, added_gen) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (doc.id, doc.source, doc.title, doc.text, metadata, stamp, generation),
                )
                if cur.rowcount == 0:
                    continue  # already stored (a resumed ingest): keep the stored copy
                changes.documents_added += 1
                doc_pk = cur.lastrowid
                db.executemany(
                    "INSERT INTO document_tables (doc_pk, ordinal, data) VALUES (?, ?, ?)",
                    [(doc_pk, i, json.dumps(t.to_dict(), ensure_ascii=False)) for i, t in enumerate(doc.tables)],
                )
                for chunk, h, vec in zip(chunks, hashes, codec.as_stored(vectors)):
                    cid = db.execute(
                        """INSERT INTO chunks (doc_pk, ordinal, start_char, end_char, text, n_tokens, embed_hash, vector)
                           VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
                        (doc_pk, chunk.ordinal, chunk.start, chunk.end, chunk.text, chunk.n_tokens, h, codec.encode(vec)),
                    ).lastrowid
                    assert cid is not None  # every INSERT sets it
                    db.execute("INSERT INTO chunks_fts (rowid, title, text) VALUES (?, ?, ?)", (cid, doc.title, chunk.text))
                    if chunk.flags:
                        db.execute("INSERT INTO chunk_flags (chunk_id, rules) VALUES (?, ?)", (cid, json.dumps(list(chunk.flags))))
                    changes.added_ids.append(cid)
                    changes.added_vectors.append(vec)
            for record in finished_files:
                stale = [
                    pk
                    for pk, doc_id in db.execute("SELECT pk, id FROM documents WHERE source = ?", (record.path,))
                    if doc_id not in record.keep_ids
                ]
                changes.removed_ids += self._delete_documents(db, stale, generation, stamp)
                changes.documents_removed += len(stale)
                history.archive_file(db, record.path, generation)
                db.execute(
                    """INSERT INTO files (path, sha256, size, mtime, documents, ingested_at, added_gen) VALUES (?, ?, ?, ?, ?, ?, ?)
                       ON CONFLICT (path) DO UPDATE SET sha256 = excluded.sha256, size = excluded.size,
                       mtime = excluded.mtime, documents = excluded.documents, ingested_at = excluded.ingested_at,
                       added_gen = excluded.added_gen""",
                    (record.path, record.sha256, record.size, record.mtime, len(record.keep_ids), stamp, generation),
                )
        return changes

    @staticmethod
    def _delete_documents(db: sqlite3.Connection, doc_pks: list[int], generation: int, stamp: str) -> list[int]:
        """Delete documents with their chunks and FTS rows, kept in the history first; returns the removed
        chunk ids."""
        history.archive_documents(db, doc_pks, generation, stamp)
        removed: list[int] = []
        for pk in doc_pks:
            ids = [r[0] for r in db.execute("SELECT id FROM chunks WHERE doc_pk = ?", (pk,))]
            db.executemany("DELETE FROM chunks_fts WHERE rowid = ?", [(i,) for i in ids])
            if _has_table(db, "chunk_flags"):  # foreign keys cascade, but only where the table exists
                db.executemany("DELETE FROM chunk_flags WHERE chunk_id = ?", [(i,) for i in ids])
            if _has_table(db, "document_tables"):
                db.execute("DELETE FROM document_tables WHERE doc_pk = ?", (pk,))
            db.execute("DELETE FROM chunks WHERE doc_pk = ?", (pk,))
            db.execute("DELETE FROM documents WHERE pk = ?", (pk,))
            removed += ids
        return removed

    def delete_source(self, source: str) -> Changes:
        """Every document of a source file, and its file record."""
        with self._transaction() as (db, generation, stamp):
            pks = [r[0] for r in db.execute("SELECT pk FROM documents WHERE source = ?", (source,))]
            removed = self._delete_documents(db, pks, generation, stamp)
            history.archive_file(db, source, generation)
            db.execute("DELETE FROM files WHERE path = ?", (source,))
        return Changes(documents_removed=len(pks), removed_ids=removed)

    def delete_document(self, document_id: str) -> Changes:
        """One document; its file's record stays, so re-ingesting the unchanged file does not bring it back."""
        with self._transaction() as (db, generation, stamp):
            pks = [r[0] for r in db.execute("SELECT pk FROM documents WHERE id = ?", (document_id,))]
            removed = self._delete_documents(db, pks, generation, stamp)
        return Changes(documents_removed=len(pks), removed_ids=removed)

    def rollback(self, target: int, dim: int) -> Changes:
        """Make the collection what it was at version ``target``, as a new version (the versions after
        ``target`` stay in the history). Raises history.VersionNotKept for a version that cannot be rebuilt."""
        with self._transaction() as (db, generation, stamp):
            history.check_kept(db, target, generation - 1, self.folder.name)
            newer = history.newer_documents(db, target)
            changes = Changes(documents_removed=len(newer))
            changes.removed_ids = self._delete_documents(db, newer, generation, stamp)
            restored = history.restore_documents(db, target, generation)
            history.restore_files(db, target, generation)
            changes.documents_added = restored.documents
            changes.added_ids = restored.chunk_ids
            changes.added_vectors = [codec.decode(blob, dim) for blob in restored.blobs]
        return changes

    def record_version(self, operation: str) -> history.Version | None:
        """List the current generation as a version made by ``operation`` (None: listed already)."""
        with self._transaction(bump=False) as (db, generation, stamp):
            return history.record_version(db, generation - 1, operation, stamp)

    def prune(self, keep: int) -> history.Pruned:
        """Keep the newest ``keep`` listed versions; drop the archived rows none of them sees."""
        with self._transaction(bump=False) as (db, _, _stamp):
            return history.prune(db, keep)

    def vacuum(self) -> None:
        """Give the space of deleted rows back to the file system (after pruning the history)."""
        with sqlite_errors(self.folder):
            self.db.execute("VACUUM")

    def copy_to(self, file: Path) -> None:
        """A consistent copy of the database in ``file`` (taken beside running writers)."""
        self.db.execute("VACUUM INTO ?", (str(file),))

    def fold_wal(self) -> None:
        """Fold the WAL back into the database file so the folder is compact when copied."""
        with sqlite_errors(self.folder):
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # ------------------------------------------------------------------ reading

    def counts(self) -> dict[str, int]:
        one = self.scalar
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

    def embed_hashes(self, source: str) -> set[str]:
        """The embed hashes of a source's stored chunks."""
        sql = "SELECT c.embed_hash FROM chunks c JOIN documents d ON d.pk = c.doc_pk WHERE d.source = ?"
        return {r[0] for r in self.db.execute(sql, (source,))}

    def sources(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT DISTINCT source FROM documents ORDER BY source")]

    def chunk_ids(self) -> np.ndarray:
        return np.array([r[0] for r in self.db.execute("SELECT id FROM chunks")], dtype=np.int64)

    def vector_batches(self, dim: int, size: int = 65_536) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Every chunk id and its vector, in id order, ``size`` at a time: a rebuild of a large collection
        never holds all its vectors as float32 at once (5M x 384 would be 7.7 GB)."""
        after = 0
        while True:
            rows = self.db.execute("SELECT id, vector FROM chunks WHERE id > ? ORDER BY id LIMIT ?", (after, size)).fetchall()
            if not rows:
                return
            yield np.array([r[0] for r in rows], dtype=np.int64), codec.decode_many([r[1] for r in rows], dim)
            after = rows[-1][0]

    def all_vectors(self, dim: int) -> tuple[np.ndarray, np.ndarray]:
        """Every chunk id and its vector, in id order."""
        batches = list(self.vector_batches(dim))
        if not batches:
            return np.zeros(0, dtype=np.int64), np.zeros((0, dim), dtype=np.float32)
        return np.concatenate([ids for ids, _ in batches]), np.vstack([vectors for _, vectors in batches])

    def sample_vectors(self, dim: int, n: int) -> np.ndarray:
        """``n`` stored vectors spread evenly over the chunk ids (all of them when there are fewer): the same
        sample for the same collection, so training on it is repeatable."""
        ids = np.sort(self.chunk_ids())
        if len(ids) > n:
            ids = ids[np.linspace(0, len(ids) - 1, num=n).astype(np.int64)]
        return self.vectors_for(ids, dim)

    def vectors_for(self, ids: np.ndarray, dim: int) -> np.ndarray:
        out = np.zeros((len(ids), dim), dtype=np.float32)
        for start in range(0, len(ids), _PARAMS_PER_QUERY):
            part = ids[start : start + _PARAMS_PER_QUERY].tolist()
            rows = dict(self.db.execute(f"SELECT id, vector FROM chunks WHERE id IN ({_marks(part)})", part).fetchall())
            out[start : start + len(part)] = codec.decode_many([rows[cid] for cid in part], dim)
        return out

    def vectors_by_embed_hash(self, hashes: Iterable[str], dim: int) -> dict[str, np.ndarray]:
        unique = list(set(hashes))
        found: dict[str, np.ndarray] = {}
        for start in range(0, len(unique), _PARAMS_PER_QUERY):
            part = unique[start : start + _PARAMS_PER_QUERY]
            for h, blob in self.db.execute(f"SELECT embed_hash, vector FROM chunks WHERE embed_hash IN ({_marks(part)})", part):
                found[h] = codec.decode(blob, dim)
        return found

    def bm25(self, match: str, k: int, filters: Filters | None = None, title_weight: float = 1.0) -> list[tuple[int, float]]:
        """(chunk id, BM25 score) pairs from the FTS5 table, best first. ``match`` is an FTS5 query."""
        where, params = filter_clause(filters)
        # "+rowid": without the plus SQLite hands the IN list to FTS5 as rowid constraints and runs the MATCH once
        # per allowed chunk (140 ms for a filter over 1,225 chunks, 3 ms with it; same results).
        restrict = f"AND +rowid IN (SELECT c.id FROM chunks c JOIN documents d ON d.pk = c.doc_pk WHERE {where})" if where else ""
        # FTS5's bm25() is lower-is-better; negate it so every retriever's scores are higher-is-better.
        rows = self.db.execute(
            f"""SELECT rowid, -bm25(chunks_fts, ?, 1.0) AS score FROM chunks_fts
                WHERE chunks_fts MATCH ? {restrict} ORDER BY score DESC LIMIT ?""",
            (title_weight, match, *params, k),
        ).fetchall()
        return [(int(r[0]), float(r[1])) for r in rows]

    def chunks_matching(self, match: str) -> int:
        """How many chunks an FTS5 query matches."""
        return int(self.db.execute("SELECT COUNT(*) FROM chunks_fts WHERE chunks_fts MATCH ?", (match,)).fetchone()[0])

    def chunk_ids_matching(self, filters: Filters) -> np.ndarray:
        where, params = filter_clause(filters)
        rows = self.db.execute(f"SELECT c.id FROM chunks c JOIN documents d ON d.pk = c.doc_pk WHERE {where}", params)
        return np.fromiter((r[0] for r in rows), dtype=np.int64)

    def tables(self, document_ids: Iterable[str]) -> dict[str, list[Table]]:
        """The tables stored for each of these documents (documents without any are left out)."""
        ids = list(dict.fromkeys(document_ids))
        if self._has_tables is None or self.writable:
            self._has_tables = _has_table(self.db, "document_tables")
        if not ids or not self._has_tables:
            return {}
        out: dict[str, list[Table]] = {}
        rows = self.db.execute(
            f"""SELECT d.id, t.data FROM document_tables t JOIN documents d ON d.pk = t.doc_pk
                WHERE d.id IN ({_marks(ids)}) ORDER BY d.id, t.ordinal""",
            ids,
        )
        for doc_id, data in rows:
            out.setdefault(doc_id, []).append(Table.from_dict(json.loads(data)))
        return out

    def hits(self, scored_ids: list[tuple[int, float]]) -> list[Hit]:
        """(chunk id, score) pairs as Hits, in their order; a chunk deleted since it was found is dropped."""
        if not scored_ids:
            return []
        ids = [cid for cid, _ in scored_ids]
        flags: dict[int, tuple[str, ...]] = {}
        if self._has_flags is None or self.writable:  # a reader asks once (a writer creates the table on open)
            self._has_flags = _has_table(self.db, "chunk_flags")
        if self._has_flags:
            flags = {
                r[0]: tuple(json.loads(r[1]))
                for r in self.db.execute(f"SELECT chunk_id, rules FROM chunk_flags WHERE chunk_id IN ({_marks(ids)})", ids)
            }
        rows = {
            r["id"]: r
            for r in self.db.execute(
                f"""SELECT c.id, c.text, c.start_char, c.end_char, d.id AS doc_id, d.title, d.source, d.metadata, d.added_at
                    FROM chunks c JOIN documents d ON d.pk = c.doc_pk WHERE c.id IN ({_marks(ids)})""",
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
                ingested_at=rows[cid]["added_at"],
            )
            for cid, score in scored_ids
            if cid in rows
        ]
