"""Bounds on what a hostile PDF ("a PDF bomb") can make the loader do, checked with pypdf before any page is
read by pdfplumber (pdfminer) or rasterised for OCR (pdfium).

- Pages: the count the file declares is checked before the page tree is walked, and the real count after.
- Decompression: pdfminer inflates streams with no limit, so 1 MB of deflated zeros can become gigabytes of
  "page content". pypdf inflates each stream up to its own cap (75 MB in pypdf 5-7: ``LimitReachedError``
  beyond); here the streams that reading a page's text inflates (its content, the forms it draws, their
  fonts) are decoded with pypdf first and the page is refused when together they exceed
  ``MAX_PAGE_CONTENT_BYTES``. pdfminer then inflates only what was measured.
- Images: a page sent to OCR is refused when it holds an image over ``max_image_pixels`` (pdfium would
  decode it whole before scaling it down).
"""

from __future__ import annotations

from collections.abc import Iterator

import pypdf
from pypdf import errors as pypdf_errors
from pypdf.generic import ArrayObject, DictionaryObject, StreamObject

from core.errors import LoadError

MAX_PAGE_CONTENT_BYTES = 32 * 2**20  # a dense page of text is tens of kB; a detailed vector map a few MB
PAGES_SETTING = "ASSISTANT_INGEST__MAX_PDF_PAGES"
IMAGE_SETTING = "ASSISTANT_INGEST__MAX_IMAGE_MEGAPIXELS"
_LIMIT_ERRORS = tuple(e for e in (getattr(pypdf_errors, "LimitReachedError", None),) if e is not None)


def _too_many(n: int, max_pages: int) -> LoadError:
    return LoadError(f"PDF has {n} pages, over the {max_pages} page limit ({PAGES_SETTING})")


def check_page_count(reader: pypdf.PdfReader, max_pages: int) -> int:
    """The number of pages, or a LoadError when it is over ``max_pages`` (declared count checked first)."""
    try:
        declared = int(reader.trailer["/Root"]["/Pages"]["/Count"])
    except Exception:  # noqa: BLE001 - a missing or broken /Count: the walk below counts
        declared = 0
    if declared > max_pages:
        raise _too_many(declared, max_pages)
    n = len(reader.pages)
    if n > max_pages:
        raise _too_many(n, max_pages)
    return n


def _resolve(obj):
    return obj.get_object() if obj is not None else None


def _streams(page: DictionaryObject) -> Iterator[StreamObject]:
    """The streams that reading the page's text inflates: its content, its form XObjects (recursively, each
    once) and the embedded font files of the fonts they use."""
    seen: set[int] = set()
    todo: list[DictionaryObject] = [page]
    while todo:
        node = todo.pop()
        contents = _resolve(node.get("/Contents"))
        if isinstance(node, StreamObject) and node is not page:
            yield node
        if isinstance(contents, ArrayObject):
            yield from (s for s in map(_resolve, contents) if isinstance(s, StreamObject))
        elif isinstance(contents, StreamObject):
            yield contents
        resources = _resolve(node.get("/Resources"))
        if not isinstance(resources, DictionaryObject):
            continue
        for font in (_resolve(f) for f in (_resolve(resources.get("/Font")) or {}).values()):
            descriptor = _resolve(font.get("/FontDescriptor")) if isinstance(font, DictionaryObject) else None
            for key in ("/FontFile", "/FontFile2", "/FontFile3"):
                file = _resolve(descriptor.get(key)) if isinstance(descriptor, DictionaryObject) else None
                if isinstance(file, StreamObject) and id(file) not in seen:
                    seen.add(id(file))
                    yield file
        for xobject in (_resolve(x) for x in (_resolve(resources.get("/XObject")) or {}).values()):
            if isinstance(xobject, StreamObject) and xobject.get("/Subtype") == "/Form" and id(xobject) not in seen:
                seen.add(id(xobject))
                todo.append(xobject)


def check_page_content(page: DictionaryObject, number: int, limit: int | None = None) -> None:
    """Refuse a page whose text-bearing streams inflate to more than ``limit`` bytes (default
    ``MAX_PAGE_CONTENT_BYTES``; ``number``: 1-based)."""
    limit = MAX_PAGE_CONTENT_BYTES if limit is None else limit
    total = 0
    try:
        for stream in _streams(page):
            total += len(stream.get_data())
            if total > limit:
                break
    except _LIMIT_ERRORS:
        total = limit + 1
    if total > limit:
        raise LoadError(f"PDF page {number} decompresses to over {limit / 2**20:g} MB of content (a PDF bomb?)")


def check_page_images(page: DictionaryObject, number: int, max_pixels: int) -> None:
    """Refuse a page (about to be rasterised for OCR) that holds an image larger than ``max_pixels``."""
    resources = _resolve(page.get("/Resources"))
    xobjects = _resolve(resources.get("/XObject")) if isinstance(resources, DictionaryObject) else None
    for xobject in (_resolve(x) for x in (xobjects or {}).values()):
        if isinstance(xobject, StreamObject) and xobject.get("/Subtype") == "/Image":
            width, height = int(xobject.get("/Width", 0)), int(xobject.get("/Height", 0))
            if width * height > max_pixels:
                raise LoadError(
                    f"PDF page {number} holds an image of {width}x{height} pixels, over the {max_pixels / 1e6:g} MP limit ({IMAGE_SETTING})"
                )
