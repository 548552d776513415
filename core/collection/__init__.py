"""A collection on disk: one folder holding ``manifest.json``, ``docs.sqlite`` and ``vectors.faiss``.

``Collection`` (collection.py) is the front door; behind it, one file per job: manifest.py (what the
collection was built with), store.py (SQLite, the source of truth, and every query), codec.py (how a vector
is stored there: float16), vectors.py (the FAISS checkpoint: flat, HNSW or IVF), ivf.py (the IVF kind:
lists, training, when to train again), check.py (``assistant check``), filters.py (metadata filters),
paths.py (names, listing, swapping a rebuilt collection in).
"""

from core.collection.check import CheckReport
from core.collection.collection import Collection, CommitResult, ReindexResult
from core.collection.filters import Filters, filter_clause, parse_filters
from core.collection.ivf import retrain_advice
from core.collection.manifest import (
    FORMAT_VERSION,
    MANIFEST,
    ChunkingInfo,
    EmbedderInfo,
    IndexInfo,
    Manifest,
    ensure_compatible,
    missing_collection,
    read_manifest,
)
from core.collection.paths import collection_path, list_collections, replace_collection
from core.collection.store import DATABASE, DocumentBatch, FileRecord
from core.collection.vectors import VECTORS, IndexParams

__all__ = [
    "DATABASE",
    "FORMAT_VERSION",
    "MANIFEST",
    "VECTORS",
    "CheckReport",
    "ChunkingInfo",
    "Collection",
    "CommitResult",
    "DocumentBatch",
    "EmbedderInfo",
    "FileRecord",
    "Filters",
    "IndexInfo",
    "IndexParams",
    "Manifest",
    "ReindexResult",
    "collection_path",
    "ensure_compatible",
    "filter_clause",
    "list_collections",
    "missing_collection",
    "parse_filters",
    "read_manifest",
    "replace_collection",
    "retrain_advice",
]
