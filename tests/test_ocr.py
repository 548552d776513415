"""OCR (ingest/ocr.py), the image loader (ingest/loaders/image.py) and page offsets (ingest/loaders/pages.py).

The OCR tests read real rendered pages with the real engine (RapidOCR, a dependency of the project); they
are skipped, with the reason, only where it cannot run.
"""

from __future__ import annotations

import io
import re
import socket
import struct
import sys
import weakref
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.scans import add_noise, cer, document, edit_distance, rasterise, skew, typeset
from core.errors import LoadError
from ingest import ocr
from ingest.loaders import image as image_loader
from ingest.loaders.options import LoadOptions
from ingest.loaders.pages import join_pages, page_of

MEDICAL = (
    "Hypertension is treated with lifestyle changes and medicines such as thiazide diuretics, ACE inhibitors "
    "and calcium channel blockers. Blood pressure should be checked at least once a year."
)
FINANCE = (
    "In September 2018, the Company entered into new interest rate swap agreements to hedge the cash flows "
    "of $1.5 billion of the Company's Variable Rate Loans, with a fixed interest rate of 3.00%."
)

needs_ocr = pytest.mark.skipif(ocr.available() is not None, reason=f"OCR unavailable: {ocr.available()}")


def page_image(paragraphs: list[str], dpi: int = 150, *, font: str = "Times-Roman", crop: bool = True) -> tuple[Image.Image, str]:
    """A typeset page as a scanner sees it, and its text; cropped to the text so OCR stays quick."""
    pdf, reference = typeset(paragraphs, font=font)
    image = rasterise(pdf, dpi)
    if crop:
        image = image.crop((0, 0, image.width, int(image.height * 0.35)))
    image.info["dpi"] = (dpi, dpi)
    return image, reference


