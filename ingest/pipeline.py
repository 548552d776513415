"""The ingest pipeline: paths in, a collection on disk updated, a report out.

Work is committed in batches of about ``commit_chunks`` chunks, one SQLite transaction each. A file's
record (its content hash) is written in the transaction that stores its last document, so:

- a file whose bytes did not change since the last ingest is skipped before it is even parsed;
- a killed ingest, run again, skips the files it finished, keeps the documents it stored of a file it
  had started, and embeds only what is missing: the final counts equal those of an uninterrupted run;
- an edited file replaces its documents: new ones are added, the ones it no longer holds are removed,
  and unchanged chunks reuse their stored vectors instead of being embedded again.

The work on one file (load, clean, documents, chunk, flag: ``read_documents`` and ``split_documents``,
with ``IngestParts``) is plain functions of the file and the parts, so ``ingest/distributed.py`` runs the
very same steps on Ray workers and hands the results, vectors included, to this module's commit path
(``Ingestor`` is the one writer either way).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterable, Iterator
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
from core.types import Chunk, Document, content_hash
from ingest.chunking import SPLITTER_NAME, Chunker, embedding_input
from ingest.cleaning import clean_text, clean_title
from ingest.loaders import LoadOptions, load_file

EMBED_SLICE = 256  # texts per embedder call while ingesting: the progress bar moves between calls


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str


@dataclass(frozen=True)
class WorkerStats:
    """What one Ray worker did (ingest/distributed.py): files read, chunks made and texts embedded, and the
    seconds it spent on them; an in-process ingest reports none."""

    worker: str
    files: int = 0
    chunks: int = 0
    embedded: int = 0
    busy_seconds: float = 0.0


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
    # Files ingested with a remark: pages of a PDF or scan that gave no text (blank, or unreadable by OCR).
    notes: list[Skipped] = field(default_factory=list)
    missing_paths: list[str] = field(default_factory=list)
    seconds: float = 0.0
    interrupted: bool = False
    workers: list[WorkerStats] = field(default_factory=list)  # Ray workers (--ray); empty: all in this process

    @property
    def chunks_per_second(self) -> float:
        return self.chunks_added / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict:
        out = asdict(self)
        out["seconds"] = round(self.seconds, 3)
        out["chunks_per_second"] = round(self.chunks_per_second, 2)
        for worker in out["workers"]:
            worker["busy_seconds"] = round(worker["busy_seconds"], 3)
        return out


@dataclass(frozen=True)
class IngestParts:
    """What turns a file into chunks ready to store: the embedder (its tokenizer sizes the chunks), the
    chunker, whether titles are embedded, the loaders' size limit and options (encoding, OCR, page and image
    limits), and the ingest rail's ``flagger(chunk_text) -> rule ids``. Built by ``assistant/compose.py:
    ingest_parts`` (in each Ray worker too)."""

    embedder: Embedder
    chunker: Chunker
    embed_title: bool = True
    max_bytes: int = 100 * 2**20
    load_options: LoadOptions = LoadOptions()
    flagger: Callable[[str], list[str]] | None = None


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


def failure_reason(exc: LoadError | OSError) -> str:
    """The reason a file is reported as skipped."""
    if isinstance(exc, LoadError):
        return exc.reason
    return f"cannot read: {exc.strerror or exc}"


def read_documents(path: Path, source: str, *, max_bytes: int, options: LoadOptions = LoadOptions()) -> dict[str, Document]:
    """A file's documents, cleaned, by id (identical documents inside one file are kept once); empty when no
    text is left after cleaning. Raises LoadError (unreadable as its format) or OSError."""
    loaded = load_file(path, max_bytes=max_bytes, options=options)
    documents: dict[str, Document] = {}
    for item in loaded:
        text = clean_text(item.text)
        if text:
            doc = Document.create(source, clean_title(item.title) or path.stem, text, item.metadata, item.tables)
            documents.setdefault(doc.id, doc)
    return documents


def page_note(documents: Iterable[Document]) -> str | None:
    """What to tell about a paged file whose pages did not all give text ("pages 4, 9 of 12 gave no text...")."""
    for doc in documents:
        empty = doc.metadata.get("empty_pages") or []
        if empty:
            listed = ", ".join(map(str, empty[:20])) + (f" and {len(empty) - 20} more" if len(empty) > 20 else "")
            noun = "page" if len(empty) == 1 else "pages"
            return f"{noun} {listed} of {doc.metadata.get('pages', '?')} gave no text (blank, or unreadable by OCR)"
    return None


def split_documents(
    documents: Iterable[Document], chunker: Chunker, flagger: Callable[[str], list[str]] | None
) -> Iterator[tuple[Document, list[Chunk]]]:
    """Each document with its chunks, flagged by the ingest rail; lazily, so a large file is committed as it
    is chunked."""
    for doc in documents:
        chunks = chunker.split(doc)
        if flagger is not None:
            chunks = [replace(c, flags=tuple(flagger(c.text))) for c in chunks]
        yield doc, chunks


def embed_longest_first(embedder: Embedder, todo: dict[str, str], on_slice: Callable[[int], None] | None = None) -> dict[str, np.ndarray]:
    """Vectors for ``todo`` (embed hash -> text), embedded longest first (batches of similar length waste
    little on padding), in slices of EMBED_SLICE texts; ``on_slice(n)`` after each."""
    order = sorted(todo, key=lambda h: len(todo[h]), reverse=True)
    out: dict[str, np.ndarray] = {}
    for start in range(0, len(order), EMBED_SLICE):
        part = order[start : start + EMBED_SLICE]
        out.update(zip(part, embedder.embed_passages([todo[h] for h in part])))
        if on_slice is not None:
            on_slice(len(part))
    return out


@dataclass
class _Pending:
    """Documents chunked but not yet committed, and files whose documents are all among them or stored;
    ``given``: vectors computed elsewhere (a Ray worker) for some of their embedding inputs, by embed hash."""

    documents: list[Document] = field(default_factory=list)
    chunks: list[list] = field(default_factory=list)
    files: list[FileRecord] = field(default_factory=list)
    n_chunks: int = 0
    given: dict[str, np.ndarray] = field(default_factory=dict)


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
        load_options: LoadOptions = LoadOptions(),
        progress: bool = True,
        flagger: Callable[[str], list[str]] | None = None,
    ):
        """``flagger(chunk_text) -> rule ids``: the ingest rail; flagged chunks are marked in the store."""
        if embedder.dim != collection.dim:
            raise ValueError(f"embedder dimension {embedder.dim} != collection dimension {collection.dim}")
        self.collection = collection
        collection.operation = "ingest"  # how the versions this ingest makes are listed (history.py)
        self.embedder = embedder
        self.chunker = chunker
        self.embed_title = embed_title
        self.commit_chunks = commit_chunks
        self.max_bytes = max_bytes
        self.load_options = load_options
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
        failed = False
        try:
            self._process(files, pending, report)
            self._commit(pending, report)
        except KeyboardInterrupt:
            # Everything committed so far stays; running the same command again finishes the job.
            report.interrupted = True
        except BaseException:
            failed = True
            raise
        finally:
            self._bar.close()
            try:
                self.collection.checkpoint()
            except Exception:
                # After a failure (a full disk) the checkpoint may well fail too: the first error is the one to
                # report; what was committed is in SQLite, and the next open brings the index up to date.
                if not failed:
                    raise
            report.seconds = time.perf_counter() - started
        return report

    def _process(self, files: list[Path], pending: _Pending, report: IngestReport) -> None:
        """Read, chunk and (at each commit) embed every file, in order, in this process."""
        for done, path in enumerate(files, 1):
            self._read_file(path, pending, report)
            self._bar.set_postfix(files=f"{done}/{len(files)}", refresh=False)

    def _scan(self, path: Path) -> tuple[str, os.stat_result, str] | Skipped | None:
        """(source, stat, sha256) of a file to read; None for a file unchanged since the last ingest (skipped
        before it is parsed); Skipped for one over the size limit or unreadable."""
        source = str(path.resolve())
        try:
            stat = path.stat()
            if stat.st_size > self.max_bytes:
                raise LoadError(
                    f"file is {stat.st_size / 2**20:.1f} MB, over the {self.max_bytes / 2**20:g} MB limit (ASSISTANT_INGEST__MAX_FILE_MB)"
                )
            sha = _sha256_file(path)
        except (LoadError, OSError) as exc:
            return Skipped(str(path), failure_reason(exc))
        if self.collection.file_sha256(source) == sha:
            return None
        return source, stat, sha

    def _file_options(self, path: Path) -> LoadOptions:
        """The load options for one file: pages read by OCR (seconds each) show on the progress bar as
        "scan.pdf: OCR page 3/300" until the file is done and the bar shows the file count again."""
        if not self.progress:
            return self.load_options

        def on_page(done: int, total: int) -> None:
            self._bar.set_postfix_str(f"{path.name}: OCR page {done}/{total}", refresh=True)

        return replace(self.load_options, on_page=on_page)

    def _read_file(self, path: Path, pending: _Pending, report: IngestReport) -> None:
        scanned = self._scan(path)
        if scanned is None:
            report.files_unchanged += 1
            return
        if isinstance(scanned, Skipped):
            report.skipped.append(scanned)
            return
        source, stat, sha = scanned
        try:
            documents = read_documents(path, source, max_bytes=self.max_bytes, options=self._file_options(path))
        except (LoadError, OSError) as exc:
            report.skipped.append(Skipped(str(path), failure_reason(exc)))
            return
        if not documents:
            report.skipped.append(Skipped(str(path), "no text after cleaning"))
            return
        report.files_read += 1
        if note := page_note(documents.values()):
            report.notes.append(Skipped(str(path), note))
        stored = self.collection.document_ids(source)
        report.documents_unchanged += len(stored & documents.keys())
        new = (doc for doc in documents.values() if doc.id not in stored)
        for doc, chunks in split_documents(new, self.chunker, self.flagger):
            self._add(doc, chunks, pending, report)
        # All of this file's documents are now stored or pending: its record goes in with the next commit.
        pending.files.append(FileRecord(source, sha, stat.st_size, stat.st_mtime, frozenset(documents)))

    def _add(
        self, doc: Document, chunks: list[Chunk], pending: _Pending, report: IngestReport, vectors: dict[str, np.ndarray] | None = None
    ) -> None:
        """Queue a document for the next commit (``vectors``: ones already computed for its inputs), and
        commit once enough chunks wait."""
        report.chunks_flagged += sum(bool(c.flags) for c in chunks)
        self._bar.total += len(chunks)
        if vectors:
            for chunk in chunks:
                h = content_hash(self.embedder.name, embedding_input(doc.title, chunk.text, self.embed_title))
                if h in vectors:
                    pending.given[h] = vectors[h]
        pending.documents.append(doc)
        pending.chunks.append(chunks)
        pending.n_chunks += len(chunks)
        if pending.n_chunks >= self.commit_chunks:
            self._commit(pending, report)

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
        vectors = self._embed(inputs, hashes, report, pending.given)
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
        pending.documents, pending.chunks, pending.files, pending.n_chunks, pending.given = [], [], [], 0, {}

    def _embed(self, inputs: list[str], hashes: list[str], report: IngestReport, given: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """Vectors for the inputs: stored ones re-used, ``given`` ones (computed by a worker) taken, duplicates
        embedded once, the rest embedded here by length. Counts as embedded what the collection did not hold."""
        known = self.collection.vectors_by_embed_hash(hashes)
        todo: dict[str, str] = {}
        fresh: dict[str, np.ndarray] = {}
        for text, h in zip(inputs, hashes):
            if h in known:
                continue
            if given and h in given:
                fresh[h] = given[h]
            else:
                todo.setdefault(h, text)
        if fresh:
            known.update(fresh)
            report.chunks_embedded += len(fresh)
            self._bar.update(len(fresh))

        def embedded(n: int) -> None:
            report.chunks_embedded += n
            self._bar.update(n)

        known.update(embed_longest_first(self.embedder, todo, embedded))
        out = np.zeros((len(inputs), self.embedder.dim), dtype=np.float32)
        for i, h in enumerate(hashes):
            out[i] = known[h]
        return out
