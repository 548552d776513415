"""``Collection``: the front door to one collection folder (``manifest.json``, ``docs.sqlite``,
``vectors.faiss``): open or create it, commit and delete, checkpoint, search, check.

Crash safety comes from one rule: SQLite is the source of truth (store.py). Documents, chunks, their
vectors and the FTS5 (BM25) rows are written in SQLite transactions, each of which bumps a ``generation``
counter. ``vectors.faiss`` (vectors.py) is a checkpoint of the vectors, written atomically (temp file +
rename) together with the manifest (manifest.py) that records which generation it holds. When a process
dies between a commit and the next checkpoint, the next open sees the generations differ and brings the
FAISS index up to date from the vectors in SQLite (adding missing ids, dropping deleted ones), so a killed
ingest always leaves a collection that opens, searches and passes ``check`` (check.py).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterable
from contextlib import closing
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from filelock import FileLock, Timeout

from core.collection import history, ivf
from core.collection.check import CheckReport, check
from core.collection.filters import Filters
from core.collection.manifest import (
    FORMAT_VERSION,
    MANIFEST,
    ChunkingInfo,
    EmbedderInfo,
    IndexInfo,
    Manifest,
    read_manifest,
    write_manifest,
)
from core.collection.store import DATABASE, Changes, DocumentBatch, FileRecord, Store, now
from core.collection.vectors import VECTORS, IndexParams, VectorIndex
from core.errors import CollectionBusy, CorruptCollection, UserError
from core.tables import Table
from core.types import Hit

LOCK = ".write.lock"
# Read-only copies of earlier versions (open_as_of), one folder each, the most recently used kept.
AS_OF = ".versions"
AS_OF_COPIES = 2
# How often a read-only handle asks the database whether another process has committed since it loaded.
# Asking on every search (one SQL read) cost ~10 % of a search under load; commits made by this process
# are seen at once (see _commits_here).
STALE_CHECK_INTERVAL_S = 0.25
_commits_here: dict[Path, int] = {}  # commits made through this process's writable handles, per collection folder
_commits_guard = threading.Lock()


def _file_identity(file: Path) -> tuple[int, int] | None:
    try:
        stat = file.stat()
    except FileNotFoundError:
        return None
    return stat.st_dev, stat.st_ino


@dataclass(frozen=True)
class ReindexResult:
    kind: str
    vectors: int
    nlist: int | None  # an IVF's lists
    trained_on: int | None  # an IVF's: the collection's size when its centroids were trained ...
    sample: int | None  # ... on this many of its vectors
    seconds: float


@dataclass(frozen=True)
class CommitResult:
    documents_added: int
    chunks_added: int
    documents_removed: int
    chunks_removed: int


class Collection:
    """Open with ``Collection.open`` or ``Collection.create``; use as a context manager."""

    def __init__(self, path: Path, manifest: Manifest, store: Store, params: IndexParams, lock: FileLock | None):
        self.path = path
        self.manifest = manifest
        self.store = store
        self.params = params
        self._lock = lock
        self.vectors = VectorIndex.empty("flat", manifest.embedder.dim, params)
        self.repaired: list[str] = []
        self._key = path.resolve()
        self._seen_here = _commits_here.get(self._key, 0)
        self._next_check = 0.0
        self._found_stale = False
        self._database_file = _file_identity(path / DATABASE)
        # A writer lists what it changed as one version when it closes (history.py); callers name the change.
        self.operation = "write"
        self._opened_at = store.generation if lock is not None else -1
        self.as_of: int | None = None  # set on a read-only copy of an earlier version (open_as_of)

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
    ) -> Collection:
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
        Store.create(staging)
        VectorIndex.empty("flat", embedder.dim, params).save(staging / VECTORS)
        stamp = now()
        write_manifest(
            staging,
            Manifest(
                format_version=FORMAT_VERSION,
                name=name or path.name,
                embedder=embedder,
                chunking=chunking,
                index=IndexInfo(kind="flat", generation=0, chunks=0),
                documents=0,
                files=0,
                created_at=stamp,
                updated_at=stamp,
            ),
        )
        if path.exists():  # an empty folder (checked above)
            path.rmdir()
        staging.rename(path)
        return cls.open(path, writable=True, params=params)

    @classmethod
    def open(cls, path: Path, *, writable: bool = False, params: IndexParams = IndexParams()) -> Collection:
        path = Path(path)
        manifest = read_manifest(path)
        lock = None
        if writable:
            lock = FileLock(str(path / LOCK))
            try:
                lock.acquire(timeout=0)
            except Timeout:
                raise CollectionBusy(f"collection {path.name!r} is being written by another process; wait for it to finish") from None
        try:
            store = Store(path, writable=writable)
        except BaseException as exc:
            if lock:
                lock.release()
            if isinstance(exc, sqlite3.DatabaseError):
                raise CorruptCollection(f"{path / DATABASE} is not a readable SQLite database: {exc}") from exc
            raise  # CollectionBusy (SQLite's lock held by another process), DiskFull
        collection = cls(path, manifest, store, params, lock)
        try:
            collection._load_index()  # a writer saves a repaired index: a full disk fails here
        except BaseException:
            # Never keep the write lock of a handle nobody holds: a server would refuse every later write.
            collection.store.close()
            if lock:
                lock.release()
            raise
        return collection

    @classmethod
    def open_as_of(cls, path: Path, version: int, *, params: IndexParams = IndexParams()) -> Collection:
        """The collection as it was at ``version``, read-only: the live collection when that is its version,
        else a copy of the database rolled back to it (the same ``rollback`` as the command, so the same
        chunk ids, vectors and BM25 rows) with its own index, built once in ``<path>/.versions/<version>``
        and reused (an earlier version never changes); the AS_OF_COPIES most recently used are kept.
        Raises history.VersionNotKept for a version that cannot be rebuilt."""
        path = Path(path)
        manifest = read_manifest(path)
        # The database alone answers which version is current and kept, and is what a copy is made of: the
        # live index is loaded only when the version asked for is the current one.
        with closing(cls.open_store(path)) as live:
            current = live.generation
            if version != current:
                history.check_kept(live.db, version, current, manifest.name)
                folder = path / AS_OF / str(version)
                if not (folder / MANIFEST).exists():
                    cls._build_as_of(live, manifest, params, version, folder)
        if version == current:
            return cls.open(path, params=params)
        os.utime(folder)  # most recently used
        for stale in sorted((path / AS_OF).iterdir(), key=lambda f: f.stat().st_mtime, reverse=True)[AS_OF_COPIES:]:
            if not stale.name.startswith("."):
                shutil.rmtree(stale, ignore_errors=True)
        copy = cls.open(folder, params=params)
        copy.as_of = version
        return copy

    @staticmethod
    def open_store(path: Path) -> Store:
        """The collection's SQLite store alone, read-only, for questions that need no vectors (which documents
        it holds now, its versions): no FAISS index is read. The caller closes it."""
        read_manifest(path)  # CollectionNotFound, in the usual words, for a folder that holds none
        try:
            return Store(Path(path), writable=False)
        except sqlite3.DatabaseError as exc:
            raise CorruptCollection(f"{Path(path) / DATABASE} is not a readable SQLite database: {exc}") from exc

    @classmethod
    def _build_as_of(cls, live: Store, manifest: Manifest, params: IndexParams, version: int, folder: Path) -> None:
        staging = folder.parent / f".{version}.{os.getpid()}.{threading.get_ident()}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        try:
            live.copy_to(staging / DATABASE)
            write_manifest(staging, manifest)  # no index file: opening it builds one from the copy
            with cls.open(staging, writable=True, params=replace(params, keep_versions=0)) as copy:
                copy.repaired.clear()
                copy.rollback(version)
            staging.rename(folder)
        except OSError:
            if not (folder / MANIFEST).exists():  # another process built it first: use theirs
                raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def close(self) -> None:
        try:
            if self.writable and self.store.generation != self._opened_at:
                self.record_version()
        finally:
            # Even when listing the version fails (a full disk): the connection and the write lock go, so the
            # process (a server) can write the collection again once the cause is gone.
            self.store.close()
            if self._lock is not None:
                self._lock.release()
                self._lock = None

    def __enter__(self) -> Collection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def db(self) -> sqlite3.Connection:
        """This thread's SQLite connection (store.py)."""
        return self.store.db

    @property
    def index(self):
        """The FAISS index itself (``vectors`` is its wrapper)."""
        return self.vectors.index

    @property
    def writable(self) -> bool:
        return self._lock is not None

    @property
    def dim(self) -> int:
        return self.manifest.embedder.dim

    @property
    def generation(self) -> int:
        return self.store.generation

    @property
    def index_kind(self) -> str:
        return self.vectors.kind

    @property
    def version(self) -> int:
        """The generation searches on this handle reflect: the one its index was loaded at for a read-only
        handle (its owner reopens it when stale), the live one for the writer, the one it was rebuilt as for
        a copy of an earlier version. Reads no SQL for a reader."""
        if self.as_of is not None:
            return self.as_of
        return self.generation if self.writable else self.loaded_generation

    @property
    def stale(self) -> bool:
        """A read-only handle whose index predates a commit made since: by this process, seen at once; by
        another, seen within STALE_CHECK_INTERVAL_S. Also one whose folder was swapped for a rebuilt one
        (`ingest --rebuild`): its connections still read the old, unlinked database, whose generation never
        moves again, so the database file's identity is compared too (one stat). A copy as of a version never
        changes; it is stale once its folder is gone (open_as_of keeps the AS_OF_COPIES most recently used, for
        every process reading the collection): a new thread could not open its database, and reopening builds
        the copy again."""
        if self.writable:
            return False
        if self.as_of is not None:
            return not (self.path / DATABASE).exists()
        if not self._found_stale:
            here, clock = _commits_here.get(self._key, 0), time.monotonic()
            if here != self._seen_here or clock >= self._next_check:
                self._seen_here, self._next_check = here, clock + STALE_CHECK_INTERVAL_S
                self._found_stale = self._replaced() or self.generation != self.loaded_generation
        return self._found_stale

    def _replaced(self) -> bool:
        now_there = _file_identity(self.path / DATABASE)
        # Missing: the swap is half done (the old folder moved aside, the new not yet in place); keep serving.
        return now_there is not None and now_there != self._database_file

    # ------------------------------------------------------------------ the FAISS checkpoint

    def _load_index(self) -> None:
        """Read the FAISS checkpoint and bring it up to the database's generation. A reader maps an IVF's
        lists from the file instead of reading them (vectors.py), unless it has vectors to add."""
        file = self.path / VECTORS
        # Read once: a commit landing while the index loads must leave this handle labelled with the older
        # generation (so it is found stale and reopened), never with the newer one without its vectors.
        generation = self.generation
        behind = self.manifest.index.generation != generation
        loaded = None
        try:
            loaded = VectorIndex.read(
                file,
                self.params,
                trained_on=self.manifest.index.trained_on,
                mapped=not self.writable and not behind and self.manifest.index.kind == "ivf",
            )
            if loaded.dim != self.dim:
                self.repaired.append(f"{VECTORS} had dimension {loaded.dim}, expected {self.dim}; rebuilt it")
                loaded = None
        except (RuntimeError, CorruptCollection) as exc:  # faiss raises RuntimeError for missing or unreadable files
            self.repaired.append(f"{VECTORS} was unreadable ({str(exc).splitlines()[0][:120]}); rebuilt it from the store")
        if loaded is None:
            self._rebuild_index()
        else:
            self.vectors = loaded
            if behind:
                self._sync_index()
        if self.repaired and self.writable:
            self.checkpoint()
        self.loaded_generation = generation

    def _sync_index(self) -> None:
        stored = self.store.chunk_ids()
        indexed = self.vectors.ids()
        missing = np.setdiff1d(stored, indexed, assume_unique=True)
        extra = np.setdiff1d(indexed, stored, assume_unique=True)
        if len(extra):
            self.vectors.remove(extra)
        if len(missing):
            self.vectors.add(missing, self.vectors_for(missing))
        if self.vectors.needs_rebuild:  # HNSW cannot remove: a reader, which never checkpoints, rebuilds now
            self._rebuild_index()
        self.repaired.append(
            f"{VECTORS} was behind the store (generation {self.manifest.index.generation} < {self.generation}): "
            f"added {len(missing)} vectors, removed {len(extra)}"
        )

    def _rebuild_index(self) -> None:
        """A fresh index of the kind the collection's size calls for, from the stored vectors (a batch at a
        time); an IVF is trained on a sample of them first."""
        n = self.counts()["chunks"]
        self.vectors = VectorIndex.build(
            self.dim, self.params, n, self.store.vector_batches(self.dim), lambda size: self.store.sample_vectors(self.dim, size)
        )

    def checkpoint(self) -> None:
        """Write the FAISS index and the manifest atomically, recording the generation they reflect."""
        self._require_writable()
        if self.vectors.needs_rebuild or self.params.kind_for(self.vectors.ntotal) != self.index_kind:
            self._rebuild_index()
        generation = self.generation
        self.vectors.save(self.path / VECTORS)
        counts = self.counts()
        self.manifest = self.manifest.model_copy(
            update={
                "index": IndexInfo(
                    kind=self.index_kind, generation=generation, chunks=self.vectors.ntotal, trained_on=self.vectors.trained_on
                ),
                "documents": counts["documents"],
                "files": counts["files"],
                "updated_at": now(),
            }
        )
        write_manifest(self.path, self.manifest)
        self.store.fold_wal()

    def reindex(self) -> ReindexResult:
        """Build the index again from the stored vectors with the current settings (an IVF's centroids
        trained again on the collection as it is now), and checkpoint it."""
        self._require_writable()
        started = time.perf_counter()
        self._rebuild_index()
        self.checkpoint()
        return ReindexResult(
            kind=self.index_kind,
            vectors=self.vectors.ntotal,
            nlist=self.vectors.nlist,
            trained_on=self.vectors.trained_on,
            sample=ivf.training_size(self.vectors.ntotal, self.vectors.nlist, self.params) if self.vectors.nlist else None,
            seconds=time.perf_counter() - started,
        )

    @property
    def retrain_advice(self) -> str | None:
        """For an IVF that holds far more vectors than it was trained on: the sentence recommending
        `assistant reindex`."""
        return ivf.retrain_advice(self.vectors.trained_on, self.vectors.ntotal, self.manifest.name)

    # ------------------------------------------------------------------ writing

    def _require_writable(self) -> None:
        if not self.writable:
            raise RuntimeError("collection opened read-only")

    def _mirror(self, changes: Changes) -> None:
        """The transaction is durable: count it for this process's readers, and mirror it in the in-memory
        index (the checkpoint writes that out)."""
        with _commits_guard:
            _commits_here[self._key] = _commits_here.get(self._key, 0) + 1
        if changes.removed_ids:
            self.vectors.remove(np.array(changes.removed_ids, dtype=np.int64))
        if changes.added_ids:
            self.vectors.add(np.array(changes.added_ids, dtype=np.int64), np.vstack(changes.added_vectors))

    def commit(self, batch: DocumentBatch, finished_files: list[FileRecord]) -> CommitResult:
        """Add documents with their chunks and vectors, then finalise the files whose documents are all in.

        One transaction: either everything in the call is stored, or nothing is.
        """
        self._require_writable()
        changes = self.store.commit(batch, finished_files)
        self._mirror(changes)
        return CommitResult(changes.documents_added, len(changes.added_ids), changes.documents_removed, len(changes.removed_ids))

    def delete_source(self, source: str) -> tuple[int, int]:
        """Remove every document of a source file (and its file record). Returns (documents, chunks) removed."""
        self._require_writable()
        changes = self.store.delete_source(source)
        self._mirror(changes)
        return changes.documents_removed, len(changes.removed_ids)

    def delete_document(self, document_id: str) -> tuple[int, int]:
        """Remove one document (its chunks, vectors and BM25 rows). The source file's record stays, so
        re-ingesting the unchanged file does not bring the document back. Returns (documents, chunks)."""
        self._require_writable()
        changes = self.store.delete_document(document_id)
        self._mirror(changes)
        return changes.documents_removed, len(changes.removed_ids)

    # ------------------------------------------------------------------ versions (history.py)

    def record_version(self, operation: str | None = None) -> history.Version | None:
        """List the collection as it is now as a version, made by ``operation`` (default: ``self.operation``),
        then prune the history to the versions kept (``IndexParams.keep_versions``). Called by ``close``
        for a writer that changed something; None when this generation is listed already."""
        self._require_writable()
        row = self.store.record_version(operation or self.operation)
        self._opened_at = self.store.generation
        if row is not None and self.params.keep_versions:
            self.store.prune(self.params.keep_versions)
        return row

    def rollback(self, version: int) -> CommitResult:
        """Make the collection what it was at ``version`` (documents, chunk ids, vectors, BM25 rows, file
        records), as a new version listed "rollback to N"; the versions in between stay in the history.
        Raises history.VersionNotKept when ``version`` cannot be rebuilt."""
        self._require_writable()
        changes = self.store.rollback(version, self.dim)
        self._mirror(changes)
        if self.index_kind != "ivf":
            # Built again in chunk id order, as the earlier version's index was, so that even passages with
            # equal scores come back in the same order. (An IVF keeps its trained lists; mirrored is enough.)
            self._rebuild_index()
        self.checkpoint()
        self.record_version(f"rollback to {version}")
        return CommitResult(changes.documents_added, len(changes.added_ids), changes.documents_removed, len(changes.removed_ids))

    def prune(self, keep: int) -> history.Pruned:
        """Keep the newest ``keep`` versions; drop the history none of them needs."""
        self._require_writable()
        pruned = self.store.prune(keep)
        self.store.vacuum()
        return pruned

    def versions(self) -> list[history.Version]:
        """The listed versions, newest first."""
        return history.versions(self.db)

    def oldest_version(self) -> int:
        """The oldest version that can still be restored or read (-1: the collection keeps no history)."""
        return history.oldest_kept(self.db)

    def document_versions(self, source: str) -> list[history.DocumentVersion]:
        """Every kept version of a source file's documents, newest first."""
        return history.document_versions(self.db, source)

    def live_document_ids(self, document_ids: Iterable[str]) -> set[str]:
        """Which of these documents the collection holds now (a cited one missing was changed or removed)."""
        return history.live_document_ids(self.db, list(dict.fromkeys(document_ids)))

    # ------------------------------------------------------------------ reading

    def counts(self) -> dict[str, int]:
        return self.store.counts()

    def file_sha256(self, path: str) -> str | None:
        return self.store.file_sha256(path)

    def document_ids(self, source: str) -> set[str]:
        return self.store.document_ids(source)

    def embed_hashes(self, source: str) -> set[str]:
        """The embed hashes of a source's stored chunks: their vectors can be re-used (``vectors_by_embed_hash``)."""
        return self.store.embed_hashes(source)

    def sources(self) -> list[str]:
        return self.store.sources()

    def vectors_for(self, ids: np.ndarray) -> np.ndarray:
        return self.store.vectors_for(ids, self.dim)

    def vectors_by_embed_hash(self, hashes: Iterable[str]) -> dict[str, np.ndarray]:
        """Vectors already computed for these embedding inputs (re-used instead of embedding again)."""
        return self.store.vectors_by_embed_hash(hashes, self.dim)

    def dense(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        """Dense top-k as (chunk id, cosine) pairs, best first (inner product of normalised vectors);
        ``allowed`` restricts the search to those chunk ids."""
        width = np.asarray(query).reshape(1, -1).shape[1]
        if width != self.dim:
            raise UserError(f"query vector has dimension {width}, collection {self.manifest.name!r} uses {self.dim}")
        return self.vectors.search(query, k, allowed)

    def bm25(self, match: str, k: int, filters: Filters | None = None, title_weight: float = 1.0) -> list[tuple[int, float]]:
        """(chunk id, BM25 score) pairs from the FTS5 table, best first. ``match`` is an FTS5 query."""
        return self.store.bm25(match, k, filters, title_weight)

    def chunks_matching(self, match: str) -> int:
        """How many chunks an FTS5 query matches (BM25's common-term check)."""
        return self.store.chunks_matching(match)

    def chunk_ids_matching(self, filters: Filters) -> np.ndarray:
        return self.store.chunk_ids_matching(filters)

    def tables(self, document_ids: Iterable[str]) -> dict[str, list[Table]]:
        """Document id -> its tables as cells (core/tables.py), for the documents that have any."""
        return self.store.tables(document_ids)

    def hits(self, scored_ids: list[tuple[int, float]]) -> list[Hit]:
        """Turn (chunk id, score) pairs into Hits, keeping their order."""
        return self.store.hits(scored_ids)

    def check(self) -> CheckReport:
        """Verify that the manifest, the store, the FTS table and the FAISS index agree."""
        return check(self)
