"""bench/pdf_tables.py: its split, its alignment and its scoring on a made-up report (no shared data needed)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

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
