"""bench/pdf_tables.py: its split, its alignment and its scoring on a made-up report (no shared data needed); the
Chromium renderer's HTML, and a report printed by Chromium where it is installed."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "bench" / "pdf_tables.py"


def _load_bench():
    spec = importlib.util.spec_from_file_location("bench_pdf_tables", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


bench = _load_bench()

REPORT = {
    "table": {
        "uid": "made-up-report",
        "table": [
            ["", "Years Ended December 31,", ""],
            ["", "2019", "2018"],
            ["Revenue", "$ 1,200", "$ 1,100"],
            ["Cost of sales", "(700)", "(650)"],
            ["", "", ""],
            ["Gross profit", "500", "450"],
        ],
    },
    "paragraphs": [{"text": "Results were as follows:"}, {"text": "Margins rose in 2019."}],
}


def test_the_split_is_fixed_by_the_uid_and_halves_the_reports():
    assert bench.split_of("made-up-report") == bench.split_of("made-up-report")
    splits = [bench.split_of(f"report-{i}") for i in range(400)]
    assert 150 < splits.count("tune") < 250


def test_normalise_drops_empty_rows_and_columns_and_alignment_finds_a_shifted_grid():
    original = bench.normalise([["", "a", ""], ["x", " 1  2 ", ""], ["", "", ""]])
    assert original == [["", "a"], ["x", "1 2"]]
    shifted = [["junk", "junk"], ["", "a"], ["x", "1 2"]]  # one extra row on top
    hits, shift = bench.aligned_matches(original, shifted)
    assert hits == {(0, 1), (1, 0), (1, 1)} and shift == (1, 0)


def test_a_report_scores_fully_ruled_and_unruled(tmp_path):
    for style in bench.STYLES:
        got = bench.score(REPORT, style, tmp_path)
        assert got["found_one"] == 1
        assert got["cells_hit"] == got["cells"] == 12
        assert got["header_hit"] == got["header"] == 3
        assert got["named_hit"] == got["named"] == 6
        assert got["prose_kept"] == got["prose"] == 2 and got["repeated"] == 0


def test_html_spans_a_spread_out_header_around_its_column_unruled_and_from_it_ruled():
    # {first column: (columns spanned, the column whose text it holds)}
    assert bench._spans(["", "", "Years Ended", ""], ruled=False) == {1: (3, 2)}
    assert bench._spans(["", "", "Years Ended", ""], ruled=True) == {2: (2, 2)}
    assert bench._spans(["", "Domestic", "", "International", ""], ruled=False) == {1: (2, 1), 3: (2, 3)}
    assert bench._spans(["", "2019", "2018", "2017"], ruled=False) == {}
    sheet, page = bench.html_sheet(REPORT["table"]["table"], False, "Above.", "Below.", page="t0")
    assert '<th colspan="2">Years Ended December 31,</th>' in sheet
    assert '<td class="num">(700)</td>' in sheet and "<p>Above.</p>" in sheet and "<p>Below.</p>" in sheet
    assert page.startswith("@page t0 { size: ")


@pytest.mark.skipif(shutil.which("chromium") is None, reason="headless Chromium not installed (apt-get install chromium)")
def test_a_report_printed_by_chromium_scores_fully_ruled_and_unruled(tmp_path):
    items = [(REPORT["table"]["table"], style == "ruled", *bench.prose(REPORT)) for style in bench.STYLES]
    pdfs = bench.render_chromium(items)
    assert len(pdfs) == 2
    for style, pdf in zip(bench.STYLES, pdfs):
        got = bench.score(REPORT, style, tmp_path, pdf=pdf)
        assert got["found_one"] == 1
        assert got["cells_hit"] == got["cells"] == 12
        assert got["header_hit"] == got["header"] == 3
        assert got["named_hit"] == got["named"] == 6
        assert got["prose_kept"] == got["prose"] == 2 and got["repeated"] == 0
