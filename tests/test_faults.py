"""Faults injected for real: a full disk (a small tmpfs under ASSISTANT_INDEX_DIR) during an ingest, an upload
and a checkpoint; another process holding the collection's write lock or SQLite's own; a generator failing
mid-stream; an embedder failing mid-upload; SIGTERM during an upload. Each must leave the API serving, the
collection passing `check` with nothing half-written, and the caller a clear error (never a hang)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from api.app import create_app
from core.collection import Collection
from core.collection import store as store_module
from core.embedding import HashEmbedder
from generator.base import GenerationOptions, Message, TextStream
from generator.fake import QueuedGenerator
from tests import test_api
from tests.conftest import FIVE_DOCS, committed_generation, ingest_once, run_cli
from tests.live_server import free_port, live
from tests.test_api import METFORMIN, app_for, sse_events, wait_until, with_api

settings = test_api.settings  # the fixture: five documents in a collection "docs", hash embedder

# ---------------------------------------------------------------------- helpers


def _report_text(i: int, sections: int = 12) -> str:
    return "\n\n".join(f"Report {i} section {j}: revenue grew {i * 7 + j} percent in region {j} on demand." for j in range(sections))


def _reports(folder: Path, n: int, sections: int = 12) -> Path:
    folder.mkdir(parents=True)
    for i in range(n):
        (folder / f"{i:04d}.txt").write_text(_report_text(i, sections), encoding="utf-8")
    return folder


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 6 MB tmpfs: a disk that fills up."""
    if sys.platform != "linux" or os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root on Linux")
    folder = tmp_path / "small-disk"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(folder)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"this sandbox cannot mount a tmpfs: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def fill(disk: Path, leave: int) -> Path:
    """A ballast file taking all but ``leave`` bytes of the disk's free space (delete it to free them)."""
    ballast = disk / "ballast"
    stat = os.statvfs(disk)
    size = max(0, stat.f_bavail * stat.f_frsize - leave)
    with open(ballast, "wb") as fh:
        os.posix_fallocate(fh.fileno(), 0, max(size, 1))
    return ballast


def documents(collection: Path) -> set[tuple[str, str]]:
    """(source file name, document id) of every stored document."""
    con = sqlite3.connect(f"file:{collection / 'docs.sqlite'}?mode=ro", uri=True)
    try:
        return {(Path(source).name, doc_id) for source, doc_id in con.execute("SELECT source, id FROM documents")}
    finally:
        con.close()


def chunks_by_file(collection: Path) -> dict[str, int]:
    con = sqlite3.connect(f"file:{collection / 'docs.sqlite'}?mode=ro", uri=True)
    try:
        rows = con.execute("SELECT d.source, COUNT(c.id) FROM documents d LEFT JOIN chunks c ON c.doc_pk = d.pk GROUP BY d.pk").fetchall()
        return {Path(source).name: n for source, n in rows}
    finally:
        con.close()


def file_records(collection: Path) -> set[str]:
    con = sqlite3.connect(f"file:{collection / 'docs.sqlite'}?mode=ro", uri=True)
    try:
        return {Path(p).name for (p,) in con.execute("SELECT path FROM files")}
    finally:
        con.close()


def assert_whole(collection: Path, *, writable: bool = False) -> None:
    """The collection opens and passes check; no temp file or staging folder is left beside it; the manifest is valid."""
    with Collection.open(collection, writable=writable) as opened:
        report = opened.check()
        assert report.ok, report.problems
    json.loads((collection / "manifest.json").read_text())
    leftovers = [p.name for p in collection.iterdir() if p.name.endswith(".tmp") or p.name.startswith(".part-")]
    assert leftovers == []


def search_ok(client: httpx.Client, q: str = "metformin diabetes") -> list[dict]:
    r = client.get("/v1/search", params={"q": q, "collection": "docs", "k": 3})
    assert r.status_code == 200, r.text
    return r.json()["hits"]


def on_disk(settings, disk: Path):
    """The test_api settings with the index folder on ``disk``, holding the five-document collection."""
    return settings.model_copy(update={"index_dir": disk})


