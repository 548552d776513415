"""What the routes share: the Assistant, keys, rate limits, metrics, readiness, the conversation store, one
writer per collection for uploads and deletes, and the answer bridge that keeps model work off the event loop."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from api.auth import KeyStore, Principal, RateLimiter
from api.metrics import Metrics
from api.search_worker import SearchWorker
from assistant import compose
from assistant.conversations import Conversation, Exchange, Turn, open_conversations, unknown_conversation
from assistant.pipeline import Answer, Assistant
from assistant.uploads import Stored, upload_report
from assistant.views import history_view, rollback_view
from core.collection import list_collections
from core.config import Settings
from core.embedding import BatchingEmbedder, Embedder
from core.errors import CollectionBusy
from generator.base import Generator
from generator.bounded import BoundedGenerator

log = logging.getLogger("assistant.api")
END = object()  # what AnswerStream.next() returns after the last item


@dataclass
class Readiness:
    ready: bool = False
    error: str | None = None
    loaded: dict[str, Any] = field(default_factory=dict)


class Service:
    def __init__(self, settings: Settings, *, generator: Generator | None = None, embedders: dict[str, Embedder] | None = None):
        api = settings.api
        self.settings = settings
        self.metrics = Metrics()
        self.keys = KeyStore.parse(settings.api_keys.get_secret_value() if settings.api_keys else None)
        self.limiter = RateLimiter(api.rate_limit_per_minute)
        self.bounded: BoundedGenerator | None = None
        self.assistant = Assistant(
            settings, generator=generator, embedders=embedders, wrap_generator=self._bound, wrap_embedder=self._batch
        )
        self.readiness = Readiness()
        self.searches = SearchWorker(
            self.assistant.retriever, threads=api.search_threads, max_batch=api.search_batch_max, on_batch=self.metrics.embed_batch.observe
        )
        self.conversations = open_conversations(settings)
        self._upload_locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def _bound(self, generator: Generator) -> Generator:
        api = self.settings.api
        concurrency = api.generation_concurrency or getattr(generator, "max_concurrency", 1)
        self.bounded = BoundedGenerator(generator, concurrency=concurrency, queue_size=api.queue_size, queue_timeout_s=api.queue_timeout_s)
        return self.bounded

    def _batch(self, embedder: Embedder) -> Embedder:
        api = self.settings.api
        return BatchingEmbedder(
            embedder, max_wait_s=api.embed_batch_ms / 1000, max_batch=api.embed_batch_max, on_batch=self.metrics.embed_batch.observe
        )

    # ------------------------------------------------------------------ readiness

    def warm_up(self) -> None:
        """Open every collection (loading its embedder and guard) and load the generator, so the first
        question does not pay for it. Runs in a thread at startup; /readyz reports when it is done."""
        started = time.perf_counter()
        try:
            names = [m.name for m in list_collections(self.settings.index_dir)]
            for name in names:
                self.assistant.retriever(name)
                self.assistant.guard(name)
            generator = self.assistant.generator
            # A count, not the names: /readyz needs no key, and names would tell a scoped key's holder (or
            # anyone) which collections exist.
            self.readiness.loaded = {
                "collections": len(names),
                "generator": generator.name,
                "seconds": round(time.perf_counter() - started, 2),
            }
            self.readiness.ready = True
            # The models leave millions of long-lived objects behind; without this every full garbage
            # collection walks them all, a 0.5-1 s stall that showed as the search p99 under load.
            gc.freeze()
        except Exception as exc:  # reported by /readyz; requests still try (and fail with their own error)
            log.exception("warm-up failed")
            self.readiness.error = f"{type(exc).__name__}: {exc}"

    def close(self) -> None:
        self.searches.close()
        self.assistant.close()
        self.conversations.close()

    def exchange(self, owner: str, conversation_id: str | None) -> Exchange:
        """A question in ``owner``'s conversation (a new one when ``conversation_id`` is None). A second question
        on the same conversation waits for the first as long as that one may take: its queue wait and generation."""
        wait_s = self.settings.api.queue_timeout_s + self.settings.generator.timeout_s
        history_turns = self.settings.conversation.history_turns
        return Exchange(self.conversations, owner, conversation_id, history_turns=history_turns, wait_s=wait_s)

    def conversations_of(self, principal: Principal) -> list[Conversation]:
        """The key's conversations, less any that has been on a collection it may not see (api/deps.py)."""
        found = self.conversations.list(principal.id)
        if not principal.restricted:
            return found
        on = self.conversations.collections_by_conversation(principal.id)
        return [c for c in found if all(principal.sees(name) for name in on.get(c.id, {c.collection}))]

    def check_conversation(self, principal: Principal, conversation_id: str) -> None:
        """A conversation that has been on a collection the key may not see (its scope was narrowed since) reads
        as unknown: not shown, renamed or continued; it can still be deleted."""
        if principal.restricted and not all(map(principal.sees, self.conversations.collections(conversation_id, principal.id))):
            raise unknown_conversation(conversation_id)

    def refresh_gauges(self) -> None:
        if self.bounded is not None:
            self.metrics.queue_depth.set(self.bounded.waiting)
            self.metrics.generating.set(self.bounded.active)

    # ------------------------------------------------------------------ uploads and deletes

    @contextmanager
    def _writing(self, collection: str) -> Iterator[None]:
        """One upload or delete per collection at a time in this process; another process writing it gives
        CollectionBusy (409) when the collection is opened."""
        with self._locks_guard:
            lock = self._upload_locks.setdefault(collection, threading.Lock())
        if not lock.acquire(timeout=120):
            raise CollectionBusy(f"collection {collection!r} is busy with another upload or deletion; retry later")
        try:
            yield
        finally:
            lock.release()

    def ingest_uploads(self, collection: str, stored: list[Stored], skipped: list[dict[str, str]]) -> dict[str, Any]:
        """Ingest stored uploads into ``collection`` (created if absent; assistant/uploads.py)."""
        with self._writing(collection):
            embedder = self.assistant.collection_embedder(collection) if stored else None
            return upload_report(self.settings, collection, embedder, stored, skipped)

    def rollback(self, collection: str, version: int) -> dict[str, Any]:
        """Make ``collection`` what it was at ``version`` (history.py); the servers reopen it as for any write."""
        with self._writing(collection):
            with compose.open_collection(self.settings, collection, writable=True) as store:
                result = store.rollback(version)
                return rollback_view(collection, version, store.version, result, store.counts())

    def history(self, collection: str) -> dict[str, Any]:
        with compose.open_collection(self.settings, collection) as store:
            return history_view(collection, store.version, store.oldest_version(), store.versions())

    def delete_document(self, collection: str, document_id: str) -> tuple[int, int, int]:
        with self._writing(collection):
            with compose.open_collection(self.settings, collection, writable=True) as store:
                store.operation = f"delete document {document_id}"
                documents, chunks = store.delete_document(document_id)
                if documents:
                    store.checkpoint()
                return documents, chunks, store.generation


