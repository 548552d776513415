"""OCR benchmark: character error rate and speed of OCR engines on synthetic scanned pages.

    python bench/ocr.py [--data ../shared/data] [--pages 3] [--dpi 150 200 300]
                        [--engines rapidocr tesseract tesseract-raw] [--json FILE]

Pages: real MedQuAD answers and TAT-QA report paragraphs, typeset on US Letter pages (Times and Helvetica,
11 pt), rasterised at each resolution and scanned four ways (bench/scans.py): clean, noisy (gaussian noise
and 0.5 % salt-and-pepper dust), skewed (rotated 1-3 degrees either way) and both. CER = Levenshtein distance
between the whitespace-normalised OCR text and the typeset text, over the latter's length; "spaces" is the OCR
text's spaces over the reference's (1.00: words kept apart; an engine that runs words together scores low).

Engines:
- rapidocr: ingest/ocr.py as the loaders use it (RapidOCR, PP-OCRv6 small on ONNX Runtime, the models from
  its wheel, lines put in reading order by ingest/ocr_layout.py);
- tesseract: the Tesseract program (Debian's tesseract-ocr, English), one thread, automatic page
  segmentation, a 3x3 median filter on pages whose paper is speckled (without it, dust made Tesseract drop
  whole paragraphs; with it everywhere, clean small print lost strokes);
- tesseract-raw: the same program on the unfiltered image.
An engine that is not installed is left out with a note.

Speed: "s/page" is one page at a time (the median over the pages of that resolution and condition).
"pages/s" is throughput on all the machine's cores over the clean pages, rendering included: rapidocr
through ``ocr_pdf_pages`` over one multi-page PDF (one page at a time; ONNX Runtime spreads each page over
every core), tesseract one single-threaded process per core. Skips with a message when the data is absent.
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

REPO = Path(__file__).resolve().parents[1]
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(REPO))

from bench.scans import CONDITIONS, cer, document, normalise, pages, paragraphs, rasterise, scans  # noqa: E402
from bench.tables import fmt, markdown_table  # noqa: E402
from ingest import ocr  # noqa: E402

Reader = Callable[[Image.Image, int], str]

# bench/scans.py's dust (0.5 % of pixels) makes 0.74 % of bare-paper pixels specks; clean renders 0 to 0.007 %.
DUSTY_SHARE = 0.001


def dusty(gray: Image.Image, median: Image.Image) -> bool:
    """Whether the bare paper is speckled, judged where a 5x5 neighbourhood is all paper (text edges always
    differ from their median, dust on paper does too)."""
    paper = np.asarray(median.filter(ImageFilter.MinFilter(5))) >= 200
    if not paper.any():
        return False
    g, m = np.asarray(gray, dtype=np.int16), np.asarray(median, dtype=np.int16)
    return float((np.abs(g - m)[paper] > 48).mean()) > DUSTY_SHARE


def tesseract(image: Image.Image, dpi: int, *, filtered: bool = True) -> str:
    """The Tesseract program on one page: English, automatic page segmentation, one thread."""
    gray = image.convert("L")
    if filtered:
        median = gray.filter(ImageFilter.MedianFilter(3))
        gray = median if dusty(gray, median) else gray
    buf = io.BytesIO()
    gray.save(buf, format="PPM")  # uncompressed: cheaper than PNG; Tesseract reads it from stdin
    cmd = ["tesseract", "stdin", "stdout", "-l", "eng", "--psm", "3", "--dpi", str(dpi)]
    # One thread: with two OpenMP threads a page took 3-9x longer on a 2-core machine.
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
    return subprocess.run(cmd, input=buf.getvalue(), capture_output=True, check=True, env=env).stdout.decode()


def readers(names: list[str]) -> dict[str, Reader]:
    out: dict[str, Reader] = {}
    for name in names:
        if name == "rapidocr":
            reason = ocr.available()
            if reason:
                print(f"note: OCR unavailable ({reason}); rapidocr left out", file=sys.stderr)
            else:
                out[name] = lambda image, dpi: ocr.ocr_image(image)
        elif name in ("tesseract", "tesseract-raw"):
            if shutil.which("tesseract") is None:
                print(f"note: the tesseract program is not installed; {name} left out", file=sys.stderr)
            else:
                out[name] = functools.partial(tesseract, filtered=name == "tesseract")
        else:
            raise SystemExit(f"unknown engine {name!r} (rapidocr, tesseract, tesseract-raw)")
    return out


def spaces_ratio(reference: str, hypothesis: str) -> float:
    ref = normalise(reference).count(" ")
    return normalise(hypothesis).count(" ") / max(1, ref)


def measure(typeset, engines: dict[str, Reader], dpis: list[int], conditions: list[str]) -> list[dict]:
    rows = []
    warm = next(scans(typeset[:1], dpis[:1], ["clean"]))
    for read in engines.values():
        read(warm.image, warm.dpi)  # models loaded outside the timings
    for scan in scans(typeset, dpis, conditions):
        for name, read in engines.items():
            started = time.perf_counter()
            text = read(scan.image, scan.dpi)
            seconds = time.perf_counter() - started
            row = {"engine": name, "dpi": scan.dpi, "condition": scan.condition, "page": scan.index, "angle": round(scan.angle, 2)}
            row |= {"cer": cer(scan.reference, text), "spaces": spaces_ratio(scan.reference, text), "seconds": seconds}
            rows.append(row)
            print(
                f"  {name:13} {scan.dpi} dpi {scan.condition:12} page {scan.index}: CER {row['cer']:.4f}, {seconds:.1f} s", file=sys.stderr
            )
    return rows


def throughput(name: str, typeset, dpi: int) -> float:
    """pages/s over the clean pages on every core, rendering included (see the module docstring)."""
    started = time.perf_counter()
    if name == "rapidocr":
        pdf = document(typeset)
        done = sum(1 for _ in ocr.ocr_pdf_pages(pdf, list(range(len(typeset))), dpi=dpi, max_image_pixels=60_000_000))
    else:
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            done = len(list(pool.map(lambda page: tesseract(rasterise(page[0], dpi), dpi, filtered=name == "tesseract"), typeset)))
    return done / (time.perf_counter() - started)


def summary(rows: list[dict], engines: list[str], dpis: list[int], conditions: list[str]) -> list[list]:
    table = []
    for dpi in dpis:
        for condition in conditions:
            line: list = [dpi, condition]
            for name in engines:
                sel = [r for r in rows if r["engine"] == name and r["dpi"] == dpi and r["condition"] == condition]
                cers = [r["cer"] for r in sel]
                line += [
                    f"{fmt(100 * statistics.median(cers))} / {fmt(100 * max(cers))}",
                    fmt(statistics.median(r["spaces"] for r in sel)),
                    fmt(statistics.median(r["seconds"] for r in sel), 1),
                ]
            table.append(line)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--pages", type=int, default=3, help="distinct pages per resolution and condition")
    parser.add_argument("--dpi", type=int, nargs="+", default=[150, 200, 300])
    parser.add_argument("--conditions", nargs="+", default=list(CONDITIONS), choices=CONDITIONS)
    parser.add_argument("--engines", nargs="+", default=["rapidocr", "tesseract"], choices=["rapidocr", "tesseract", "tesseract-raw"])
    parser.add_argument("--json", type=Path, help="write every page's figures here")
    args = parser.parse_args()
    if not (args.data / "medquad").is_dir() or not (args.data / "tatqa").is_dir():
        print(f"skipped: no MedQuAD/TAT-QA data under {args.data} (pass --data ../shared/data)")
        return
    engines = readers(args.engines)
    if not engines:
        raise SystemExit("no OCR engine to measure")
    typeset = pages(paragraphs(args.data), args.pages)
    print(
        f"{len(typeset)} pages x {len(args.dpi)} resolutions x {len(args.conditions)} conditions; {os.cpu_count()} cores", file=sys.stderr
    )
    rows = measure(typeset, engines, args.dpi, args.conditions)
    speed = {name: {dpi: throughput(name, typeset, dpi) for dpi in args.dpi} for name in engines}
    headers = ["dpi", "scan"]
    for name in engines:
        headers += [f"{name} CER % (median / worst)", "spaces", "s/page"]
    print(markdown_table(headers, summary(rows, list(engines), args.dpi, args.conditions)))
    print()
    print(
        markdown_table(
            ["dpi", *(f"{name} pages/s" for name in engines)], [[dpi, *(fmt(speed[n][dpi]) for n in engines)] for dpi in args.dpi]
        )
    )
    if args.json:
        args.json.write_text(json.dumps({"pages": rows, "pages_per_second": speed}, indent=2))


if __name__ == "__main__":
    main()
