"""bench/guardrails.py runs on the shared data and reports every rail (skipped without the data)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO, SHARED_DATA


@pytest.mark.skipif(not (SHARED_DATA / "prompt-injection").exists(), reason="shared prompt-injection data not found")
def test_guardrails_bench_reports_every_rail(tmp_path):
    out = tmp_path / "guard.json"
    result = subprocess.run(
        [sys.executable, "bench/guardrails.py", "--per-set", "100", "--skip-latency", "--json", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    figures = json.loads(out.read_text())["summary"]
    # The rules are deterministic, so the measured figures are stable: guard against silent regressions.
    assert figures["injection_recall_all"] >= 0.85 and figures["harmful_recall_all"] >= 0.85
    assert figures["injection_fp_rate_in_domain"] <= 0.02 and figures["harmful_fp_rate_in_domain"] <= 0.02
