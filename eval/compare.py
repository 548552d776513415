"""Two configurations side by side: per summary metric the values, the difference and, for metrics that are
means of per-item scores, a paired bootstrap confidence interval of the difference.

The difference is always *compared minus main* (``--compare`` minus ``--config``): with ``--config base.yaml
--compare lora.yaml`` a positive token-F1 delta means the adapter scores higher. The interval resamples the
per-item differences of the items both configurations scored (``bootstrap_ci(values_b, values_a)``: 1000
resamples, seed 0, 95 %); it is "significant" when it excludes 0. Aggregates that are not item means (a
rail's precision, latency percentiles) get the difference only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from eval.metrics import bootstrap_ci
from eval.scoring import item_score_for

RESAMPLES = 1000
SEED = 0


def deltas(
    summary_a: Mapping[str, float | None],
    summary_b: Mapping[str, float | None],
    rows_a: Mapping[str, Sequence[Mapping[str, Any]]],
    rows_b: Mapping[str, Sequence[Mapping[str, Any]]],
) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for key in [k for k in summary_a if k in summary_b] + [k for k in summary_b if k not in summary_a]:
        a, b = summary_a.get(key), summary_b.get(key)
        entry: dict[str, Any] = {"a": a, "b": b, "delta": (b - a) if a is not None and b is not None else None}
        paired = item_score_for(key, rows_a)
        if paired is not None and paired[0] in rows_b:
            suite, score = paired
            scores_b = {r["item"]["id"]: r["scores"].get(score) for r in rows_b[suite]}
            pairs = [
                (scores_b[r["item"]["id"]], r["scores"][score])
                for r in rows_a[suite]
                if r["scores"].get(score) is not None and scores_b.get(r["item"]["id"]) is not None
            ]
            ci = bootstrap_ci([p[0] for p in pairs], [p[1] for p in pairs], n=RESAMPLES, seed=SEED)
            entry.update(
                {
                    "ci_low": ci["low"],
                    "ci_high": ci["high"],
                    "n": ci["n"],
                    "paired_mean": ci["mean"],
                    "significant": ci["n"] > 0 and (ci["low"] > 0 or ci["high"] < 0),
                }
            )
        out[key] = entry
    return out
