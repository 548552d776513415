"""File-format loaders: every format's happy path, every refusal reason, and the real shared data sets.

Fixtures are built in tmp_path (PDFs with reportlab, DOCX with python-docx); the real-data tests skip when
``../shared/data`` (beside the checkout) is absent, as it is on a user's machine.
"""

from __future__ import annotations

import io
import json
import pathlib
import random

import docx
import pytest
from reportlab.lib import pdfencrypt
from reportlab.pdfgen import canvas

from core.errors import LoadError
from core.types import LoadedDocument
from ingest.loaders import SUPPORTED_SUFFIXES, LoadOptions, load_file
from ingest.loaders.grid import read_grid
from tests.fake_ocr import FakeOcr

DATA = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"shared data sets not found at {DATA}")


def load(path: pathlib.Path, **kwargs) -> list[LoadedDocument]:
    docs = load_file(path, **kwargs)
    assert docs and all(isinstance(d, LoadedDocument) for d in docs)
    for doc in docs:
        json.dumps(doc.metadata)  # metadata must be JSON-serialisable
        assert doc.title.strip() and doc.text.strip()
    return docs


def reason(path: pathlib.Path, **kwargs) -> str:
    with pytest.raises(LoadError) as info:
        load_file(path, **kwargs)
    return info.value.reason


def write(tmp_path: pathlib.Path, name: str, content: str | bytes) -> pathlib.Path:
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    return path


# --- dispatch and shared checks ---------------------------------------------------------------------------


def test_supported_suffixes():
    assert SUPPORTED_SUFFIXES == frozenset(
        {".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx", ".csv", ".json", ".jsonl", ".xml"}
        | {".png", ".jpg", ".jpeg", ".tif", ".tiff"}
    )


def test_missing_unsupported_directory_and_empty(tmp_path):
    assert reason(tmp_path / "nope.txt") == "file does not exist"
    assert reason(write(tmp_path, "a.xyz", "hello")) == "unsupported file type '.xyz'"
    assert reason(write(tmp_path, "Makefile", "all:")) == "unsupported file type (no extension)"
    (tmp_path / "dir.txt").mkdir()
    assert reason(tmp_path / "dir.txt") == "is a directory, not a file"
    assert reason(write(tmp_path, "empty.md", b"")) == "empty file"
    assert reason(write(tmp_path, "blank.txt", " \n\t\n")) == "no text"


def test_suffix_is_case_insensitive(tmp_path):
    assert load(write(tmp_path, "NOTES.TXT", "hello"))[0].text == "hello"


def test_size_is_checked_before_reading(tmp_path, monkeypatch):
    big = tmp_path / "big.txt"
    with big.open("wb") as handle:
        handle.truncate(150 * 2**20)  # sparse: no disk used

    def no_reading(*args, **kwargs):
        raise AssertionError("the file was opened")

    monkeypatch.setattr(pathlib.Path, "open", no_reading)
    assert reason(big) == "file is 150.0 MB, over the 100 MB limit (ASSISTANT_INGEST__MAX_FILE_MB)"
    monkeypatch.undo()
    small = write(tmp_path, "small.txt", b"x" * (3 * 2**19))
    assert reason(small, max_bytes=2**20) == "file is 1.5 MB, over the 1 MB limit (ASSISTANT_INGEST__MAX_FILE_MB)"


def test_unexpected_parser_errors_become_load_errors(tmp_path, monkeypatch):
    import ingest.loaders as loaders

    def broken(path, data, **kwargs):
        raise ValueError("boom")

    monkeypatch.setitem(loaders._LOADERS, ".txt", broken)
    assert reason(write(tmp_path, "a.txt", "hello")) == "could not parse .txt file (ValueError: boom)"


def test_images_go_to_ocr_and_a_decompression_bomb_is_refused_from_its_header(tmp_path):
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    # A 200-byte PNG declaring 30,000 x 30,000 pixels (900 MP): refused before a pixel is decoded.
    ihdr = struct.pack(">IIBBBBB", 30_000, 30_000, 8, 0, 0, 0, 0)
    bomb = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    for name in ("bomb.png", "bomb.JPG", "bomb.tiff"):  # the bytes decide the format, the suffix the loader
        assert reason(write(tmp_path, name, bomb)) == (
            "image is 30000x30000 pixels, over the 60 MP limit (ASSISTANT_INGEST__MAX_IMAGE_MEGAPIXELS)"
        )
    assert reason(write(tmp_path, "small.png", bomb), options=LoadOptions(max_image_pixels=10**6)).endswith(
        "over the 1 MP limit (ASSISTANT_INGEST__MAX_IMAGE_MEGAPIXELS)"
    )
    assert reason(write(tmp_path, "off.png", bomb), options=LoadOptions(ocr="never")) == (
        "image files need OCR, which is off (ASSISTANT_INGEST__OCR=never)"
    )


