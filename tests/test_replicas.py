"""Serving replicas: two real API processes (``assistant serve``) over one index folder, behind bench/replicas.py's
round-robin proxy. While another process ingests into the collection no request fails, and each replica serves the
new version (its ``collection_version``, and a search that finds the new document) within the stale-check interval
(core/collection/collection.py: STALE_CHECK_INTERVAL_S) plus request time. Uploads through a replica need no
read-only mode: the collection's write lock serialises writers across processes (409 while another one writes),
and the other replica picks the upload up the same way. The hash embedder everywhere: no model is loaded."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

import aiohttp
import httpx
import pytest
from aiohttp import web

from bench.replicas import GenerationWatch, ProxyProcess, Replica, ReverseProxy, generation
from core.collection import Collection
from core.collection.collection import STALE_CHECK_INTERVAL_S
from tests.conftest import FIVE_DOCS, run_cli
from tests.live_server import free_port

COLLECTION = "medical"
NEW_DOC = "Glaucoma damages the optic nerve, usually through raised intraocular pressure. Latanoprost eye drops lower the pressure."
NEW_QUERY = "glaucoma optic nerve intraocular pressure latanoprost"
UPLOADED_DOC = "Gout is arthritis caused by urate crystals in a joint. Allopurinol lowers urate in the blood."
UPLOADED_QUERY = "gout urate crystals allopurinol"
MODES = ("dense", "bm25", "hybrid")  # three modes over two replicas in turn: each replica gets every mode
DEADLINE_S = 40.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """The collection built from the five documents, two replicas over its folder, the proxy in front."""
    root = tmp_path_factory.mktemp("replicas")
    corpus = root / "corpus"
    corpus.mkdir()
    for name, text in FIVE_DOCS.items():
        (corpus / name).write_text(text, encoding="utf-8")
    env = {
        "ASSISTANT_INDEX_DIR": str(root / "indexes"),
        "ASSISTANT_EMBEDDER__MODEL": "hash:64",
        "ASSISTANT_CHUNKING__CHUNK_TOKENS": "40",
        "ASSISTANT_CHUNKING__OVERLAP_TOKENS": "8",
        "ASSISTANT_INGEST__COMMIT_CHUNKS": "4",
        "ASSISTANT_GUARDRAILS__AUDIT_LOG": str(root / "guard-audit.jsonl"),
    }
    cli_env = {**{k: v for k, v in os.environ.items() if not k.startswith("ASSISTANT_")}, **env}
    built = run_cli(["ingest", str(corpus), "--collection", COLLECTION, "-q"], cli_env)
    assert built.returncode == 0, built.stderr
    index_dir = root / "indexes"
    replicas = [Replica(index_dir, env, warm_up=False, clean=True) for _ in range(2)]
    proxy = None
    try:
        for replica in replicas:
            replica.start()
        for replica in replicas:
            replica.wait_ready(60)
        proxy = ProxyProcess([r.url for r in replicas]).start()
        yield {"root": root, "index_dir": index_dir, "env": cli_env, "replicas": replicas, "proxy": proxy}
    finally:
        if proxy is not None:
            proxy.stop()
        for replica in replicas:
            replica.stop()
            replica.log_path.unlink(missing_ok=True)


def search(client: httpx.Client, query: str, mode: str) -> httpx.Response:
    return client.get("/v1/search", params={"q": query, "collection": COLLECTION, "k": 3, "mode": mode})


class Searcher:
    """A thread searching ``query`` through ``url`` until stopped, recording every request."""

    def __init__(self, url: str, query: str):
        self.url, self.query = url, query
        self.records: list[dict] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Searcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            n = 0
            while not self._stop.is_set():
                mode = MODES[n % len(MODES)]
                n += 1
                rec: dict = {"t0": time.perf_counter(), "mode": mode, "status": None, "replica": None, "version": None, "sources": []}
                try:
                    r = search(client, self.query, mode)
                    rec["status"], rec["replica"] = r.status_code, r.headers.get("X-Replica")
                    if r.status_code == 200:
                        body = r.json()
                        rec["version"] = body["collection_version"]
                        rec["sources"] = [Path(h["source"]).name for h in body["hits"]]
                    else:
                        rec["detail"] = r.text[:300]
                except httpx.HTTPError as exc:
                    rec["error"] = f"{type(exc).__name__}: {exc}"
                rec["t1"] = time.perf_counter()
                self.records.append(rec)

    def switched(self, version: int, replicas: int, after: float) -> bool:
        """Every replica answered with ``version`` a request sent after ``after``."""
        return all(
            any(r["replica"] == str(i) and r["version"] == version and r["t0"] > after for r in self.records) for i in range(replicas)
        )


def test_two_replicas_switch_to_an_ingested_version_within_the_stale_interval_and_no_request_fails(cluster):
    index_dir, replicas, proxy = cluster["index_dir"], cluster["replicas"], cluster["proxy"]
    new_folder = cluster["root"] / "update"
    new_folder.mkdir()
    (new_folder / "glaucoma.txt").write_text(NEW_DOC, encoding="utf-8")
    before = generation(index_dir)

    with GenerationWatch(index_dir) as watch, Searcher(proxy.url, NEW_QUERY) as searcher:
        time.sleep(1.0)  # both replicas serve the old version for a while
        ingested = run_cli(["ingest", str(new_folder), "--collection", COLLECTION, "-q"], cluster["env"])
        assert ingested.returncode == 0, ingested.stderr
        after = generation(index_dir)
        assert after > before
        deadline = time.monotonic() + DEADLINE_S
        while after not in watch.seen:  # the watch polls every 5 ms; on a busy machine its thread may lag
            assert time.monotonic() < deadline
            time.sleep(0.01)
        while not searcher.switched(after, len(replicas), watch.seen[after] + STALE_CHECK_INTERVAL_S + 0.5):
            assert time.monotonic() < deadline, f"not every replica served version {after} within {DEADLINE_S:g} s"
            time.sleep(0.1)

    records = searcher.records
    failures = [r for r in records if r["status"] != 200]
    assert not failures, failures[:5]
    served = {r["replica"] for r in records}
    assert served == {"0", "1"}, served
    committed = watch.seen[after]  # first read by a 5 ms poll: at or after the commit
    assert set(watch.seen) <= set(range(before, after + 1)) and {before, after} <= set(watch.seen)
    longest = max(r["t1"] - r["t0"] for r in records)
    for i in ("0", "1"):
        mine = [r for r in records if r["replica"] == i]
        # An ingest may commit more than once (documents, then the finished file records): versions in between.
        assert {r["version"] for r in mine} <= set(range(before, after + 1))
        # The version a response carries is the FAISS index it searched: the old one lacks the new document, the
        # new one finds it first, in every mode. (BM25 and the passages read SQLite as it is now, so until the
        # replica notices the commit a bm25 or hybrid search may find the new document under the old version.)
        for r in mine:
            if r["version"] == before and r["mode"] == "dense":
                assert "glaucoma.txt" not in r["sources"], r
            if r["version"] == after:
                assert r["sources"][:1] == ["glaucoma.txt"], r
        # A request reaching the replica more than the stale interval after the commit sees it: a read-only
        # handle reads the generation at least that often.
        late_old = [r for r in mine if r["t0"] > committed + STALE_CHECK_INTERVAL_S and r["version"] != after]
        assert not late_old, late_old[:3]
        first_new = min(r["t1"] for r in mine if r["version"] == after)
        # Hence the first response with the new version, within the interval plus the requests in between (the
        # replicas take requests in turn: at most two others, then its own).
        assert first_new - committed <= STALE_CHECK_INTERVAL_S + 3 * longest + 0.05, (first_new - committed, longest)


def test_an_upload_through_a_replica_waits_for_the_write_lock_and_reaches_the_other_replica(cluster):
    index_dir, (first, second) = cluster["index_dir"], cluster["replicas"]
    files = {"files": ("gout.txt", UPLOADED_DOC.encode(), "text/plain")}
    with httpx.Client(base_url=first.url, timeout=60) as writer, httpx.Client(base_url=second.url, timeout=30) as other:
        # Another process holds the collection's write lock (an ingest, another replica's upload): a clear 409.
        with Collection.open(index_dir / COLLECTION, writable=True):
            busy = writer.post("/v1/documents", data={"collection": COLLECTION}, files=files)
        assert busy.status_code == 409, busy.text
        assert "being written by another process" in busy.json()["detail"]

        uploaded = writer.post("/v1/documents", data={"collection": COLLECTION}, files=files)
        done = time.perf_counter()
        assert uploaded.status_code == 200, uploaded.text
        version = uploaded.json()["collection_version"]
        assert generation(index_dir) == version

        # The replica that wrote sees its own commit at once; the other one within the stale interval.
        r = search(writer, UPLOADED_QUERY, "bm25").json()
        assert r["collection_version"] == version and Path(r["hits"][0]["source"]).name == "gout.txt"
        while True:
            sent = time.perf_counter()
            r = search(other, UPLOADED_QUERY, "dense").json()
            if r["collection_version"] == version:
                break
            assert sent - done <= STALE_CHECK_INTERVAL_S + 0.05, f"the other replica still served version {r['collection_version']}"
            time.sleep(0.02)
        assert Path(r["hits"][0]["source"]).name == "gout.txt", r["hits"]


def test_the_proxy_takes_replicas_in_turn_streams_and_reports_an_unreachable_one_as_502():
    """bench/replicas.py's proxy alone, over two small aiohttp backends and a port nobody listens on."""

    NAME = web.AppKey("name", str)

    async def scenario() -> None:
        async def hello(request: web.Request) -> web.Response:
            body = await request.read()
            return web.json_response({"backend": request.app[NAME], "path": request.path_qs, "body": body.decode()})

        async def stream(request: web.Request) -> web.StreamResponse:
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await response.prepare(request)
            for i in range(3):
                await response.write(f"data: {i}\n\n".encode())
            await response.write_eof()
            return response

        runners = []

        async def serve(app: web.Application) -> str:
            runner = web.AppRunner(app)
            await runner.setup()
            port = free_port()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            runners.append(runner)
            return f"http://127.0.0.1:{port}"

        backends = []
        for name in ("a", "b"):
            app = web.Application()
            app[NAME] = name
            app.router.add_route("*", "/echo", hello)
            app.router.add_get("/stream", stream)
            backends.append(await serve(app))
        try:
            proxy = await serve(ReverseProxy(backends).app())
            broken = await serve(ReverseProxy([f"http://127.0.0.1:{free_port()}"]).app())
            async with aiohttp.ClientSession() as client:
                seen = []
                for _ in range(4):
                    async with client.post(f"{proxy}/echo?x=1", data=b"hi") as r:
                        body = await r.json()
                        seen.append((r.headers["X-Replica"], body["backend"]))
                        assert body["path"] == "/echo?x=1" and body["body"] == "hi"
                assert seen == [("0", "a"), ("1", "b"), ("0", "a"), ("1", "b")]
                async with client.get(f"{proxy}/stream") as r:
                    assert r.headers["Content-Type"] == "text/event-stream"
                    assert await r.text() == "data: 0\n\ndata: 1\n\ndata: 2\n\n"
                async with client.get(f"{proxy}/_proxy/status") as r:
                    assert [b["served"] for b in (await r.json())["backends"]] == [3, 2]
                async with client.get(f"{broken}/echo") as r:
                    assert r.status == 502 and "unreachable" in (await r.json())["detail"]
        finally:
            for runner in runners:
                await runner.cleanup()

    asyncio.run(scenario())


def test_the_least_in_flight_policy_picks_the_idlest_replica_and_takes_ties_in_turn():
    proxy = ReverseProxy(["http://127.0.0.1:1", "http://127.0.0.1:2", "http://127.0.0.1:3"], "least")
    proxy.in_flight = [2, 0, 1]
    assert proxy.pick() == 1
    proxy.in_flight = [0, 3, 0]
    assert {proxy.pick(), proxy.pick()} == {0, 2}
