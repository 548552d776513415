"""Plain text and Markdown: the file is the document; the first ``# heading`` names it."""

from __future__ import annotations

import re
from pathlib import Path

from core.types import LoadedDocument

from ._text import decode_text
from .options import LoadOptions

# CommonMark ATX level-1 heading: up to 3 spaces of indent, "#", at least one space, optional closing #s.
_H1 = re.compile(r"^ {0,3}#[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")


def markdown_title(text: str) -> str | None:
    """The first level-1 ATX heading outside fenced code (a ``# comment`` in a code block is not a title)."""
    in_fence = False
    for line in text.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
            continue
        if not in_fence:
            match = _H1.match(line)
            if match:
                return match.group(1).strip()
    return None


def load(path: Path, data: bytes, *, options: LoadOptions = LoadOptions()) -> list[LoadedDocument]:
    text = decode_text(data, encoding_fallback=options.encoding_fallback)
    return [LoadedDocument(title=markdown_title(text) or path.stem, text=text, metadata={})]
