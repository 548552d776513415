"""Embedders: text -> L2-normalised float32 vectors, so inner product == cosine similarity.

Shared by ingest (passages) and retrieval (queries), which is why they live in the bottom layer. One module
per implementation; pick one by name with ``make_embedder``:

- a sentence-transformers model name or local path (``sentence_transformer.py``; ONNX Runtime on the CPU,
  ``onnx.py``);
- ``hash:DIM``: a deterministic bag-of-words hashing embedder for fast tests (``hashing.py``).

``BatchingEmbedder`` (``batching.py``) wraps any of them so concurrent questions share one model call.
"""

from __future__ import annotations

from pathlib import Path

from core.embedding.base import Embedder, embed_queries
from core.embedding.batching import BatchingEmbedder
from core.embedding.hashing import HashEmbedder
from core.embedding.sentence_transformer import SentenceTransformerEmbedder
from core.errors import UserError


def make_embedder(
    model: str,
    *,
    batch_size: int = 32,
    device: str | None = None,
    backend: str = "auto",
    cache_dir: Path | None = None,
    quantize_queries: bool = False,
    threads: int = 0,
) -> Embedder:
    """``threads``: the CPU threads one model call may use (0: one per core); a process that shares the
    machine with others doing the same work (a Ray worker) sets its share."""
    if model.startswith("hash:"):
        try:
            dim = int(model.split(":", 1)[1])
        except ValueError:
            raise UserError(f"bad hash embedder name {model!r}: expected hash:DIM, e.g. hash:384") from None
        return HashEmbedder(dim)
    return SentenceTransformerEmbedder(
        model,
        batch_size=batch_size,
        device=device,
        backend=backend,
        cache_dir=cache_dir,
        quantize_queries=quantize_queries,
        threads=threads,
    )


__all__ = ["BatchingEmbedder", "Embedder", "HashEmbedder", "SentenceTransformerEmbedder", "embed_queries", "make_embedder"]
