"""``vectors.faiss``: the collection's FAISS index, a checkpoint of the vectors SQLite holds.

Three kinds, by the number of chunks (``IndexParams.kind_for``):

- ``flat`` (up to ``approx_threshold``): exact inner product (cosine: the vectors are normalised) over
  float16 codes, an ``IndexScalarQuantizer`` (QT_fp16) in an ``IndexIDMap2`` keyed by chunk id. Half the
  memory and file of float32 and faster too, the scan being memory-bound: one query on 35k vectors took
  2.6 instead of 4.8 ms, on 200k 16.9 instead of 27.1 ms, with the same top 10. Collections written before
  hold an ``IndexFlatIP`` (float32), read as it is.
- ``hnsw`` (up to ``ivf_threshold``): ``IndexHNSWFlat`` in an ``IndexIDMap2``.
- ``ivf`` (above): ``IndexIVFScalarQuantizer``, 8-bit codes in inverted lists over trained centroids (ivf.py).

Also FAISS's OpenMP threads: one for a search, every core for training and adding vectors.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from core.collection import ivf
from core.errors import CorruptCollection
from core.storage import atomic_write_stream

VECTORS = "vectors.faiss"
# FAISS's OpenMP team: one thread for a search (see VectorIndex.search), the default for adding vectors.
_OMP_DEFAULT = faiss.omp_get_max_threads()
_omp = threading.local()
# How close a reconstructed vector must be to the stored one for `check`, by how the index encodes it.
_FLOAT32_ATOL = 1e-5
_FLOAT16_ATOL = 2.0**-11  # half a float16 step at 1.0: the components of a normalised vector lie in [-1, 1]
# 8-bit codes keep a MiniLM vector's direction to a cosine of 0.9999 (ivf.new_index); another chunk's vector
# lies below 0.99 but for near duplicates, whose swap no search would notice.
_IVF_MIN_COSINE = 0.99


@dataclass(frozen=True)
class IndexParams:
    approx_threshold: int = 100_000
    hnsw_m: int = 32
    hnsw_ef_construction: int = 80
    hnsw_ef_search: int = 64
    ivf_threshold: int = 1_000_000
    ivf_nlist: int = 0  # 0: chosen from the collection's size (ivf.nlist_for)
    ivf_nprobe: int = 32
    ivf_train_per_list: int = 64
    keep_versions: int = 100  # listed versions a collection's history keeps (history.py); 0: all

    def kind_for(self, n_chunks: int) -> str:
        if n_chunks > self.ivf_threshold:
            return "ivf"
        return "hnsw" if n_chunks > self.approx_threshold else "flat"


def _search_threads() -> None:
    """One OpenMP thread for this thread's searches. Set once per thread, not around every search: under
    load the two calls (each a GIL release) showed as 5 % of a search's samples."""
    if not getattr(_omp, "single", False):
        faiss.omp_set_num_threads(1)
        _omp.single = True


@contextmanager
def _build_threads() -> Iterator[None]:
    """Every core for training and adding vectors (k-means, an HNSW graph, IVF assignment run in parallel);
    searches on this thread go back to one afterwards."""
    faiss.omp_set_num_threads(_OMP_DEFAULT)
    _omp.single = False
    try:
        yield
    finally:
        _search_threads()