def test_binary_file_is_refused(tmp_path):
    path = write(tmp_path, "image.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    assert reason(path) == "binary data, not text (NUL bytes)"


def test_invalid_utf8_and_fallback(tmp_path):
    path = write(tmp_path, "latin.txt", "caf\u00e9 ok".encode("cp1252"))
    assert reason(path) == ("not valid UTF-8 (byte 0xe9 at offset 3); set ASSISTANT_INGEST__ENCODING_FALLBACK=cp1252 to read it as cp1252")
    assert load(path, options=LoadOptions(encoding_fallback="cp1252"))[0].text == "caf\u00e9 ok"
    undefined = write(tmp_path, "undefined.txt", b"abc \x81")  # 0x81 is unassigned in cp1252
    assert reason(undefined, options=LoadOptions(encoding_fallback="cp1252")) == (
        "not valid UTF-8 (byte 0x81 at offset 4) and not valid cp1252 either"
    )
    assert reason(path, options=LoadOptions(encoding_fallback="no-such-codec")) == (
        "unknown encoding 'no-such-codec' in ASSISTANT_INGEST__ENCODING_FALLBACK"
    )


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-16-be", "utf-32"])
def test_bom_encodings(tmp_path, encoding):
    raw = "# Caf\u00e9 notes\nd\u00e9j\u00e0 vu\n".encode(encoding)
    if encoding == "utf-16-be":
        raw = b"\xfe\xff" + raw  # Python's utf-16-be codec writes no BOM
    doc = load(write(tmp_path, "notes.md", raw))[0]
    assert doc.text == "# Caf\u00e9 notes\nd\u00e9j\u00e0 vu\n"
    assert doc.title == "Caf\u00e9 notes"


# --- text and Markdown -----------------------------------------------------------------------------------


def test_markdown_title_skips_code_fences(tmp_path):
    content = "Intro line\n\n```bash\n# not a title\n```\n\n#  Dosage guide  ##\n\nTake *one* tablet.\n\n# Second\n"
    doc = load(write(tmp_path, "guide.md", content))[0]
    assert doc.title == "Dosage guide"
    assert doc.text == content  # raw: the pipeline cleans later
    assert doc.metadata == {}


def test_plain_text_title_is_stem(tmp_path):
    doc = load(write(tmp_path, "discharge-summary.txt", "Patient stable.\n#hashtag is not a heading\n"))[0]
    assert doc.title == "discharge-summary"
    assert load(write(tmp_path, "n.markdown", "# Heading\nbody"))[0].title == "Heading"


# --- HTML ------------------------------------------------------------------------------------------------

PAGE = """<!doctype html><html><head><title> Aspirin   dosing </title><style>p {color: red}</style></head>
<body><nav>Home | About</nav><header>Site banner</header>
<article><header><h1>Aspirin</h1></header>
<p>Adults take
   <b>75 mg</b> daily.</p><!-- hidden comment -->
<ul><li>With food</li><li>With water</li></ul>
<pre>
line one
    indented two
</pre>
<table><tr><th>Form</th><th>Strength</th></tr><tr><td>Tablet</td><td>75 mg</td></tr></table>
<div>First<br>Second</div><script>var tracking = 1;</script><noscript>Enable JS</noscript>
<template><p>templated</p></template></article><footer>Copyright 2024</footer></body></html>"""


def test_html_text_structure_and_title(tmp_path):
    doc = load(write(tmp_path, "aspirin.html", PAGE))[0]
    assert doc.title == "Aspirin dosing"
    assert doc.text == (
        "Aspirin\n\nAdults take 75 mg daily.\n\nWith food\nWith water\n\n"
        "line one\n    indented two\n\nForm | Strength\nTablet | Strength: 75 mg\n\nFirst\nSecond"
    )
    for dropped in ("Home", "Site banner", "color", "tracking", "Enable JS", "templated", "Copyright", "hidden"):
        assert dropped not in doc.text


def test_html_title_fallbacks(tmp_path):
    assert load(write(tmp_path, "a.htm", "<html><body><h1>Heading  one</h1><p>x</p></body></html>"))[0].title == "Heading one"
    assert load(write(tmp_path, "plain-page.html", "<p>only text</p>"))[0].title == "plain-page"
    assert reason(write(tmp_path, "empty.html", "<html><script>x()</script></html>")) == "no text"


def test_html_declared_charset(tmp_path):
    raw = '<html><head><meta charset="windows-1252"></head><body><p>caf\u00e9</p></body></html>'.encode("cp1252")
    assert load(write(tmp_path, "old.html", raw))[0].text == "caf\u00e9"


# --- PDF -------------------------------------------------------------------------------------------------


def make_pdf(pages: list[str], title: str | None = None, **canvas_args) -> bytes:
    buf = io.BytesIO()
    c = canvas.Canvas(buf, **canvas_args)
    if title is not None:
        c.setTitle(title)
    for text in pages:
        for i, line in enumerate(text.splitlines()):
            c.drawString(72, 750 - 16 * i, line)
        c.showPage()
    c.save()
    return buf.getvalue()


def test_pdf_pages_and_title(tmp_path):
    path = write(tmp_path, "report.pdf", make_pdf(["Page one text.\nSecond line.", "Page two text."], title="Quarterly Report"))
    (doc,) = load(path)
    assert doc.title == "Quarterly Report"
    assert doc.text == "Page one text.\nSecond line.\n\nPage two text."
    assert doc.metadata == {"pages": 2, "page_starts": [0, doc.text.index("Page two")], "ocr_pages": [], "empty_pages": []}


def test_pdf_placeholder_title_falls_back_to_stem(tmp_path):
    path = write(tmp_path, "annual-review.pdf", make_pdf(["Hello"]))  # reportlab writes /Title (untitled)
    assert load(path)[0].title == "annual-review"


def test_pdf_trailing_bytes_after_eof_are_accepted(tmp_path):
    path = write(tmp_path, "padded.pdf", make_pdf(["Hello padded"]) + b"\x00" * 2000)
    assert "Hello padded" in load(path)[0].text


def test_truncated_pdf_is_damaged(tmp_path):
    data = make_pdf([f"Page {i} of a long document." for i in range(10)])
    half = write(tmp_path, "half.pdf", data[: len(data) // 2])
    assert reason(half).startswith("damaged PDF: ")
    # pypdf would read this one silently (only the %%EOF marker is cut); we still call it damaged.
    cut_marker = write(tmp_path, "cut.pdf", data.rstrip()[:-2])
    assert reason(cut_marker) == "damaged PDF: no %%EOF marker at the end (file truncated?)"


def test_garbage_pdf_is_damaged(tmp_path):
    noise = random.Random(7).randbytes(4096)
    assert reason(write(tmp_path, "noise.pdf", noise)) == "damaged PDF: no %PDF- header (not a PDF file?)"
    fake = write(tmp_path, "fake.pdf", b"%PDF-1.4\n" + noise + b"\nstartxref\n9\n%%EOF\n")
    assert reason(fake).startswith("damaged PDF: ")


def test_encrypted_pdf(tmp_path):
    locked = make_pdf(["Secret"], encrypt=pdfencrypt.StandardEncryption("user-pw", ownerPassword="owner-pw"))
    assert reason(write(tmp_path, "locked.pdf", locked)).startswith("encrypted PDF")
    # Encrypted only against copying, with an empty user password: readable, so read it.
    open_pdf = make_pdf(["Readable"], encrypt=pdfencrypt.StandardEncryption("", ownerPassword="owner-pw"))
    assert "Readable" in load(write(tmp_path, "restricted.pdf", open_pdf))[0].text


def test_pdf_without_text(tmp_path):
    buf = io.BytesIO()
    c = canvas.Canvas(buf)
    c.rect(100, 100, 200, 200, fill=1)  # a drawing, like a scanned page: no text layer
    c.showPage()
    c.save()
    # With OCR off (tests/test_pdf_loader.py has the OCR cases).
    assert reason(write(tmp_path, "scan.pdf", buf.getvalue()), options=LoadOptions(ocr="never")) == (
        "PDF has no extractable text (scanned images? set ASSISTANT_INGEST__OCR=auto to read them with OCR)"
    )


# --- DOCX ------------------------------------------------------------------------------------------------


def make_docx(build) -> bytes:
    document = docx.Document()
    build(document)
    buf = io.BytesIO()
    document.save(buf)
    return buf.getvalue()


def _report(document):
    document.add_heading("Medication plan", level=1)
    document.add_paragraph("Before the table.")
    table = document.add_table(rows=3, cols=3)
    for row, cells in zip(table.rows, [["Drug", "Dose", "Notes"], ["Aspirin", "75 mg", ""], ["Metformin", "500 mg", "with food"]]):
        for cell, value in zip(row.cells, cells):
            cell.text = value
    document.add_paragraph("After the table.")


def test_docx_body_order_tables_and_heading_title(tmp_path):
    (doc,) = load(write(tmp_path, "plan.docx", make_docx(_report)))
    assert doc.title == "Medication plan"
    assert doc.text == (
        "Medication plan\n\nBefore the table.\n\n"
        "Drug: Aspirin; Dose: 75 mg\nDrug: Metformin; Dose: 500 mg; Notes: with food\n\n"
        "After the table."
    )
    assert doc.metadata == {}


def test_docx_title_from_properties_else_stem(tmp_path):
    def titled(document):
        _report(document)
        document.core_properties.title = "Plan for Mr X"

    assert load(write(tmp_path, "a.docx", make_docx(titled)))[0].title == "Plan for Mr X"
    no_heading = make_docx(lambda d: d.add_paragraph("Just a note."))
    assert load(write(tmp_path, "short-note.docx", no_heading))[0].title == "short-note"


def test_docx_merged_cells_appear_once(tmp_path):
    def merged(document):
        table = document.add_table(rows=3, cols=3)
        table.cell(0, 0).text = "Item"
        table.cell(0, 1).merge(table.cell(0, 2)).text = "Period"
        for cell, value in zip(table.rows[1].cells, ["Rent", "2019", "2020"]):
            cell.text = value
        table.cell(2, 0).merge(table.cell(2, 1)).text = "Total"
        table.cell(2, 2).text = "12"

    text = load(write(tmp_path, "m.docx", make_docx(merged)))[0].text
    assert text == "Item: Rent; Period: 2019; Period: 2020\nItem: Total; Period: 12"


def test_corrupt_docx(tmp_path):
    data = make_docx(_report)
    assert reason(write(tmp_path, "cut.docx", data[: len(data) // 2])).startswith("not a valid DOCX file: ")
    assert reason(write(tmp_path, "text.docx", "plain text")).startswith("not a valid DOCX file: ")
    ole = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 512
    assert reason(write(tmp_path, "old.docx", ole)) == ("not a valid DOCX file: old binary Word .doc format; save it as .docx")


def _png(size=(400, 120)) -> io.BytesIO:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", size, 200).save(buf, format="PNG")
    buf.seek(0)
    return buf


def _pictures_only(document, sizes=((400, 120), (300, 90))):
    for size in sizes:
        document.add_picture(_png(size))


def test_docx_of_images_alone_is_read_by_ocr(tmp_path, monkeypatch):
    ocr = FakeOcr().install(monkeypatch)
    (doc,) = load(write(tmp_path, "scanned.docx", make_docx(_pictures_only)))
    assert doc.text == "OCR text of a 400x120 image\n\nOCR text of a 300x90 image"
    assert doc.metadata == {"ocr_images": 2}
    assert ocr.images == [(400, 120), (300, 90)]


def test_docx_of_images_alone_without_ocr_says_why(tmp_path, monkeypatch):
    FakeOcr(unavailable="the rapidocr package is not installed").install(monkeypatch)
    path = write(tmp_path, "scanned.docx", make_docx(_pictures_only))
    assert reason(path) == "DOCX has no text (only images) and OCR is unavailable: the rapidocr package is not installed"
    assert reason(path, options=LoadOptions(ocr="never")) == (
        "DOCX has no text (only images; OCR is off: set ASSISTANT_INGEST__OCR=auto to read them)"
    )
    assert reason(path, options=LoadOptions(max_image_pixels=10_000)) == (
        "DOCX has no text (only images) and OCR is unavailable: the rapidocr package is not installed"
    )
    FakeOcr().install(monkeypatch)
    assert reason(path, options=LoadOptions(max_image_pixels=10_000)) == (
        "DOCX has no text (only images, over the 0.01 MP limit: ASSISTANT_INGEST__MAX_IMAGE_MEGAPIXELS)"
    )


def test_docx_images_beside_text_are_read_only_with_ocr_always(tmp_path, monkeypatch):
    ocr = FakeOcr().install(monkeypatch)

    def figure(document):
        document.add_paragraph("Before the figure.")
        document.add_picture(_png())
        document.add_paragraph("After the figure.")

    path = write(tmp_path, "figure.docx", make_docx(figure))
    assert load(path)[0].text == "Before the figure.\n\nAfter the figure."  # auto: the document has text
    assert ocr.images == []
    (doc,) = load(path, options=LoadOptions(ocr="always"))
    assert doc.text == "Before the figure.\n\nOCR text of a 400x120 image\n\nAfter the figure."  # where it is drawn
    assert doc.metadata == {"ocr_images": 1}


def test_real_ocr_reads_a_docx_of_a_pasted_scan(tmp_path):
    from PIL import Image, ImageDraw, ImageFont

    from ingest import ocr

    if ocr.available() is not None:
        pytest.skip(f"OCR unavailable here: {ocr.available()}")
    image = Image.new("L", (900, 120), 255)
    ImageDraw.Draw(image).text((20, 30), "Aspirin 75 mg daily", fill=0, font=ImageFont.load_default(size=48))
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    buf.seek(0)
    (doc,) = load(write(tmp_path, "scan.docx", make_docx(lambda d: d.add_picture(buf))))
    assert "Aspirin 75 mg daily" in doc.text


# --- CSV -------------------------------------------------------------------------------------------------


def test_csv_one_document_per_row(tmp_path):
    content = 'ticker,question,answer\nNVDA,"What does it make?","GPUs, mostly"\nAAPL,Revenue?,\n\n,,\nMSFT,"Multi\nline",yes\n'
    docs = load(write(tmp_path, "qa.csv", content))
    assert [d.title for d in docs] == ["qa row 1", "qa row 2", "qa row 5"]
    assert docs[0].text == "ticker: NVDA\nquestion: What does it make?\nanswer: GPUs, mostly"
    assert docs[1].text == "ticker: AAPL\nquestion: Revenue?"  # empty values skipped
    assert docs[2].text == "ticker: MSFT\nquestion: Multi\nline\nanswer: yes"
    assert [d.metadata for d in docs] == [{"row": 1}, {"row": 2}, {"row": 5}]


def test_csv_sniffs_semicolons(tmp_path):
    docs = load(write(tmp_path, "eu.csv", "name;amount\nrent;1.200,50\nfood;300,00\n"))
    assert [d.text for d in docs] == ["name: rent\namount: 1.200,50", "name: food\namount: 300,00"]


def test_csv_refusals(tmp_path):
    assert reason(write(tmp_path, "header.csv", "a,b,c\n")) == "no data rows"
    assert reason(write(tmp_path, "cut.csv", 'a,b\n1,"unterminated\n')) == ("invalid CSV at line 2: unexpected end of data")


# --- JSON / JSONL ----------------------------------------------------------------------------------------


def test_beir_corpus(tmp_path):
    lines = [
        {"_id": "MED-10", "title": "Statins", "text": "Statin use and survival.", "metadata": {"url": "u"}},
        {"_id": "MED-11", "text": "No title here."},
    ]
    docs = load(write(tmp_path, "corpus.jsonl", "\n".join(json.dumps(r) for r in lines) + "\n\n"))
    assert [(d.title, d.text, d.metadata) for d in docs] == [
        ("Statins", "Statin use and survival.", {"beir_id": "MED-10", "url": "u"}),
        ("MED-11", "No title here.", {"beir_id": "MED-11"}),
    ]


def test_generic_jsonl(tmp_path):
    content = (
        '{"title": "Note A", "content": "Alpha text", "author": "kim", "score": 3, "tags": ["x"]}\n'
        "\n"
        '{"id": 7, "fields": {"kind": "memo", "flag": true}, "items": [1, 2]}\n'
        '"a bare string"\n'
    )
    docs = load(write(tmp_path, "notes.jsonl", content))
    assert (docs[0].title, docs[0].text, docs[0].metadata) == ("Note A", "Alpha text", {"author": "kim", "score": 3, "line": 1})
    assert (docs[1].title, docs[1].text, docs[1].metadata) == (
        "notes line 3",
        "id: 7\nfields.kind: memo\nfields.flag: true\nitems: 1, 2",
        {"line": 3},
    )
    assert (docs[2].title, docs[2].text) == ("notes line 4", "a bare string")


def test_broken_jsonl_line(tmp_path):
    path = write(tmp_path, "bad.jsonl", '{"text": "ok"}\n\n{"text": "broken",}\n')
    assert reason(path) == "invalid JSON at line 3, column 19: Expecting property name enclosed in double quotes"


def test_json_list_object_and_errors(tmp_path):
    docs = load(write(tmp_path, "items.json", json.dumps([{"name": "A", "body": "first"}, {"q": "x?", "a": "y"}])))
    assert [(d.title, d.text, d.metadata) for d in docs] == [("A", "first", {"item": 1}), ("items item 2", "q: x?\na: y", {"item": 2})]
    (doc,) = load(write(tmp_path, "config.json", '{"service": {"name": "api", "port": 8080}}'))
    assert (doc.title, doc.text) == ("config", "service.name: api\nservice.port: 8080")
    assert reason(write(tmp_path, "bad.json", '{\n  "a": 1\n  "b": 2\n}')) == ("invalid JSON at line 3, column 3: Expecting ',' delimiter")
    assert reason(write(tmp_path, "empty.json", "[]")) == "no text"
    assert reason(write(tmp_path, "deep.json", "[" * 100_000 + "]" * 100_000)) == "JSON nested too deeply"


TATQA_REPORT = {
    "table": {
        "uid": "3ffd9053-aaaa-bbbb",
        "table": [
            ["", "", "Years Ended September 30,", ""],
            ["", "2019", "2018", "2017"],
            ["Current assets:", "", "", ""],
            ["Revenue", "$1,234", "1,100", ""],
            ["Other", "44.1", "56.7", "70.8"],
            ["", "$1,278.1", "1,156.7", "70.8"],
            ["Total current assets", "1,300", "1,200", "1,000"],
        ],
    },
    "paragraphs": [{"uid": "p-1", "order": 1, "text": "Sales grew."}, {"uid": "p-2", "order": 2, "text": "Costs fell."}],
    "questions": [{"uid": "q", "question": "What were sales?", "answer": ["$1,234"]}],
}


def test_tatqa_report(tmp_path):
    docs = load(write(tmp_path, "tatqa.json", json.dumps([TATQA_REPORT])))
    assert [d.title for d in docs] == ["Report 3ffd9053 table", "Report 3ffd9053 paragraph 1", "Report 3ffd9053 paragraph 2"]
    table = docs[0]
    assert table.metadata == {"report_uid": "3ffd9053-aaaa-bbbb", "kind": "table"}
    y = "Years Ended September 30,"
    assert table.text.splitlines() == [
        f"{y} 2019 | {y} 2018 | {y} 2017",
        f"Revenue (Current assets) | {y} 2019: $1,234 | {y} 2018: 1,100",
        f"Other (Current assets) | {y} 2019: 44.1 | {y} 2018: 56.7 | {y} 2017: 70.8",
        f"Total (Current assets) | {y} 2019: $1,278.1 | {y} 2018: 1,156.7 | {y} 2017: 70.8",
        f"Total current assets | {y} 2019: 1,300 | {y} 2018: 1,200 | {y} 2017: 1,000",
    ]
    assert docs[2].metadata == {"report_uid": "3ffd9053-aaaa-bbbb", "kind": "paragraph", "paragraph_uid": "p-2", "order": 2}
    assert all("What were sales" not in d.text for d in docs)  # questions are evaluation data


def test_tatqa_header_heuristics():
    # Unit label in the first cell of the last header row; two spans; text-only section row; stacked header.
    table = [
        ["", "Domestic", "", "International", ""],
        ["(In millions)", "2019", "2018", "2019", "2018"],
        ["", "Operations Data:", "", "", ""],
        ["Discount rate", "4.00%", "3.75%", "1.90%", ""],
        ["", "", "Later", "", ""],
        ["", "2017", "2016", "2017", "2016"],
        ["Discount rate", "4.10%", "", "", "2.00%"],
    ]
    assert read_grid(table)[0].splitlines() == [
        "(In millions) | Domestic 2019 | Domestic 2018 | International 2019 | International 2018",
        "Discount rate (Operations Data) | Domestic 2019: 4.00% | Domestic 2018: 3.75% | International 2019: 1.90%",
        "Later 2017 | Later 2016 | Later 2017 | Later 2016",
        "Discount rate | Later 2017: 4.10% | Later 2016: 2.00%",
    ]
    # A table without numbers: the first row is the header.
    assert read_grid([["Name", "Role"], ["Kim", "CEO"], ["Lee", ""]])[0].splitlines() == ["Name | Role", "Kim | Role: CEO"]


# --- XML -------------------------------------------------------------------------------------------------

MEDQUAD = """<?xml version="1.0" encoding="UTF-8"?>
<Document id="0000001" source="GHR" url="https://ghr.nlm.nih.gov/condition/x">
<Focus>X syndrome</Focus>
<FocusAnnotations><UMLS><CUIs><CUI>C0001</CUI></CUIs></UMLS></FocusAnnotations>
<QAPairs>
  <QAPair pid="1"><Question qid="0000001-1" qtype="information">What is (are) X syndrome ?</Question>
    <Answer>  X syndrome is rare &amp; it&apos;s genetic.  </Answer></QAPair>
  <QAPair pid="2"><Question qid="0000001-2" qtype="treatment">What are the treatments for X syndrome ?</Question>
    <Answer>
    </Answer></QAPair>
  <QAPair pid="3"><Question qid="0000001-3" qtype="inheritance">Is X syndrome inherited ?</Question>
    <Answer>Autosomal dominant.</Answer></QAPair>
</QAPairs></Document>"""


def test_medquad_pairs(tmp_path):
    docs = load(write(tmp_path, "0000001.xml", MEDQUAD))
    assert [(d.title, d.text) for d in docs] == [
        ("What is (are) X syndrome ?", "X syndrome is rare & it's genetic."),
        ("Is X syndrome inherited ?", "Autosomal dominant."),
    ]
    assert docs[0].metadata == {
        "url": "https://ghr.nlm.nih.gov/condition/x",
        "focus": "X syndrome",
        "medquad_id": "0000001",
        "qid": "0000001-1",
        "qtype": "information",
        "source_name": "GHR",
    }


def test_medquad_lowercase_layout(tmp_path):
    content = (
        '<doc docid="0000007" corpus="NINDS" url="http://n/x"><doctitle-focus>Holmes-Adie</doctitle-focus>'
        '<qaPairs><pair pid="1"><question qid="0000007-1" qtype="information">what is it ?</question>'
        "<answer>A disorder.</answer></pair></qaPairs></doc>"
    )
    (doc,) = load(write(tmp_path, "0000007.xml", content))
    assert (doc.title, doc.text) == ("what is it ?", "A disorder.")
    assert doc.metadata == {
        "url": "http://n/x",
        "focus": "Holmes-Adie",
        "medquad_id": "0000007",
        "qid": "0000007-1",
        "qtype": "information",
        "source_name": "NINDS",
    }


def test_medquad_without_answers(tmp_path):
    content = (
        '<Document id="1" source="MPlusDrugs" url="u"><Focus>Drug</Focus><QAPairs><QAPair pid="1">'
        '<Question qid="1-1" qtype="usage">How to use Drug ?</Question><Answer/></QAPair></QAPairs></Document>'
    )
    assert reason(write(tmp_path, "drug.xml", content)) == "no answered question/answer pairs"


def test_generic_xml(tmp_path):
    content = "<?xml version='1.0'?><feed><title>Lab feed</title><entry><b>HbA1c</b> 6.1 %<!-- c --></entry></feed>"
    (doc,) = load(write(tmp_path, "feed.xml", content))
    assert (doc.title, doc.text) == ("Lab feed", "Lab feed\nHbA1c\n6.1 %")
    (untitled,) = load(write(tmp_path, "plain.xml", "<r><a>one</a><a>two</a></r>"))
    assert (untitled.title, untitled.text) == ("plain", "one\ntwo")


def test_malformed_xml(tmp_path):
    assert reason(write(tmp_path, "bad.xml", "<a><b>text</a>")) == (
        "malformed XML: Opening and ending tag mismatch: b line 1 and a, line 1, column 15"
    )


def test_xml_entities_are_not_expanded(tmp_path):
    secret = write(tmp_path, "secret.txt", "TOP-SECRET")
    content = (
        f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY ext SYSTEM "file://{secret}">'
        '<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        "<r>before &ext; &b; after</r>"
    )
    text = load(write(tmp_path, "evil.xml", content))[0].text
    assert "TOP-SECRET" not in text and "aaaa" not in text
    assert "before" in text and "after" in text


# --- real shared data --------------------------------------------------------------------------------------

MEDQUAD_SOURCES = {
    "1_CancerGov_QA": "CancerGov",
    "2_GARD_QA": "GARD",
    "3_GHR_QA": "GHR",
    "4_MPlus_Health_Topics_QA": "MPlusHealthTopics",
    "5_NIDDK_QA": "NIDDK",
    "6_NINDS_QA": "NINDS",
    "7_SeniorHealth_QA": "NIHSeniorHealth",
    "8_NHLBI_QA_XML": "NHLBI",
    "9_CDC_QA": "CDC",
}


@needs_data
@pytest.mark.parametrize("folder", sorted(MEDQUAD_SOURCES))
def test_real_medquad_file_per_folder(folder):
    path = sorted((DATA / "medquad" / folder).glob("*.xml"))[0]
    docs = load(path)
    for doc in docs:
        assert doc.metadata["source_name"] == MEDQUAD_SOURCES[folder]
        assert doc.metadata["medquad_id"] and doc.metadata["qid"].startswith(doc.metadata["medquad_id"])
        assert doc.metadata["url"].startswith("http") and doc.metadata["focus"] and doc.metadata["qtype"]


@needs_data
@pytest.mark.parametrize("name, layout_count", [("6_NINDS_QA/0000007.xml", 4), ("9_CDC_QA/0000397.xml", 5)])
def test_real_medquad_other_layouts(name, layout_count):
    docs = load(DATA / "medquad" / name)
    assert len(docs) == layout_count
    assert all(d.metadata["medquad_id"] == pathlib.Path(name).stem for d in docs)


@needs_data
@pytest.mark.slow
def test_real_medquad_answered_pair_total():
    total = lowercase_layout = 0
    for path in sorted((DATA / "medquad").rglob("*.xml")):
        try:
            n = len(load_file(path))
        except LoadError as err:
            assert err.reason == "no answered question/answer pairs", (path, err.reason)
            continue
        total += n
        if b"<qaPairs>" in path.read_bytes():
            lowercase_layout += n
    # 16,407 answered <QAPair>s (the figure in PROVENANCE.md) plus 16 answered <pair>s in the 4 NINDS files
    # with the lower-case <doc><qaPairs><pair> layout, which the provenance count did not include.
    assert total - lowercase_layout == 16_407
    assert lowercase_layout == 16


@needs_data
def test_real_beir_corpus():
    docs = load(DATA / "nfcorpus" / "corpus.jsonl")
    assert len(docs) == 3633
    assert docs[0].metadata["beir_id"] == "MED-10"
    assert docs[0].title.startswith("Statin Use and Breast Cancer Survival")


@needs_data
def test_real_tatqa():
    docs = load(DATA / "tatqa" / "tatqa_dataset_dev.json")
    tables = {d.metadata["report_uid"][:8]: d for d in docs if d.metadata["kind"] == "table"}
    assert len(tables) == 278 and len(docs) - len(tables) == 1356
    fiscal = "Fiscal {} (in millions)"
    segments = tables["53474060"].text.splitlines()
    assert segments[0] == " | ".join(fiscal.format(y) for y in (2019, 2018, 2017))
    assert segments[1] == (
        "Automotive (Transportation Solutions) | "
        f"{fiscal.format(2019)}: $ 5,686 | {fiscal.format(2018)}: $ 6,092 | "
        f"{fiscal.format(2017)}: $ 5,228"
    )
    assert segments[-1].startswith("Total | Fiscal 2019 (in millions): $ 13,448")
    balance = tables["e9a946ce"].text.splitlines()
    assert balance[:2] == ["As of | 2019 | 2018", "Cash and equivalents (Assets) | 2019: $130 | 2018: $91"]
    assert "Current debt (Liabilities) | 2019: 696 | 2018: 20" in balance
    units = tables["32edf644"].text.splitlines()  # unit label in the first cell of the header row
    assert units[0].startswith("(in millions, except per share amounts) | As of and for the Year Ended May 31, 2019 |")
    assert units[1].startswith("Total revenues (Consolidated Statements of Operations Data) | ")
    paragraph = next(d for d in docs if d.metadata["kind"] == "paragraph")
    assert paragraph.title == "Report 3ffd9053 paragraph 1" and paragraph.metadata["order"] == 1


@needs_data
def test_real_financial_csv():
    path = DATA / "financial-qa-10k" / "Financial-QA-10k.csv"
    docs = load(path)
    assert len(docs) == 7000
    assert docs[0].text.startswith("question: ") and docs[0].metadata == {"row": 1}


def test_docx_and_csv_tables_are_kept_as_cells_for_computations(tmp_path):
    def figures(document):
        table = document.add_table(rows=3, cols=3)
        for row, cells in zip(
            table.rows, [["(In thousands)", "2019", "2018"], ["Revenue", "$1,496", "$1,334"], ["Costs", "(620)", "(580)"]]
        ):
            for cell, value in zip(row.cells, cells):
                cell.text = value

    (doc,) = load(write(tmp_path, "figures.docx", make_docx(figures)))
    (table,) = doc.tables
    assert table.scale == "thousand"
    assert [(c.row, c.column, c.value) for r in table.rows for c in r.cells] == [
        ("Revenue", "2019", 1496.0),
        ("Revenue", "2018", 1334.0),
        ("Costs", "2019", -620.0),
        ("Costs", "2018", -580.0),
    ]
    assert all(row.line in doc.text.splitlines() for row in table.rows)

    rows = load(write(tmp_path, "figures.csv", "item,2019,2018\nRevenue,1496,1334\nNote,,\n"))
    (revenue,) = rows[0].tables
    assert [(c.row, c.column, c.value) for c in revenue.rows[0].cells] == [("Revenue", "2019", 1496.0), ("Revenue", "2018", 1334.0)]
    assert revenue.rows[0].line == rows[0].text
    assert rows[1].tables == ()  # a label without values is no table


FIGURES_HTML = """<html><body><h1>Results</h1><p>Amounts (in millions)</p>
<table><caption>Revenue by segment</caption>
<thead><tr><th rowspan="2">Segment</th><th colspan="2">Year ended December 31</th></tr>
<tr><th>2019</th><th>2018</th></tr></thead>
<tbody><tr><td>Cloud</td><td>$1,496</td><td>1,334</td></tr><tr><td>Devices</td><td>(12)</td><td>40</td></tr>
<tr><td rowspan="2">Services</td><td>7</td><td>5</td></tr><tr><td>8</td><td>6</td></tr></tbody></table>
<p>After the table.</p>
<table><tr><td><table><tr><td>left</td><td>nested</td></tr></table></td><td>side</td></tr></table>
</body></html>"""


def test_html_tables_carry_headers_and_are_kept_as_cells(tmp_path):
    (doc,) = load(write(tmp_path, "figures.html", FIGURES_HTML))
    lines = doc.text.splitlines()
    # The caption stays in the text; every row line names its label and the spanning header with the year.
    assert "Revenue by segment" in lines
    assert "Cloud | Year ended December 31 2019: $1,496 | Year ended December 31 2018: 1,334" in lines
    (table,) = doc.tables  # the layout table (a table inside a table) is text only
    assert table.scale == "million"  # stated in the paragraph just before the table
    assert [(c.row, c.column.split()[-1], c.value) for r in table.rows for c in r.cells] == [
        ("Cloud", "2019", 1496.0),
        ("Cloud", "2018", 1334.0),
        ("Devices", "2019", -12.0),
        ("Devices", "2018", 40.0),
        ("Services", "2019", 7.0),  # a row label spanning two rows labels both
        ("Services", "2018", 5.0),
        ("Services", "2019", 8.0),
        ("Services", "2018", 6.0),
    ]
    assert all(row.line in lines for row in table.rows)
    assert "left | nested | side" in lines and doc.text.endswith("After the table.\n\nleft | nested | side")


def test_html_table_cells_answer_a_computation(tmp_path):
    from compute.computation import SourceTable, compute

    (doc,) = load(write(tmp_path, "figures.html", FIGURES_HTML))
    result = compute("What was the percentage change in Cloud revenue from 2018 to 2019?", [SourceTable(doc.tables[0], ((1, doc.text),))])
    assert result is not None and result.error is None
    assert round(result.value, 2) == 12.14  # (1,496 - 1,334) / 1,334
