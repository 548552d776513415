"""PNG, JPEG and TIFF files: their text read by OCR (ingest/ocr.py), a multi-frame TIFF page by page.

Sizes are checked from the header before any pixel is decoded, so a "decompression bomb" (a tiny file that
decodes to gigapixels) is refused with the image's dimensions in the reason. The file's contents decide the
format, not its suffix: a PNG named ``.jpg`` is read as the PNG it is.

Metadata, shared with the PDF loader: ``{"pages": N, "page_starts": [...], "ocr_pages": [...]}``, where
``page_starts[i]`` is the character offset of page ``i + 1`` in the document text (ingest/loaders/pages.py)
and ``ocr_pages`` the 1-based pages read by OCR (here: all of them).
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

from PIL import Image, ImageFile, ImageOps, JpegImagePlugin, PngImagePlugin, TiffImagePlugin  # noqa: F401 - plugins register

from core.errors import LoadError
from core.types import LoadedDocument

from .options import LoadOptions
from .pages import empty_pages, join_pages

_FORMATS = ("PNG", "JPEG", "TIFF")
_ORIENTATION = 0x0112  # the EXIF tag
_OCR_SETTING = "ASSISTANT_INGEST__OCR"
_PIXELS_SETTING = "ASSISTANT_INGEST__MAX_IMAGE_MEGAPIXELS"
_PAGES_SETTING = "ASSISTANT_INGEST__MAX_PDF_PAGES"  # the one page limit, for PDFs and TIFFs alike


def _open_header(data: bytes) -> ImageFile.ImageFile:
    """The image with only its header read (size, mode, frame positions), by the plugin its bytes match.

    ``Image.open`` would do the same but raises DecompressionBombError before returning, on images over
    Pillow's own limit (179 MP), without their dimensions; the plugins themselves only parse the header,
    so our limit applies with a full reason and Pillow's global setting stays untouched.
    """
    prefix = data[:16]
    for name in _FORMATS:
        factory, accept = Image.OPEN[name]
        matched = accept(prefix) if accept is not None else True
        if not matched or isinstance(matched, str):  # a str is Pillow's "this variant is unsupported"
            continue
        try:
            return factory(io.BytesIO(data), None)
        except (SyntaxError, IndexError, TypeError, ValueError, struct.error, OSError) as err:
            # Pillow reports a broken header as SyntaxError ("not a PNG file", "broken PNG file", ...).
            raise LoadError(f"damaged image: {err or type(err).__name__}") from None
    raise LoadError("damaged image: not a PNG, JPEG or TIFF file")


def _check_size(image: ImageFile.ImageFile, limit: int, frame: int = 0) -> None:
    width, height = image.size
    if width <= 0 or height <= 0:
        raise LoadError(f"damaged image: it is {width}x{height} pixels")
    if width * height > limit:
        where = f"page {frame + 1} of the image" if frame else "image"
        raise LoadError(f"{where} is {width}x{height} pixels, over the {limit / 1e6:g} MP limit ({_PIXELS_SETTING})")


def _count_frames(image: ImageFile.ImageFile, options: LoadOptions) -> int:
    """Frames (TIFF pages), each one's size checked; seeking reads a frame's header, not its pixels."""
    _check_size(image, options.max_image_pixels)
    # Only a TIFF's frames are pages. An animated PNG's frames are animation; a camera's MPO "JPEG" holds
    # the same picture again (or a depth map): reading those would repeat the text.
    if image.format != "TIFF" or not getattr(image, "is_animated", False):
        return 1
    frames = 1
    while True:
        try:
            image.seek(frames)
        except EOFError:
            break
        except (OSError, SyntaxError, ValueError, struct.error) as err:  # a broken or looping page directory
            raise LoadError(f"damaged image: page {frames + 1}: {err or type(err).__name__}") from None
        frames += 1
        if frames > options.max_pages:
            raise LoadError(f"image has more than {options.max_pages} pages ({_PAGES_SETTING})")
        _check_size(image, options.max_image_pixels, frames - 1)
    return frames


def _frame(image: ImageFile.ImageFile, index: int) -> Image.Image:
    """Frame ``index`` decoded, upright (phones store photos sideways with an EXIF orientation)."""
    try:
        image.seek(index)
        image.load()
        # exif_transpose copies even an upright image: only call it when there is something to turn.
        return ImageOps.exif_transpose(image) if image.getexif().get(_ORIENTATION, 1) != 1 else image
    except Image.DecompressionBombError as err:  # a frame bigger than its header said; not expected
        raise LoadError(f"image is over the size limit ({err})") from None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as err:
        # Truncated data ("image file is truncated"), a broken compressed stream, a bad tag.
        raise LoadError(f"damaged image: {err or type(err).__name__}") from None


def load(path: Path, data: bytes, *, options: LoadOptions) -> list[LoadedDocument]:
    if options.ocr == "never":
        raise LoadError(f"image files need OCR, which is off ({_OCR_SETTING}=never)")
    # Imported here, not at the top: the OCR module is looked up when it is needed, so that tests can put a
    # stand-in in its place (tests/fake_ocr.py) and a process that reads no image never imports it.
    from ingest import ocr

    image = _open_header(data)
    try:
        total = _count_frames(image, options)
        reason = ocr.available()
        if reason:
            raise LoadError(f"OCR unavailable: {reason}")
        texts = []
        for index in range(total):
            texts.append(ocr.ocr_image(_frame(image, index)))
            if options.on_page:
                options.on_page(index + 1, total)
    finally:
        image.close()
    text, starts = join_pages(texts)
    if not text:
        raise LoadError("OCR found no text in the image")
    metadata = {"pages": total, "page_starts": starts, "ocr_pages": list(range(1, total + 1)), "empty_pages": empty_pages(texts)}
    return [LoadedDocument(title=path.stem, text=text, metadata=metadata)]
