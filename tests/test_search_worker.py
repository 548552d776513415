"""api/search_worker.py: the API's searches, batched on dedicated threads (real collections, hash embedder)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from conftest import ingest_once

from api.search_worker import SearchWorker
from core.collection import Collection
from core.embedding import HashEmbedder
from core.errors import CollectionNotFound, UserError
from retriever.hybrid import Retriever

QUESTIONS = ["asthma inhalers airways", "metformin diabetes", "blood pressure salt", "dividend payout", "revenue"]


class SlowEmbedder(HashEmbedder):
    """Records each model call's size; a call takes time, so searches arriving meanwhile queue up."""

    def __init__(self, dim: int = 64, fail_on: str | None = None):
        super().__init__(dim)
        self.calls: list[int] = []
        self.fail_on = fail_on
        self._guard = threading.Lock()

    def embed_queries(self, texts):
        with self._guard:
            self.calls.append(len(texts))
        time.sleep(0.02)
        if self.fail_on and any(self.fail_on in t for t in texts):
            raise RuntimeError("model failed")
        return super().embed_queries(texts)


@pytest.fixture
def collection(tmp_path, corpus):
    ingest_once(tmp_path / "c", HashEmbedder(64), [corpus])
    with Collection.open(tmp_path / "c") as c:
        yield c


def worker_for(collection, embedder, **kwargs) -> tuple[SearchWorker, Retriever]:
    retriever = Retriever(collection, embedder)

    def retriever_of(name, mode=None, as_of=None):
        if name != "c":
            raise CollectionNotFound(f"collection {name!r} not found")
        return retriever

    return SearchWorker(retriever_of, **kwargs), retriever


def test_concurrent_searches_are_batched_and_each_gets_its_own_result(collection):
    embedder = SlowEmbedder()
    sizes: list[int] = []
    worker, retriever = worker_for(collection, embedder, threads=2, max_batch=4, on_batch=sizes.append)
    questions = [QUESTIONS[i % len(QUESTIONS)] + f" {i}" for i in range(20)]

    async def main():
        return await asyncio.gather(*(worker.search("c", q, 3) for q in questions))

    try:
        results = asyncio.run(main())
    finally:
        worker.close()
    for question, (result, version) in zip(questions, results):
        expected = retriever.search(question, 3)
        assert [h.chunk_id for h in result.hits] == [h.chunk_id for h in expected.hits]
        assert version == collection.version
        assert result.timings_ms["embed"] >= 20  # the batch's model call, shared by its searches
    assert sum(embedder.calls) == 20 and max(embedder.calls) <= 4 and len(embedder.calls) < 20
    assert sizes == embedder.calls


def test_a_bad_search_fails_alone(collection):
    embedder = SlowEmbedder(fail_on="explode")
    worker, _ = worker_for(collection, embedder, threads=1, max_batch=8)

    async def main():
        # All queued together: a slow first search keeps the thread busy while the rest arrive.
        return await asyncio.gather(
            worker.search("c", "metformin", 2),
            worker.search("missing", "metformin", 2),
            worker.search("c", "   ", 2),
            worker.search("c", "asthma", 0),
            worker.search("c", "asthma", 2),
            return_exceptions=True,
        )

    try:
        ok, missing, empty, bad_k, ok2 = asyncio.run(main())
        assert ok[0].hits and ok2[0].hits
        assert isinstance(missing, CollectionNotFound)
        assert isinstance(empty, UserError) and "empty" in str(empty)
        assert isinstance(bad_k, UserError) and "k must be at least 1" in str(bad_k)

        async def failing():  # a failed model call fails the searches of its batch, and the next batch runs
            return await asyncio.gather(worker.search("c", "explode now", 2), return_exceptions=True)

        (failed,) = asyncio.run(failing())
        assert isinstance(failed, RuntimeError) and "model failed" in str(failed)
        result, _ = asyncio.run(worker.search("c", "asthma", 1))
        assert len(result.hits) == 1
    finally:
        worker.close()


def test_a_caller_that_went_away_does_not_break_the_others(collection):
    worker, _ = worker_for(collection, SlowEmbedder(), threads=1)

    async def main():
        gone = asyncio.ensure_future(worker.search("c", "asthma", 2))
        kept = asyncio.ensure_future(worker.search("c", "metformin", 2))
        await asyncio.sleep(0)
        gone.cancel()
        return await kept, gone.cancelled()

    try:
        (result, _), cancelled = asyncio.run(main())
        assert result.hits and cancelled
    finally:
        worker.close()


def test_close_finishes_what_is_queued_then_refuses(collection):
    worker, _ = worker_for(collection, SlowEmbedder(), threads=2)

    async def main():
        searches = [asyncio.ensure_future(worker.search("c", q, 2)) for q in QUESTIONS]
        await asyncio.sleep(0)
        await asyncio.get_running_loop().run_in_executor(None, worker.close)
        return await asyncio.gather(*searches)

    results = asyncio.run(main())
    assert all(r.hits for r, _ in results)
    assert not any(t.is_alive() for t in worker._threads)
    with pytest.raises(RuntimeError, match="stopped"):
        asyncio.run(worker.search("c", "asthma", 2))
