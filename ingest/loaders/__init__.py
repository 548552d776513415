"""File-format loaders: a path in, ``LoadedDocument``s out, or a ``LoadError`` with a reason to show.

``load_file`` owns what every format shares (existence, the size limit, empty files, reading the bytes once)
and dispatches on the suffix; each module turns bytes of one format family into documents. Loaders return
raw text: whitespace and Unicode clean-up happen later in the ingest pipeline.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

from core.errors import LoadError
from core.types import LoadedDocument

from . import docx, html, image, jsonish, pdf, tabular, text, xml
from .options import LoadOptions

Loader = Callable[..., list[LoadedDocument]]

_LOADERS: dict[str, Loader] = {
    ".txt": text.load,
    ".md": text.load,
    ".markdown": text.load,
    ".html": html.load,
    ".htm": html.load,
    ".pdf": pdf.load,
    ".docx": docx.load,
    ".csv": tabular.load,
    ".json": jsonish.load_json,
    ".jsonl": jsonish.load_jsonl,
    ".xml": xml.load,
    ".png": image.load,
    ".jpg": image.load,
    ".jpeg": image.load,
    ".tif": image.load,
    ".tiff": image.load,
}

SUPPORTED_SUFFIXES: frozenset[str] = frozenset(_LOADERS)

DEFAULT_MAX_BYTES = 100 * 2**20
_SIZE_SETTING = "ASSISTANT_INGEST__MAX_FILE_MB"


def _mb(n_bytes: float) -> str:
    return f"{n_bytes / 2**20:.1f}"


def _too_big(size: int, max_bytes: int) -> LoadError:
    limit = f"{max_bytes / 2**20:.2f}".rstrip("0").rstrip(".")
    return LoadError(f"file is {_mb(size)} MB, over the {limit} MB limit ({_SIZE_SETTING})")


def _stat(path: Path) -> os.stat_result:
    try:
        info = path.stat()
    except FileNotFoundError:
        raise LoadError("file does not exist") from None
    except OSError as err:
        raise LoadError(f"cannot read file: {err.strerror or err}") from None
    if stat.S_ISDIR(info.st_mode):
        raise LoadError("is a directory, not a file")
    if not stat.S_ISREG(info.st_mode):
        raise LoadError("not a regular file")
    return info


def _read(path: Path, size: int, max_bytes: int) -> bytes:
    """The file's bytes; the size is checked before reading so a huge file is never loaded into memory."""
    if size > max_bytes:
        raise _too_big(size, max_bytes)
    try:
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)  # +1: notice a file that grew since stat()
    except OSError as err:
        raise LoadError(f"cannot read file: {err.strerror or err}") from None
    if len(data) > max_bytes:
        raise _too_big(len(data), max_bytes)
    if not data:
        raise LoadError("empty file")
    return data


def load_file(path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES, options: LoadOptions = LoadOptions()) -> list[LoadedDocument]:
    """Documents in ``path``; raises ``LoadError`` (never anything else) when the file cannot be used.
    ``options``: the user's settings for how formats are read (ingest/loaders/options.py)."""
    path = Path(path)
    info = _stat(path)
    suffix = path.suffix.lower()
    loader = _LOADERS.get(suffix)
    if loader is None:
        raise LoadError(f"unsupported file type '{suffix}'" if suffix else "unsupported file type (no extension)")
    data = _read(path, info.st_size, max_bytes)
    try:
        docs = loader(path, data, options=options)
    except LoadError:
        raise
    except RecursionError:
        raise LoadError("nested too deeply to parse") from None
    except Exception as err:  # noqa: BLE001
        # Parsers raise many types on hostile or broken input. One bad file must be skipped with a reason,
        # not abort an ingest of thousands; the type name keeps a real bug recognisable in the message.
        raise LoadError(f"could not parse {suffix} file ({type(err).__name__}: {err})") from None
    docs = [
        LoadedDocument(title=(d.title or "").strip() or path.stem, text=d.text, metadata=d.metadata, tables=d.tables)
        for d in docs
        if d.text and d.text.strip()
    ]
    if not docs:
        raise LoadError("no text")
    return docs


__all__ = ["SUPPORTED_SUFFIXES", "load_file", "LoadError", "LoadedDocument", "LoadOptions"]
