"""Versions of a collection: what it contained at any generation since its history began, without a copy
per version.

A collection's version is its ``generation`` (store.py), the counter every write transaction bumps, and the
number every answer and search reports as ``collection_version``. History keeps the past in the same
database: a row that a write removes or replaces (a document with its chunks, vectors, tables and flags; a
file record) is moved to an ``*_archive`` table stamped with the generation that removed it, and every
live document and file record carries the generation that added it. So the collection as of version ``G`` is

    live rows added at or before G  +  archived rows added at or before G and removed after G

and a collection that did not change costs nothing (unchanged rows are shared by every version; a
``versions`` row per write is the only addition). ``versions`` lists one row per write operation (an
ingest run, an upload, a delete, a rollback): the points a user picks from ``assistant collections
--history``. Any generation from the oldest kept version on can be restored (``rollback``) or read
(``Collection.open_as_of``), including the ones answers reported between two listed versions.

Pruning (``prune``) keeps the newest N versions and drops archived rows no kept version can see.
Chunk and document ids are SQLite AUTOINCREMENT rowids, never reused, so a restored row takes back its own
ids: a rollback gives back the same chunk ids, vectors and FTS rows, hence the same search results.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from core.errors import VersionNotKept

# The versions table and the added_gen columns come with every collection; the archive tables only with the
# first write that removes something, so that a collection that never changed pays nothing for its history
# (eight empty tables and indexes would be 45 KB, 1.5 % of the 3 MB MedQuAD sample).
SCHEMA = """
CREATE TABLE IF NOT EXISTS versions (
    version INTEGER PRIMARY KEY,            -- the generation the write operation left the collection at
    created_at TEXT NOT NULL,
    operation TEXT NOT NULL,                -- what the write was: "ingest", "upload", "delete", "rollback to 12"...
    documents INTEGER NOT NULL,             -- counts at that version
    chunks INTEGER NOT NULL,
    files INTEGER NOT NULL,
    added INTEGER NOT NULL,                 -- documents added and removed since the version before it
    removed INTEGER NOT NULL
);
"""
ARCHIVE_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents_archive (
    pk INTEGER NOT NULL,
    id TEXT NOT NULL,
    source TEXT NOT NULL,
    title TEXT NOT NULL,
    text TEXT NOT NULL,
    metadata TEXT NOT NULL,
    added_at TEXT NOT NULL,
    added_gen INTEGER NOT NULL,
    removed_gen INTEGER NOT NULL,
    removed_at TEXT NOT NULL,
    tables TEXT NOT NULL,                   -- JSON list of Table.to_dict(), in order
    PRIMARY KEY (pk, removed_gen)
);
CREATE INDEX IF NOT EXISTS documents_archive_by_removed ON documents_archive (removed_gen);
CREATE INDEX IF NOT EXISTS documents_archive_by_source ON documents_archive (source);
CREATE TABLE IF NOT EXISTS chunks_archive (
    id INTEGER NOT NULL,
    doc_pk INTEGER NOT NULL,
    ordinal INTEGER NOT NULL,
    start_char INTEGER NOT NULL,
    end_char INTEGER NOT NULL,
    text TEXT NOT NULL,
    n_tokens INTEGER NOT NULL,
    embed_hash TEXT NOT NULL,
    vector BLOB NOT NULL,
    flags TEXT,                             -- JSON list of rule ids, as chunk_flags.rules
    removed_gen INTEGER NOT NULL,
    PRIMARY KEY (id, removed_gen)
);
CREATE INDEX IF NOT EXISTS chunks_archive_by_doc ON chunks_archive (doc_pk, removed_gen);
CREATE TABLE IF NOT EXISTS files_archive (
    path TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime REAL NOT NULL,
    documents INTEGER NOT NULL,
    ingested_at TEXT NOT NULL,
    added_gen INTEGER NOT NULL,
    removed_gen INTEGER NOT NULL,
    PRIMARY KEY (path, removed_gen)
);
"""


