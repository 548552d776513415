"""PDF: pages read with pdfplumber (tables kept as tables), pages without a text layer read by OCR, and
damaged, encrypted, oversized and image-only files refused with a reason.

pypdf checks the file first, as it did before pdfplumber read pages: the header and end marker (below),
encryption, the page count and each page's decompressed size (ingest/loaders/pdf_limits.py). pypdf
(non-strict) already raises on most truncated files ("Stream has ended unexpectedly") because it cannot
find ``startxref``. The one truncation it silently reads is a file cut inside its final ``%%EOF`` marker;
we treat any file without ``%%EOF`` after its last ``startxref`` as damaged too, since a file cut short may
have lost content the user expects to be indexed. Trailing bytes after ``%%EOF`` stay accepted.

Then each page is read from its text layer (ingest/loaders/pdf_page.py) or, per ``options.ocr``, by OCR
(ingest/ocr.py): ``auto`` reads only the pages with no text layer (scans) by OCR, ``always`` every page
(the OCR text replaces the text layer), ``never`` none (a PDF of scans alone is refused). The pages are
joined by ingest/loaders/pages.py; metadata: ``pages``, ``page_starts`` (each page's offset in the text),
``ocr_pages`` (1-based numbers of the pages OCR read) and ``empty_pages`` (those that gave no text).
"""

from __future__ import annotations

import io
from pathlib import Path

import pdfplumber
import pypdf
from pypdf.errors import DependencyError

from core.errors import LoadError
from core.tables import Table
from core.types import LoadedDocument

from .options import LoadOptions
from .pages import empty_pages, join_pages
from .pdf_limits import check_page_content, check_page_count, check_page_images
from .pdf_page import read_page

# Producers fill /Title with these when the author gave none (ReportLab writes "untitled").
_PLACEHOLDER_TITLES = frozenset({"", "untitled", "anonymous", "unspecified", "unknown", "none", "title"})
OCR_SETTING = "ASSISTANT_INGEST__OCR"


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


def _damaged(err: Exception) -> LoadError:
    # pypdf and pdfminer raise a zoo of exception types on malformed objects (PdfReadError, KeyError,
    # ValueError, TypeError, AssertionError...), so anything but our own LoadError means the file is damaged.
    return LoadError(f"damaged PDF: {err or type(err).__name__}")


def _title(reader: pypdf.PdfReader, path: Path) -> str:
    try:
        info = reader.metadata
        title = str(info.title or "").strip() if info is not None else ""
    except Exception:  # noqa: BLE001 - a broken /Info dictionary costs the title, not the text
        title = ""
    return path.stem if title.lower() in _PLACEHOLDER_TITLES else title


def _rewritten(reader: pypdf.PdfReader) -> bytes:
    """The document as pypdf read it, written out afresh (a new cross-reference table)."""
    writer = pypdf.PdfWriter(clone_from=reader)
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def _text_layer(data: bytes, reader: pypdf.PdfReader, n: int) -> tuple[list[str], list[Table]]:
    """Each page's text read from its text layer ("" for a page without one), and the tables found."""
    pdf = pdfplumber.open(io.BytesIO(data))
    if len(pdf.pages) != n:
        # pdfminer finds no pages in a file whose cross-reference offsets are wrong, where pypdf (non-strict)
        # rebuilds them by scanning the objects: read the pages from pypdf's reading of the file instead.
        pdf.close()
        pdf = pdfplumber.open(io.BytesIO(_rewritten(reader)))
        if len(pdf.pages) != n:
            found = len(pdf.pages)
            pdf.close()
            raise LoadError(f"damaged PDF: {n} pages in its page tree, {found} readable")
    texts: list[str] = []
    tables: list[Table] = []
    with pdf:
        for i, page in enumerate(pdf.pages):
            check_page_content(reader.pages[i], i + 1)
            text, found_tables = read_page(page)
            page.close()  # drop the page's parsed objects: a long PDF is read in constant memory
            texts.append(text)
            tables += found_tables
    return texts, tables


def _ocr(data: bytes, reader: pypdf.PdfReader, pages: list[int], texts: list[str], options: LoadOptions) -> None:
    """Read ``pages`` (0-based) by OCR into ``texts``, reporting progress to ``options.on_page``."""
    from ingest import ocr

    unavailable = ocr.available()
    if unavailable is not None:
        if options.ocr == "always":
            raise LoadError(f"OCR is unavailable ({unavailable}) and {OCR_SETTING}=always; set it to auto to read the text layer")
        if len(pages) == len(texts):
            raise LoadError(f"PDF has no text layer (scanned images?) and OCR is unavailable: {unavailable}")
        raise LoadError(
            f"{len(pages)} of {len(texts)} PDF pages have no text layer and OCR is unavailable: {unavailable}; "
            f"set {OCR_SETTING}=never to ingest the other pages alone"
        )
    for i in pages:
        check_page_content(reader.pages[i], i + 1)
        check_page_images(reader.pages[i], i + 1, options.max_image_pixels)
    read = ocr.ocr_pdf_pages(data, pages, dpi=options.ocr_dpi, max_image_pixels=options.max_image_pixels)
    try:
        for done, (i, text) in enumerate(read, 1):
            texts[i] = text
            if options.on_page is not None:
                options.on_page(done, len(pages))
    except LoadError:
        raise
    except Exception as err:  # noqa: BLE001 - the rasteriser and the OCR engine raise their own types
        raise LoadError(f"OCR of the PDF failed ({type(err).__name__}: {err})") from None


def load(path: Path, data: bytes, *, options: LoadOptions = LoadOptions()) -> list[LoadedDocument]:
    _check_complete(data)
    try:
        reader = _open(data)
        n = check_page_count(reader, options.max_pages)
        if options.ocr == "always":
            texts, tables = [""] * n, []
        else:
            texts, tables = _text_layer(data, reader, n)
        blank = [i for i, text in enumerate(texts) if not text.strip()]
        if blank and options.ocr != "never":
            _ocr(data, reader, blank, texts, options)
        elif len(blank) == n:
            raise LoadError(f"PDF has no extractable text (scanned images? set {OCR_SETTING}=auto to read them with OCR)")
    except LoadError:
        raise
    except Exception as err:  # noqa: BLE001 - see _damaged
        raise _damaged(err) from None
    text, starts = join_pages(texts)
    ocr_pages = [i + 1 for i in blank] if options.ocr != "never" else []
    metadata = {"pages": n, "page_starts": starts, "ocr_pages": ocr_pages, "empty_pages": empty_pages(texts)}
    return [LoadedDocument(title=_title(reader, path), text=text, metadata=metadata, tables=tuple(tables))]
