"""Crash-safe file writes: write a temporary file beside the target, fsync it, rename it into place.

A reader (or a process restarted after SIGKILL) sees either the old file or the new one, never a mix.
Also: safe file names for files users upload.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from core.errors import UserError


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def make_shareable(folder: Path) -> None:
    """Give a folder built in a private temporary directory (mkdtemp: 0700) and its files the permissions
    any new folder and file would get, before it is renamed into place."""
    mask = _umask()
    os.chmod(folder, 0o777 & ~mask)
    for path in folder.rglob("*"):
        os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~mask)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write_stream(path, lambda fh: fh.write(data))


def atomic_write_stream(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """``write(fh)`` writes the file's content, in as many pieces as it likes (a large FAISS index is
    streamed rather than copied into one bytes object first)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp makes the file private (0600); give it the permissions any new file would get, so a
        # collection built by one user can be served by another.
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8"))


_UNSAFE = re.compile(r"[^A-Za-z0-9._ ()+-]+")


def safe_filename(name: str | None) -> str:
    """The last path component, reduced to a conservative character set: no traversal, no hidden files,
    no control characters, at most 150 characters (the extension kept)."""
    base = unicodedata.normalize("NFKC", (name or "").replace("\\", "/")).split("/")[-1]
    base = _UNSAFE.sub("_", base).strip(" ._")
    if not base:
        raise UserError("the uploaded file has no usable name")
    stem, dot, ext = base.rpartition(".")
    if dot and len(ext) <= 10:
        return stem[: 150 - len(ext) - 1].rstrip(" ._") + "." + ext if stem else base[:150]
    return base[:150]