@dataclass(frozen=True)
class Version:
    version: int
    created_at: str
    operation: str
    documents: int
    chunks: int
    files: int
    added: int
    removed: int

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class DocumentVersion:
    """One version of a source file's document: its content hash, when it was ingested, the collection
    versions it was part of (``removed`` None: it still is)."""

    document_id: str
    source: str
    title: str
    ingested_at: str
    added: int
    removed: int | None
    removed_at: str | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _columns(db: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in db.execute(f"PRAGMA table_info({table})")}


def has_history(db: sqlite3.Connection) -> bool:
    """Whether the collection records history (a collection written before versions existed does once it is
    next opened for writing)."""
    return "added_gen" in _columns(db, "documents")


def migrate(db: sqlite3.Connection) -> None:
    """Create the history tables and columns where missing. History starts at the generation the collection
    is at when this first runs: earlier versions cannot be rebuilt (nothing removed before was kept)."""
    db.executescript(SCHEMA)
    for table in ("documents", "files"):
        if "added_gen" not in _columns(db, table):
            db.execute(f"ALTER TABLE {table} ADD COLUMN added_gen INTEGER NOT NULL DEFAULT 0")
    db.execute("INSERT OR IGNORE INTO meta (key, value) SELECT 'history_since', value FROM meta WHERE key = 'generation'")


def _marks(values: list[Any]) -> str:
    return ",".join("?" * len(values))


def _archived(db: sqlite3.Connection) -> bool:
    """Whether anything was ever archived (the archive tables exist)."""
    return db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'documents_archive'").fetchone() is not None


def _archive_tables(db: sqlite3.Connection) -> None:
    """Create the archive tables inside the current transaction (executescript would commit it)."""
    for statement in ARCHIVE_SCHEMA.split(";"):
        if statement.strip():
            db.execute(statement)


# ---------------------------------------------------------------------- inside a write transaction


def archive_documents(db: sqlite3.Connection, doc_pks: list[int], generation: int, stamp: str) -> None:
    """Copy documents (with their chunks, vectors, tables and flags) to the archive before they are deleted
    by the write that makes ``generation``."""
    if doc_pks:
        _archive_tables(db)
    for start in range(0, len(doc_pks), 900):
        part = doc_pks[start : start + 900]
        db.execute(
            f"""INSERT INTO documents_archive (pk, id, source, title, text, metadata, added_at, added_gen, removed_gen,
                                               removed_at, tables)
                SELECT d.pk, d.id, d.source, d.title, d.text, d.metadata, d.added_at, d.added_gen, ?, ?,
                       COALESCE((SELECT json_group_array(json(t.data)) FROM
                                 (SELECT data FROM document_tables WHERE doc_pk = d.pk ORDER BY ordinal) t), '[]')
                FROM documents d WHERE d.pk IN ({_marks(part)})""",
            (generation, stamp, *part),
        )
        db.execute(
            f"""INSERT INTO chunks_archive (id, doc_pk, ordinal, start_char, end_char, text, n_tokens, embed_hash, vector,
                                            flags, removed_gen)
                SELECT c.id, c.doc_pk, c.ordinal, c.start_char, c.end_char, c.text, c.n_tokens, c.embed_hash, c.vector,
                       (SELECT rules FROM chunk_flags WHERE chunk_id = c.id), ?
                FROM chunks c WHERE c.doc_pk IN ({_marks(part)})""",
            (generation, *part),
        )


def archive_file(db: sqlite3.Connection, path: str, generation: int) -> None:
    """Keep a file record that the write making ``generation`` replaces or removes."""
    if not db.execute("SELECT 1 FROM files WHERE path = ?", (path,)).fetchone():
        return
    _archive_tables(db)
    db.execute(
        # OR IGNORE: a path finalised twice in one write keeps the record it had before the write.
        """INSERT OR IGNORE INTO files_archive (path, sha256, size, mtime, documents, ingested_at, added_gen, removed_gen)
           SELECT path, sha256, size, mtime, documents, ingested_at, added_gen, ? FROM files WHERE path = ?""",
        (generation, path),
    )


@dataclass(frozen=True)
class Restored:
    documents: int
    chunk_ids: list[int]
    blobs: list[bytes]  # the restored chunks' stored vectors, in chunk_ids order


