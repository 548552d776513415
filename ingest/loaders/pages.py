"""Joining a paged document's texts into one text, remembering where each page starts.

Shared by every loader that reads pages (PDF, multi-frame TIFF) so their metadata agree:
``{"pages": N, "page_starts": [...]}`` where ``page_starts[i]`` is the character offset of page ``i + 1``
in the joined text. A citation can then say "page 3" from a chunk's start offset (``page_of``).

Each page is cleaned with ``clean_text`` *before* joining, and the pipeline cleans the joined text again:
cleaning is idempotent on already-clean pages joined by one blank line, so the offsets stay valid.
"""

from __future__ import annotations

from core.types import page_of
from ingest.cleaning import clean_text

PAGE_SEPARATOR = "\n\n"


def _clean(text: str) -> str:
    """``clean_text`` until nothing changes: one pass is not always final ("a-\nb-\nc" joins one hyphenated
    line break per pass), and the pipeline's second pass must not shift the offsets computed here."""
    cleaned = clean_text(text)
    while cleaned != text:
        text, cleaned = cleaned, clean_text(cleaned)
    return cleaned


def join_pages(texts: list[str]) -> tuple[str, list[int]]:
    """The cleaned pages joined by a blank line, and each page's start offset in the result.

    An empty page (no text found) still gets an offset, equal to where the next page's text starts, so
    ``page_starts`` always has one entry per page and page numbers stay aligned with the source file.
    No separator is written for an empty page: the joined text never holds runs of blank lines, which
    ``clean_text`` would collapse and so shift every later offset.
    """
    parts: list[str] = []
    starts: list[int] = []
    pending = 0  # empty pages seen since the last page with text: they start where the next text starts
    offset = 0
    for raw in texts:
        page = _clean(raw)
        if not page:
            pending += 1
            continue
        if parts:
            offset += len(PAGE_SEPARATOR)
            parts.append(PAGE_SEPARATOR)
        starts.extend([offset] * (pending + 1))
        pending = 0
        parts.append(page)
        offset += len(page)
    starts.extend([offset] * pending)  # trailing empty pages: at the end of the text
    return "".join(parts), starts


def empty_pages(texts: list[str]) -> list[int]:
    """The 1-based numbers of the pages that gave no text (blank, or nothing OCR could read): recorded in the
    metadata (``empty_pages``) and reported by the ingest, so a scan that lost pages says which."""
    return [i for i, text in enumerate(texts, 1) if not _clean(text)]


__all__ = ["PAGE_SEPARATOR", "empty_pages", "join_pages", "page_of"]
