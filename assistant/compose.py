"""The composition root: turns Settings into components, one factory per thing. The Assistant, the command
line, the API, the chat, the evaluation and the benchmarks build everything through here, so components
themselves only ever take plain arguments."""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path

from core.collection import MANIFEST, Collection, IndexParams, collection_path, read_manifest
from core.config import Settings
from core.embedding import Embedder, make_embedder
from core.errors import UserError
from generator.base import GenerationOptions, Generator
from ingest.chunking import Chunker
from ingest.loaders import LoadOptions
from ingest.pipeline import Ingestor, IngestParts, chunking_info, open_for_ingest
from retriever.answerability import AnswerabilityModel
from retriever.hybrid import Retriever, RetrieverConfig


def quiet_model_loading() -> None:
    """Model loading prints progress bars and advice that drown a command's own output."""
    import transformers

    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)  # "no `kernels` package": the CPU path works without it
    logging.getLogger("sentence_transformers").setLevel(logging.ERROR)  # e.g. the one-off ONNX export notice
    logging.getLogger("pypdf").setLevel(logging.ERROR)  # damaged PDFs are reported as skipped files instead
    logging.getLogger("pdfminer").setLevel(logging.ERROR)  # pdfplumber's parser: the same, for the pages it reads


def embedder(settings: Settings, model: str | None = None, *, threads: int = 0) -> Embedder:
    """The configured embedder, or the named model with the configured batch size, device and backend;
    ``threads``: CPU threads per model call (0: one per core)."""
    cfg = settings.embedder
    name = model or cfg.model
    if not name.startswith("hash:"):
        quiet_model_loading()
    return make_embedder(
        name,
        batch_size=cfg.batch_size,
        device=cfg.device,
        backend=cfg.backend,
        cache_dir=cfg.cache_dir,
        quantize_queries=cfg.quantize_queries,
        threads=threads,
    )


def index_params(settings: Settings) -> IndexParams:
    return IndexParams(**settings.index.model_dump())


def open_collection(settings: Settings, name: str, *, writable: bool = False, as_of: int | None = None) -> Collection:
    """The named collection; ``as_of`` a version: read-only, as it was then (Collection.open_as_of)."""
    path = collection_path(settings.index_dir, name)
    if as_of is not None:
        return Collection.open_as_of(path, as_of, params=index_params(settings))
    return Collection.open(path, writable=writable, params=index_params(settings))


def ingest_parts(settings: Settings, collection: str, loaded: Embedder | None = None, *, threads: int = 0) -> IngestParts:
    """What turns files into chunks ready to store in ``collection``: the embedder (``loaded``, else loaded
    here with ``threads`` CPU threads per call), the chunker in its tokens, the loaders' limits and the
    collection's ingest rail. Picklable as ``functools.partial(ingest_parts, settings, collection)``: each
    Ray worker of a distributed ingest builds its own with it."""
    chunk, cfg = settings.chunking, settings.ingest
    model = loaded
    if model is None:
        model = embedder(settings, threads=threads)
        check_chunking(settings, model)
    rail = guard(settings, collection)
    flagger = None
    if rail is not None and rail.rules["ingest"]:

        def flagger(text: str) -> list[str]:
            return [e.rule_id for e in rail.check(text, "ingest").events]

    return IngestParts(
        embedder=model,
        chunker=Chunker(model.count_tokens, chunk.chunk_tokens, chunk.overlap_tokens),
        embed_title=chunk.embed_title,
        max_bytes=int(cfg.max_file_mb * 2**20),
        load_options=load_options(settings),
        flagger=flagger,
    )


def load_options(settings: Settings) -> LoadOptions:
    """How the loaders read files (``ASSISTANT_INGEST__*``): the encoding fallback, OCR, page and image limits."""
    cfg = settings.ingest
    return LoadOptions(
        encoding_fallback=cfg.encoding_fallback,
        ocr=cfg.ocr,
        ocr_dpi=cfg.ocr_dpi,
        max_pages=cfg.max_pdf_pages,
        max_image_pixels=int(cfg.max_image_megapixels * 1_000_000),
    )


