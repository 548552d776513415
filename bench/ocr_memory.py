"""Memory of reading a long scan: peak resident memory of loading an image-only PDF of N pages through the real
loader (``ingest.loaders.load_file``: every page rasterised and read by OCR), for several N.

    python bench/ocr_memory.py [--pages 5 40] [--dpi 200]

Each N runs in a fresh process (its peak RSS, ``ru_maxrss``, is that load alone plus the interpreter and the
OCR models). The pages: one page of typeset MedQuAD-like text (bench/scans.py), rasterised at --dpi and stored
as the page image N times. The loader renders, reads and releases one page at a time (ingest/ocr.py), so the
peak should not grow with N; the table shows peak RSS, seconds and seconds per page.
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TEXT = (
    "Glaucoma is a group of diseases that can damage the eye's optic nerve and result in vision loss and "
    "blindness. The most common form, open-angle glaucoma, has no symptoms at first. Regular eye exams that "
    "include measuring the pressure in the eye and checking the optic nerve can find it early; treatment with "
    "eye drops, laser trabeculoplasty or surgery can slow or prevent vision loss."
)


def scanned_pdf(pages: int, dpi: int) -> bytes:
    """An image-only PDF: the same rasterised page of text ``pages`` times."""
    import pypdfium2 as pdfium
    from reportlab.lib.pagesizes import letter
    from reportlab.lib.utils import ImageReader, simpleSplit
    from reportlab.pdfgen import canvas

    typed = io.BytesIO()
    c = canvas.Canvas(typed, pagesize=letter)
    c.setFont("Times-Roman", 11)
    for i, line in enumerate(simpleSplit(TEXT * 4, "Times-Roman", 11, letter[0] - 144)):
        c.drawString(72, letter[1] - 72 - 14 * i, line)
    c.showPage()
    c.save()
    image = pdfium.PdfDocument(typed.getvalue())[0].render(scale=dpi / 72).to_pil().convert("L")
    out = io.BytesIO()
    c = canvas.Canvas(out, pagesize=letter)
    reader = ImageReader(image)
    for _ in range(pages):
        c.drawImage(reader, 0, 0, width=letter[0], height=letter[1])
        c.showPage()
    c.save()
    return out.getvalue()


def measure(path: str) -> None:
    """Run in the child: load the file, print the figures as JSON."""
    from ingest.loaders import load_file

    started = time.perf_counter()
    (doc,) = load_file(Path(path), max_bytes=2**31)
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"pages": doc.metadata["pages"], "ocr_pages": len(doc.metadata["ocr_pages"]), "seconds": seconds, "peak_mb": peak_mb}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, nargs="+", default=[5, 40])
    parser.add_argument("--dpi", type=int, default=200)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        measure(args.child)
        return 0
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for n in args.pages:
            path = Path(scratch) / f"scan-{n}.pdf"
            path.write_bytes(scanned_pdf(n, args.dpi))
            out = subprocess.run([sys.executable, __file__, "--child", str(path)], capture_output=True, text=True, check=True)
            rows.append({**json.loads(out.stdout.strip().splitlines()[-1]), "file_mb": path.stat().st_size / 2**20})
    print(f"\nImage-only PDFs read by OCR at {args.dpi} dpi (each in a fresh process)\n")
    print("| pages | file | peak RSS | seconds | s/page |")
    print("|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['pages']} | {r['file_mb']:.1f} MB | {r['peak_mb']:.0f} MB | {r['seconds']:.1f} | {r['seconds'] / r['pages']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
