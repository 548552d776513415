"""bench/soak.py: the memory and open-file summaries its targets rest on, the timeline and the targets (fast;
the soak itself runs a real server for minutes and is not part of the suite)."""

from __future__ import annotations

import os

import pytest

from bench import soak


def _samples(minutes: float, rss_kib, files, every_s: float = 10.0) -> list[dict]:
    """Samples every ``every_s`` over ``minutes``; ``rss_kib`` and ``files`` are functions of the minute."""
    n = int(minutes * 60 / every_s)
    return [
        {"t_s": i * every_s, "rss_kib": rss_kib(i * every_s / 60), "open_files": files(i * every_s / 60), "processes": 1}
        for i in range(n + 1)
    ]


def test_growth_compares_the_last_five_minutes_with_minutes_five_to_ten():
    # flat at 1000 MiB until minute 10, then a step to 1030: the end window sees the step, the warm one not
    samples = _samples(30, lambda m: 1000 * 1024 if m <= 10 else 1030 * 1024, lambda m: 60)
    mem = soak.memory_summary(samples, 30)
    assert mem["warm_window_min"] == [5.0, 10.0] and mem["end_window_min"] == [25.0, 30.0]
    assert mem["warm_median_mib"] == 1000 and mem["end_median_mib"] == 1030
    assert mem["growth_pct"] == pytest.approx(3.0)
    assert mem["samples"] == 181 and mem["peak_mib"] == 1030


def test_a_short_run_scales_its_windows_and_missing_samples_are_skipped():
    samples = _samples(6, lambda m: 500 * 1024, lambda m: 10)
    samples[3]["rss_kib"] = None  # the process was between reads
    mem = soak.memory_summary(samples, 6)
    assert mem["warm_window_min"] == [1.0, 2.0] and mem["end_window_min"] == [5.0, 6.0]
    assert mem["growth_pct"] == 0 and mem["samples"] == len(samples) - 1


def test_a_descriptor_leak_fails_the_open_files_target_even_when_memory_is_flat():
    leaking = _samples(30, lambda m: 1000 * 1024, lambda m: 60 + int(4 * m))  # 4 more a minute: a connection leak
    mem = soak.memory_summary(leaking, 30)
    verdicts = {t["name"]: t for t in soak.targets({}, mem)}
    assert verdicts["memory growth % (end / warm median)"]["passed"] is True
    files = verdicts["open files growth (end - warm median)"]
    assert files["value"] == pytest.approx(4 * 20, abs=4) and files["passed"] is False
    steady = soak.memory_summary(_samples(30, lambda m: 1000 * 1024, lambda m: 60 + int(m) % 3), 30)
    assert {t["name"]: t["passed"] for t in soak.targets({}, steady)}["open files growth (end - warm median)"] is True


def test_targets_count_5xx_other_than_queue_refusals():
    endpoints = {
        "search": {"5xx_not_queue": 0, "dropped": 0, "queue_503": 0},
        "ask": {"5xx_not_queue": 1, "dropped": 0, "queue_503": 2},
    }
    mem = soak.memory_summary(_samples(30, lambda m: 1024, lambda m: 1), 30)
    passed = {t["name"]: (t["value"], t["passed"]) for t in soak.targets(endpoints, mem)}
    assert passed["5xx other than queue refusals"] == (1, False)
    assert passed["ask: 503 queue refusals (Retry-After)"] == (2, False)
    assert passed["dropped connections"] == (0, True)


def test_summaries_tell_queue_refusals_from_other_5xx():
    records = [
        {"endpoint": "ask", "status": 200, "kind": "200", "latency_ms": 100.0, "t_s": 1, "tokens": 10},
        {"endpoint": "ask", "status": 503, "kind": "503", "latency_ms": 1.0, "t_s": 2, "retry_after": "3"},
        {"endpoint": "ask", "status": 500, "kind": "500", "latency_ms": 5.0, "t_s": 3},
        {"endpoint": "ask", "status": None, "kind": "dropped", "latency_ms": 300000.0, "t_s": 4},
    ]
    s = soak.summarize(records, 10)
    assert (s["5xx"], s["5xx_not_queue"], s["queue_503"], s["dropped"], s["ok"]) == (2, 1, 1, 1, 1)
    assert s["mean_tokens"] == 10 and s["p50_ms"] == 100.0


def test_the_timeline_puts_the_drain_and_the_last_sample_in_the_last_interval():
    samples = _samples(10, lambda m: 1024 * (100 + m), lambda m: 50 + int(m))
    samples.append({"t_s": 605.0, "rss_kib": 1024 * 200, "open_files": 90, "processes": 1})  # after the drain
    records = [{"endpoint": "search", "status": 200, "t_s": 603.0}]
    rows = soak.timeline(records, samples, 10, 5)
    assert [(r["from_min"], r["to_min"]) for r in rows] == [(0, 5), (5, 10)]
    assert rows[1]["requests"] == {"search": 1} and rows[1]["rss_max_mib"] == 200 and rows[1]["open_files_max"] == 90
    assert rows[0]["open_files_max"] == 54


def test_this_process_reads_its_own_memory_and_descriptors():
    rss, files, processes = soak.tree_usage(os.getpid())
    assert rss > 10_000 and files >= 3 and processes >= 1
    assert soak.tree_usage(2**22 + 12345) == (None, None, 0)  # no such process


def test_uploads_alternate_markdown_and_text_with_a_unique_marker():
    a, b = soak.soak_document(1, ["asthma"], 0.5), soak.soak_document(2, ["asthma"], 1.0)
    assert a[0].endswith(".md") and a[1] == "text/markdown" and b[0].endswith(".txt") and b[1] == "text/plain"
    assert a[3] != b[3] and a[3] in a[2] and "asthma" in a[2]