def check_chunking(settings: Settings, model: Embedder) -> None:
    """Refuse chunks longer than the embedder reads (it would truncate them silently)."""
    chunk = settings.chunking
    if chunk.chunk_tokens + 8 > model.max_tokens:
        raise UserError(
            f"chunk_tokens={chunk.chunk_tokens} exceeds what {model.name} reads ({model.max_tokens} tokens); "
            "lower ASSISTANT_CHUNKING__CHUNK_TOKENS"
        )


def ingestor(
    settings: Settings,
    path: Path,
    embedder: Embedder | None,
    *,
    name: str | None = None,
    progress: bool = True,
    ray: str | None = None,
    ray_workers: int | None = None,
) -> Ingestor:
    """An Ingestor writing to the collection at ``path`` (created if absent), chunking as configured. With
    ``ray`` (``auto`` or a cluster's address), a RayIngestor: files read, chunked and embedded by
    ``ray_workers`` Ray workers (default: one per GPU, else one per CPU) that build their parts from these
    settings; ``embedder`` None then leaves the model to the workers alone (``WorkerEmbedder``). The caller
    closes ``ingestor.collection``."""
    chunk = settings.chunking
    collection = name or path.name
    pool = None
    if ray is not None:
        from ingest.distributed import RayWorkers, WorkerEmbedder

        cfg = settings.embedder
        gpus = not cfg.model.startswith("hash:") and (cfg.device is None or cfg.device.startswith("cuda"))
        pool = RayWorkers(partial(ingest_parts, settings, collection), address=ray, workers=ray_workers, use_gpus=gpus)
        if embedder is None:
            model = settings.embedder.model
            manifest = read_manifest(path) if (path / MANIFEST).exists() else None
            known_dim = manifest.embedder.dim if manifest is not None and manifest.embedder.name == model else None
            embedder = WorkerEmbedder(pool, model, dim=known_dim)
    if embedder is None:
        raise ValueError("an in-process ingest needs an embedder")
    store = None
    try:
        store = open_for_ingest(
            path, embedder, chunking_info(chunk.chunk_tokens, chunk.overlap_tokens, chunk.embed_title), index_params(settings), name=name
        )
        options = dict(
            embed_title=chunk.embed_title,
            commit_chunks=settings.ingest.commit_chunks,
            max_bytes=int(settings.ingest.max_file_mb * 2**20),
            load_options=load_options(settings),
            progress=progress,
        )
        if pool is None:
            parts = ingest_parts(settings, collection, embedder)
            return Ingestor(store, embedder, chunker=parts.chunker, flagger=parts.flagger, **options)
        from ingest.distributed import RayIngestor

        # The workers chunk and flag with their own parts; this chunker is never called.
        chunker = Chunker(embedder.count_tokens, chunk.chunk_tokens, chunk.overlap_tokens)
        return RayIngestor(store, embedder, workers=pool, chunker=chunker, **options)
    except BaseException:
        if store is not None:
            store.close()
        if pool is not None:
            pool.close()
        raise


def retriever(settings: Settings, store: Collection, embedder: Embedder, **overrides) -> Retriever:
    """A Retriever with the configured retrieval settings; ``overrides`` that are not None win. Front ends
    get theirs from ``Assistant.retriever``, which keeps one per collection and embeds questions with the
    model the collection was built with."""
    config = {**settings.retrieval.model_dump(), **{k: v for k, v in overrides.items() if v is not None}}
    return Retriever(store, embedder, RetrieverConfig(**config))


def answerability_model(settings: Settings, collection: str) -> AnswerabilityModel:
    """The answerability model for a collection (settings.answerability.models, else the default model),
    with the threshold setting applied."""
    cfg = settings.answerability
    return AnswerabilityModel.load(cfg.models.get(collection, cfg.default_model)).with_threshold(cfg.threshold)


