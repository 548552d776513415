"""How a chunk's vector is kept in ``docs.sqlite``: written as float16 (2 bytes a dimension), read as float16
or float32 (4 bytes a dimension: collections written before float16), told apart by the blob's length.

Half the bytes of float32 for a cosine that moves by about 1e-4 (float16 keeps 11 significant bits; the
vectors are L2-normalised, so every component lies in [-1, 1]). Whatever is read comes back as float32: the
values the FAISS index is given, so an index rebuilt from the store equals the one kept up to date live.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from core.errors import CorruptCollection

STORED_DTYPE = np.float16
_DTYPE_BY_WIDTH: dict[int, np.dtype] = {2: np.dtype(np.float16), 4: np.dtype(np.float32)}


def stored_bytes(dim: int) -> tuple[int, ...]:
    """The blob lengths a vector of ``dim`` dimensions may have (float16, float32)."""
    return tuple(width * dim for width in _DTYPE_BY_WIDTH)


def encode(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype=np.float32).astype(STORED_DTYPE).tobytes()


def as_stored(vectors: np.ndarray) -> np.ndarray:
    """What reading these vectors back from the store gives: float32 holding float16 values."""
    return np.asarray(vectors, dtype=np.float32).astype(STORED_DTYPE).astype(np.float32)


def _dtype(blob: bytes, dim: int) -> np.dtype:
    dtype = _DTYPE_BY_WIDTH.get(len(blob) // dim) if dim and len(blob) % dim == 0 else None
    if dtype is None:
        raise CorruptCollection(
            f"a stored vector has {len(blob)} bytes, expected {' or '.join(map(str, stored_bytes(dim)))} for {dim} dimensions"
        )
    return dtype


def decode(blob: bytes, dim: int) -> np.ndarray:
    """One stored vector as float32; CorruptCollection for a blob of neither width."""
    return np.frombuffer(blob, dtype=_dtype(blob, dim)).astype(np.float32)


def decode_many(blobs: Sequence[bytes], dim: int) -> np.ndarray:
    """Stored vectors as a (len(blobs), dim) float32 array; one conversion when they share a width (the
    usual case), row by row in a collection that holds both."""
    if not blobs:
        return np.zeros((0, dim), dtype=np.float32)
    width = len(blobs[0])
    if all(len(b) == width for b in blobs):
        return np.frombuffer(b"".join(blobs), dtype=_dtype(blobs[0], dim)).reshape(len(blobs), dim).astype(np.float32)
    return np.vstack([decode(b, dim) for b in blobs])
