"""API searches on a few dedicated threads, a small batch at a time.

Under load the searches used to run one per pool thread: 32 threads took turns at the GIL around every SQLite,
FAISS and ONNX call, and a third of the CPU sat idle while requests waited (250 searches a second, p99 ~210 ms
at 32 clients on 2 cores). Here a search thread (one per core) takes up to ``max_batch`` of the searches
waiting, embeds their questions in one model call (per embedding model; the embedder keeps a replica per core
so two threads embed at once), searches each, and hands the results back to the event loop in one call.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core import telemetry
from retriever.hybrid import Retrieval, normalise_query

log = logging.getLogger("assistant.api")


@dataclass
class _Search:
    collection: str
    query: str
    k: int
    mode: str | None
    filters: dict[str, Any] | None
    as_of: int | None  # search the collection as it was at this version
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    # The request's context (its id and trace span), taken where it was submitted: what is done for this search
    # alone on a search thread runs in it, so its log lines carry the request id and its span joins the trace.
    context: contextvars.Context = field(default_factory=contextvars.copy_context)


class SearchWorker:
    """``await worker.search(...)`` -> (Retrieval, collection version). ``retriever(collection, mode)`` gives
    the retriever to use (the Assistant's, so collections reopen when changed); ``on_batch`` is called with
    each embedding batch's size (metrics)."""

    def __init__(
        self, retriever: Callable[..., Any], *, threads: int = 2, max_batch: int = 8, on_batch: Callable[[int], None] | None = None
    ):
        self._retriever = retriever
        self._max_batch = max_batch
        self._on_batch = on_batch
        self._pending: list[_Search] = []
        self._wake = threading.Condition()
        self._closed = False
        self._threads = [threading.Thread(target=self._run, daemon=True, name=f"search-{i}") for i in range(threads)]
        for thread in self._threads:
            thread.start()

    async def search(
        self,
        collection: str,
        query: str,
        k: int,
        mode: str | None = None,
        filters: dict[str, Any] | None = None,
        as_of: int | None = None,
    ) -> tuple[Retrieval, int]:
        loop = asyncio.get_running_loop()
        item = _Search(collection, query, k, mode, filters, as_of, loop.create_future(), loop)
        with self._wake:
            if self._closed:
                raise RuntimeError("the search worker has stopped")
            self._pending.append(item)
            self._wake.notify()
        return await item.future

    def close(self) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify_all()
        for thread in self._threads:
            thread.join(timeout=30)

    # ------------------------------------------------------------------ the thread

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._pending and not self._closed:
                    self._wake.wait()
                if self._closed and not self._pending:
                    self._wake.notify_all()
                    return
                batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch :]
            try:
                outcomes = self._search(batch)
            except BaseException as exc:  # a bug here must not strand the callers
                log.exception("search batch failed")
                outcomes = [exc] * len(batch)
            by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future, Any]]] = {}
            for item, outcome in zip(batch, outcomes):
                by_loop.setdefault(item.loop, []).append((item.future, outcome))
            for loop, results in by_loop.items():
                try:
                    loop.call_soon_threadsafe(_deliver, results)
                except RuntimeError:  # that loop has closed: nobody is waiting any more
                    pass

    def _search(self, batch: list[_Search]) -> list[Any]:
        outcomes: list[Any] = [None] * len(batch)
        retrievers: dict[int, Any] = {}
        by_model: dict[int, list[int]] = {}  # id(embedder) -> positions in the batch
        for i, item in enumerate(batch):
            try:
                retriever = item.context.run(self._retriever, item.collection, mode=item.mode, as_of=item.as_of)
                item.query = normalise_query(item.query)
            except Exception as exc:
                outcomes[i] = exc
                continue
            retrievers[i] = retriever
            by_model.setdefault(id(retriever.embedder), []).append(i)
        vectors: dict[int, np.ndarray] = {}
        embed_ms: dict[int, float] = {}
        for positions in by_model.values():
            embedder = retrievers[positions[0]].embedder
            started = time.perf_counter()
            try:
                embedded = embedder.embed_queries([batch[i].query for i in positions])
            except Exception as exc:
                for i in positions:
                    outcomes[i] = exc
                    del retrievers[i]
                continue
            took = (time.perf_counter() - started) * 1000
            if self._on_batch is not None:
                self._on_batch(len(positions))
            for i, vector in zip(positions, embedded):
                vectors[i], embed_ms[i] = vector, took
        for i, retriever in retrievers.items():
            item = batch[i]
            try:
                outcomes[i] = item.context.run(_search_one, retriever, item, vectors[i], embed_ms[i])
            except Exception as exc:
                outcomes[i] = exc
        return outcomes


def _search_one(retriever: Any, item: _Search, vector: np.ndarray, embed_ms: float) -> tuple[Retrieval, int]:
    """One search of a batch, its question already embedded (in the batch's one model call)."""
    with telemetry.span("retrieval", collection=item.collection, k=item.k, mode=retriever.config.mode) as span:
        result = retriever.search(item.query, item.k, item.filters, vector=vector, embed_ms=embed_ms)
        span.set_attributes({"hits": len(result.hits), "relevance": float(result.relevance), "relevant": bool(result.relevant)})
    return result, retriever.collection.version


def _deliver(results: list[tuple[asyncio.Future, Any]]) -> None:
    for future, outcome in results:
        if future.done():  # the client went away and the request was cancelled
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
