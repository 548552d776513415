"""Maximal marginal relevance (Carbonell & Goldstein, 1998): trade relevance for diversity."""

from __future__ import annotations

import numpy as np


def mmr(query: np.ndarray, vectors: np.ndarray, k: int, lambda_: float) -> list[int]:
    """Indices into ``vectors`` (n, dim; unit norm), chosen greedily: each maximises
    lambda * sim(query, d) - (1 - lambda) * max sim(d, already chosen)."""
    if not 0.0 <= lambda_ <= 1.0:
        raise ValueError(f"MMR lambda must be in [0, 1], got {lambda_}")
    n = len(vectors)
    if n == 0 or k <= 0:
        return []
    relevance = vectors @ query  # (n,)
    similarity = vectors @ vectors.T  # (n, n)
    chosen = [int(np.argmax(relevance))]
    redundancy = similarity[chosen[0]].copy()
    while len(chosen) < min(k, n):
        score = lambda_ * relevance - (1.0 - lambda_) * redundancy
        score[chosen] = -np.inf
        best = int(np.argmax(score))
        chosen.append(best)
        redundancy = np.maximum(redundancy, similarity[best])
    return chosen
