"""bench/generation.py: its statistics and table helpers (fast) and a --quick run on the real model (slow)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "bench" / "generation.py"


def _load_bench():
    spec = importlib.util.spec_from_file_location("bench_generation", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


bench = _load_bench()


# ------------------------------------------------------------------------------------------ fast: helpers


def test_the_benchmarks_use_the_eval_suites_percentile():
    from eval.metrics import percentile

    assert bench.percentile is percentile  # one implementation (tests/test_eval_metrics.py checks its values)


def test_summarize_ignores_missing_values():
    runs = [
        {"ttft_s": 1.0, "decode_tok_s": 10.0, "total_s": 2.0, "tokens": 8},
        {"ttft_s": 3.0, "decode_tok_s": None, "total_s": 3.0, "tokens": 1},  # one token: no decode speed
        {"ttft_s": 2.0, "decode_tok_s": 20.0, "total_s": 4.0, "tokens": 9},
    ]
    s = bench.summarize(runs)
    assert s["ttft_s_p50"] == 2.0 and s["ttft_s_p95"] == pytest.approx(2.9)  # rank 1.9: 2 + 0.9 * 1
    assert s["decode_tok_s_p50"] == 15.0 and s["decode_tok_s_p95"] == pytest.approx(19.5)
    assert s["total_s_p50"] == 3.0
    assert (s["tokens_p50"], s["tokens_total"], s["runs"]) == (8, 18, 3)


def test_table_rows_and_ratio():
    ok = {
        "status": "ok",
        "load_s": 1.234,
        "memory_bytes": 3 * 2**20,
        "peak_rss_mb": 812.4,
        "rss_delta_mb": 300.6,
        "summary": {"ttft_s_p50": 0.51234, "decode_tok_s_p50": 17.06, "tokens_total": 64},
    }
    assert bench.table_row("4bit", ok) == ["4bit", "1.23", "3.0", "812", "301", "0.512", "17.1", "64"]
    skipped = bench.table_row("4bit+lora", {"status": "skipped", "note": "no adapter"})
    assert skipped[0] == "4bit+lora" and skipped[-1] == "skipped" and len(skipped) == len(bench.TABLE_HEADERS)
    table = bench.markdown_table(["a", "b"], [["x", 1]])
    assert table == "| a | b |\n|---|---:|\n| x | 1 |"
    assert bench.ratio(6.0, 3.0) == 2.0 and bench.ratio(None, 3.0) is None and bench.ratio(1.0, 0.0) is None


def test_timed_stream_counts_tokens_after_the_first_piece():
    run = bench.timed_stream(iter(["Hello world", " a", " b"]), started=0.0, tokens_of=lambda piece: 2, total_tokens=lambda: 4)
    assert run["tokens"] == 4 and run["first_piece_tokens"] == 2 and run["chars"] == 15
    assert run["ttft_s"] > 0 and run["total_s"] >= run["ttft_s"]
    empty = bench.timed_stream(iter([]), started=0.0, tokens_of=lambda piece: 1, total_tokens=lambda: 0)
    assert empty["ttft_s"] is None and empty["decode_tok_s"] is None


def test_cut_text_ends_at_a_sentence_and_adapter_check(tmp_path: Path):
    text = "First sentence here. Second one is longer than that. Third."
    assert bench.cut_text(text, 1000) == text
    assert bench.cut_text(text, 45) == "First sentence here."
    assert bench.cut_text("  a   b  ", 10) == "a b"
    assert "no LoRA adapter" in bench.adapter_missing(tmp_path)
    (tmp_path / "adapter_config.json").write_text("{}")
    assert bench.adapter_missing(tmp_path) is None


# ------------------------------------------------------------------------------------------ slow: real model


@pytest.mark.slow
def test_quick_run_measures_the_4bit_model(tmp_path: Path):
    out = tmp_path / "generation.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--json", str(out)], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    data = json.loads(out.read_text(encoding="utf-8"))
    row = data["configs"]["4bit"]
    assert row["status"] == "ok"
    assert row["summary"]["tokens_total"] > 0
    assert row["summary"]["ttft_s_p50"] > 0
    assert row["memory_bytes"] > 0 and row["peak_rss_mb"] > 0
    assert set(data["configs"]) == {"4bit"}  # --quick: the 4-bit row only, llama.cpp skipped
    assert "| 4bit |" in done.stdout
