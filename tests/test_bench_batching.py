"""bench/batching.py: its summaries (fast) and a --quick run on the real model (slow)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import batching as bench

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "bench" / "batching.py"


def test_median_run_takes_each_figure_s_median_and_the_first_run_s_texts():
    runs = [
        {"wall_s": 3.0, "ttft_max_s": None, "texts": ["a"]},
        {"wall_s": 1.0, "ttft_max_s": 2.0, "texts": ["b"]},
        {"wall_s": 2.0, "ttft_max_s": 4.0, "texts": ["c"]},
    ]
    assert bench.median_run(runs) == {"wall_s": 2.0, "ttft_max_s": 3.0, "texts": ["a"]}
    assert bench.median_run([{"x": None, "texts": []}]) == {"x": None, "texts": []}


def test_options_are_checked():
    with pytest.raises(SystemExit):
        bench.parse_args(["--max-batch", "1,x"])
    with pytest.raises(SystemExit):
        bench.parse_args(["--streams", "0"])
    assert bench.parse_args(["--max-batch", "1,3"]).max_batch == [1, 3]


@pytest.mark.slow
def test_quick_run_batches_and_answers_as_one_at_a_time(tmp_path: Path):
    out = tmp_path / "batching.json"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--json", str(out)], capture_output=True, text=True, cwd=REPO, timeout=600
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "| natural | 2 |" in result.stdout and "| fixed | 2 |" in result.stdout
    data = json.loads(out.read_text())
    natural, fixed = data["results"]["natural"], data["results"]["fixed"]
    assert natural["2"]["same_texts"] == 2  # batched greedy answers equal the one-at-a-time answers
    assert natural["1"]["rows_per_step"] == 1.0 and fixed["2"]["rows_per_step"] > 1.0
    assert fixed["1"]["tokens"] == fixed["2"]["tokens"] == 2 * 6  # end of sequence ignored: every answer runs to its limit
