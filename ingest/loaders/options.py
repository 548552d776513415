"""What a loader may be told beyond the file's bytes: the user's settings that change how a format is read
(``ASSISTANT_INGEST__*``), and a callback for progress inside one long file (pages read by OCR)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

OcrMode = Literal["auto", "always", "never"]


@dataclass(frozen=True)
class LoadOptions:
    encoding_fallback: str | None = None  # read non-UTF-8 text in this encoding instead of skipping it
    # auto: OCR only the pages (and images) without a text layer; always: every PDF page; never: no OCR.
    ocr: OcrMode = "auto"
    ocr_dpi: int = 200  # PDF pages are rasterised at this resolution before OCR
    max_pages: int = 2000  # a PDF (or multi-page TIFF) with more pages is refused: a "PDF bomb"
    max_image_pixels: int = 60_000_000  # an image (or rasterised page) larger than this is refused
    # Called as on_page(done, total) while a long file is read page by page (OCR), for progress bars.
    on_page: Callable[[int, int], None] | None = None
