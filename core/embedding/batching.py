"""Questions that arrive at the same moment from different threads, embedded as one batch."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from core.embedding.base import Embedder, embed_queries


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

    def __init__(self, inner: Embedder, *, max_wait_s: float = 0.002, max_batch: int = 32, on_batch: Callable[[int], None] | None = None):
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
        return embed_queries(self.inner, texts)

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
