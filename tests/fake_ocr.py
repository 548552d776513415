"""A stand-in for ingest/ocr.py that answers at once and records what it was asked, for the loaders' tests
of when OCR runs (which pages, which images, with which limits); the real engine has its own tests
(tests/test_ocr.py) and a real-OCR case in tests/test_pdf_loader.py."""

from __future__ import annotations

import sys
import types


class FakeOcr:
    """``available()`` returns ``unavailable``; a PDF page reads as "OCR text of page N", an image as
    "OCR text of a WxH image". ``pdf_calls``: (pages, dpi, max_image_pixels) per ``ocr_pdf_pages`` call;
    ``images``: the sizes of the images read."""

    def __init__(self, unavailable: str | None = None):
        self.unavailable = unavailable
        self.pdf_calls: list[tuple[list[int], int, int]] = []
        self.images: list[tuple[int, int]] = []

    def available(self) -> str | None:
        return self.unavailable

    def ocr_image(self, image) -> str:
        self.images.append(image.size)
        return f"OCR text of a {image.size[0]}x{image.size[1]} image"

    def ocr_pdf_pages(self, data: bytes, pages: list[int], *, dpi: int, max_image_pixels: int):
        self.pdf_calls.append((list(pages), dpi, max_image_pixels))
        for index in pages:
            yield index, f"OCR text of page {index + 1}"

    def install(self, monkeypatch) -> FakeOcr:
        """Make ``from ingest import ocr`` return this for the test."""
        import ingest

        module = types.ModuleType("ingest.ocr")
        for name in ("available", "ocr_image", "ocr_pdf_pages"):
            setattr(module, name, getattr(self, name))
        monkeypatch.setitem(sys.modules, "ingest.ocr", module)
        monkeypatch.setattr(ingest, "ocr", module, raising=False)
        return self