def generator(settings: Settings) -> Generator:
    """The configured answer generator (loads the model: seconds for the embedded one, once)."""
    cfg = settings.generator
    if cfg.backend == "openai":
        from generator.openai_compat import OpenAIGenerator

        key = cfg.openai_api_key.get_secret_value() if cfg.openai_api_key else None
        return OpenAIGenerator(cfg.openai_base_url, cfg.openai_model, api_key=key, context_window=cfg.context_tokens)
    from generator.local import SHIPPED_ADAPTER, LocalGenerator

    quiet_model_loading()
    adapter: Path | None = None
    if cfg.adapter == "shipped":
        # The shipped adapter was trained on the embedded model; on any other base it would be noise.
        adapter = SHIPPED_ADAPTER if cfg.model == "embedded" else None
    elif cfg.adapter != "none":
        adapter = Path(cfg.adapter).expanduser()
    if local_engine(cfg) == "llamacpp":
        from generator.llamacpp import LlamaCppGenerator

        return LlamaCppGenerator(cfg.model, adapter=adapter, cache_dir=cfg.cache_dir, context_tokens=cfg.context_tokens)
    return LocalGenerator(
        cfg.model, quantization=cfg.quantization, adapter=adapter, cache_dir=cfg.cache_dir, device=cfg.device, max_batch=cfg.max_batch
    )


def local_engine(cfg) -> str:
    """The engine the local backend runs (``generator.engine``; ``auto`` resolved): llama.cpp serves a GGUF
    model at its own 4-bit on a CPU; anything else (another quantization, a folder, a CUDA device) and a
    machine without llama-cpp-python get transformers."""
    if cfg.engine != "auto":
        return cfg.engine
    from generator.llamacpp import available

    gguf_model = cfg.model == "embedded" or cfg.model.endswith(".gguf")
    cuda = cfg.device == "cuda" or (cfg.device is None and _cuda())
    return "llamacpp" if available() and gguf_model and cfg.quantization == "4bit" and not cuda else "transformers"


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def audit_log(settings: Settings):
    """The guardrails' audit log (one per process: guards of all collections share it), or None."""
    from guardrails.audit import AuditLog

    cfg = settings.guardrails
    if not cfg.enabled or not cfg.audit_log:
        return None
    return AuditLog(cfg.audit_log, max_bytes=int(cfg.audit_max_mb * 2**20), backups=cfg.audit_backups)


def guard(settings: Settings, collection: str, audit=None):
    """The guard for a collection: its rule packs (settings.guardrails.packs, else the defaults), with the
    grounding setting applied and ``audit`` attached; None when guardrails are disabled."""
    from guardrails.engine import Guard
    from guardrails.packs import load_pack

    cfg = settings.guardrails
    if not cfg.enabled:
        return None
    packs = [load_pack(name) for name in cfg.packs.get(collection, cfg.default_packs)]
    if cfg.grounding == "mark":
        marked = {
            "action": "rewrite",
            "replacement": "{text} [not supported by the cited passages]",
            "message": "A sentence not supported by the passages it cites is marked.",
        }
        packs = [
            p.model_copy(update={"rules": tuple(r.model_copy(update=marked) if r.validator == "grounding" else r for r in p.rules)})
            for p in packs
        ]
    return Guard(packs, audit=audit)


def generation_options(settings: Settings, **overrides) -> GenerationOptions:
    """Generation options from settings; ``overrides`` that are not None win."""
    cfg = settings.generator
    base = {"max_new_tokens": cfg.max_new_tokens, "temperature": cfg.temperature, "top_p": cfg.top_p, "timeout_s": cfg.timeout_s}
    return GenerationOptions(**{**base, **{k: v for k, v in overrides.items() if v is not None}})