def _new_index(kind: str, dim: int, params: IndexParams) -> faiss.Index:
    if kind == "flat":
        inner = faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
    elif kind == "hnsw":
        inner = faiss.IndexHNSWFlat(dim, params.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = params.hnsw_ef_construction
        inner.hnsw.efSearch = params.hnsw_ef_search
    else:
        raise CorruptCollection(f"unknown index kind {kind!r}")
    # IDMap2 keys vectors by chunk id and supports reconstruct(), used by `check`.
    return faiss.IndexIDMap2(inner)


def _kind_of(index: faiss.Index) -> str:
    if isinstance(index, faiss.IndexIVF):
        return "ivf"
    if isinstance(index, faiss.IndexIDMap2):
        return "hnsw" if isinstance(faiss.downcast_index(index.index), faiss.IndexHNSW) else "flat"
    raise CorruptCollection(f"{VECTORS} holds a {type(index).__name__}, not an index this version writes")


def _atol(index: faiss.Index) -> float:
    inner = faiss.downcast_index(index.index)
    return _FLOAT16_ATOL if isinstance(inner, faiss.IndexScalarQuantizer) else _FLOAT32_ATOL


class VectorIndex:
    """A FAISS index keyed by chunk id. Removing from HNSW is impossible: it is marked for a rebuild instead
    (``needs_rebuild``), which the collection does from the stored vectors at its next checkpoint (a reader
    at once, when it repairs a lagging index).

    ``trained_on``: for an IVF, how many vectors the collection held when its centroids were trained (the
    manifest keeps it; None when unknown). ``mapped``: an IVF read with its inverted lists memory-mapped
    from the file (read-only handles): searches only, FAISS would abort the process on a write."""

    def __init__(self, index: faiss.Index, params: IndexParams, *, trained_on: int | None = None, mapped: bool = False):
        self.index = index
        self.params = params
        self.kind = _kind_of(index)
        self.trained_on = trained_on if self.kind == "ivf" else None
        self.mapped = mapped
        self.needs_rebuild = False
        if self.kind == "hnsw":
            faiss.downcast_index(index.index).hnsw.efSearch = params.hnsw_ef_search
        elif self.kind == "ivf":
            index.nprobe = min(params.ivf_nprobe, index.nlist)
        if self.mapped:
            # FAISS would start a thread per probed list to page it in ahead of every search: 1.4 ms p50 and
            # 7.8 ms p95 on 100k vectors against 0.13 / 0.24 ms without, the pages being cached after the first.
            faiss.downcast_InvertedLists(index.invlists).prefetch_nthread = 0

    @classmethod
    def empty(cls, kind: str, dim: int, params: IndexParams) -> VectorIndex:
        """An empty flat or HNSW index (an IVF is only ever built: it needs vectors to train on)."""
        return cls(_new_index(kind, dim, params), params)

    @classmethod
    def build(
        cls, dim: int, params: IndexParams, n: int, batches: Iterable[tuple[np.ndarray, np.ndarray]], sample: Callable[[int], np.ndarray]
    ) -> VectorIndex:
        """A fresh index of the kind ``params`` wants for ``n`` vectors, filled from ``batches`` of (ids,
        vectors); an IVF's centroids are first trained on ``sample(size)``, that many of the vectors."""
        kind = params.kind_for(n)
        if kind == "ivf":
            nlist = ivf.nlist_for(n, params)
            built = cls(ivf.new_index(dim, nlist), params, trained_on=n)
            training = np.ascontiguousarray(sample(ivf.training_size(n, nlist, params)), dtype=np.float32)
            with _build_threads():
                built.index.train(training)
        else:
            built = cls.empty(kind, dim, params)
        for ids, vectors in batches:
            built.add(ids, vectors)
        return built

    @classmethod
    def from_arrays(cls, ids: np.ndarray, vectors: np.ndarray, dim: int, params: IndexParams) -> VectorIndex:
        """``build`` from vectors in memory, training on ones spread evenly over them."""

        def spread(size: int) -> np.ndarray:
            return vectors[np.linspace(0, len(vectors) - 1, num=size).astype(np.int64)] if size < len(vectors) else vectors

        return cls.build(dim, params, len(ids), [(ids, vectors)] if len(ids) else [], spread)

    @classmethod
    def read(cls, file: Path, params: IndexParams, *, trained_on: int | None = None, mapped: bool = False) -> VectorIndex:
        """Raises RuntimeError (FAISS's) for a missing or unreadable file. ``mapped``: an IVF's inverted
        lists stay in the file, memory-mapped (the OS pages in the lists searches touch, and processes
        reading the same file share them); other kinds are read whole either way."""
        index = faiss.read_index(str(file), faiss.IO_FLAG_MMAP if mapped else 0)
        return cls(index, params, trained_on=trained_on, mapped=mapped and isinstance(index, faiss.IndexIVF))

    def save(self, file: Path) -> None:
        # Streamed to the file: serialising first would hold two more copies (2 GB each for an IVF of 5M).
        atomic_write_stream(file, lambda fh: faiss.write_index(self.index, faiss.PyCallbackIOWriter(fh.write)))

    @property
    def dim(self) -> int:
        return int(self.index.d)

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    @property
    def nlist(self) -> int | None:
        return int(self.index.nlist) if self.kind == "ivf" else None

    def ids(self) -> np.ndarray:
        if self.kind == "ivf":
            return ivf.ids(self.index)
        return faiss.vector_to_array(self.index.id_map).astype(np.int64)

    def reconstruct(self, ids: np.ndarray) -> np.ndarray:
        """The vectors the index holds for these chunk ids (as its encoding keeps them)."""
        if self.kind == "ivf":
            return ivf.reconstruct(self.index, ids)
        return np.vstack([self.index.reconstruct(int(i)) for i in ids]) if len(ids) else np.zeros((0, self.dim), dtype=np.float32)

    def holds(self, ids: np.ndarray, stored: np.ndarray) -> bool:
        """Whether the index holds these stored vectors under these ids, as closely as its encoding can:
        float32 and float16 values to within their rounding, 8-bit IVF codes to within a cosine."""
        got = self.reconstruct(ids)
        if self.kind == "ivf":
            norms = np.linalg.norm(got, axis=1) * np.linalg.norm(stored, axis=1)
            return bool(np.all((got * stored).sum(axis=1) >= _IVF_MIN_COSINE * norms))
        return bool(np.allclose(got, stored, rtol=0.0, atol=_atol(self.index)))

    def _require_in_memory(self) -> None:
        if self.mapped:
            raise RuntimeError("a memory-mapped index is read-only")

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self._require_in_memory()
        with _build_threads():
            self.index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64))

    def remove(self, ids: np.ndarray) -> None:
        self._require_in_memory()
        if self.kind == "hnsw":
            self.needs_rebuild = True
        elif self.kind == "ivf":
            # Without a direct map the IVF scans its lists for the ids: a batch selector tests each in O(1).
            with _build_threads():
                self.index.remove_ids(faiss.IDSelectorBatch(np.asarray(ids, dtype=np.int64)))
        else:
            self.index.remove_ids(faiss.IDSelectorArray(np.asarray(ids, dtype=np.int64)))

    def _search_params(self, k: int, selector: faiss.IDSelector | None, n_allowed: int | None) -> faiss.SearchParameters | None:
        if self.kind == "ivf":
            params = faiss.SearchParametersIVF(nprobe=ivf.nprobe_for(self.index, self.params, n_allowed))
            if selector is not None:
                params.sel = selector
            return params
        if selector is None:
            return None
        if self.kind == "hnsw":
            return faiss.SearchParametersHNSW(sel=selector, efSearch=max(self.params.hnsw_ef_search, k))
        return faiss.SearchParameters(sel=selector)

    def search(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        """Top-k as (chunk id, inner product) pairs, best first; ``allowed`` restricts it to those ids."""
        if k <= 0 or self.index.ntotal == 0 or (allowed is not None and len(allowed) == 0):
            return []
        query = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
        selector = None
        if allowed is not None:
            # The filter is applied inside the search, before the top-k cut (IDMap translates the ids).
            # SWIG does not keep the selector alive through the parameters object: hold it in a local.
            selector = faiss.IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64))
        params = self._search_params(k, selector, None if allowed is None else len(allowed))
        # One query is a memory-bound scan: FAISS's default of one OpenMP thread per core made it 7x slower
        # on 2 cores (15.7 vs 2.1 ms on 35k chunks) and starved the query embedding running beside it.
        _search_threads()
        scores, ids = self.index.search(query, min(k, self.index.ntotal), params=params)
        del selector  # only now may it be freed
        return [(i, s) for i, s in zip(ids[0].tolist(), scores[0].tolist()) if i >= 0]  # tolist: 10x faster than numpy scalars
