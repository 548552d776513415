"""Combining ranked lists from several retrievers into one.

Both take ``{name: [(chunk id, score), ...]}`` with each list best first, and return
``[(chunk id, fused score)]`` best first.
"""

from __future__ import annotations

from collections import defaultdict


def reciprocal_rank_fusion(
    rankings: dict[str, list[tuple[int, float]]], k: int = 60, weights: dict[str, float] | None = None
) -> list[tuple[int, float]]:
    """RRF (Cormack et al., 2009): sum of weight / (k + rank). Uses ranks only, so scores on different
    scales (cosine, BM25) need no calibration."""
    fused: dict[int, float] = defaultdict(float)
    for name, ranking in rankings.items():
        weight = 1.0 if weights is None else weights.get(name, 1.0)
        for rank, (doc, _score) in enumerate(ranking, 1):
            fused[doc] += weight / (k + rank)
    return sorted(fused.items(), key=lambda item: item[1], reverse=True)


def weighted_fusion(rankings: dict[str, list[tuple[int, float]]], weights: dict[str, float]) -> list[tuple[int, float]]:
    """Weighted sum of min-max normalised scores; a candidate missing from a list scores 0 there."""
    fused: dict[int, float] = defaultdict(float)
    for name, ranking in rankings.items():
        if not ranking:
            continue
        scores = [s for _, s in ranking]
        low, high = min(scores), max(scores)
        span = high - low
        for doc, score in ranking:
            fused[doc] += weights.get(name, 0.0) * ((score - low) / span if span > 0 else 1.0)
    return sorted(fused.items(), key=lambda item: item[1], reverse=True)
