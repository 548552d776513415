"""PDF text through pypdf, refusing damaged, encrypted and image-only files with a reason.

pypdf (6.x, non-strict) already raises on most truncated files ("Stream has ended unexpectedly") because it
cannot find ``startxref``. The one truncation it silently reads is a file cut inside its final ``%%EOF``
marker; we treat any file without ``%%EOF`` after its last ``startxref`` as damaged too, since a file cut
short may have lost content the user expects to be indexed. Trailing bytes after ``%%EOF`` stay accepted.
"""

from __future__ import annotations

import io
from pathlib import Path

import pypdf
from pypdf.errors import DependencyError

from core.errors import LoadError
from core.types import LoadedDocument

# Producers fill /Title with these when the author gave none (ReportLab writes "untitled").
_PLACEHOLDER_TITLES = frozenset({"", "untitled", "anonymous", "unspecified", "unknown", "none", "title"})


def _check_complete(data: bytes) -> None:
    if b"%PDF-" not in data[:1024]:  # the spec lets the header sit anywhere in the first 1024 bytes
        raise LoadError("damaged PDF: no %PDF- header (not a PDF file?)")
    last_startxref = data.rfind(b"startxref")
    if last_startxref < 0:
        raise LoadError("damaged PDF: no startxref (file truncated?)")
    if data.find(b"%%EOF", last_startxref) < 0:
        raise LoadError("damaged PDF: no %%EOF marker at the end (file truncated?)")


def _open(data: bytes) -> pypdf.PdfReader:
    reader = pypdf.PdfReader(io.BytesIO(data))
    if reader.is_encrypted:
        # Many PDFs are encrypted only to restrict printing/copying, with an empty user password.
        try:
            opened = reader.decrypt("")
        except DependencyError:
            raise LoadError("encrypted PDF (decrypting it needs the 'cryptography' package)") from None
        if not opened:
            raise LoadError("encrypted PDF (password required)")
    return reader


def load(path: Path, data: bytes, *, encoding_fallback: str | None = None) -> list[LoadedDocument]:
    _check_complete(data)
    # pypdf raises a zoo of exception types on malformed objects (PdfReadError, KeyError, ValueError,
    # TypeError, AssertionError...), so anything but our own LoadError means the file is damaged.
    try:
        reader = _open(data)
        pages = [page.extract_text() or "" for page in reader.pages]
    except LoadError:
        raise
    except Exception as err:  # noqa: BLE001 - see above
        raise LoadError(f"damaged PDF: {err or type(err).__name__}") from None
    if not any(page.strip() for page in pages):
        raise LoadError("PDF has no extractable text (scanned images? run OCR first)")
    try:
        info = reader.metadata
        title = str(info.title or "").strip() if info is not None else ""
    except Exception:  # noqa: BLE001 - a broken /Info dictionary costs the title, not the text
        title = ""
    if title.lower() in _PLACEHOLDER_TITLES:
        title = path.stem
    return [LoadedDocument(title=title, text="\n\n".join(pages), metadata={"pages": len(pages)})]
