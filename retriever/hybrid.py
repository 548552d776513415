"""The retriever the assistant uses: dense, BM25 or both fused, with filters, MMR and a relevance signal."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

from core.collection import Collection
from core.config import RetrievalSettings
from core.embedding import Embedder
from core.errors import UserError
from core.types import Hit
from retriever.fusion import reciprocal_rank_fusion, weighted_fusion
from retriever.lexical import BM25Retriever
from retriever.mmr import mmr

MAX_QUERY_CHARS = 10_000
_DEFAULTS = RetrievalSettings()
Mode = Literal["dense", "bm25", "hybrid"]
Fusion = Literal["rrf", "weighted"]


@dataclass(frozen=True)
class RetrieverConfig:
    # Defaults come from RetrievalSettings, where each is explained and its measurement cited.
    mode: Mode = _DEFAULTS.mode
    fusion: Fusion = _DEFAULTS.fusion
    dense_weight: float = _DEFAULTS.dense_weight  # weighted: share of the dense score; RRF: weight of the dense list
    rrf_k: int = _DEFAULTS.rrf_k
    candidates: int = _DEFAULTS.candidates  # taken from each retriever before fusion
    mmr_lambda: float | None = _DEFAULTS.mmr_lambda  # None: no diversification; 1.0 is pure relevance
    min_relevance: float = _DEFAULTS.min_relevance  # best query-passage cosine under which nothing is relevant
    bm25_title_weight: float = _DEFAULTS.bm25_title_weight

    def __post_init__(self) -> None:
        if self.mode not in ("dense", "bm25", "hybrid"):
            raise UserError(f"unknown retrieval mode {self.mode!r}: use dense, bm25 or hybrid")
        if self.fusion not in ("rrf", "weighted"):
            raise UserError(f"unknown fusion {self.fusion!r}: use rrf or weighted")
        if not 0.0 <= self.dense_weight <= 1.0:
            raise UserError(f"dense_weight must be in [0, 1], got {self.dense_weight}")
        if self.mmr_lambda is not None and not 0.0 <= self.mmr_lambda <= 1.0:
            raise UserError(f"mmr_lambda must be in [0, 1], got {self.mmr_lambda}")
        if self.candidates < 1 or self.rrf_k < 1:
            raise UserError("candidates and rrf_k must be at least 1")


@dataclass(frozen=True)
class Retrieval:
    hits: list[Hit]
    # Best cosine similarity between the query and any candidate passage; `relevant` compares it with
    # the calibrated threshold so callers can say "the documents do not cover this" instead of guessing.
    relevance: float
    relevant: bool
    timings_ms: dict[str, float] = field(default_factory=dict)


def normalise_query(query: str) -> str:
    query = " ".join(str(query).split())
    if not query:
        raise UserError("the query is empty")
    return query[:MAX_QUERY_CHARS]


class Retriever:
    def __init__(self, collection: Collection, embedder: Embedder, config: RetrieverConfig = RetrieverConfig()):
        if embedder.name != collection.manifest.embedder.name or embedder.dim != collection.dim:
            raise UserError(
                f"collection {collection.manifest.name!r} was embedded with {collection.manifest.embedder.name} "
                f"({collection.dim}-d); queries must use the same model, not {embedder.name}"
            )
        self.collection = collection
        self.embedder = embedder
        self.config = config
        self.bm25 = BM25Retriever(collection, title_weight=config.bm25_title_weight)

    def retrieve(self, query: str, k: int = 5, filters: dict[str, Any] | None = None) -> list[Hit]:
        return self.search(query, k, filters).hits

    def search(
        self, query: str, k: int = 5, filters: dict[str, Any] | None = None, *, vector: np.ndarray | None = None, embed_ms: float = 0.0
    ) -> Retrieval:
        """The best ``k`` passages. ``vector``: the query's embedding when the caller embedded it already
        (the API embeds concurrent questions in one model call), with the time that took as ``embed_ms``."""
        if k < 1:
            raise UserError(f"k must be at least 1, got {k}")
        query = normalise_query(query)
        cfg = self.config
        timings: dict[str, float] = {}
        started = time.perf_counter()
        if vector is None:
            vector = self.embedder.embed_query(query)
        timings["embed"] = (time.perf_counter() - started) * 1000 + embed_ms
        allowed = self.collection.chunk_ids_matching(filters) if filters else None
        depth = max(cfg.candidates, k)
        rankings: dict[str, list[tuple[int, float]]] = {}
        if cfg.mode in ("dense", "hybrid"):
            t = time.perf_counter()
            rankings["dense"] = self.collection.dense(vector, depth, allowed)
            timings["dense"] = (time.perf_counter() - t) * 1000
        if cfg.mode in ("bm25", "hybrid"):
            t = time.perf_counter()
            rankings["bm25"] = self.bm25.scored(query, depth, filters)
            timings["bm25"] = (time.perf_counter() - t) * 1000
        if cfg.mode == "hybrid":
            weights = {"dense": cfg.dense_weight, "bm25": 1.0 - cfg.dense_weight}
            if cfg.fusion == "rrf":
                # Equal weights reproduce plain RRF; the factor 2 keeps the default (0.5) at weight 1 each.
                fused = reciprocal_rank_fusion(rankings, cfg.rrf_k, {n: 2 * w for n, w in weights.items()})
            else:
                fused = weighted_fusion(rankings, weights)
        else:
            fused = rankings[cfg.mode]
        candidates = fused[: depth if cfg.mmr_lambda is not None else k]
        ids = np.array([cid for cid, _ in candidates], dtype=np.int64)
        # Cosine of every candidate, from the stored vectors: the relevance signal and MMR's input.
        vectors = self.collection.vectors_for(ids)
        cosines = vectors @ vector
        best = [float(cosines.max())] if len(cosines) else []
        if rankings.get("dense"):
            best.append(rankings["dense"][0][1])  # the best dense candidate may have been fused out of the top k
        relevance = max(best, default=0.0)
        if cfg.mmr_lambda is not None and len(candidates) > k:
            order = mmr(vector, vectors, k, cfg.mmr_lambda)
        else:
            order = list(range(min(k, len(candidates))))
        components = {name: dict(ranking) for name, ranking in rankings.items()}
        chosen = [candidates[i] for i in order]
        hits = self.collection.hits(chosen)
        cosine_of = {int(ids[i]): float(cosines[i]) for i in order}
        hits = [
            replace(h, scores={**{n: c[h.chunk_id] for n, c in components.items() if h.chunk_id in c}, "cosine": cosine_of[h.chunk_id]})
            for h in hits
        ]
        timings["total"] = (time.perf_counter() - started) * 1000 + embed_ms
        return Retrieval(hits=hits, relevance=relevance, relevant=relevance >= cfg.min_relevance, timings_ms=timings)
