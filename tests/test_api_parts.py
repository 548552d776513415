"""The API's parts on their own: keys and rate limits, upload names and checks, the bounded generation queue and
the batching question embedder."""

from __future__ import annotations

import hashlib
import io
import threading
import time

import numpy as np
import pytest

from api.auth import KeyStore, RateLimiter, hash_key, retry_after_header
from assistant.uploads import store_upload
from core.embedding import BatchingEmbedder, HashEmbedder
from core.errors import UserError
from core.storage import safe_filename
from generator.base import GenerationOptions
from generator.bounded import BoundedGenerator, GeneratorBusy
from generator.fake import QueuedGenerator

KEY = "reader-key-0123456789"
ADMIN = "admin-key-0123456789"


# --- keys ---------------------------------------------------------------------------------------------------


def test_keys_are_kept_hashed_and_scoped():
    store = KeyStore.parse(f" {KEY} , {ADMIN}:admin ,, sha256:{hashlib.sha256(b'hashed-key-0123456789').hexdigest()}:admin")
    assert store.enabled
    reader, admin, hashed = store.verify(KEY), store.verify(ADMIN), store.verify("hashed-key-0123456789")
    assert reader is not None and not reader.admin
    assert admin is not None and admin.admin and hashed is not None and hashed.admin
    assert reader.id == f"key:{hash_key(KEY)[:12]}" and KEY not in reader.id
    assert store.verify("reader-key-012345678") is None and store.verify("") is None
    assert KEY not in repr(store.__dict__) and ADMIN not in repr(store.__dict__)


def test_no_keys_means_disabled():
    assert not KeyStore.parse(None).enabled and not KeyStore.parse(" , ").enabled


@pytest.mark.parametrize(
    "raw, message",
    [
        ("short", "entry 1: a key needs at least 16 characters"),
        (f"{KEY},sha256:abc", "entry 2: 'sha256:' must be followed by 64 hex digits"),
    ],
)
def test_bad_key_entries_are_named(raw, message):
    with pytest.raises(UserError, match=message):
        KeyStore.parse(raw)


def test_rate_limiter_allows_a_burst_then_says_how_long_to_wait():
    now = [100.0]
    limiter = RateLimiter(3, clock=lambda: now[0])
    assert [limiter.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limiter.take("a")
    assert wait == pytest.approx(20.0)  # 3 a minute: one token every 20 s
    assert limiter.take("b") == 0.0  # per principal
    now[0] += 20.0
    assert limiter.take("a") == 0.0
    assert retry_after_header(0.2) == "1" and retry_after_header(19.1) == "20"


# --- upload names -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, safe",
    [
        ("report.pdf", "report.pdf"),
        ("../../etc/passwd.txt", "passwd.txt"),
        ("..\\..\\windows\\system.ini.txt", "system.ini.txt"),
        (".hidden.md", "hidden.md"),
        ("a b;rm -rf $HOME.md", "a b_rm -rf _HOME.md"),
        ("ｆｕｌｌ.txt", "full.txt"),
        ("x" * 300 + ".pdf", "x" * 146 + ".pdf"),
        ("notes\x00.txt", "notes.txt"),
    ],
)
def test_safe_filename(name, safe):
    assert safe_filename(name) == safe


@pytest.mark.parametrize("name", [None, "", "..", "/", "...", "\\"])
def test_unusable_names_are_refused(name):
    with pytest.raises(UserError, match="no usable name"):
        safe_filename(name)


def test_store_upload_checks_names_types_and_sizes_and_is_atomic(tmp_path):
    folder = tmp_path / "up"
    path, size = store_upload(io.BytesIO(b"hello"), folder, "../../a.txt", 10)
    assert (path, size) == (folder / "a.txt", 5) and path.read_bytes() == b"hello"
    for data, name, message in [
        (b"x" * 11, "b.txt", "larger than the upload limit"),
        (b"", "c.txt", "the file is empty"),
        (b"MZ", "d.exe", "unsupported file type '.exe'"),
        (b"x", "..", "no usable name"),
    ]:
        with pytest.raises(UserError, match=message):
            store_upload(io.BytesIO(data), folder, name, 10)
    assert sorted(p.name for p in folder.iterdir()) == ["a.txt"]  # no partial files left


# --- the bounded generation queue ---------------------------------------------------------------------------