# ---------------------------------------------------------------------- the answer bridge


class AnswerStream:
    """Runs ``Assistant.stream`` on a worker thread and hands its items to the event loop.

    ``cancel`` is passed to the pipeline: setting it (the client went away) stops generation at the next
    token. Items: text pieces, then the Answer; an exception in the worker is raised from ``next()``. The worker
    runs in a copy of the caller's context (contextvars): the request id and the current span go with it."""

    def __init__(self, start: Callable[[threading.Event], Iterator[str | Answer]], on_answer: Callable[[Answer], None] | None = None):
        self.cancel = threading.Event()
        self._on_answer = on_answer  # called on the worker thread, so a client that left is still counted
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue = asyncio.Queue()
        self._done = False
        # The request's context goes with the answer: its id (log lines, audit entries) and its trace span.
        context = contextvars.copy_context()
        threading.Thread(target=context.run, args=(self._run, start), daemon=True, name="answer").start()

    def _put(self, kind: str, value: Any) -> None:
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, (kind, value))
        except RuntimeError:  # the loop has closed (server shut down): nobody is listening any more
            self.cancel.set()

    def _run(self, start: Callable[[threading.Event], Iterator[str | Answer]]) -> None:
        try:
            for item in start(self.cancel):
                if isinstance(item, Answer) and self._on_answer is not None:
                    self._on_answer(item)
                self._put("item", item)
        except BaseException as exc:
            self._put("error", exc)
        finally:
            self._put("end", None)

    async def next(self) -> str | Answer | object:
        """The next item, or ``END``."""
        if self._done:
            return END
        kind, value = await self._queue.get()
        if kind == "error":
            self._done = True
            raise value
        if kind == "end":
            self._done = True
            return END
        return value

    async def answer(self) -> Answer:
        while (item := await self.next()) is not END:
            if isinstance(item, Answer):
                return item
        raise RuntimeError("the answer stream ended without an answer")  # pragma: no cover


def start_answer(
    service: Service,
    question: str,
    collection: str,
    *,
    k: int = 5,
    filters: dict | None = None,
    max_tokens: int | None = None,
    temperature: float | None = None,
    top_p: float | None = None,
    exchange: Exchange | None = None,
    history: Sequence[Turn] = (),
    **retrieval: Any,
) -> AnswerStream:
    """An answer started on its worker thread, for /v1/ask, /v1/ask/stream and /v1/chat/completions.

    With ``exchange`` the question belongs to a stored conversation: its history comes from the store and the
    answer is kept there, on the worker thread (``exchange.conversation_id`` is set before the Answer arrives).
    Without, ``history`` is used as given and nothing is kept (/v1/chat/completions: the client sends it)."""
    if service.bounded is not None:
        service.bounded.check_room()  # a full queue is refused before any retrieval is spent on the question
    options = compose.generation_options(service.settings, max_new_tokens=max_tokens, temperature=temperature, top_p=top_p)
    retrieval = {k: v for k, v in retrieval.items() if v is not None}

    def start(cancel: threading.Event) -> Iterator[str | Answer]:
        def answer(turns: Sequence[Turn]) -> Iterator[str | Answer]:
            return service.assistant.stream(
                question, collection, k=k, filters=filters, options=options, cancel=cancel, history=turns, **retrieval
            )

        return exchange.run(answer) if exchange is not None else answer(history)

    return AnswerStream(start, on_answer=service.metrics.observe_answer)


async def finished(stream: AnswerStream) -> Answer:
    """The whole answer; the generation stops if the request is cancelled while waiting."""
    try:
        return await stream.answer()
    except BaseException:
        stream.cancel.set()
        raise


async def first_item(stream: AnswerStream) -> str | Answer | object:
    """The first text piece (or the answer): errors before it still get their own status code."""
    try:
        return await stream.next()
    except BaseException:
        stream.cancel.set()
        raise
