"""The composition root: turns Settings into components. The CLI, the benchmarks and (later) the API and
UI build everything through here, so components themselves only ever take plain arguments."""

from __future__ import annotations

import logging
from pathlib import Path

from assistant.collection import Collection, IndexParams, collection_path
from assistant.config import Settings
from assistant.embedding import Embedder, make_embedder
from ingest.chunking import Chunker
from ingest.pipeline import Ingestor, chunking_info, open_for_ingest
from retriever.hybrid import Retriever, RetrieverConfig


def quiet_model_loading() -> None:
    """Model loading prints progress bars and advice that drown a command's own output."""
    import transformers

    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    logging.getLogger("sentence_transformers").setLevel(logging.ERROR)  # e.g. the one-off ONNX export notice
    logging.getLogger("pypdf").setLevel(logging.ERROR)  # damaged PDFs are reported as skipped files instead


def embedder(settings: Settings, model: str | None = None) -> Embedder:
    """The configured embedder, or the named model with the configured batch size, device and backend."""
    cfg = settings.embedder
    name = model or cfg.model
    if not name.startswith("hash:"):
        quiet_model_loading()
    return make_embedder(name, batch_size=cfg.batch_size, device=cfg.device, backend=cfg.backend, cache_dir=cfg.cache_dir)


def index_params(settings: Settings) -> IndexParams:
    return IndexParams(**settings.index.model_dump())


def open_collection(settings: Settings, name: str, *, writable: bool = False) -> Collection:
    return Collection.open(collection_path(settings.index_dir, name), writable=writable, params=index_params(settings))


def ingestor(settings: Settings, path: Path, embedder: Embedder, *, name: str | None = None, progress: bool = True) -> Ingestor:
    """An Ingestor writing to the collection at ``path`` (created if absent), chunking as configured.
    The caller closes ``ingestor.collection``."""
    chunk = settings.chunking
    store = open_for_ingest(path, embedder, chunking_info(chunk.chunk_tokens, chunk.overlap_tokens, chunk.embed_title), index_params(settings), name=name)
    return Ingestor(
        store,
        embedder,
        chunker=Chunker(embedder.count_tokens, chunk.chunk_tokens, chunk.overlap_tokens),
        embed_title=chunk.embed_title,
        commit_chunks=settings.ingest.commit_chunks,
        max_bytes=int(settings.ingest.max_file_mb * 2**20),
        encoding_fallback=settings.ingest.encoding_fallback,
        progress=progress,
    )


def retriever(settings: Settings, store: Collection, embedder: Embedder, **overrides) -> Retriever:
    """A Retriever with the configured retrieval settings; ``overrides`` that are not None win."""
    config = {**settings.retrieval.model_dump(), **{k: v for k, v in overrides.items() if v is not None}}
    return Retriever(store, embedder, RetrieverConfig(**config))
