"""Text of the images embedded in a DOCX, read by OCR (ingest/ocr.py).

A DOCX of scanned pages pasted as pictures has no text of its own; its text is in the images. When they are
read is ``options.ocr``'s call (ingest/loaders/docx.py): ``auto`` only for a document with no text,
``always`` every image, ``never`` none. An image is found where the body draws it (``a:blip`` in a
paragraph or a table: inline or floating), so its text lands where the image sits; an image larger than
``options.max_image_pixels`` is left unread (its size is checked before it is decoded).
"""

from __future__ import annotations

import io
import logging

from docx.oxml.ns import qn

from core.errors import LoadError

from .options import LoadOptions

log = logging.getLogger(__name__)
_EMBED = qn("r:embed")
_BLIP = qn("a:blip")
IMAGE_SETTING = "ASSISTANT_INGEST__MAX_IMAGE_MEGAPIXELS"
OCR_SETTING = "ASSISTANT_INGEST__OCR"


def image_ids(element) -> list[str]:
    """Relationship ids of the images a body element (paragraph or table) draws, in order, each once."""
    ids = [blip.get(_EMBED) for blip in element.iter(_BLIP)]
    return list(dict.fromkeys(i for i in ids if i))


def ocr_unavailable() -> str | None:
    """Why OCR cannot run here (ingest/ocr.py: ``available``), or None."""
    from ingest import ocr

    return ocr.available()


class ImageReader:
    """Reads a document's images by OCR, one at a time, each relationship id once."""

    def __init__(self, part, options: LoadOptions):
        from ingest import ocr

        self._ocr = ocr
        self.part = part
        self.options = options
        self.read = 0  # images read
        self.too_large = 0  # images left unread: over the pixel limit
        self._done: set[str] = set()

    def text(self, rel_id: str) -> str:
        from PIL import Image

        if rel_id in self._done or rel_id not in self.part.related_parts:
            return ""
        self._done.add(rel_id)
        blob = self.part.related_parts[rel_id].blob
        try:
            image = Image.open(io.BytesIO(blob))  # lazy: the header is read, the pixels are not decoded yet
            pixels = image.size[0] * image.size[1]
            if pixels > self.options.max_image_pixels:
                self.too_large += 1
                log.warning("DOCX image %s: %.0f megapixels, over the limit (%s); not read", rel_id, pixels / 1e6, IMAGE_SETTING)
                return ""
            text = self._ocr.ocr_image(image)
        except LoadError:
            raise
        except Exception as err:  # noqa: BLE001 - Pillow and the OCR engine raise their own types
            log.warning("DOCX image %s could not be read by OCR: %s: %s", rel_id, type(err).__name__, err)
            return ""
        self.read += 1
        return text.strip()

    def nothing_read_reason(self) -> str:
        """Why a document of images alone gave no text."""
        if self.too_large:
            limit = self.options.max_image_pixels / 1e6
            return f"DOCX has no text (only images, over the {limit:g} MP limit: {IMAGE_SETTING})"
        return "DOCX has no text (only images, and OCR found no text in them)"


def ocr_off_reason() -> str:
    return f"DOCX has no text (only images; OCR is off: set {OCR_SETTING}=auto to read them)"
