"""Files users upload through the API or the chat: checked (how many, names, types, sizes), stored under
ASSISTANT_INDEX_DIR/.uploads/COLLECTION/ (so a source path in an answer still points at a file), and
ingested, with a report of what was added and what was skipped and why. One implementation for both front
ends, so the same file gets the same verdict everywhere."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from assistant import compose
from core.collection import Collection, collection_path
from core.config import Settings
from core.embedding import Embedder
from core.errors import AssistantError, CollectionNotFound, IngestFailed, UserError
from core.storage import safe_filename
from ingest.loaders import SUPPORTED_SUFFIXES

log = logging.getLogger("assistant.uploads")
REPORT_COUNTS = ("documents_added", "documents_removed", "documents_unchanged", "chunks_added", "chunks_flagged")
Stored = tuple[str, Path, int]  # the name the user gave, where it was stored, its size in bytes


def upload_dir(settings: Settings, collection: str) -> Path:
    collection_path(settings.index_dir, collection)  # validates the name
    return Path(settings.index_dir) / ".uploads" / collection


def store_upload(source: BinaryIO, folder: Path, name: str | None, max_bytes: int) -> tuple[Path, int]:
    """Copy an uploaded file to ``folder`` under a safe name, atomically. UserError (the file is skipped
    with that reason) for an unusable name, an unsupported type, an empty file or one over ``max_bytes``."""
    safe = safe_filename(name)
    suffix = Path(safe).suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise UserError(f"unsupported file type {suffix or '(none)'!r}; supported: {', '.join(sorted(SUPPORTED_SUFFIXES))}")
    folder.mkdir(parents=True, exist_ok=True)
    size = 0
    with tempfile.NamedTemporaryFile(dir=folder, prefix=".part-", delete=False) as out:
        try:
            while chunk := source.read(1 << 20):
                size += len(chunk)
                if size > max_bytes:
                    raise UserError(f"larger than the upload limit of {max_bytes / 2**20:g} MB")
                out.write(chunk)
        except BaseException:
            out.close()
            Path(out.name).unlink(missing_ok=True)
            raise
    if size == 0:
        Path(out.name).unlink(missing_ok=True)
        raise UserError("the file is empty")
    target = folder / safe
    Path(out.name).replace(target)
    return target, size


def store_uploads(
    settings: Settings, collection: str, files: Sequence[tuple[str | None, BinaryIO]]
) -> tuple[list[Stored], list[dict[str, str]]]:
    """Store the files of one upload (``(name, stream)`` each) under their safe names. UserError when there
    are more files than ASSISTANT_API__MAX_UPLOAD_FILES; a file refused (unusable name, a name twice, an
    unsupported type, empty, over ASSISTANT_API__MAX_UPLOAD_MB) is skipped with its reason."""
    limits = settings.api
    if len(files) > limits.max_upload_files:
        raise UserError(f"{len(files)} files in one upload; the limit is {limits.max_upload_files}")
    folder = upload_dir(settings, collection)
    stored: list[Stored] = []
    skipped: list[dict[str, str]] = []
    for name, stream in files:
        shown = name or "(unnamed)"
        try:
            if any(path.name == safe_filename(name) for _, path, _ in stored):
                raise UserError("the same file name appears twice in this upload")
            path, size = store_upload(stream, folder, name, int(limits.max_upload_mb * 2**20))
            stored.append((shown, path, size))
        except UserError as exc:
            skipped.append({"file": shown, "reason": str(exc)})
    return stored, skipped


def upload_report(
    settings: Settings,
    collection: str,
    embedder: Embedder | None,
    stored: list[Stored],
    skipped: list[dict[str, str]],
    on_file: Callable[[int, str], None] | None = None,
) -> dict[str, Any]:
    """Ingest what was stored (``embedder``: the collection's) and report it with the files skipped on the
    way in; with nothing stored, the report of an empty upload and the collection's current totals."""
    if stored:
        assert embedder is not None, "stored files need the collection's embedder"
        report = ingest_uploads(settings, collection, embedder, stored, on_file)
    else:
        report = {
            "collection": collection,
            "files": [],
            "skipped": [],
            **dict.fromkeys(REPORT_COUNTS, 0),
            "totals": {},
            "collection_version": 0,
        }
        try:
            with compose.open_collection(settings, collection) as store:
                report["totals"], report["collection_version"] = store.counts(), store.generation
        except CollectionNotFound:
            pass
    report["skipped"] = skipped + report["skipped"]
    return report


def ingest_uploads(
    settings: Settings, collection: str, embedder: Embedder, stored: list[Stored], on_file: Callable[[int, str], None] | None = None
) -> dict[str, Any]:
    """Ingest stored uploads (``(shown name, path, size)``) into ``collection``, created if absent. With
    ``on_file`` each file is ingested on its own (a progress bar can move; the index is saved per file),
    otherwise all in one pass. Files whose text could not be read are reported as skipped and deleted."""
    report: dict[str, Any] = {"collection": collection, "files": [], "skipped": [], **dict.fromkeys(REPORT_COUNTS, 0)}
    try:
        ingestor = compose.ingestor(settings, collection_path(settings.index_dir, collection), embedder, name=collection, progress=False)
    except BaseException:  # busy (another process writes it), a full disk: nothing of this upload is in it
        for _, path, _ in stored:
            _forget_if_new(settings, collection, path)
        raise
    with ingestor.collection as store:
        store.operation = "upload"
        batches = [[entry] for entry in stored] if on_file else [stored]
        for i, batch in enumerate(batches):
            if on_file:
                on_file(i, batch[0][0])
            try:
                result = ingestor.ingest([path for _, path, _ in batch])
            except BaseException as exc:
                _forget_uncommitted(store, [path for _, path, _ in stored])
                if isinstance(exc, (AssistantError, OSError)) or not isinstance(exc, Exception):
                    raise  # says what happened already (a full disk, a lock), or is not ours to wrap (an interrupt)
                log.error("upload into %r failed", collection, exc_info=exc)
                raise IngestFailed(
                    f"the upload failed while ingesting ({type(exc).__name__}: {exc}); files whose documents were committed "
                    "before the failure are in the collection whole, the others were not stored; retry the upload"
                ) from exc
            for key in REPORT_COUNTS:
                report[key] += getattr(result, key)
            unreadable = {s.path: s.reason for s in result.skipped}
            notes = {s.path: s.reason for s in result.notes}
            for shown, path, size in batch:
                reason = unreadable.get(str(path)) or unreadable.get(str(path.resolve()))
                if reason:
                    report["skipped"].append({"file": shown, "reason": reason})
                    path.unlink(missing_ok=True)  # keep only files whose text is in the collection
                else:
                    note = notes.get(str(path)) or notes.get(str(path.resolve()))
                    report["files"].append({"file": shown, "size_bytes": size, "note": note})
        report["totals"], report["collection_version"] = store.counts(), store.generation
    return report


def _forget_uncommitted(store: Collection, paths: list[Path]) -> None:
    """After a failed ingest: delete the stored uploads of which the collection holds nothing (no document, no
    file record), so the upload folder keeps only files whose text is in the collection. A file whose documents
    were committed before the failure is kept (its record may lag one commit behind its last document), and so
    is one replaced by this upload that the collection held before: its old documents still point at it."""
    for path in paths:
        try:
            source = str(path.resolve())
            if store.file_sha256(source) is None and not store.document_ids(source):
                path.unlink(missing_ok=True)
        except Exception:  # never hide the failure being reported
            log.warning("could not tidy the stored upload %s", path, exc_info=True)


def _forget_if_new(settings: Settings, collection: str, path: Path) -> None:
    """``_forget_uncommitted`` for one stored upload when the collection could not be opened for writing."""
    try:
        with compose.open_collection(settings, collection) as store:
            _forget_uncommitted(store, [path])
    except CollectionNotFound:
        path.unlink(missing_ok=True)
    except Exception:
        log.warning("could not tidy the stored upload %s", path, exc_info=True)
