"""The PDF loader (ingest/loaders/pdf.py and its parts): tables kept as tables, pages without a text layer read
by OCR per the setting, and hostile or broken files refused with a reason while the rest of a batch goes in.

Every PDF is generated here with reportlab (and pypdf where a file must be broken by hand). OCR is the fake
of tests/fake_ocr.py except in the one real-engine test, which skips where the OCR engine (rapidocr) is not installed.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from PIL import Image
from reportlab.lib import pdfencrypt
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.utils import ImageReader
from reportlab.pdfgen import canvas
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from core.errors import LoadError
from ingest.cleaning import clean_text
from ingest.loaders import LoadOptions, load_file, pdf_limits
from tests.fake_ocr import FakeOcr
from tests.test_loaders import make_pdf

GRID = [
    ["", "2019", "2018"],
    ["Revenue", "$ 1,200", "$ 1,100"],
    ["Cost of sales", "(700)", "(650)"],
    ["Gross profit", "500", "450"],
]


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def reason(path: Path, **kwargs) -> str:
    with pytest.raises(LoadError) as info:
        load_file(path, **kwargs)
    return info.value.reason


def table_pdf(ruled: bool) -> bytes:
    """A report page: a sentence, a table (grid lines or whitespace alone), a sentence."""
    buf = io.BytesIO()
    style = [("FONT", (0, 0), (-1, -1), "Helvetica", 9), ("ALIGN", (1, 0), (-1, -1), "RIGHT")]
    if ruled:
        style.append(("GRID", (0, 0), (-1, -1), 0.5, "black"))
    normal = getSampleStyleSheet()["Normal"]
    SimpleDocTemplate(buf).build(
        [
            Paragraph("Revenue by segment was as follows (in millions):", normal),
            Spacer(1, 12),
            Table(GRID, colWidths=[120, 70, 70], style=TableStyle(style), hAlign="LEFT"),
            Spacer(1, 12),
            Paragraph("Gross margin rose in 2019.", normal),
        ]
    )
    return buf.getvalue()


def picture(size=(400, 120), text: str = "") -> Image.Image:
    """A grey picture (the fake OCR does not look at it); with ``text``, that text drawn by pdfium at 200 dpi
    from a real PDF page: a page as a scanner would give it."""
    if not text:
        return Image.new("L", size, 200)
    import pypdfium2 as pdfium

    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=(300, 60))
    c.setFont("Helvetica", 14)
    c.drawString(12, 24, text)
    c.showPage()
    c.save()
    doc = pdfium.PdfDocument(buf.getvalue())
    image = doc[0].render(scale=200 / 72, grayscale=True).to_pil().copy()
    doc.close()
    return image


def mixed_pdf(pages: list[str | Image.Image]) -> bytes:
    """Pages of text (a str) or scans (an image, no text layer)."""
    buf = io.BytesIO()
    c = canvas.Canvas(buf)
    for page in pages:
        if isinstance(page, str):
            c.drawString(72, 750, page)
        else:
            c.drawImage(ImageReader(page), 72, 500, width=page.size[0] * 72 / 200, height=page.size[1] * 72 / 200)
        c.showPage()
    c.save()
    return buf.getvalue()


# --- tables ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ruled", [True, False], ids=["ruled", "unruled"])
def test_a_table_is_read_with_its_headers_and_kept_as_cells(tmp_path, ruled):
    (doc,) = load_file(write(tmp_path, "report.pdf", table_pdf(ruled)))
    # The TAT-QA rendering (ingest/loaders/grid.py): each row carries its label and column headers; the
    # sentence above states the unit, so the cells are in millions.
    assert doc.text == (
        "Revenue by segment was as follows (in millions):\n\n"
        "2019 | 2018\n"
        "Revenue | 2019: $ 1,200 | 2018: $ 1,100\n"
        "Cost of sales | 2019: (700) | 2018: (650)\n"
        "Gross profit | 2019: 500 | 2018: 450\n\n"
        "Gross margin rose in 2019."
    )
    (table,) = doc.tables
    assert table.scale == "million"
    assert [(c.row, c.column, c.text, c.value) for c in table.rows[1].cells] == [
        ("Cost of sales", "2019", "(700)", -700.0),
        ("Cost of sales", "2018", "(650)", -650.0),
    ]
    # Every row's line is a line of the text as the pipeline stores it (after cleaning), so a computation
    # over the cells can cite the passage holding it.
    assert clean_text(doc.text) == doc.text
    assert all(row.line in doc.text.splitlines() for row in table.rows)
    assert doc.metadata == {"pages": 1, "page_starts": [0], "ocr_pages": [], "empty_pages": []}


def test_prose_and_a_two_column_page_are_not_tables(tmp_path):
    left = ["The first column of an annual", "report flows down the page and", "ends here at the bottom."]
    right = ["A second column of prose sits", "beside it at the same height", "and is read after the first."]
    buf = io.BytesIO()
    c = canvas.Canvas(buf)
    for x, column in ((72, left), (320, right)):
        for i, line in enumerate(column):
            c.drawString(x, 700 - 14 * i, line)
    c.showPage()
    c.save()
    (doc,) = load_file(write(tmp_path, "columns.pdf", buf.getvalue()))
    assert doc.tables == ()
    # In the order the PDF draws them, as pypdf read it: the first column, then the second (read by height,
    # the two would be interleaved line by line).
    assert doc.text.splitlines() == left + right


def test_lists_and_justified_prose_are_not_tables(tmp_path):
    from reportlab.lib.enums import TA_JUSTIFY
    from reportlab.platypus import ListFlowable, ListItem

    normal = getSampleStyleSheet()["Normal"]
    justified = normal.clone("justified", alignment=TA_JUSTIFY)
    sentence = "Metformin lowers glucose production in the liver and improves insulin sensitivity in type 2 diabetes;"
    buf = io.BytesIO()
    SimpleDocTemplate(buf).build(
        [
            Paragraph("Common side effects:", normal),
            ListFlowable([ListItem(Paragraph(t, normal)) for t in ("Nausea", "Headache", "Dizziness")], bulletType="bullet"),
            Spacer(1, 12),
            ListFlowable([ListItem(Paragraph(t, normal)) for t in ("Take with food", "Avoid alcohol")], bulletType="1"),
            Spacer(1, 12),
            # Justified: its wide word gaps must not read as columns.
            Paragraph(" ".join([sentence] * 3), justified),
        ]
    )
    (doc,) = load_file(write(tmp_path, "leaflet.pdf", buf.getvalue()))
    assert doc.tables == ()
    lines = doc.text.splitlines()
    # The bullets are ZapfDingbats glyphs pdfminer cannot map to text ("(cid:127)"): left out, as pypdf did.
    assert lines[:6] == ["Common side effects:", "Nausea", "Headache", "Dizziness", "1 Take with food", "2 Avoid alcohol"]
    assert " ".join(lines[6:]) == " ".join([sentence] * 3)


def test_a_header_centred_over_two_columns_goes_to_the_left_one(tmp_path):
    # Drawn by hand, not by a table layout: four value cells 70 pt wide, numbers right-aligned, years
    # centred over their cells, "Domestic" and "International" each centred over two cells, so their centres
    # sit on a border between cells, in the gutter between two columns of numbers. Each goes to the left
    # column of its two (TAT-QA's and grid.py's convention), so the years below each get the right group.
    buf = io.BytesIO()
    c = canvas.Canvas(buf)
    c.setFont("Helvetica", 8)
    left, width, pad, top = 200, 70, 6, 700

    def cell(j: int) -> tuple[float, float]:
        return left + width * (j - 1), left + width * j

    c.drawCentredString(cell(2)[0], top, "Domestic")
    c.drawCentredString(cell(4)[0], top, "International")
    for j, year in enumerate(["2019", "2018", "2019", "2018"], 1):
        c.drawCentredString(sum(cell(j)) / 2, top - 12, year)
    for i, (label, *values) in enumerate(
        [("Revenue", "1,200", "1,100", "3,400", "3,050"), ("Cost of sales", "(700)", "(650)", "(1,900)", "(1,700)")]
    ):
        c.drawString(72, top - 24 - 12 * i, label)
        for j, value in enumerate(values, 1):
            c.drawRightString(cell(j)[1] - pad, top - 24 - 12 * i, value)
    c.showPage()
    c.save()
    (doc,) = load_file(write(tmp_path, "segments.pdf", buf.getvalue()))
    (table,) = doc.tables
    assert [(got.column, got.text) for got in table.rows[0].cells] == [
        ("Domestic 2019", "1,200"),
        ("Domestic 2018", "1,100"),
        ("International 2019", "3,400"),
        ("International 2018", "3,050"),
    ]


def test_words_of_a_table_are_not_repeated_and_text_around_it_is_kept(tmp_path):
    (doc,) = load_file(write(tmp_path, "report.pdf", table_pdf(False)))
    for cell in ("1,200", "(650)", "Gross profit"):
        assert doc.text.count(cell) == 1
    assert doc.text.startswith("Revenue by segment") and doc.text.endswith("Gross margin rose in 2019.")


# --- pages without a text layer: OCR ------------------------------------------------------------------


def test_auto_reads_only_the_scanned_pages_by_ocr(tmp_path, monkeypatch):
    ocr = FakeOcr().install(monkeypatch)
    path = write(tmp_path, "mixed.pdf", mixed_pdf(["Typed page one.", picture(), "Typed page three."]))
    progress: list[tuple[int, int]] = []
    options = LoadOptions(ocr="auto", ocr_dpi=150, max_image_pixels=10**7, on_page=lambda done, total: progress.append((done, total)))
    (doc,) = load_file(path, options=options)
    assert doc.text == "Typed page one.\n\nOCR text of page 2\n\nTyped page three."
    assert doc.metadata == {"pages": 3, "page_starts": [0, 17, 37], "ocr_pages": [2], "empty_pages": []}
    assert doc.text[17:].startswith("OCR text of page 2") and doc.text[37:].startswith("Typed page three.")
    assert ocr.pdf_calls == [([1], 150, 10**7)]  # 0-based page 1 only, with the settings passed through
    assert progress == [(1, 1)]


def test_always_reads_every_page_by_ocr_instead_of_its_text_layer(tmp_path, monkeypatch):
    FakeOcr().install(monkeypatch)
    path = write(tmp_path, "mixed.pdf", mixed_pdf(["Typed page one.", picture()]))
    (doc,) = load_file(path, options=LoadOptions(ocr="always"))
    assert doc.text == "OCR text of page 1\n\nOCR text of page 2"
    assert doc.metadata["ocr_pages"] == [1, 2]


def test_never_keeps_the_text_pages_and_refuses_a_pdf_of_scans(tmp_path, monkeypatch):
    ocr = FakeOcr().install(monkeypatch)
    (doc,) = load_file(write(tmp_path, "mixed.pdf", mixed_pdf(["Typed page one.", picture()])), options=LoadOptions(ocr="never"))
    assert doc.text == "Typed page one."
    assert doc.metadata == {"pages": 2, "page_starts": [0, 15], "ocr_pages": [], "empty_pages": [2]}
    scans = write(tmp_path, "scans.pdf", mixed_pdf([picture(), picture()]))
    assert reason(scans, options=LoadOptions(ocr="never")) == (
        "PDF has no extractable text (scanned images? set ASSISTANT_INGEST__OCR=auto to read them with OCR)"
    )
    assert ocr.pdf_calls == []


def test_ocr_unavailable_says_so(tmp_path, monkeypatch):
    FakeOcr(unavailable="the rapidocr package is not installed").install(monkeypatch)
    scans = write(tmp_path, "scans.pdf", mixed_pdf([picture()]))
    assert reason(scans) == "PDF has no text layer (scanned images?) and OCR is unavailable: the rapidocr package is not installed"
    mixed = write(tmp_path, "mixed.pdf", mixed_pdf(["Typed page one.", picture()]))
    assert reason(mixed) == (
        "1 of 2 PDF pages have no text layer and OCR is unavailable: the rapidocr package is not installed; "
        "set ASSISTANT_INGEST__OCR=never to ingest the other pages alone"
    )
    assert reason(mixed, options=LoadOptions(ocr="always")) == (
        "OCR is unavailable (the rapidocr package is not installed) and ASSISTANT_INGEST__OCR=always; set it to auto to read the text layer"
    )
    typed = write(tmp_path, "typed.pdf", make_pdf(["All typed."]))
    assert load_file(typed)[0].text == "All typed."  # no page needs OCR: its absence does not matter


def test_a_page_holding_an_image_over_the_pixel_limit_is_not_rasterised(tmp_path, monkeypatch):
    ocr = FakeOcr().install(monkeypatch)
    path = write(tmp_path, "poster.pdf", mixed_pdf([picture((2000, 1500))]))
    assert reason(path, options=LoadOptions(max_image_pixels=1_000_000)) == (
        "PDF page 1 holds an image of 2000x1500 pixels, over the 1 MP limit (ASSISTANT_INGEST__MAX_IMAGE_MEGAPIXELS)"
    )
    assert ocr.pdf_calls == []


def test_real_ocr_reads_a_scanned_page(tmp_path):
    from ingest import ocr

    if ocr.available() is not None:
        pytest.skip(f"OCR unavailable here: {ocr.available()}")
    path = write(tmp_path, "scan.pdf", mixed_pdf(["Typed cover page.", picture(text="Metformin lowers glucose")]))
    (doc,) = load_file(path)
    assert doc.metadata["ocr_pages"] == [2]
    assert doc.text.startswith("Typed cover page.\n\n")
    assert "Metformin lowers glucose" in doc.text


# --- bad input ---------------------------------------------------------------------------------------------


def test_a_password_protected_pdf_is_refused(tmp_path):
    locked = make_pdf(["Secret"], encrypt=pdfencrypt.StandardEncryption("user-pw", ownerPassword="owner-pw"))
    assert reason(write(tmp_path, "locked.pdf", locked)) == "encrypted PDF (password required)"


def test_a_broken_cross_reference_table_is_rebuilt_and_the_text_read(tmp_path):
    data = make_pdf(["Page 1 keeps its text.", "Page 2 keeps its text."])
    at = data.index(b"\nxref\n")
    # Every object's offset off by 7 bytes: pdfminer alone finds no page at all; pypdf (non-strict) finds the
    # objects by scanning, and the loader reads the pages from its reading of the file.
    garbled = data[:at] + re.sub(rb"(\d{10}) (\d{5}) n", lambda m: b"%010d %s n" % (int(m[1]) + 7, m[2]), data[at:])
    assert garbled != data
    (doc,) = load_file(write(tmp_path, "xref.pdf", garbled), options=LoadOptions(ocr="never"))
    assert doc.text == "Page 1 keeps its text.\n\nPage 2 keeps its text."


def test_a_pdf_over_the_page_limit_is_refused_before_its_pages_are_read(tmp_path, monkeypatch):
    data = make_pdf([f"Page {i}" for i in range(12)])
    assert reason(write(tmp_path, "long.pdf", data), options=LoadOptions(max_pages=10)) == (
        "PDF has 12 pages, over the 10 page limit (ASSISTANT_INGEST__MAX_PDF_PAGES)"
    )
    # A page tree that declares a billion pages: refused on the declared count, before the tree is walked
    # or a page parsed.
    bomb = data.replace(b"/Count 12", b"/Count 999999999", 1)
    import ingest.loaders.pdf as pdf_module

    monkeypatch.setattr(pdf_module.pdfplumber, "open", lambda *a, **k: pytest.fail("pages were read"))
    assert reason(write(tmp_path, "bomb.pdf", bomb), options=LoadOptions(max_pages=10)) == (
        "PDF has 999999999 pages, over the 10 page limit (ASSISTANT_INGEST__MAX_PDF_PAGES)"
    )


def bomb_pdf(inflated_bytes: int) -> bytes:
    """One page whose content stream is ``inflated_bytes`` of spaces deflated (a few kB on disk)."""
    import pypdf
    from pypdf.generic import DecodedStreamObject, NameObject

    writer = pypdf.PdfWriter()
    page = writer.add_blank_page(612, 792)
    stream = DecodedStreamObject()
    stream.set_data(b"BT /F1 12 Tf 72 700 Td (Hello) Tj ET " + b" " * inflated_bytes)
    stream = stream.flate_encode()
    page[NameObject("/Contents")] = writer._add_object(stream)
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def test_a_page_that_inflates_past_the_limit_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(pdf_limits, "MAX_PAGE_CONTENT_BYTES", 2**20)
    path = write(tmp_path, "bomb.pdf", bomb_pdf(2 * 2**20))
    assert path.stat().st_size < 20_000
    assert reason(path) == "PDF page 1 decompresses to over 1 MB of content (a PDF bomb?)"


def test_a_stream_past_pypdfs_own_decompression_cap_is_refused(tmp_path, monkeypatch):
    # Our limit set above pypdf's own cap (75 MB): pypdf stops inflating the 80 MB stream at its cap, so the
    # memory a bomb costs stays bounded whatever the setting, and the page is refused all the same.
    monkeypatch.setattr(pdf_limits, "MAX_PAGE_CONTENT_BYTES", 100 * 2**20)
    path = write(tmp_path, "bomb.pdf", bomb_pdf(80 * 2**20))
    assert reason(path) == "PDF page 1 decompresses to over 100 MB of content (a PDF bomb?)"


def test_bad_pdfs_are_reported_and_the_rest_of_the_batch_ingested(tmp_path, monkeypatch, embedder):
    from tests.conftest import make_ingestor

    FakeOcr(unavailable="the rapidocr package is not installed").install(monkeypatch)
    monkeypatch.setattr(pdf_limits, "MAX_PAGE_CONTENT_BYTES", 2**20)
    folder = tmp_path / "in"
    folder.mkdir()
    write(folder, "good.pdf", table_pdf(True))
    write(folder, "locked.pdf", make_pdf(["x"], encrypt=pdfencrypt.StandardEncryption("pw", ownerPassword="o")))
    write(folder, "bomb.pdf", bomb_pdf(2 * 2**20))
    write(folder, "scan.pdf", mixed_pdf([picture()]))
    write(folder, "cut.pdf", table_pdf(False)[:-300])
    collection, ingestor = make_ingestor(tmp_path / "index", embedder)
    with collection:
        report = ingestor.ingest([folder])
    assert report.files_read == 1 and report.documents_added == 1
    assert {Path(s.path).name: s.reason for s in report.skipped} == {
        "locked.pdf": "encrypted PDF (password required)",
        "bomb.pdf": "PDF page 1 decompresses to over 1 MB of content (a PDF bomb?)",
        "scan.pdf": "PDF has no text layer (scanned images?) and OCR is unavailable: the rapidocr package is not installed",
        "cut.pdf": "damaged PDF: no startxref (file truncated?)",
    }


def test_pages_that_give_no_text_are_recorded_and_reported(tmp_path, monkeypatch):
    """A scanned page OCR finds nothing on is kept in the page numbering, listed in the metadata and told by
    the ingest, which still ingests the rest of the file."""
    from dataclasses import replace

    from conftest import make_ingestor

    from core.collection import Collection
    from core.embedding import HashEmbedder

    class SecondPageBlank(FakeOcr):
        def ocr_pdf_pages(self, data, pages, **kwargs):
            for i, text in super().ocr_pdf_pages(data, pages, **kwargs):
                yield i, "" if i == 1 else text

    SecondPageBlank().install(monkeypatch)
    path = write(tmp_path, "scan.pdf", mixed_pdf(["Typed cover page about warfarin.", picture(), picture()]))
    (doc,) = load_file(path)
    assert (doc.metadata["empty_pages"], doc.metadata["ocr_pages"]) == ([2], [2, 3])
    assert doc.text == "Typed cover page about warfarin.\n\nOCR text of page 3"
    collection, ingestor = make_ingestor(tmp_path / "kb", HashEmbedder(64))
    with collection:
        report = ingestor.ingest([path])
    assert report.files_read == 1 and not report.skipped
    assert [(n.path, n.reason) for n in report.notes] == [(str(path), "page 2 of 3 gave no text (blank, or unreadable by OCR)")]
    with Collection.open(tmp_path / "kb") as kb:
        (hit,) = kb.hits(kb.bm25("warfarin", 1))
    assert hit.page == 1 and replace(hit, start=hit.text.index("OCR text")).page == 3  # a passage starting there cites page 3
