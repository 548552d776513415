"""Synthetic scanned pages for measuring OCR: real paragraphs typeset on a PDF page (ReportLab), rasterised
(pypdfium2) and degraded the way a scanner degrades them (noise, skew).

Used by bench/ocr.py and tests/test_ocr.py. The reference text of a page is exactly what was typeset, so the
character error rate of an OCR engine on the page measures the engine alone.
"""

from __future__ import annotations

import io
import json
import random
import re
import unicodedata
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

# The standard PDF fonts ReportLab embeds nothing for: both a serif and a sans face, as reports use both.
FONTS = ("Times-Roman", "Helvetica")
PAGE_W, PAGE_H = 612.0, 792.0  # US Letter, in points
MARGIN = 72.0

# Typographic characters mapped to ASCII in both the reference and the OCR output before comparing: a curly
# quote read as a straight one is not an error a search would notice.
_ASCII = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-", "\u00a0": " "})


def normalise(text: str) -> str:
    """Whitespace collapsed to single spaces, typographic quotes and dashes as ASCII: what CER compares."""
    return " ".join(unicodedata.normalize("NFKC", text).translate(_ASCII).split())


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance, by Myers' bit-parallel algorithm (Hyyrö's formulation) on Python integers.

    One pass over ``b`` with big-integer operations as wide as ``a``: a 3,000-character page compares in
    milliseconds, where the textbook dynamic programme in Python takes seconds.
    """
    if not a:
        return len(b)
    if not b:
        return len(a)
    masks: dict[str, int] = {}
    for i, ch in enumerate(a):
        masks[ch] = masks.get(ch, 0) | (1 << i)
    full = (1 << len(a)) - 1
    top = 1 << (len(a) - 1)
    vp, vn, dist = full, 0, len(a)
    for ch in b:
        eq = masks.get(ch, 0)
        xv = eq | vn
        xh = (((eq & vp) + vp) ^ vp) | eq
        hp = vn | ~(xh | vp) & full
        hn = vp & xh
        if hp & top:
            dist += 1
        elif hn & top:
            dist -= 1
        hp = ((hp << 1) | 1) & full
        hn = (hn << 1) & full
        vp = hn | ~(xv | hp) & full
        vn = hp & xv
    return dist


def cer(reference: str, hypothesis: str) -> float:
    """Character error rate: edits from the OCR text to the reference, per reference character."""
    ref, hyp = normalise(reference), normalise(hypothesis)
    return edit_distance(ref, hyp) / max(1, len(ref))


def _latin1(text: str) -> bool:
    # The standard fonts draw WinAnsi (about Latin-1 plus typographic quotes); anything else would be a box.
    return all(ord(c) < 256 or c in "\u2018\u2019\u201c\u201d\u2013\u2014" for c in text)


def paragraphs(data: Path, *, per_source: int = 200) -> list[str]:
    """Real English paragraphs: MedQuAD answers (medical) and TAT-QA report paragraphs (finance), alternating."""
    medical: list[str] = []
    for path in sorted((data / "medquad").rglob("*.xml")):
        try:
            root = ET.parse(path).getroot()
        except ET.ParseError:
            continue
        for answer in root.iter("Answer"):
            for block in re.split(r"\n\s*\n", answer.text or ""):
                text = " ".join(block.split())
                if 25 <= len(text.split()) <= 120 and _latin1(text):
                    medical.append(text)
        if len(medical) >= per_source:
            break
    finance: list[str] = []
    for report in json.loads((data / "tatqa" / "tatqa_dataset_dev.json").read_text(encoding="utf-8")):
        for para in report["paragraphs"]:
            text = " ".join(para["text"].split())
            if 25 <= len(text.split()) <= 120 and _latin1(text):
                finance.append(text)
        if len(finance) >= per_source:
            break
    out = []
    for pair in zip(medical[:per_source], finance[:per_source]):
        out += pair
    return out


def typeset(paras: list[str], *, font: str = "Times-Roman", size: float = 11.0) -> tuple[bytes, str]:
    """A one-page PDF holding as many of ``paras`` as fit, and the text it holds (lines as set)."""
    from reportlab.lib.utils import simpleSplit
    from reportlab.pdfgen.canvas import Canvas

    buf = io.BytesIO()
    canvas = Canvas(buf, pagesize=(PAGE_W, PAGE_H))
    canvas.setFont(font, size)
    leading = size * 1.3
    y = PAGE_H - MARGIN
    placed: list[str] = []
    for para in paras:
        lines = simpleSplit(para, font, size, PAGE_W - 2 * MARGIN)
        if y - leading * len(lines) < MARGIN:
            break
        for line in lines:
            canvas.drawString(MARGIN, y - size, line)
            y -= leading
        y -= leading  # a blank line between paragraphs
        placed.append("\n".join(lines))
    canvas.showPage()
    canvas.save()
    return buf.getvalue(), "\n\n".join(placed)


def rasterise(pdf: bytes, dpi: int) -> Image.Image:
    """Page 1 of ``pdf`` as a grayscale image at ``dpi``."""
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(pdf)
    try:
        page = doc[0]
        image = page.render(scale=dpi / 72, grayscale=True).to_pil()
        page.close()
    finally:
        doc.close()
    return image.convert("L")


def add_noise(image: Image.Image, rng: np.random.Generator, *, sigma: float = 20.0, salt_pepper: float = 0.005) -> Image.Image:
    """Sensor noise (gaussian) and dust (isolated black and white pixels), as a cheap scanner adds."""
    pixels = np.asarray(image, dtype=np.float32)
    pixels = pixels + rng.normal(0.0, sigma, pixels.shape)
    specks = rng.random(pixels.shape)
    pixels[specks < salt_pepper / 2] = 0
    pixels[specks > 1 - salt_pepper / 2] = 255
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), mode="L")


def skew(image: Image.Image, degrees: float) -> Image.Image:
    """The page fed in at an angle: rotated, the new corners white."""
    return image.rotate(degrees, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=255)


CONDITIONS = ("clean", "noisy", "skewed", "noisy+skewed")


@dataclass(frozen=True)
class Scan:
    dpi: int
    condition: str
    index: int
    reference: str
    image: Image.Image
    angle: float = 0.0


def degrade(image: Image.Image, condition: str, rng: np.random.Generator) -> tuple[Image.Image, float]:
    angle = 0.0
    if "skewed" in condition:
        angle = float(rng.uniform(1.0, 3.0)) * (1 if rng.random() < 0.5 else -1)
        image = skew(image, angle)
    if "noisy" in condition:
        image = add_noise(image, rng)
    return image, angle


def pages(paras: list[str], n_pages: int, *, seed: int = 0) -> list[tuple[bytes, str]]:
    """``n_pages`` distinct typeset pages (PDF, reference text), fonts alternating."""
    rng = random.Random(seed)
    out = []
    for i in range(n_pages):
        start = rng.randrange(0, max(1, len(paras) - 12))
        out.append(typeset(paras[start : start + 12], font=FONTS[i % len(FONTS)]))
    return out


def document(typeset_pages: list[tuple[bytes, str]]) -> bytes:
    """The pages as one PDF, in order (what a scanner's multi-page PDF looks like to the loader)."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for pdf, _ in typeset_pages:
        writer.append(PdfReader(io.BytesIO(pdf)))
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def scans(typeset_pages: list[tuple[bytes, str]], dpis: list[int], conditions: list[str], *, seed: int = 0) -> Iterator[Scan]:
    """Every page at every resolution in every condition, one at a time (a 300 dpi page is 8 MP)."""
    for dpi in dpis:
        for condition in conditions:
            rng = np.random.default_rng([seed, dpi, CONDITIONS.index(condition)])
            for index, (pdf, reference) in enumerate(typeset_pages):
                image, angle = degrade(rasterise(pdf, dpi), condition, rng)
                yield Scan(dpi, condition, index, reference, image, angle)


__all__ = ["CONDITIONS", "Scan", "cer", "document", "edit_distance", "normalise", "pages", "paragraphs", "rasterise", "scans", "typeset"]
