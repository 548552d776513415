"""Text from pictures of text: scanned PDF pages and image files, read by RapidOCR on the CPU.

Why RapidOCR (PP-OCRv6 small models on ONNX Runtime): on real MedQuAD and TAT-QA paragraphs typeset and
scanned at 150, 200 and 300 dpi, clean, noisy and skewed 1-3 degrees (bench/ocr.py, 36 pages), its
character error rate was at most 0.2 % on every page, word spacing kept. Tesseract 5.3 read pages about
twice as fast on two cores at 150-200 dpi, but lost most of a clean page skewed by 2 degrees (74 % CER) and
needed a noise filter that still left 5.5 % on a dusty 150 dpi page; it is also a system package, where
RapidOCR is one pip dependency whose wheel carries its models.

Nothing is downloaded, ever: RapidOCR fetches models from the network when it is given only a model folder
(and again when a file there fails its checksum), so every model is passed by its path inside the installed
package. The engine is created once per process, on first use, and reads one page at a time: ONNX Runtime
already spreads a page over every core, and pages side by side would only multiply the memory.

``available()`` says why OCR cannot run; ``ocr_image`` reads one image; ``ocr_pdf_pages`` rasterises a PDF's
pages one at a time (render, read, release), so a 300-page scan never holds more than one page image.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from core.errors import LoadError

from .ocr_layout import layout

# The model files inside the rapidocr wheel (3.10): text detection, recognition (multilingual Latin and
# Chinese, spaces included) and the line-angle classifier, which stays off (below) but gets a path so that
# switching it on could never trigger a download either.
MODEL_FILES = {
    "Det.model_path": "PP-OCRv6_det_small.onnx",
    "Rec.model_path": "PP-OCRv6_rec_small.onnx",
    "Cls.model_path": "ch_ppocr_mobile_v2.0_cls_mobile.onnx",
}
_SETTINGS: dict[str, Any] = {
    "Global.log_level": "error",  # RapidOCR logs every model it loads at info level
    # The 180-degree line classifier flipped upright English lines: 4-13 % CER with it on, under 0.1 % off.
    "Global.use_cls": False,
    # Find lines on the page scaled to 960 pixels on its long side: 0.3-0.8 s a page instead of 1.5-3.5 s by
    # default (the whole page), the same error rate, 7 pt print included. Lines are then read from the page itself
    # (which RapidOCR scales to at most 2000 pixels on its long side: about 180 dpi on A4 or Letter).
    "Det.limit_type": "max",
    "Det.limit_side_len": 960,
}
# A page too large for max_image_pixels at the asked resolution is rendered at a lower one, down to this;
# below it body text is unreadable, so such a page is refused instead.
MIN_DPI = 72
_PIXELS_SETTING = "ASSISTANT_INGEST__MAX_IMAGE_MEGAPIXELS"
_INSTALL_HINT = "pip install 'rapidocr>=3.10'"

_lock = threading.Lock()  # creating the engine
_reading = threading.Lock()  # one page at a time (see the module docstring)
_engine: Any = None
_unavailable: str | None = None
# pdfium is not thread-safe, not even across documents: every call into it in this module holds this lock,
# and any other code calling pypdfium2 in this process should hold it too.
PDFIUM_LOCK = threading.Lock()


def _create() -> Any:
    """A RapidOCR engine on the packaged models, or LoadError saying what is missing."""
    try:
        import rapidocr
    except ImportError as err:
        raise LoadError(f"the rapidocr package is not installed ({_INSTALL_HINT}): {err}") from None
    models = Path(rapidocr.__file__).parent / "models"
    missing = [name for name in MODEL_FILES.values() if not (models / name).is_file()]
    if missing:
        version = getattr(rapidocr, "__version__", "?")
        raise LoadError(f"rapidocr {version} does not ship the model files {', '.join(missing)} ({_INSTALL_HINT})")
    params = {**_SETTINGS, **{key: str(models / name) for key, name in MODEL_FILES.items()}}
    try:
        engine = rapidocr.RapidOCR(params=params)
        engine(np.full((32, 32), 255, dtype=np.uint8))  # loads the detector now, so a failure shows here
    except Exception as err:  # noqa: BLE001 - ONNX Runtime and OmegaConf raise their own types
        raise LoadError(f"the OCR engine does not start ({type(err).__name__}: {err})") from None
    return engine


def _get() -> Any:
    """The engine, created once per process (lazily: importing this module loads nothing)."""
    global _engine, _unavailable
    if _engine is not None:
        return _engine
    with _lock:
        if _engine is None and _unavailable is None:
            try:
                _engine = _create()
            except LoadError as err:
                _unavailable = err.reason
        if _engine is None:
            raise LoadError(f"OCR unavailable: {_unavailable}")
        return _engine


def available() -> str | None:
    """None when OCR works here, else why not (e.g. "the rapidocr package is not installed (...)")."""
    try:
        _get()
    except LoadError:
        return _unavailable
    return None


def _gray(image: Image.Image) -> np.ndarray:
    """The image as 8-bit gray on white paper, the form the engine reads (it makes BGR of it itself)."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # Transparent pixels are often black in the raw data; put the picture on white paper as a viewer does.
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    elif image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        # 16-bit scans: Pillow's convert("L") would clip everything above 255 to white.
        values = np.asarray(image, dtype=np.float32)
        top = float(values.max()) if values.size else 0.0
        return (values * (255.0 / top)).astype(np.uint8) if top > 255 else values.astype(np.uint8)
    return np.asarray(image.convert("L"))