def test_bounded_generator_refuses_beyond_running_plus_waiting():
    inner = QueuedGenerator(["one two three four five six"], delay_s=0.05)
    bounded = BoundedGenerator(inner, concurrency=1, queue_size=1, queue_timeout_s=5)
    first = bounded.stream([{"role": "user", "content": "q"}])
    assert bounded.active == 1
    results: list = []
    waiter = threading.Thread(target=lambda: results.append(bounded.stream([{"role": "user", "content": "q"}]).text()))
    waiter.start()
    time.sleep(0.1)
    assert bounded.waiting == 1
    with pytest.raises(GeneratorBusy) as busy:
        bounded.stream([{"role": "user", "content": "q"}])
    assert busy.value.retry_after >= 1 and "1 running, 1 waiting" in str(busy.value)
    assert first.text() == "one two three four five six"
    waiter.join(5)
    assert results == ["one two three four five six"]
    assert bounded.active == 0 and bounded.waiting == 0
    assert bounded.name == "queued" and bounded.count_tokens("a b") == 2  # the rest is the inner generator's


def test_bounded_generator_times_out_in_the_queue_and_frees_slots_on_cancel():
    bounded = BoundedGenerator(QueuedGenerator(["a b c d e f g h"], delay_s=0.2), concurrency=1, queue_size=4, queue_timeout_s=0.1)
    running = bounded.stream([{"role": "user", "content": "q"}])
    with pytest.raises(GeneratorBusy, match="no generation slot freed within 0.1 s"):
        bounded.stream([{"role": "user", "content": "q"}])
    pieces = iter(running)
    next(pieces)
    running.cancel()
    pieces.close()
    assert bounded.active == 0 and running.finish_reason == "cancelled"
    assert bounded.stream([{"role": "user", "content": "q"}], GenerationOptions(max_new_tokens=1)).text() == "a "


def test_the_generation_queue_admits_what_the_generator_decodes_at_once(tmp_path):
    from api.service import Service
    from core.config import Settings

    settings = Settings(index_dir=tmp_path, embedder={"model": "hash:64"}, guardrails={"audit_log": None})
    batching = QueuedGenerator(["a"])
    batching.max_concurrency = 3  # as LocalGenerator reports its max_batch
    cases = [
        (settings, batching, 3),
        (settings, QueuedGenerator(["a"]), 1),
        (settings.model_copy(update={"api": settings.api.model_copy(update={"generation_concurrency": 2})}), batching, 2),
    ]
    for config, generator, expected in cases:
        service = Service(config, generator=generator)
        try:
            assert service.assistant.generator is service.bounded and service.bounded.concurrency == expected
        finally:
            service.close()


# --- batched question embeddings ----------------------------------------------------------------------------


class CountingEmbedder(HashEmbedder):
    def __init__(self):
        super().__init__(32)
        self.calls: list[int] = []

    def embed_queries(self, texts):
        self.calls.append(len(texts))
        time.sleep(0.01)  # a model call takes time: callers arriving meanwhile form the next batch
        return super().embed_queries(texts)


def test_concurrent_questions_are_embedded_in_batches_with_the_same_vectors():
    inner = CountingEmbedder()
    batching = BatchingEmbedder(inner, max_wait_s=0.02, max_batch=8)
    texts = [f"question number {i} about metformin" for i in range(20)]
    out: dict[int, np.ndarray] = {}
    start = threading.Barrier(len(texts))

    def ask(i):
        start.wait()
        out[i] = batching.embed_query(texts[i])

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(texts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    reference = HashEmbedder(32)
    for i, text in enumerate(texts):
        np.testing.assert_array_equal(out[i], reference.embed_query(text))
    assert sum(inner.calls) == 20 and len(inner.calls) < 20 and max(inner.calls) <= 8
    assert batching.batches == inner.calls


def test_a_lone_question_and_errors():
    inner = CountingEmbedder()
    batching = BatchingEmbedder(inner, max_wait_s=0.0)
    np.testing.assert_array_equal(batching.embed_query("x y"), HashEmbedder(32).embed_query("x y"))
    assert inner.calls == [1] and batching.name == inner.name and batching.dim == 32

    class Broken(HashEmbedder):
        def embed_queries(self, texts):
            raise RuntimeError("model failed")

    broken = BatchingEmbedder(Broken(32), max_wait_s=0.0)
    with pytest.raises(RuntimeError, match="model failed"):
        broken.embed_query("x")
    with pytest.raises(RuntimeError, match="model failed"):  # the next caller is not left waiting
        broken.embed_query("y")