def encoded(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` pixels and holds none: a decompression bomb's header."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def load_image(data: bytes, name: str = "scan.png", **options) -> list:
    return image_loader.load(Path(name), data, options=LoadOptions(**options))


# -- pages: one text, each page's offset -----------------------------------------------------------------


def test_join_pages_records_where_each_page_starts():
    text, starts = join_pages(["First  page\n", "", "  Third page", "   "])
    assert text == "First page\n\nThird page"
    # The empty second page starts where the third page's text starts; a trailing empty page at the end.
    assert starts == [0, 12, 12, 22]
    assert text[starts[2] :].startswith("Third")
    assert [page_of(offset, starts) for offset in (0, 9, 12, 21)] == [1, 1, 3, 3]


def test_join_pages_offsets_survive_the_pipelines_second_cleaning():
    from ingest.cleaning import clean_text

    # One cleaning pass joins one hyphenated line break of a chain; join_pages cleans to the end so the
    # pipeline's own pass (clean_text on the joined text) cannot shift the offsets.
    text, starts = join_pages(["treat-\nment-\nplan", "page two"])
    assert clean_text(text) == text
    assert text[starts[1] :] == "page two"


def test_join_pages_of_nothing():
    assert join_pages([]) == ("", [])
    assert join_pages(["", " \n "]) == ("", [0, 0])


# -- the measure the benchmark uses ------------------------------------------------------------------------


def test_edit_distance_agrees_with_the_textbook_algorithm():
    import random

    def textbook(a: str, b: str) -> int:
        row = list(range(len(b) + 1))
        for i, ca in enumerate(a, 1):
            prev, row[0] = row[0], i
            for j, cb in enumerate(b, 1):
                prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
        return row[-1]

    rng = random.Random(7)
    for _ in range(300):
        a = "".join(rng.choice("ab c") for _ in range(rng.randrange(0, 70)))
        b = "".join(rng.choice("abcd ") for _ in range(rng.randrange(0, 70)))
        assert edit_distance(a, b) == textbook(a, b), (a, b)
    assert cer("The  cat\nsat", "The cat sat") == 0.0  # whitespace is normalised before comparing
    assert cer("abcd", "abed") == 0.25


# -- the engine ------------------------------------------------------------------------------------------


@pytest.fixture
def fresh_engine(monkeypatch):
    """The module as in a new process: no engine created yet, no reason recorded."""
    monkeypatch.setattr(ocr, "_engine", None)
    monkeypatch.setattr(ocr, "_unavailable", None)


def test_available_says_why_when_rapidocr_is_missing(fresh_engine, monkeypatch):
    monkeypatch.setitem(sys.modules, "rapidocr", None)  # `import rapidocr` now raises ImportError
    reason = ocr.available()
    assert reason is not None and reason.startswith("the rapidocr package is not installed (pip install 'rapidocr>=3.10')")
    assert ocr.available() == reason  # decided once per process
    with pytest.raises(LoadError, match=r"^OCR unavailable: the rapidocr package is not installed"):
        ocr.ocr_image(Image.new("L", (10, 10), 255))


def test_a_missing_model_file_is_reported_not_downloaded(fresh_engine, monkeypatch):
    monkeypatch.setitem(ocr.MODEL_FILES, "Rec.model_path", "PP-OCRv99_rec.onnx")
    assert re.fullmatch(
        r"rapidocr \S+ does not ship the model files PP-OCRv99_rec\.onnx \(pip install 'rapidocr>=3\.10'\)", ocr.available()
    )


def test_the_missing_engine_makes_the_image_loader_say_so(fresh_engine, monkeypatch):
    monkeypatch.setitem(sys.modules, "rapidocr", None)
    with pytest.raises(LoadError, match=r"^OCR unavailable: the rapidocr package is not installed"):
        load_image(encoded(Image.new("L", (40, 40), 255), "PNG"))


@needs_ocr
def test_the_engine_uses_the_packaged_models_and_never_the_network(fresh_engine, monkeypatch):
    import rapidocr
    from rapidocr.utils import download_file

    def refuse(*args, **kwargs):
        raise AssertionError("OCR tried to reach the network")

    monkeypatch.setattr(download_file.DownloadFile, "run", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    image, reference = page_image([FINANCE], 150)
    assert cer(reference, ocr.ocr_image(image)) < 0.02  # detector and recogniser both loaded and used
    packaged = Path(rapidocr.__file__).parent / "models"
    for section in ("Det", "Rec", "Cls"):
        assert Path(ocr._engine.cfg[section].model_path).parent == packaged


def test_pictures_are_read_as_gray_on_white_paper():
    ink = Image.new("RGBA", (4, 1), (0, 0, 0, 0))  # transparent black: the paper of many PNGs
    ink.putpixel((0, 0), (0, 0, 0, 255))
    assert ocr._gray(ink).tolist() == [[0, 255, 255, 255]]
    deep = Image.fromarray(np.array([[0, 32768, 65535]], dtype=np.uint16))  # a 16-bit scan
    assert ocr._gray(deep).tolist() == [[0, 127, 255]]
    assert ocr._gray(Image.new("RGB", (2, 1), "white")).tolist() == [[255, 255]]


@needs_ocr
def test_ocr_reads_a_rendered_page_with_its_words_and_paragraphs():
    image, reference = page_image([MEDICAL, FINANCE], 150)
    text = ocr.ocr_image(image)
    assert cer(reference, text) < 0.02, text
    for word in ("Hypertension", "thiazide diuretics", "$1.5 billion", "3.00%"):
        assert word in text
    assert text.count("\n\n") == 1  # the two paragraphs, and no other blank line
    assert "interest rate swap agreements" in " ".join(text.split())  # words kept apart


@needs_ocr
def test_ocr_reads_a_dusty_skewed_scan():
    image, reference = page_image([FINANCE, MEDICAL], 200, font="Helvetica")
    scan = add_noise(skew(image, 2.0), np.random.default_rng(1))
    scan.info["dpi"] = (200, 200)
    assert cer(reference, ocr.ocr_image(scan)) < 0.03


def two_columns_and_a_table() -> bytes:
    """A report page: a title across, two columns of running text, then a table of figures."""
    from reportlab.lib.utils import simpleSplit
    from reportlab.pdfgen.canvas import Canvas

    buf = io.BytesIO()
    canvas = Canvas(buf, pagesize=(612, 792))
    canvas.setFont("Helvetica-Bold", 16)
    canvas.drawString(72, 720, "Annual report: results")
    canvas.setFont("Times-Roman", 10)
    width = (612 - 144 - 24) / 2
    for x, text in ((72, MEDICAL), (72 + width + 24, FINANCE)):
        y = 690
        for line in simpleSplit(text, "Times-Roman", 10, width):
            canvas.drawString(x, y, line)
            y -= 13
    y = 560
    for label, *figures in [("", "2019", "2018"), ("Revenue", "1,234.5", "1,100.2"), ("Gross profit", "434.4", "350.2")]:
        canvas.drawString(72, y, label)
        canvas.drawRightString(400, y, figures[0])
        canvas.drawRightString(480, y, figures[1])
        y -= 16
    canvas.showPage()
    canvas.save()
    return buf.getvalue()


@needs_ocr
def test_columns_are_read_one_after_the_other_and_tables_row_by_row():
    image = rasterise(two_columns_and_a_table(), 200).crop((0, 0, 1700, 900))
    text = ocr.ocr_image(image)
    paragraphs = text.split("\n\n")
    assert paragraphs[0] == "Annual report: results"
    assert cer(MEDICAL, paragraphs[1]) < 0.02 and cer(FINANCE, paragraphs[2]) < 0.02  # not interleaved
    assert paragraphs[3].splitlines() == ["2019 2018", "Revenue 1,234.5 1,100.2", "Gross profit 434.4 350.2"]


@needs_ocr
def test_a_blank_image_gives_no_text():
    assert ocr.ocr_image(Image.new("RGB", (600, 400), "white")) == ""


# -- PDF pages, one at a time ----------------------------------------------------------------------------


def test_ocr_pdf_pages_renders_lazily_one_page_at_a_time(monkeypatch):
    pdf = document([typeset([f"Page number {n}. " + MEDICAL]) for n in range(1, 6)])
    rendered: list[weakref.ref] = []
    real_render = ocr._render

    def render(doc, index, dpi, max_image_pixels):
        pixels = real_render(doc, index, dpi, max_image_pixels)
        rendered.append(weakref.ref(pixels))
        return pixels

    monkeypatch.setattr(ocr, "_render", render)
    monkeypatch.setattr(ocr, "_get", lambda: None)
    monkeypatch.setattr(ocr, "_read", lambda engine, pixels: f"{pixels.shape[1]}x{pixels.shape[0]}")
    pages = ocr.ocr_pdf_pages(pdf, [4, 0, 2], dpi=72, max_image_pixels=10**7)
    assert rendered == []  # a generator: nothing rendered until asked
    seen = []
    for index, text in pages:
        seen.append(index)
        assert len(rendered) == len(seen)  # the next page is not rendered before this one is taken
        assert [ref() for ref in rendered] == [None] * len(seen)  # and this one's pixels are already freed
        assert text == "612x792"
    assert seen == [4, 0, 2]


def test_ocr_pdf_pages_can_stop_early(monkeypatch):
    pdf = document([typeset([MEDICAL]) for _ in range(4)])
    monkeypatch.setattr(ocr, "_get", lambda: None)
    monkeypatch.setattr(ocr, "_read", lambda engine, pixels: "text")
    pages = ocr.ocr_pdf_pages(pdf, [0, 1, 2, 3], dpi=72, max_image_pixels=10**7)
    assert next(pages) == (0, "text")
    pages.close()  # the document is released without rendering the rest


def test_a_page_over_the_pixel_limit_is_rendered_smaller(monkeypatch):
    pdf = document([typeset([MEDICAL])])
    shapes = []
    monkeypatch.setattr(ocr, "_get", lambda: None)
    monkeypatch.setattr(ocr, "_read", lambda engine, pixels: shapes.append(pixels.shape) or "")
    list(ocr.ocr_pdf_pages(pdf, [0], dpi=300, max_image_pixels=2_000_000))
    [(height, width)] = shapes
    assert 1_900_000 < width * height <= 2_000_000  # 8.5x11 in at 300 dpi would be 8.4 MP
    assert width / height == pytest.approx(612 / 792, abs=0.002)


def test_a_page_too_large_even_at_the_lowest_resolution_is_refused():
    with pytest.raises(LoadError) as err:
        ocr._render_scale(14400, 14400, 200, 60_000_000, 7)
    assert err.value.reason == (
        "page 7 is 200x200 inches: even at 72 dpi it is over the 60 MP limit (ASSISTANT_INGEST__MAX_IMAGE_MEGAPIXELS)"
    )


def test_a_damaged_pdf_is_reported(monkeypatch):
    monkeypatch.setattr(ocr, "_get", lambda: None)
    with pytest.raises(LoadError, match=r"^damaged PDF: cannot be rasterised for OCR"):
        list(ocr.ocr_pdf_pages(b"%PDF-1.4 not really", [0], dpi=100, max_image_pixels=10**7))


@needs_ocr
def test_ocr_pdf_pages_reads_each_page_in_order():
    pdf = document([typeset(["Glaucoma damages the optic nerve."]), typeset(["Gross profit rose to $42 million."])])
    pages = list(ocr.ocr_pdf_pages(pdf, [1, 0], dpi=150, max_image_pixels=60_000_000))
    assert [index for index, _ in pages] == [1, 0]
    assert "Gross profit rose to $42 million." in pages[0][1]
    assert "Glaucoma damages the optic nerve." in pages[1][1]


# -- the image loader ------------------------------------------------------------------------------------


def test_images_need_ocr_switched_on():
    with pytest.raises(LoadError) as err:
        load_image(encoded(Image.new("L", (10, 10), 255), "PNG"), ocr="never")
    assert err.value.reason == "image files need OCR, which is off (ASSISTANT_INGEST__OCR=never)"


@pytest.mark.parametrize("side", [20_000, 100_000])  # 100,000^2 is over Pillow's own bomb limit too
def test_a_huge_image_is_refused_from_its_header(side):
    with pytest.raises(LoadError) as err:
        load_image(png_header_only(side, side))
    assert err.value.reason == f"image is {side}x{side} pixels, over the 60 MP limit (ASSISTANT_INGEST__MAX_IMAGE_MEGAPIXELS)"


def test_the_pixel_limit_is_the_options():
    with pytest.raises(LoadError, match=r"^image is 100x50 pixels, over the 0.004 MP limit"):
        load_image(encoded(Image.new("L", (100, 50), 255), "PNG"), max_image_pixels=4000)


def test_bytes_that_are_no_image_are_damaged():
    with pytest.raises(LoadError) as err:
        load_image(b"this is a text file named .png", "notes.png")
    assert err.value.reason == "damaged image: not a PNG, JPEG or TIFF file"


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "TIFF"])
def test_a_truncated_image_is_damaged(fmt, monkeypatch):
    monkeypatch.setattr(ocr, "available", lambda: None)
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 300), dtype=np.uint8))
    data = encoded(noise, fmt)
    with pytest.raises(LoadError, match=r"^damaged image: "):
        load_image(data[: len(data) // 2])


def test_a_tiff_with_too_many_pages_is_refused():
    frames = [Image.new("L", (20, 20), 255) for _ in range(4)]
    data = encoded(frames[0], "TIFF", save_all=True, append_images=frames[1:])
    with pytest.raises(LoadError) as err:
        load_image(data, "fax.tif", max_pages=3)
    assert err.value.reason == "image has more than 3 pages (ASSISTANT_INGEST__MAX_PDF_PAGES)"


@needs_ocr
def test_an_image_without_text_is_refused():
    with pytest.raises(LoadError) as err:
        load_image(encoded(Image.new("RGB", (800, 600), "white"), "PNG"))
    assert err.value.reason == "OCR found no text in the image"


@needs_ocr
def test_a_multi_page_tiff_is_read_page_by_page_with_offsets():
    first, _ = page_image([MEDICAL])
    third, _ = page_image([FINANCE])
    blank = Image.new("L", first.size, 255)
    data = encoded(first, "TIFF", save_all=True, append_images=[blank, third], compression="tiff_lzw", dpi=(150, 150))
    progress: list[tuple[int, int]] = []
    [doc] = load_image(data, "statement.tiff", on_page=lambda done, total: progress.append((done, total)))
    assert progress == [(1, 3), (2, 3), (3, 3)]
    assert doc.title == "statement"
    meta = doc.metadata
    assert meta["pages"] == 3 and meta["ocr_pages"] == [1, 2, 3] and meta["empty_pages"] == [2]
    starts = meta["page_starts"]
    assert starts[0] == 0 and starts[1] == starts[2]  # the blank page 2 starts where page 3 does
    assert doc.text[starts[2] - 2 : starts[2]] == "\n\n"
    assert "Hypertension" in doc.text[: starts[2]] and "$1.5 billion" in doc.text[starts[2] :]
    assert page_of(doc.text.index("$1.5 billion"), starts) == 3


@needs_ocr
def test_a_sideways_phone_photo_is_read_upright():
    image, reference = page_image([FINANCE])
    sideways = image.convert("RGB").rotate(90, expand=True)  # stored turned, with EXIF saying so
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    [doc] = load_image(encoded(sideways, "JPEG", quality=90, exif=exif), "photo.jpg")
    assert cer(reference, doc.text) < 0.03


@needs_ocr
def test_a_transparent_png_is_read_on_white_paper():
    image, reference = page_image([MEDICAL])
    ink = Image.new("RGBA", image.size, (0, 0, 0, 0))
    ink.putalpha(Image.eval(image.convert("L"), lambda v: 255 - v))  # black text, transparent paper
    [doc] = load_image(encoded(ink, "PNG"), "logo.png")
    assert cer(reference, doc.text) < 0.03