def _read(engine: Any, pixels: np.ndarray) -> str:
    with _reading:
        try:
            result = engine(pixels)
        except Exception as err:  # noqa: BLE001 - one unreadable page is reported, not a crash
            raise LoadError(f"OCR failed ({type(err).__name__}: {err})") from None
    boxes, texts = getattr(result, "boxes", None), getattr(result, "txts", None)
    if boxes is None or not texts:
        return ""
    return layout([box.tolist() for box in boxes], list(texts))


def ocr_image(image: Image.Image) -> str:
    """The text in ``image``, in reading order: lines separated by "\\n", paragraphs by a blank line; "" when
    none is found. Raises LoadError when OCR is unavailable or fails. Safe to call from several threads."""
    engine = _get()
    return _read(engine, _gray(image))


def _render_scale(width_pt: float, height_pt: float, dpi: int, max_image_pixels: int, page_number: int) -> float:
    """Pixels per point for a page: ``dpi``, lowered when the page would exceed ``max_image_pixels``."""
    scale = dpi / 72
    width_pt, height_pt = max(width_pt, 1.0), max(height_pt, 1.0)
    if math.ceil(width_pt * scale) * math.ceil(height_pt * scale) <= max_image_pixels:
        return scale
    fitted = math.sqrt(max_image_pixels / (width_pt * height_pt))
    if fitted * 72 < MIN_DPI:
        limit = f"{max_image_pixels / 1e6:g}"
        raise LoadError(
            f"page {page_number} is {width_pt / 72:.0f}x{height_pt / 72:.0f} inches: even at {MIN_DPI} dpi it is "
            f"over the {limit} MP limit ({_PIXELS_SETTING})"
        )
    # pdfium rounds each side up to whole pixels: shrink until the rounded size is within the limit too.
    while math.ceil(width_pt * fitted) * math.ceil(height_pt * fitted) > max_image_pixels:
        fitted *= 0.999
    return fitted


def _render(doc: Any, index: int, dpi: int, max_image_pixels: int) -> np.ndarray:
    """Page ``index`` as 8-bit gray pixels (a copy: pdfium's bitmap and page are freed before returning)."""
    with PDFIUM_LOCK:
        try:
            page = doc[index]
        except Exception as err:  # noqa: BLE001 - pdfium reports a broken page as a bare PdfiumError
            raise LoadError(f"damaged PDF: page {index + 1} cannot be read ({err})") from None
        try:
            width, height = page.get_size()
            bitmap = page.render(scale=_render_scale(width, height, dpi, max_image_pixels, index + 1), grayscale=True)
            try:
                pixels = np.array(bitmap.to_numpy(), dtype=np.uint8)  # (height, width), copied out of pdfium's buffer
            finally:
                bitmap.close()
        except LoadError:
            raise
        except Exception as err:  # noqa: BLE001
            raise LoadError(f"damaged PDF: page {index + 1} cannot be rendered ({err})") from None
        finally:
            page.close()
    return pixels


def ocr_pdf_pages(data: bytes, pages: list[int], *, dpi: int, max_image_pixels: int) -> Iterator[tuple[int, str]]:
    """(page index, text) for the 0-based ``pages`` of the PDF in ``data``, in the order given.

    A generator: nothing is done until the first page is asked for, and each page is rendered, read and
    released before the next is rendered, so memory stays bounded whatever the page count. A page that
    would be over ``max_image_pixels`` at ``dpi`` is rendered at the highest resolution that fits (a large
    page keeps large print; RapidOCR reads lines at up to 2000 pixels on the long side anyway); one that
    would fit only under ``MIN_DPI`` raises LoadError, as do an unavailable engine and a damaged file.
    """
    import pypdfium2 as pdfium

    engine = _get()
    with PDFIUM_LOCK:
        try:
            doc = pdfium.PdfDocument(data)
        except Exception as err:  # noqa: BLE001 - PdfiumError, or a password error for an encrypted file
            raise LoadError(f"damaged PDF: cannot be rasterised for OCR ({err})") from None
    try:
        for index in pages:
            pixels = _render(doc, index, dpi, max_image_pixels)
            text = _read(engine, pixels)
            del pixels  # freed before the next page is rendered
            yield index, text
    finally:
        # Also reached when the caller stops early (the generator is closed).
        with PDFIUM_LOCK:
            doc.close()


__all__ = ["MIN_DPI", "PDFIUM_LOCK", "available", "ocr_image", "ocr_pdf_pages"]
