"""The regression gate: thresholds on summary metrics, read from YAML.

    medical.token_f1: 0.3                      # a number: the metric must be at least this
    guardrails.injection.recall: {min: 0.8}
    latency.total_p95_ms: {max: 20000}         # at most this
    guardrails.benign_block_rate: {max: 0.05}

A metric of a suite that did not run is skipped (listed, not failed); a metric the run should have measured
but did not (an unknown name, or a value that is undefined, e.g. precision when nothing fired) fails.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from core.errors import UserError
from eval.config import read_yaml
from eval.scoring import GUARD_SUITE, SUITES

# Summary names that belong to the answer suites as a whole rather than to one suite.
ANSWER_WIDE = ("latency", "refusal", "answerability")


def load_gate(path: Path) -> list[dict[str, Any]]:
    path = Path(path)
    data = read_yaml(path, "gate file")
    if not isinstance(data, Mapping) or not data:
        raise UserError(f"{path}: expected metric: threshold pairs, e.g. `medical.token_f1: 0.3` or `latency.total_p95_ms: {{max: 20000}}`")
    out = []
    for metric, rule in data.items():
        if isinstance(rule, bool):
            raise UserError(f"{path}: {metric}: a threshold is a number or {{min: ..., max: ...}}, got {rule!r}")
        if isinstance(rule, (int, float)):
            rule = {"min": rule}
        if (
            not isinstance(rule, Mapping)
            or not rule
            or set(rule) - {"min", "max"}
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in rule.values())
        ):
            raise UserError(f"{path}: {metric}: a threshold is a number or {{min: ..., max: ...}}, got {rule!r}")
        out.append({"metric": str(metric), "min": rule.get("min"), "max": rule.get("max")})
    return out


def _num(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def _suite_of(metric: str) -> str:
    return metric.split(".", 1)[0]


def check(
    thresholds: Iterable[Mapping[str, Any]], summary: Mapping[str, float | None], suites: Iterable[str], *, file: str | None = None
) -> dict[str, Any]:
    """{"passed": bool, "file", "results": [{metric, value, min, max, status: pass|fail|skip, reason}], "failed": [...]}"""
    ran = set(suites)
    results = []
    for t in thresholds:
        metric, low, high = t["metric"], t.get("min"), t.get("max")
        prefix = _suite_of(metric)
        value = summary.get(metric)
        row = {"metric": metric, "value": value, "min": low, "max": high}
        if (prefix in SUITES and prefix not in ran) or (prefix in ANSWER_WIDE and not ran - {GUARD_SUITE}):
            row.update(status="skip", reason="suite not run")
        elif metric not in summary:
            row.update(status="fail", reason="unknown metric (not in the report's summary)")
        elif value is None:
            row.update(status="fail", reason="not measured (undefined for these items)")
        elif low is not None and value < low:
            row.update(status="fail", reason=f"{_num(value)} < min {_num(low)}")
        elif high is not None and value > high:
            row.update(status="fail", reason=f"{_num(value)} > max {_num(high)}")
        else:
            bounds = " and ".join(
                b for b in (f">= {_num(low)}" if low is not None else "", f"<= {_num(high)}" if high is not None else "") if b
            )
            row.update(status="pass", reason=f"{_num(value)} {bounds}")
        results.append(row)
    failed = [r["metric"] for r in results if r["status"] == "fail"]
    return {"passed": not failed, "file": file, "results": results, "failed": failed}
