"""A deterministic bag-of-words embedder for tests and tools that need vectors but no model."""

from __future__ import annotations

import hashlib
import re

import numpy as np

from core.errors import UserError

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

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return self.embed_passages(texts)
