"""The IVF index kind, for collections past ``IndexParams.ivf_threshold`` chunks: an inverted file of 8-bit
scalar-quantized vectors (``IndexIVFScalarQuantizer``, 384 bytes a vector at 384-d against 1,536 as float32).

Its ``nlist`` centroids are trained by k-means on a sample of the stored vectors; a vector added later goes
to the list of its nearest centroid, so the lists drift out of balance as a collection grows past what it
was trained on (``retrain_advice``; ``assistant reindex`` trains again). A search scans the ``nprobe``
lists nearest the query. bench/ivf.py measured the defaults (docs/bench/ivf-2026-12-07): with 2,048 lists at
1M vectors and 4,096 at 5M, nprobe 32 found 0.96 of the exact top 10 for held-out real queries (0.98 for
queries drawn like the data) in 4-6 ms at p95, against 166 and 436 ms for an exact scan; training took 52 and
142 s of a 96 and 348 s build on 2 loaded cores.

The IVF keeps each vector's chunk id itself, so it is not wrapped in an ``IndexIDMap2`` (whose removal
assumes the inner index renumbers its vectors, which an IVF does not), and it keeps no direct map (a hash
table of about 50 bytes a vector): ``ids`` and ``reconstruct`` read the inverted lists instead, which only
``check`` and the repair on open need.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import faiss
import numpy as np

if TYPE_CHECKING:
    from core.collection.vectors import IndexParams

# k-means wants at least 39 points a centroid (FAISS warns below); fewer lists for a small collection.
MIN_POINTS_PER_LIST = 39
MAX_NLIST = 65_536
# An IVF trained on far fewer vectors than it holds has long, unbalanced lists: slower searches for the
# same nprobe. Past this growth, `check` and `collections` recommend `assistant reindex`.
RETRAIN_GROWTH = 2.0


def nlist_for(n: int, params: IndexParams) -> int:
    """Lists for ``n`` vectors: ``ivf_nlist`` when set, else about 2 * sqrt(n) rounded to a power of two
    (2,048 at 1M, 4,096 at 5M); never more than the vectors allow for training."""
    if params.ivf_nlist:
        wanted = params.ivf_nlist
    else:
        wanted = 2 ** round(math.log2(max(2.0 * math.sqrt(max(n, 1)), 1.0)))
    return max(1, min(wanted, MAX_NLIST, n // MIN_POINTS_PER_LIST))


def training_size(n: int, nlist: int, params: IndexParams) -> int:
    """How many stored vectors k-means trains on: ``ivf_train_per_list`` a list, at most all of them."""
    return min(n, max(nlist * params.ivf_train_per_list, nlist * MIN_POINTS_PER_LIST))


def new_index(dim: int, nlist: int) -> faiss.IndexIVFScalarQuantizer:
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFScalarQuantizer(quantizer, dim, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
    index.own_fields = True  # the IVF frees its quantizer
    quantizer.this.disown()
    # Each dimension's 8-bit range is the training sample's min..max widened by a quarter on each side, and
    # the vectors themselves are coded rather than their residuals to the centroid: a vector added after
    # training then rarely falls outside the range (clipped). On 13k MiniLM vectors, 2k of them for training:
    # worst cosine of a decoded vector added later 0.9999 (residuals, no margin: 0.989); trained ones 0.9999.
    index.by_residual = False
    index.sq.rangestat_arg = 0.25
    return index


def _lists(index: faiss.IndexIVF) -> tuple[list[int], list[np.ndarray]]:
    invlists = index.invlists
    numbers, ids = [], []
    for list_no in range(index.nlist):
        size = invlists.list_size(list_no)
        if size:
            numbers.append(list_no)
            ids.append(faiss.rev_swig_ptr(invlists.get_ids(list_no), size).copy())
    return numbers, ids


def ids(index: faiss.IndexIVF) -> np.ndarray:
    """Every chunk id the inverted lists hold."""
    _, per_list = _lists(index)
    return np.concatenate(per_list).astype(np.int64) if per_list else np.zeros(0, dtype=np.int64)


def reconstruct(index: faiss.IndexIVF, wanted: np.ndarray) -> np.ndarray:
    """The vectors held for these chunk ids, decoded from their 8-bit codes (lossy: see ``VectorIndex.holds``);
    KeyError for an id the index does not hold."""
    wanted = np.asarray(wanted, dtype=np.int64)
    where: dict[int, tuple[int, int]] = {}
    for list_no, list_ids in zip(*_lists(index)):
        for offset in np.flatnonzero(np.isin(list_ids, wanted)).tolist():
            where[int(list_ids[offset])] = (list_no, offset)
    out = np.zeros((len(wanted), index.d), dtype=np.float32)
    for row, chunk_id in enumerate(wanted.tolist()):
        list_no, offset = where[chunk_id]
        index.reconstruct_from_offset(list_no, offset, faiss.swig_ptr(out[row]))
    return out


def nprobe_for(index: faiss.IndexIVF, params: IndexParams, n_allowed: int | None) -> int:
    """Lists a search scans. A filter lets through only a share of each list, so that share is made up by
    scanning proportionally more lists (up to all of them): a restrictive filter still finds its k best."""
    nprobe = params.ivf_nprobe
    if n_allowed is not None and n_allowed < index.ntotal:
        nprobe = math.ceil(nprobe * index.ntotal / max(n_allowed, 1))
    return max(1, min(nprobe, index.nlist))


def retrain_advice(trained_on: int | None, ntotal: int, collection: str) -> str | None:
    """A sentence recommending `assistant reindex`, when the index holds far more than it was trained on."""
    if not trained_on or ntotal <= RETRAIN_GROWTH * trained_on:
        return None
    return (
        f"the IVF index was trained on a collection of {trained_on:,} vectors and now holds {ntotal:,} "
        f"({ntotal / trained_on:.1f}x): run `assistant reindex --collection {collection}` to train it again"
    )
