"""HTML: visible text with its block structure, without page chrome.

Rendering follows the browser's idea of text: whitespace inside inline text collapses to one space,
block elements start new lines (paragraph-like ones a blank line, so chunkers can split there), and ``<pre>``
keeps its layout. A table becomes one line per row that carries its row label and column headers, and is kept
as cells for computations (ingest/loaders/grid.py, as TAT-QA tables are); a layout table (one that holds
another table) is rendered row by row as ``cell | cell`` instead.
"""

from __future__ import annotations

import re
from pathlib import Path

from bs4 import BeautifulSoup, NavigableString, Tag
from bs4.element import PreformattedString

from core.tables import Table
from core.types import LoadedDocument

from ._text import decode_text
from .grid import read_grid
from .options import LoadOptions

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


_MAX_SPAN = 100  # a colspan/rowspan beyond this is a broken page, not a table layout
_HINT_CHARS = 200  # how much of the text just before a table may state its unit ("(in millions)")


def _span(cell: Tag, attribute: str) -> int:
    try:
        return min(max(int(str(cell.get(attribute) or 1).strip()), 1), _MAX_SPAN)
    except ValueError:
        return 1


def _fill_carried(row: list[str], carried: dict[int, tuple[int, str]]) -> None:
    """Put the cells spanning down from rows above into ``row`` where they stand, one row less to go."""
    while len(row) in carried:
        left, text = carried[len(row)]
        if left == 1:
            del carried[len(row)]
        else:
            carried[len(row)] = (left - 1, text)
        row.append(text)


def _grid(table: Tag) -> list[list[str]] | None:
    """The table's rows of cell texts, a spanning cell's text in its first column (as TAT-QA's grids have it;
    a data cell spanning rows repeats only as a row label, in the first column); None for a layout table (one
    holding another table)."""
    if table.find("table") is not None:
        return None
    rows: list[list[str]] = []
    carried: dict[int, tuple[int, str]] = {}  # column -> (rows it still covers, text) for rowspan cells
    for tr in table.find_all("tr"):
        row: list[str] = []
        for cell in tr.find_all(["td", "th"], recursive=False):
            _fill_carried(row, carried)
            text = _render_to_text(cell).replace("\n", " ")
            start, width, height = len(row), _span(cell, "colspan"), _span(cell, "rowspan")
            row += [text] + [""] * (width - 1)
            if height > 1:
                for column in range(start, start + width):
                    carried[column] = (height - 1, text if column == 0 and cell.name == "td" else "")
        _fill_carried(row, carried)
        rows.append(row)
    return rows


def _scale_hints(table: Tag) -> list[str]:
    """Where a table's unit may be stated outside its rows: its caption, the text just before it."""
    hints = [caption.get_text(" ") for caption in table.find_all("caption")]
    before = table.find_previous_sibling()
    if isinstance(before, Tag) and before.name not in _DROP:
        hints.append(before.get_text(" ")[-_HINT_CHARS:])
    return hints


def _render(node: Tag, out: list, tables: list[Table] | None = None) -> None:
    for child in node.children:
        if isinstance(child, Tag):
            name = child.name
            if name in _DROP and not (name == "header" and child.find_parent(_SECTIONING)):
                continue
            if name == "br":
                out.append(_LINE)
            elif name in _PRE:
                out += [_PARA, _Pre(child.get_text()), _PARA]
            elif name == "table" and (grid := _grid(child)) is not None:
                text, cells = read_grid(grid, _scale_hints(child))
                captions = [_render_to_text(c) for c in child.find_all("caption")]
                out += [_PARA, *[_Pre(c) for c in captions if c], _PARA, _Pre(text), _PARA]
                if cells is not None and cells.rows and tables is not None:
                    tables.append(cells)
            elif name == "tr":
                cells = [_render_to_text(cell) for cell in child.find_all(["td", "th"], recursive=False)]
                out += [_LINE, " | ".join(c.replace("\n", " ") for c in cells if c), _LINE]
            else:
                brk = _PARA if name in _PARAGRAPH_BLOCKS else _LINE if name in _LINE_BLOCKS else 0
                if brk:
                    out.append(brk)
                _render(child, out, tables)
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


def _render_to_text(node: Tag, tables: list[Table] | None = None) -> str:
    parts: list = []
    _render(node, parts, tables)
    return _join(parts)


def _title(soup: BeautifulSoup) -> str | None:
    for tag in (soup.title, soup.find("h1")):
        if tag is not None:
            text = _WS.sub(" ", tag.get_text(" ")).strip()
            if text:
                return text
    return None


def load(path: Path, data: bytes, *, options: LoadOptions = LoadOptions()) -> list[LoadedDocument]:
    declared = _META_CHARSET.search(data[:4096])
    text = decode_text(
        data, encoding_fallback=options.encoding_fallback, declared_encoding=declared.group(1).decode("ascii") if declared else None
    )
    soup = BeautifulSoup(text, "lxml")
    tables: list[Table] = []
    body = _render_to_text(soup, tables)
    return [LoadedDocument(title=_title(soup) or path.stem, text=body, metadata={}, tables=tuple(tables))]
