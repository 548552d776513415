"""``vectors.faiss``: the collection's FAISS index, a checkpoint of the vectors SQLite holds.

An ``IndexIDMap2`` keyed by chunk id over ``IndexFlatIP`` (exact cosine: the vectors are normalised) or,
above ``IndexParams.approx_threshold`` chunks, ``IndexHNSWFlat``. Also FAISS's OpenMP threads: one for a
search, every core for adding vectors.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from core.errors import CorruptCollection
from core.storage import atomic_write_bytes

VECTORS = "vectors.faiss"
# FAISS's OpenMP team: one thread for a search (see VectorIndex.search), the default for adding vectors.
_OMP_DEFAULT = faiss.omp_get_max_threads()
_omp = threading.local()


@dataclass(frozen=True)
class IndexParams:
    approx_threshold: int = 100_000
    hnsw_m: int = 32
    hnsw_ef_construction: int = 80
    hnsw_ef_search: int = 64

    def kind_for(self, n_chunks: int) -> str:
        return "hnsw" if n_chunks > self.approx_threshold else "flat"


def _search_threads() -> None:
    """One OpenMP thread for this thread's searches. Set once per thread, not around every search: under
    load the two calls (each a GIL release) showed as 5 % of a search's samples."""
    if not getattr(_omp, "single", False):
        faiss.omp_set_num_threads(1)
        _omp.single = True


@contextmanager
def _build_threads() -> Iterator[None]:
    """Every core for adding vectors (an HNSW graph builds in parallel); searches on this thread go back
    to one afterwards."""
    faiss.omp_set_num_threads(_OMP_DEFAULT)
    _omp.single = False
    try:
        yield
    finally:
        _search_threads()


def _new_index(kind: str, dim: int, params: IndexParams) -> faiss.Index:
    if kind == "flat":
        inner = faiss.IndexFlatIP(dim)
    elif kind == "hnsw":
        inner = faiss.IndexHNSWFlat(dim, params.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = params.hnsw_ef_construction
        inner.hnsw.efSearch = params.hnsw_ef_search
    else:
        raise CorruptCollection(f"unknown index kind {kind!r}")
    # IDMap2 keys vectors by chunk id and supports reconstruct(), used by `check`.
    return faiss.IndexIDMap2(inner)


class VectorIndex:
    """A FAISS index keyed by chunk id. Removing from HNSW is impossible: it is marked for a rebuild instead
    (``needs_rebuild``), which the collection does from the stored vectors at its next checkpoint."""

    def __init__(self, index: faiss.Index, params: IndexParams):
        self.index = index
        self.params = params
        self.needs_rebuild = False
        inner = faiss.downcast_index(index.index)
        if isinstance(inner, faiss.IndexHNSW):
            inner.hnsw.efSearch = params.hnsw_ef_search

    @classmethod
    def empty(cls, kind: str, dim: int, params: IndexParams) -> VectorIndex:
        return cls(_new_index(kind, dim, params), params)

    @classmethod
    def build(cls, ids: np.ndarray, vectors: np.ndarray, dim: int, params: IndexParams) -> VectorIndex:
        """A fresh index of the kind ``params`` wants for this many vectors."""
        built = cls.empty(params.kind_for(len(ids)), dim, params)
        if len(ids):
            built.add(ids, vectors)
        return built

    @classmethod
    def read(cls, file: Path, params: IndexParams) -> VectorIndex:
        """Raises RuntimeError (FAISS's) for a missing or unreadable file."""
        return cls(faiss.read_index(str(file)), params)

    def save(self, file: Path) -> None:
        atomic_write_bytes(file, faiss.serialize_index(self.index).tobytes())

    @property
    def kind(self) -> str:
        return "hnsw" if isinstance(faiss.downcast_index(self.index.index), faiss.IndexHNSW) else "flat"

    @property
    def dim(self) -> int:
        return int(self.index.d)

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    def ids(self) -> np.ndarray:
        return faiss.vector_to_array(self.index.id_map).astype(np.int64)

    def reconstruct(self, chunk_id: int) -> np.ndarray:
        return self.index.reconstruct(chunk_id)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        with _build_threads():
            self.index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64))

    def remove(self, ids: np.ndarray) -> None:
        if self.kind == "hnsw":
            self.needs_rebuild = True
        else:
            self.index.remove_ids(faiss.IDSelectorArray(np.asarray(ids, dtype=np.int64)))

    def search(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        """Top-k as (chunk id, inner product) pairs, best first; ``allowed`` restricts it to those ids."""
        if k <= 0 or self.index.ntotal == 0 or (allowed is not None and len(allowed) == 0):
            return []
        query = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
        params = selector = None
        if allowed is not None:
            # The filter is applied inside the search, before the top-k cut (IDMap translates the ids).
            # SWIG does not keep the selector alive through the parameters object: hold it in a local.
            selector = faiss.IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64))
            if self.kind == "hnsw":
                params = faiss.SearchParametersHNSW(sel=selector, efSearch=max(self.params.hnsw_ef_search, k))
            else:
                params = faiss.SearchParameters(sel=selector)
        # One query is a memory-bound scan: FAISS's default of one OpenMP thread per core made it 7x slower
        # on 2 cores (15.7 vs 2.1 ms on 35k chunks) and starved the query embedding running beside it.
        _search_threads()
        scores, ids = self.index.search(query, min(k, self.index.ntotal), params=params)
        del selector  # only now may it be freed
        return [(i, s) for i, s in zip(ids[0].tolist(), scores[0].tolist()) if i >= 0]  # tolist: 10x faster than numpy scalars