def newer_documents(db: sqlite3.Connection, target: int) -> list[int]:
    """The live documents added after version ``target``."""
    return [r[0] for r in db.execute("SELECT pk FROM documents WHERE added_gen > ? ORDER BY pk", (target,))]


def restore_documents(db: sqlite3.Connection, target: int, generation: int) -> Restored:
    """Bring back, as live rows with their own ids, the archived documents the collection held at version
    ``target`` (call after the documents added since are archived and deleted)."""
    chunk_ids: list[int] = []
    blobs: list[bytes] = []
    if not _archived(db):
        return Restored(0, chunk_ids, blobs)
    rows = db.execute("SELECT * FROM documents_archive WHERE added_gen <= ? AND removed_gen > ? ORDER BY pk", (target, target)).fetchall()
    for doc in rows:
        db.execute(
            "INSERT INTO documents (pk, id, source, title, text, metadata, added_at, added_gen) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (doc["pk"], doc["id"], doc["source"], doc["title"], doc["text"], doc["metadata"], doc["added_at"], generation),
        )
        db.executemany(
            "INSERT INTO document_tables (doc_pk, ordinal, data) VALUES (?, ?, ?)",
            [(doc["pk"], i, json.dumps(t, ensure_ascii=False)) for i, t in enumerate(json.loads(doc["tables"]))],
        )
        chunks = db.execute(
            "SELECT * FROM chunks_archive WHERE doc_pk = ? AND removed_gen = ? ORDER BY id", (doc["pk"], doc["removed_gen"])
        ).fetchall()
        for c in chunks:
            db.execute(
                """INSERT INTO chunks (id, doc_pk, ordinal, start_char, end_char, text, n_tokens, embed_hash, vector)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    c["id"],
                    c["doc_pk"],
                    c["ordinal"],
                    c["start_char"],
                    c["end_char"],
                    c["text"],
                    c["n_tokens"],
                    c["embed_hash"],
                    c["vector"],
                ),
            )
            db.execute("INSERT INTO chunks_fts (rowid, title, text) VALUES (?, ?, ?)", (c["id"], doc["title"], c["text"]))
            if c["flags"] is not None:
                db.execute("INSERT INTO chunk_flags (chunk_id, rules) VALUES (?, ?)", (c["id"], c["flags"]))
            chunk_ids.append(c["id"])
            blobs.append(c["vector"])
    return Restored(documents=len(rows), chunk_ids=chunk_ids, blobs=blobs)


def restore_files(db: sqlite3.Connection, target: int, generation: int) -> None:
    """Make the file records those of version ``target`` (so the next ingest sees what changed since)."""
    for (path,) in db.execute("SELECT path FROM files WHERE added_gen > ?", (target,)).fetchall():
        archive_file(db, path, generation)
        db.execute("DELETE FROM files WHERE path = ?", (path,))
    if not _archived(db):
        return
    db.execute(
        """INSERT INTO files (path, sha256, size, mtime, documents, ingested_at, added_gen)
           SELECT path, sha256, size, mtime, documents, ingested_at, ? FROM files_archive
           WHERE added_gen <= ? AND removed_gen > ?""",
        (generation, target, target),
    )


# ---------------------------------------------------------------------- versions


def history_since(db: sqlite3.Connection) -> int:
    row = db.execute("SELECT value FROM meta WHERE key = 'history_since'").fetchone()
    return int(row[0]) if row else -1


def oldest_kept(db: sqlite3.Connection) -> int:
    """The oldest version that can still be rebuilt."""
    since = history_since(db)
    if since < 0:
        return -1
    row = db.execute("SELECT value FROM meta WHERE key = 'pruned_before'").fetchone()
    return max(since, int(row[0])) if row else since


def check_kept(db: sqlite3.Connection, version: int, current: int, name: str) -> None:
    """Raise VersionNotKept with the reason unless ``version`` can be rebuilt."""
    oldest = oldest_kept(db)
    if version > current:
        raise VersionNotKept(f"collection {name!r} has no version {version} (it is at version {current})")
    if oldest < 0 or version < oldest:
        kept = f"versions {oldest} to {current} are kept" if oldest >= 0 else "it keeps no history yet"
        raise VersionNotKept(f"version {version} of collection {name!r} is no longer kept ({kept})")


def record_version(db: sqlite3.Connection, version: int, operation: str, stamp: str) -> Version | None:
    """Add the row listing ``version`` (the generation a write operation left the collection at); None when
    it is listed already."""
    if db.execute("SELECT 1 FROM versions WHERE version = ?", (version,)).fetchone():
        return None
    previous = db.execute("SELECT MAX(version) FROM versions WHERE version < ?", (version,)).fetchone()[0]
    since = previous if previous is not None else max(history_since(db), 0)
    one = lambda sql, *args: db.execute(sql, args).fetchone()[0]  # noqa: E731
    archived = _archived(db)
    added = one("SELECT COUNT(*) FROM documents WHERE added_gen > ?", since)
    added += one("SELECT COUNT(*) FROM documents_archive WHERE added_gen > ?", since) if archived else 0
    row = Version(
        version=version,
        created_at=stamp,
        operation=operation,
        documents=one("SELECT COUNT(*) FROM documents"),
        chunks=one("SELECT COUNT(*) FROM chunks"),
        files=one("SELECT COUNT(*) FROM files"),
        added=added,
        removed=one("SELECT COUNT(*) FROM documents_archive WHERE removed_gen > ?", since) if archived else 0,
    )
    db.execute("INSERT INTO versions VALUES (?, ?, ?, ?, ?, ?, ?, ?)", tuple(row.__dict__.values()))
    return row


def versions(db: sqlite3.Connection) -> list[Version]:
    """The listed versions, newest first."""
    return [Version(*row) for row in db.execute("SELECT * FROM versions ORDER BY version DESC")]


def document_versions(db: sqlite3.Connection, source: str) -> list[DocumentVersion]:
    """Every kept version of a source's documents, newest first."""
    live = db.execute("SELECT id, source, title, added_at, added_gen FROM documents WHERE source = ?", (source,)).fetchall()
    gone = (
        db.execute(
            "SELECT id, source, title, added_at, added_gen, removed_gen, removed_at FROM documents_archive WHERE source = ?", (source,)
        ).fetchall()
        if _archived(db)
        else []
    )
    out = [DocumentVersion(r[0], r[1], r[2], r[3], r[4], None, None) for r in live]
    out += [DocumentVersion(*r) for r in gone]
    return sorted(out, key=lambda v: (v.added, v.removed if v.removed is not None else 1 << 62), reverse=True)


@dataclass(frozen=True)
class Pruned:
    versions: int
    documents: int
    chunks: int
    oldest_kept: int


def prune(db: sqlite3.Connection, keep: int) -> Pruned:
    """Keep the newest ``keep`` listed versions (at least one); drop the archived rows none of them sees."""
    listed = [v.version for v in versions(db)]
    kept = listed[: max(keep, 1)]
    if len(kept) == len(listed):
        return Pruned(0, 0, 0, oldest_kept(db))
    horizon = kept[-1]
    documents = chunks = 0
    if _archived(db):
        one = lambda sql: db.execute(sql, (horizon,)).fetchone()[0]  # noqa: E731
        documents = one("SELECT COUNT(*) FROM documents_archive WHERE removed_gen <= ?")
        chunks = one("SELECT COUNT(*) FROM chunks_archive WHERE removed_gen <= ?")
        for table in ("documents_archive", "chunks_archive", "files_archive"):
            db.execute(f"DELETE FROM {table} WHERE removed_gen <= ?", (horizon,))
    db.execute("DELETE FROM versions WHERE version < ?", (horizon,))
    db.execute(
        "INSERT INTO meta (key, value) VALUES ('pruned_before', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value", (str(horizon),)
    )
    return Pruned(len(listed) - len(kept), documents, chunks, horizon)


def live_document_ids(db: sqlite3.Connection, document_ids: list[str]) -> set[str]:
    """Which of these documents the collection holds now (the others were replaced or removed since)."""
    if not document_ids:
        return set()
    return {r[0] for r in db.execute(f"SELECT id FROM documents WHERE id IN ({_marks(document_ids)})", document_ids)}
