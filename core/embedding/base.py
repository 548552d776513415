"""The embedder seam: text -> L2-normalised float32 vectors, so inner product == cosine similarity."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Embedder(Protocol):
    """Safe to call from several threads at once: the API and the chat embed questions while an upload is
    being ingested."""

    name: str  # stable name recorded in a collection's manifest
    dim: int
    max_tokens: int  # longest input the model reads; longer inputs are truncated

    def count_tokens(self, text: str) -> int: ...

    def embed_passages(self, texts: list[str]) -> np.ndarray:  # (n, dim) float32, rows of norm 1
        ...

    def embed_query(self, text: str) -> np.ndarray:  # (dim,) float32, norm 1
        ...


def embed_queries(embedder: Embedder, texts: list[str]) -> np.ndarray:
    """Several questions at once: the embedder's own batched call where it has one."""
    batched = getattr(embedder, "embed_queries", None)
    if batched is not None:
        return batched(texts)
    return np.stack([embedder.embed_query(t) for t in texts]) if texts else np.zeros((0, embedder.dim), dtype=np.float32)
