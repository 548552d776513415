"""HTML: visible text with its block structure, without page chrome.

Rendering follows the browser's idea of text: whitespace inside inline text collapses to one space,
block elements start new lines (paragraph-like ones a blank line, so chunkers can split there), table rows
become one line of ``cell | cell``, and ``<pre>`` keeps its layout.
"""

from __future__ import annotations

import re
from pathlib import Path

from bs4 import BeautifulSoup, NavigableString, Tag
from bs4.element import PreformattedString

from core.types import LoadedDocument

from ._text import decode_text

# Not content: code, site chrome, invisible parts. <head> only holds <title>, which becomes the title.
_DROP = frozenset(
    {"script", "style", "noscript", "nav", "header", "footer", "template", "head", "svg", "iframe", "object", "embed", "select"}
)
# A <header> inside an article or section is that article's own heading and byline, not the site banner.
_SECTIONING = ["article", "main", "section"]
_PARAGRAPH_BLOCKS = frozenset(
    {
        "p",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "table",
        "pre",
        "blockquote",
        "ul",
        "ol",
        "dl",
        "figure",
        "hr",
        "section",
        "article",
        "main",
        "aside",
        "address",
        "details",
        "fieldset",
        "form",
    }
)
_LINE_BLOCKS = frozenset(
    {
        "div",
        "li",
        "dt",
        "dd",
        "caption",
        "figcaption",
        "summary",
        "legend",
        "center",
        "body",
        "html",
        "tbody",
        "thead",
        "tfoot",
        "tr",
        "dialog",
        "menu",
        "dir",
        "option",
    }
)
_PRE = frozenset({"pre", "textarea", "listing", "plaintext"})
_WS = re.compile(r"\s+")
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)

_LINE, _PARA = 1, 2  # break strengths: newline, blank line


class _Pre(str):
    """The text of a <pre> block: emitted verbatim, never whitespace-collapsed."""


def _render(node: Tag, out: list) -> None:
    for child in node.children:
        if isinstance(child, Tag):
            name = child.name
            if name in _DROP and not (name == "header" and child.find_parent(_SECTIONING)):
                continue
            if name == "br":
                out.append(_LINE)
            elif name in _PRE:
                out += [_PARA, _Pre(child.get_text()), _PARA]
            elif name == "tr":
                cells = [_render_to_text(cell) for cell in child.find_all(["td", "th"], recursive=False)]
                out += [_LINE, " | ".join(c.replace("\n", " ") for c in cells if c), _LINE]
            else:
                brk = _PARA if name in _PARAGRAPH_BLOCKS else _LINE if name in _LINE_BLOCKS else 0
                if brk:
                    out.append(brk)
                _render(child, out)
                if brk:
                    out.append(brk)
        elif isinstance(child, NavigableString) and not isinstance(child, PreformattedString):
            # PreformattedString covers comments, CDATA, doctypes and processing instructions.
            out.append(str(child))


def _join(parts: list) -> str:
    """Collapse whitespace per line, merge adjacent breaks (strongest wins), drop leading/trailing breaks."""
    out: list[str] = []
    current: list[str] = []
    pending = 0

    def emit(block: str) -> None:
        nonlocal pending
        if out:
            out.append("\n" * max(pending, _LINE))
        out.append(block)
        pending = 0

    for part in [*parts, _LINE]:
        if isinstance(part, str) and not isinstance(part, _Pre):
            current.append(part)
            continue
        line = _WS.sub(" ", "".join(current)).strip()
        current.clear()
        if line:
            emit(line)
        if isinstance(part, _Pre):
            if part.strip():
                emit(part.strip("\n"))
        else:
            pending = max(pending, part)
    return "".join(out)


def _render_to_text(node: Tag) -> str:
    parts: list = []
    _render(node, parts)
    return _join(parts)


def _title(soup: BeautifulSoup) -> str | None:
    for tag in (soup.title, soup.find("h1")):
        if tag is not None:
            text = _WS.sub(" ", tag.get_text(" ")).strip()
            if text:
                return text
    return None


def load(path: Path, data: bytes, *, encoding_fallback: str | None = None) -> list[LoadedDocument]:
    declared = _META_CHARSET.search(data[:4096])
    text = decode_text(data, encoding_fallback=encoding_fallback, declared_encoding=declared.group(1).decode("ascii") if declared else None)
    soup = BeautifulSoup(text, "lxml")
    return [LoadedDocument(title=_title(soup) or path.stem, text=_render_to_text(soup), metadata={})]
