"""The ingest pipeline: paths in, a collection on disk updated, a report out.

Work is committed in batches of about ``commit_chunks`` chunks, one SQLite transaction each. A file's
record (its content hash) is written in the transaction that stores its last document, so:

- a file whose bytes did not change since the last ingest is skipped before it is even parsed;
- a killed ingest, run again, skips the files it finished, keeps the documents it stored of a file it
  had started, and embeds only what is missing: the final counts equal those of an uninterrupted run;
- an edited file replaces its documents: new ones are added, the ones it no longer holds are removed,
  and unchanged chunks reuse their stored vectors instead of being embedded again.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from core.collection import (
    MANIFEST,
    ChunkingInfo,
    Collection,
    DocumentBatch,
    EmbedderInfo,
    FileRecord,
    IndexParams,
    ensure_compatible,
)
from core.embedding import Embedder
from core.errors import LoadError
from core.types import Document, content_hash
from ingest.chunking import SPLITTER_NAME, Chunker, embedding_input
from ingest.cleaning import clean_text, clean_title
from ingest.loaders import load_file


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str


@dataclass
class IngestReport:
    collection: str
    documents_added: int = 0
    documents_removed: int = 0
    documents_unchanged: int = 0
    chunks_added: int = 0
    chunks_removed: int = 0
    chunks_embedded: int = 0  # newly embedded; the rest of chunks_added reused stored vectors
    chunks_flagged: int = 0  # chunks the ingest rail marked (text addressed to the model)
    files_read: int = 0
    files_unchanged: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    missing_paths: list[str] = field(default_factory=list)
    seconds: float = 0.0
    interrupted: bool = False

    @property
    def chunks_per_second(self) -> float:
        return self.chunks_added / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict:
        out = asdict(self)
        out["seconds"] = round(self.seconds, 3)
        out["chunks_per_second"] = round(self.chunks_per_second, 2)
        return out


def chunking_info(chunk_tokens: int, overlap_tokens: int, embed_title: bool) -> ChunkingInfo:
    return ChunkingInfo(splitter=SPLITTER_NAME, chunk_tokens=chunk_tokens, overlap_tokens=overlap_tokens, embed_title=embed_title)


def open_for_ingest(path: Path, embedder: Embedder, chunking: ChunkingInfo, params: IndexParams, name: str | None = None) -> Collection:
    """Open a collection for writing, creating it if absent; refuse one built with other settings."""
    info = EmbedderInfo(name=embedder.name, dim=embedder.dim)
    if not (path / MANIFEST).exists():
        return Collection.create(path, embedder=info, chunking=chunking, params=params, name=name)
    collection = Collection.open(path, writable=True, params=params)
    try:
        ensure_compatible(collection.manifest, info, chunking)
    except BaseException:
        collection.close()
        raise
    return collection


def expand_paths(paths: Iterable[Path]) -> tuple[list[Path], list[str]]:
    """Files to read (folders walked recursively, hidden entries skipped, sorted) and paths that do not exist."""
    files: list[Path] = []
    missing: list[str] = []
    seen: set[Path] = set()
    for path in paths:
        path = Path(path)
        if path.is_dir():
            found = []
            for root, dirs, names in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                found += [Path(root) / n for n in names if not n.startswith(".")]
            candidates = sorted(found)
        elif path.exists():
            candidates = [path]
        else:
            missing.append(str(path))
            continue
        for file in candidates:
            key = file.resolve()
            if key not in seen:
                seen.add(key)
                files.append(file)
    return files, missing


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class _Pending:
    """Documents chunked but not yet committed, and files whose documents are all among them or stored."""

    documents: list[Document] = field(default_factory=list)
    chunks: list[list] = field(default_factory=list)
    files: list[FileRecord] = field(default_factory=list)
    n_chunks: int = 0


class Ingestor:
    def __init__(
        self,
        collection: Collection,
        embedder: Embedder,
        *,
        chunker: Chunker,
        embed_title: bool = True,
        commit_chunks: int = 1024,
        max_bytes: int = 100 * 2**20,
        encoding_fallback: str | None = None,
        progress: bool = True,
        flagger: Callable[[str], list[str]] | None = None,
    ):
        """``flagger(chunk_text) -> rule ids``: the ingest rail; flagged chunks are marked in the store."""
        if embedder.dim != collection.dim:
            raise ValueError(f"embedder dimension {embedder.dim} != collection dimension {collection.dim}")
        self.collection = collection
        self.embedder = embedder
        self.chunker = chunker
        self.embed_title = embed_title
        self.commit_chunks = commit_chunks
        self.max_bytes = max_bytes
        self.encoding_fallback = encoding_fallback
        self.progress = progress
        self.flagger = flagger
        self._bar = tqdm(disable=True)

    def ingest(self, paths: Iterable[Path]) -> IngestReport:
        started = time.perf_counter()
        report = IngestReport(collection=self.collection.manifest.name)
        files, missing = expand_paths(paths)
        report.missing_paths = missing
        report.skipped += [Skipped(p, "no such file or directory") for p in missing]
        pending = _Pending()
        # Embedding is the slow part, so the bar counts chunks stored; its total grows as files are read.
        self._bar = tqdm(total=0, unit="chunk", desc=f"ingest {report.collection}", disable=not self.progress, leave=False)
        bar = self._bar
        try:
            for done, path in enumerate(files, 1):
                self._read_file(path, pending, report)
                bar.set_postfix(files=f"{done}/{len(files)}", refresh=False)
            self._commit(pending, report)
        except KeyboardInterrupt:
            # Everything committed so far stays; running the same command again finishes the job.
            report.interrupted = True
        finally:
            bar.close()
            self.collection.checkpoint()
            report.seconds = time.perf_counter() - started
        return report

    def _read_file(self, path: Path, pending: _Pending, report: IngestReport) -> None:
        source = str(path.resolve())
        try:
            stat = path.stat()
            if stat.st_size > self.max_bytes:
                raise LoadError(
                    f"file is {stat.st_size / 2**20:.1f} MB, over the {self.max_bytes / 2**20:g} MB limit (ASSISTANT_INGEST__MAX_FILE_MB)"
                )
            sha = _sha256_file(path)
            if self.collection.file_sha256(source) == sha:
                report.files_unchanged += 1
                return
            loaded = load_file(path, max_bytes=self.max_bytes, encoding_fallback=self.encoding_fallback)
        except LoadError as exc:
            report.skipped.append(Skipped(str(path), exc.reason))
            return
        except OSError as exc:
            report.skipped.append(Skipped(str(path), f"cannot read: {exc.strerror or exc}"))
            return
        documents: dict[str, Document] = {}
        for item in loaded:
            text = clean_text(item.text)
            if text:
                doc = Document.create(source, clean_title(item.title) or path.stem, text, item.metadata, item.tables)
                documents.setdefault(doc.id, doc)  # identical documents inside one file are stored once
        if not documents:
            report.skipped.append(Skipped(str(path), "no text after cleaning"))
            return
        report.files_read += 1
        stored = self.collection.document_ids(source)
        report.documents_unchanged += len(stored & documents.keys())
        for doc in documents.values():
            if doc.id in stored:
                continue
            chunks = self.chunker.split(doc)
            if self.flagger is not None:
                chunks = [replace(c, flags=tuple(self.flagger(c.text))) for c in chunks]
                report.chunks_flagged += sum(bool(c.flags) for c in chunks)
            self._bar.total += len(chunks)
            pending.documents.append(doc)
            pending.chunks.append(chunks)
            pending.n_chunks += len(chunks)
            if pending.n_chunks >= self.commit_chunks:
                self._commit(pending, report)
        # All of this file's documents are now stored or pending: its record goes in with the next commit.
        pending.files.append(FileRecord(source, sha, stat.st_size, stat.st_mtime, frozenset(documents)))

    def _commit(self, pending: _Pending, report: IngestReport) -> None:
        if not pending.documents and not pending.files:
            return
        inputs = [
            embedding_input(doc.title, chunk.text, self.embed_title)
            for doc, chunks in zip(pending.documents, pending.chunks)
            for chunk in chunks
        ]
        hashes = [content_hash(self.embedder.name, text) for text in inputs]
        embedded_before = report.chunks_embedded
        vectors = self._embed(inputs, hashes, report)
        embedded_now = report.chunks_embedded - embedded_before
        batch = DocumentBatch()
        offset = 0
        for doc, chunks in zip(pending.documents, pending.chunks):
            n = len(chunks)
            batch.documents.append(doc)
            batch.chunks.append(chunks)
            batch.embed_hashes.append(hashes[offset : offset + n])
            batch.vectors.append(vectors[offset : offset + n])
            offset += n
        result = self.collection.commit(batch, pending.files)
        self._bar.update(len(inputs) - embedded_now)  # chunks whose vectors were re-used
        report.documents_added += result.documents_added
        report.chunks_added += result.chunks_added
        report.documents_removed += result.documents_removed
        report.chunks_removed += result.chunks_removed
        pending.documents, pending.chunks, pending.files, pending.n_chunks = [], [], [], 0

    def _embed(self, inputs: list[str], hashes: list[str], report: IngestReport) -> np.ndarray:
        """Vectors for the inputs: stored ones re-used, duplicates embedded once, the rest embedded by length."""
        known = self.collection.vectors_by_embed_hash(hashes)
        todo: dict[str, str] = {}
        for text, h in zip(inputs, hashes):
            if h not in known:
                todo.setdefault(h, text)
        # Longest first: batches of similar length waste little on padding.
        order = sorted(todo, key=lambda h: len(todo[h]), reverse=True)
        for start in range(0, len(order), 256):  # slices, so the progress bar moves while embedding
            part = order[start : start + 256]
            known.update(zip(part, self.embedder.embed_passages([todo[h] for h in part])))
            report.chunks_embedded += len(part)
            self._bar.update(len(part))
        out = np.zeros((len(inputs), self.embedder.dim), dtype=np.float32)
        for i, h in enumerate(hashes):
            out[i] = known[h]
        return out