# ---------------------------------------------------------------------- 1. a full disk


def test_disk_full_during_a_cli_ingest_then_free_space_and_finish(tmp_path, cli_env, corpus, small_disk):
    env = {**cli_env, "ASSISTANT_INDEX_DIR": str(small_disk), "ASSISTANT_INGEST__COMMIT_CHUNKS": "32"}
    assert run_cli(["ingest", str(corpus), "-c", "docs", "-q"], env).returncode == 0
    collection = small_disk / "docs"
    before = documents(collection)
    big = _reports(tmp_path / "big", 200)
    ballast = fill(small_disk, leave=400_000)  # the 200 reports take about 1.3 MB of database

    r = run_cli(["ingest", str(big), "-c", "docs", "-q"], env)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(lines) == 1, r.stderr  # one line, no traceback
    assert lines[0].startswith("error: ") and ("space" in lines[0] or "full" in lines[0]), lines[0]
    during = documents(collection)
    assert before <= during and len(during) < len(before) + 200  # what was committed before is intact; stopped midway
    # The disk is still full: check opens it read-only (the repair of the index cannot be saved) and passes.
    checked = run_cli(["check", "-c", "docs", "--json"], env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert json.loads(checked.stdout)["ok"]
    assert_whole(collection)
    found = run_cli(["search", "metformin", "-c", "docs", "--json"], env)
    assert found.returncode == 0 and json.loads(found.stdout)["hits"]

    ballast.unlink()
    resumed = run_cli(["ingest", str(big), "-c", "docs", "-q", "--json"], env)
    assert resumed.returncode == 0, resumed.stderr
    reference_env = {**env, "ASSISTANT_INDEX_DIR": str(tmp_path / "reference")}
    for source in (corpus, big):
        reference = run_cli(["ingest", str(source), "-c", "docs", "-q", "--json"], reference_env)
        assert reference.returncode == 0, reference.stderr
    assert json.loads(resumed.stdout)["totals"] == json.loads(reference.stdout)["totals"]
    assert chunks_by_file(collection) == chunks_by_file(tmp_path / "reference" / "docs")
    final = json.loads(run_cli(["check", "-c", "docs", "--json"], env).stdout)
    assert final["ok"] and final["repaired"] == []
    assert_whole(collection, writable=True)


@pytest.mark.parametrize("free", [0, 8_000], ids=["no-room", "half-written-index"])
def test_disk_full_during_a_checkpoint_keeps_the_old_index_and_manifest(tmp_path, corpus, embedder, small_disk, free):
    collection = small_disk / "docs"
    ingest_once(collection, embedder, [corpus])
    _, counts = ingest_once(collection, embedder, [_reports(tmp_path / "more", 40)])  # an index of ~30 KB
    manifest, index = (collection / "manifest.json").read_bytes(), (collection / "vectors.faiss").read_bytes()
    with Collection.open(collection, writable=True) as opened:
        opened.operation = "delete"
        removed = opened.delete_source(str((corpus / "asthma.txt").resolve()))  # committed in SQLite ...
        assert removed[0] == 1
        ballast = fill(small_disk, leave=free)
        with pytest.raises(OSError) as failed:
            opened.checkpoint()  # ... but the index and manifest cannot be saved
        assert failed.value.errno == 28
        # The temp file is gone; the old index and manifest are untouched, byte for byte.
        assert (collection / "manifest.json").read_bytes() == manifest and (collection / "vectors.faiss").read_bytes() == index
        assert [p.name for p in collection.iterdir() if p.name.endswith(".tmp")] == []
        try:
            opened.close()  # lists the version: may fail on the full disk, but the lock must go
        except Exception:
            pass
    # Opened read-only, the lagging index is brought up to date in memory; the deletion holds.
    with Collection.open(collection) as reader:
        report = reader.check()
        assert report.ok and report.stats["documents"] == counts["documents"] - 1, report.problems
    ballast.unlink()
    with Collection.open(collection, writable=True) as writer:  # the repair is saved now
        assert writer.check().ok
    assert json.loads((collection / "manifest.json").read_text())["index"]["chunks"] == counts["chunks"] - removed[1]
    assert_whole(collection, writable=True)


def test_disk_full_during_an_upload_is_a_507_and_the_server_keeps_serving(tmp_path, settings, corpus, embedder, small_disk):
    ingest_once(small_disk / "docs", embedder, [corpus])
    collection = small_disk / "docs"
    before = documents(collection)
    big = _report_text(1, sections=2500).encode()  # ~200 KB: fits on the disk, its chunks do not
    with live(app_for(on_disk(settings, small_disk))) as srv, httpx.Client(base_url=srv.url, timeout=60) as c:
        search_ok(c)
        # The file itself cannot be stored.
        ballast = fill(small_disk, leave=64_000)
        r = c.post("/v1/documents", data={"collection": "docs"}, files=[("files", ("big.txt", big, "text/plain"))])
        assert r.status_code == 507 and "no space left" in r.json()["detail"], r.text
        ballast.unlink()
        # The file is stored, the commit runs out of space midway.
        ballast = fill(small_disk, leave=400_000)
        r = c.post("/v1/documents", data={"collection": "docs"}, files=[("files", ("big.txt", big, "text/plain"))])
        assert r.status_code == 507 and "no space left" in r.json()["detail"], r.text
        assert search_ok(c)[0]["title"] == "Metformin"  # the server keeps serving
        assert documents(collection) == before
        uploads = small_disk / ".uploads" / "docs"
        assert not uploads.exists() or list(uploads.iterdir()) == []  # nothing kept that the collection lacks
        assert_whole(collection)
        ballast.unlink()
        r = c.post("/v1/documents", data={"collection": "docs"}, files=[("files", ("big.txt", big, "text/plain"))])
        assert r.status_code == 200 and r.json()["documents_added"] == 1, r.text
        assert search_ok(c, "revenue region 2499")[0]["title"] == "big"
    assert_whole(collection, writable=True)


# ---------------------------------------------------------------------- 2. another process holds a lock


HOLD_FILE_LOCK = """
import sys, time
from filelock import FileLock
lock = FileLock(sys.argv[1]); lock.acquire()
print("held", flush=True); time.sleep(120)
"""
HOLD_SQLITE_LOCK = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None); db.execute("BEGIN IMMEDIATE")
print("held", flush=True); time.sleep(120)
"""


@pytest.mark.parametrize(
    "holder, target, message",
    [
        (HOLD_FILE_LOCK, ".write.lock", "being written by another process"),
        (HOLD_SQLITE_LOCK, "docs.sqlite", "locked by another process"),
    ],
    ids=["write-lock", "sqlite-lock"],
)
def test_a_lock_held_by_another_process_is_a_409_and_searches_go_on(settings, monkeypatch, holder, target, message):
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_S", 1.0)  # SQLite's wait (30 s by default): short for the test
    collection = settings.index_dir / "docs"
    before = documents(collection)
    upload = {"data": {"collection": "docs"}, "files": [("files", ("statins.txt", b"Statins lower LDL cholesterol.", "text/plain"))]}
    with live(app_for(settings)) as srv, httpx.Client(base_url=srv.url, timeout=60) as c:
        search_ok(c)
        proc = subprocess.Popen([sys.executable, "-c", holder, str(collection / target)], stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
            started = time.monotonic()
            r = c.post("/v1/documents", **upload)
            assert r.status_code == 409 and message in r.json()["detail"] and r.headers["retry-after"], r.text
            assert time.monotonic() - started < 10  # a bounded wait, not a hang
            assert search_ok(c)[0]["title"] == "Metformin"
            assert c.post("/v1/ask", json={"question": "What is metformin?", "collection": "docs"}).status_code == 200
        finally:
            proc.kill()
            proc.wait(10)
        assert documents(collection) == before
        assert not (settings.index_dir / ".uploads" / "docs" / "statins.txt").exists()
        r = c.post("/v1/documents", **upload)  # the lock is gone: the same upload goes through
        assert r.status_code == 200 and r.json()["documents_added"] == 1, r.text
    assert_whole(collection, writable=True)


# ---------------------------------------------------------------------- 3. the generator fails mid-stream


class FailingGenerator(QueuedGenerator):
    """Streams a few tokens of its first answer, then raises; later answers are whole."""

    def __init__(self, *args, fail_after: int = 3, **kwargs):
        super().__init__(*args, **kwargs)
        self.fail_after, self.failures = fail_after, 0

    def stream(self, messages: list[Message], options: GenerationOptions = GenerationOptions()) -> TextStream:
        stream = super().stream(messages, options)
        if self.failures:
            return stream
        self.failures += 1
        inner = stream.pieces

        def failing():
            for i, piece in enumerate(inner):
                if i == self.fail_after:
                    raise RuntimeError("the model crashed (CUDA error: an illegal memory access)")
                yield piece

        stream.pieces = failing()
        return stream


def test_a_generator_failing_mid_stream_sends_an_error_event_and_frees_its_slot(settings):
    # One slot, and a 2 s queue timeout: a slot the failure leaked would make the next ask a 503.
    quick = with_api(settings, generation_concurrency=1, queue_timeout_s=2)
    app = create_app(quick, generator=FailingGenerator([METFORMIN]), embedders={"hash:64": HashEmbedder(64)}, warm_up=False)
    service = app.state.service
    with live(app) as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
        ask = {"question": "What is metformin used for?", "collection": "docs"}
        with c.stream("POST", "/v1/ask/stream", json=ask) as r:
            assert r.status_code == 200
            events = sse_events(r.read().decode())
        kinds = [kind for kind, _ in events]
        assert kinds == ["token"] * 3 + ["error"], kinds
        error = events[-1][1]
        assert error["status"] == 500 and error["detail"]
        wait_until(lambda: service.bounded.active == 0 and service.bounded.waiting == 0, 5)
        metrics = c.get("/metrics").text
        assert "assistant_generation_queue_depth 0.0" in metrics and "assistant_generation_active 0.0" in metrics
        again = c.post("/v1/ask", json=ask)
        assert again.status_code == 200 and again.json()["answer"].startswith(METFORMIN), again.text
        search_ok(c)


# ---------------------------------------------------------------------- 4. the embedder fails mid-upload


class FailingEmbedder:
    """The hash embedder, whose ``fail_on``-th call to embed passages raises (once)."""

    def __init__(self, fail_on: int):
        self.inner, self.fail_on, self.calls = HashEmbedder(64), fail_on, 0

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def embed_passages(self, texts: list[str]):
        self.calls += 1
        if self.calls == self.fail_on:
            raise RuntimeError("embedding batch failed: out of memory")
        return self.inner.embed_passages(texts)


def test_an_embedder_failing_mid_upload_reports_it_keeps_whole_files_and_a_retry_succeeds(settings):
    collection = settings.index_dir / "docs"
    before = documents(collection)
    embedder = FailingEmbedder(fail_on=3)
    small_commits = settings.model_copy(update={"ingest": settings.ingest.model_copy(update={"commit_chunks": 8})})
    app = create_app(small_commits, generator=QueuedGenerator([METFORMIN]), embedders={"hash:64": embedder}, warm_up=False)
    files = [("files", (f"report{i}.txt", _report_text(i, sections=24).encode(), "text/plain")) for i in range(6)]
    with live(app) as srv, httpx.Client(base_url=srv.url, timeout=60) as c:
        r = c.post("/v1/documents", data={"collection": "docs"}, files=files)
        assert r.status_code == 500, r.text
        detail = r.json()["detail"]
        assert "embedding batch failed: out of memory" in detail and "retry the upload" in detail
        assert embedder.calls == 3
        search_ok(c)
        now = documents(collection)
        added = {name for name, _ in now - before}
        assert before <= now and 0 < len(added) < 6  # stopped midway, after some commits
        # A file committed before the failure is kept with its one document (and all its chunks: check); the
        # others left nothing, not even the stored file. (A file's record goes in with the commit after its last
        # document: the retry adds it without embedding anything again.)
        reference = chunks_by_file(collection)
        uploads = settings.index_dir / ".uploads" / "docs"
        assert file_records(collection) - {name for name, _ in before} <= added
        for i in range(6):
            name = f"report{i}.txt"
            assert (name in added) == (uploads / name).exists(), name
        assert_whole(collection)
        r = c.post("/v1/documents", data={"collection": "docs"}, files=files)
        assert r.status_code == 200, r.text
        assert {name for name, _ in documents(collection) - before} == {f"report{i}.txt" for i in range(6)}
        assert all(reference[name] == n for name, n in chunks_by_file(collection).items() if name in added)
    assert_whole(collection, writable=True)


# ---------------------------------------------------------------------- 5. SIGTERM during an upload


@pytest.mark.slow
def test_sigterm_during_an_upload_shuts_down_in_time_and_leaves_whole_files(tmp_path, cli_env, corpus):
    env = {**cli_env, "ASSISTANT_API__SHUTDOWN_GRACE_S": "2", "ASSISTANT_INGEST__COMMIT_CHUNKS": "16"}
    assert run_cli(["ingest", str(corpus), "-c", "docs", "-q"], env).returncode == 0
    index_dir = Path(env["ASSISTANT_INDEX_DIR"])
    collection = index_dir / "docs"
    names = [f"part{i:02d}.txt" for i in range(20)]
    texts = {name: _report_text(i, sections=3000) for i, name in enumerate(names)}  # ~20 x 250 KB: seconds of ingest
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "cli", "serve", "--port", str(port), "--no-warm-up"], env=env, stderr=subprocess.PIPE, text=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _up(url), 60)
        start = committed_generation(collection / "docs.sqlite")
        result: dict = {}

        def upload() -> None:
            try:
                files = [("files", (name, text.encode(), "text/plain")) for name, text in texts.items()]
                result["response"] = httpx.post(url + "/v1/documents", data={"collection": "docs"}, files=files, timeout=120)
            except httpx.HTTPError as exc:
                result["error"] = exc

        client = threading.Thread(target=upload)
        client.start()
        wait_until(lambda: committed_generation(collection / "docs.sqlite") >= start + 2, 60)  # mid-ingest
        signalled = time.monotonic()
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        took = time.monotonic() - signalled
        client.join(30)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(10)
    assert server.returncode in (-signal.SIGTERM, 0), server.stderr.read() if server.stderr else ""
    assert took < 2 + 10, took  # the grace, and the rest of the shutdown
    assert not client.is_alive() and ("response" in result or "error" in result)  # the client is not left hanging
    # The upload outlasts the grace: uvicorn cancels it and answers a bare 500 (or the connection closes); one
    # that finishes in time gets its 200. Never a client left waiting.
    response = result.get("response")
    assert response is None or response.status_code in (200, 500), response.text
    checked = run_cli(["check", "-c", "docs", "--json"], env)
    assert checked.returncode == 0 and json.loads(checked.stdout)["ok"], checked.stdout + checked.stderr
    # Each file: all of its document's chunks or nothing (a reference ingest says how many it has).
    reference_dir = tmp_path / "reference"
    reference_dir.mkdir()
    for name, text in texts.items():
        (reference_dir / name).write_text(text, encoding="utf-8")
    ref_env = {**env, "ASSISTANT_INDEX_DIR": str(tmp_path / "reference-index")}
    assert run_cli(["ingest", str(reference_dir), "-c", "docs", "-q"], ref_env).returncode == 0
    expected = chunks_by_file(tmp_path / "reference-index" / "docs")
    stored = {name: n for name, n in chunks_by_file(collection).items() if name in expected}
    assert all(stored[name] == expected[name] for name in stored), (stored, expected)
    assert len(documents(collection)) >= len(FIVE_DOCS)  # what was there before is intact


def _up(url: str) -> bool:
    try:
        return httpx.get(url + "/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
