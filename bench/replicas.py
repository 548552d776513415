"""Serving replicas: N API processes (``assistant serve``) over one index folder, behind a small reverse proxy on
loopback, driven with ``/v1/search`` while an ingest in another process publishes a new version of the collection.

    python bench/replicas.py [--replicas 1,2] [--rounds 2] [--clients 16] [--seconds 20] [--update-seconds 15] [--json FILE]
    python bench/replicas.py --rounds 1 --seconds 5 --update-seconds 5 --embedder hash:64 --no-warm-up   # a smoke run
    python bench/replicas.py proxy --port PORT --backend URL [--backend URL ...] [--policy round-robin|least]

The collection: ``medical`` built once into a temporary folder from the MedQuAD sample
(data/samples/medical/medquad) without its last folder, ``9_CDC_QA``, which is held out as the update. Each run
gets its own copy of that collection in a fresh ASSISTANT_INDEX_DIR, so every run starts from the same version.

A run (one count of replicas): the replicas start on free loopback ports (``python -m cli serve``, all with the
same ASSISTANT_INDEX_DIR, ASSISTANT_API_KEYS removed, the rate limit raised to 1000000 a minute as in
bench/load.py), each is warmed with --warm-requests searches of its own, then the proxy starts (``proxy`` below,
in a process of its own). Two phases, each with --clients closed-loop clients (one connection each, aiohttp, in
this process) sending ``GET /v1/search?q=QUESTION&collection=medical&k=5`` (MedQuAD questions in turn) through
the proxy, after --warmup-seconds unrecorded:
- steady: --seconds recorded. Throughput (responses received within the window / its seconds), latency, failed
  requests, and the CPU seconds each replica used in the window (utime + stime from /proc/PID/stat) divided by
  the searches it served in the window: the CPU per search;
- update: --update-seconds recorded at least; 1 s into the window ``python -m cli ingest 9_CDC_QA --collection
  medical`` runs in another process, and the phase lasts until 3 s after it has finished. A thread here reads the
  collection's generation (``meta.generation`` in docs.sqlite, the version searches report) every 5 ms: the
  commit's time is when the new generation is first seen. Per replica: the time from that commit to the first
  response carrying the new ``collection_version`` (the switch), and the responses that still carried the old
  version although their request was sent more than STALE_CHECK_INTERVAL_S after the commit (must be 0: a
  read-only handle checks the generation at least that often and reopens).
A failed request is a non-2xx response or a connection error / timeout; the target is none in either phase. The
proxy tags each response with the replica that served it (X-Replica) and does not retry.

Runs are interleaved: --replicas 1,2 with --rounds 2 runs 1, 2, 1, 2 replicas. The table gives each run, then
per count of replicas the mean throughput, its ratio to one replica, and the CPU per search, from which the
throughput of N replicas on N machines is stated (1 / CPU per search per core given to a replica). Every process
here (clients, proxy, replicas, the ingest) shares this machine's cores: with 2 cores, two replicas cannot show
scaling directly, and the table says so with the measured ratio.

--json FILE writes the settings, the git state, every run's summaries and the targets (--json-requests: every
request too). Exit status 0 when the benchmark ran (whether or not the targets are met), 1 when a replica, the
proxy or the ingest could not be run, 2 for bad options.

The proxy (``proxy`` command): an aiohttp reverse proxy, round-robin over --backend (or ``least``: the replica with
the fewest requests in flight, ties in turn); it forwards method, path, query, headers (less hop-by-hop ones)
and body, streams a response without Content-Length (server-sent events) and adds ``X-Replica: INDEX``. A
replica it cannot reach gives 502. ``GET /_proxy/status``: the backends with their requests served, in flight
and failed.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.load import MEDQUAD, RATE_LIMIT, Failed, Server, batch_histogram, free_port, mean_batch, medquad_questions, scrape  # noqa: E402
from bench.tables import fmt, markdown_table, percentile  # noqa: E402

COLLECTION = "medical"
HELD_OUT = "9_CDC_QA"  # the MedQuAD folder left out of the base collection: the update's documents
SEARCH_K = 5
REPLICA_HEADER = "X-Replica"
STATUS_PATH = "/_proxy/status"
POLL_S = 0.005
TAIL_S = 3.0  # the update phase goes on this long after the ingest has finished
INGEST_AT_S = 1.0  # into the update phase's window
# Not forwarded either way (RFC 9110 7.6.1), plus what aiohttp sets itself for the new connection / body.
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade", "host"}
)


def stale_interval_s() -> float:
    from core.collection.collection import STALE_CHECK_INTERVAL_S

    return STALE_CHECK_INTERVAL_S


# ---------------------------------------------------------------------------------------------- the proxy


class ReverseProxy:
    """Round-robin (or least in flight) over ``backends``; ``app()`` is the aiohttp application."""

    def __init__(self, backends: list[str], policy: str = "round-robin"):
        if not backends:
            raise ValueError("the proxy needs at least one backend")
        if policy not in ("round-robin", "least"):
            raise ValueError(f"unknown policy {policy!r}")
        self.backends = [b.rstrip("/") for b in backends]
        self.policy = policy
        self.in_flight = [0] * len(backends)
        self.served = [0] * len(backends)
        self.failed = [0] * len(backends)
        self._turn = itertools.count()
        self._sessions: list[Any] = []

    def pick(self) -> int:
        if self.policy == "least":
            low = min(self.in_flight)
            candidates = [i for i, n in enumerate(self.in_flight) if n == low]
            return candidates[next(self._turn) % len(candidates)]
        return next(self._turn) % len(self.backends)

    def app(self):
        from aiohttp import web

        app = web.Application(client_max_size=64 * 2**20)
        app.router.add_get(STATUS_PATH, self.status)
        app.router.add_route("*", "/{tail:.*}", self.forward)
        app.on_startup.append(self._open)
        app.on_cleanup.append(self._close)
        return app

    async def _open(self, _app) -> None:
        import aiohttp

        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
        for base in self.backends:
            # auto_decompress off: the body goes to the client as the replica encoded it, with its headers.
            connector = aiohttp.TCPConnector(limit=512, keepalive_timeout=30)
            self._sessions.append(aiohttp.ClientSession(base, connector=connector, timeout=timeout, auto_decompress=False))

    async def _close(self, _app) -> None:
        for session in self._sessions:
            await session.close()

    async def status(self, _request):
        from aiohttp import web

        return web.json_response(
            {
                "policy": self.policy,
                "backends": [
                    {"url": url, "served": s, "in_flight": n, "failed": f}
                    for url, s, n, f in zip(self.backends, self.served, self.in_flight, self.failed)
                ],
            }
        )

    async def forward(self, request):
        import aiohttp
        from aiohttp import web
        from multidict import CIMultiDict

        i = self.pick()
        self.in_flight[i] += 1
        try:
            headers = CIMultiDict((k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP)
            headers.popall("Content-Length", None)
            forwarded = request.headers.get("X-Forwarded-For")
            headers["X-Forwarded-For"] = f"{forwarded}, {request.remote}" if forwarded else str(request.remote)
            body = await request.read() if request.body_exists else None
            try:
                upstream = await self._sessions[i].request(
                    request.method, str(request.rel_url), headers=headers, data=body, allow_redirects=False
                )
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                self.failed[i] += 1
                return web.json_response(
                    {"detail": f"replica {i} ({self.backends[i]}) unreachable: {type(exc).__name__}"},
                    status=502,
                    headers={REPLICA_HEADER: str(i)},
                )
            async with upstream:
                out = CIMultiDict((k, v) for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP)
                out[REPLICA_HEADER] = str(i)
                if "Content-Length" in upstream.headers:
                    payload = await upstream.read()
                    out.popall("Content-Length", None)
                    response = web.Response(status=upstream.status, body=payload, headers=out)
                else:  # streamed (server-sent events): pass each piece on as it comes
                    response = web.StreamResponse(status=upstream.status, headers=out)
                    await response.prepare(request)
                    async for piece in upstream.content.iter_any():
                        await response.write(piece)
                    await response.write_eof()
            self.served[i] += 1
            return response
        finally:
            self.in_flight[i] -= 1


def serve_proxy(port: int, backends: list[str], policy: str) -> None:
    from aiohttp import web

    web.run_app(ReverseProxy(backends, policy).app(), host="127.0.0.1", port=port, access_log=None, print=None)


class ProxyProcess:
    """This file's ``proxy`` command in a subprocess."""

    def __init__(self, backends: list[str], policy: str = "round-robin", port: int | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.backends, self.policy = backends, policy
        fd, name = tempfile.mkstemp(prefix="bench-replicas-proxy-", suffix=".log")
        os.close(fd)
        self.log_path = Path(name)
        self.proc: subprocess.Popen | None = None

    def start(self, timeout_s: float = 30) -> ProxyProcess:
        import httpx

        command = [sys.executable, str(Path(__file__).resolve()), "proxy", "--port", str(self.port), "--policy", self.policy]
        for backend in self.backends:
            command += ["--backend", backend]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise Failed(f"the proxy exited with status {self.proc.returncode}: {self.log_path.read_text(errors='replace')[-2000:]}")
            try:
                if httpx.get(self.url + STATUS_PATH, timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise Failed(f"the proxy did not answer within {timeout_s:g} s")

    def status(self) -> dict[str, Any] | None:
        import httpx

        try:
            return httpx.get(self.url + STATUS_PATH, timeout=10).json()
        except (httpx.HTTPError, ValueError):
            return None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log_path.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------- replicas


def replica_env(index_dir: Path, work: Path, embedder: str | None) -> dict[str, str]:
    """What every replica and the ingest run with, over the environment: one index folder."""
    env = {
        "ASSISTANT_INDEX_DIR": str(index_dir),
        "ASSISTANT_GUARDRAILS__AUDIT_LOG": str(work / "guard-audit.jsonl"),
        "TOKENIZERS_PARALLELISM": "false",
    }
    if embedder:
        env["ASSISTANT_EMBEDDER__MODEL"] = embedder
    return env


class Replica(Server):
    """One ``assistant serve`` process (bench/load.py's Server) with ``env`` over the caller's environment (over
    its non-ASSISTANT_ variables only with ``clean``), without API keys, the rate limit raised as in bench/load.py."""

    def __init__(self, index_dir: Path, env: dict[str, str], *, warm_up: bool = True, port: int | None = None, clean: bool = False):
        super().__init__(index_dir, port or free_port())
        if clean:
            self.env = {k: v for k, v in self.env.items() if not k.startswith("ASSISTANT_")}
        self.env.update(env)
        self.env["ASSISTANT_INDEX_DIR"] = str(index_dir)
        self.env.pop("ASSISTANT_API_KEYS", None)
        self.env.setdefault("ASSISTANT_API__RATE_LIMIT_PER_MINUTE", RATE_LIMIT)
        self.warm_up = warm_up

    def start(self) -> None:
        command = [sys.executable, "-m", "cli", "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        if not self.warm_up:
            command.append("--no-warm-up")
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(command, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.started_at = time.perf_counter()

    def cpu_s(self) -> float | None:
        return process_cpu_s(self.proc.pid) if self.proc is not None else None

    def rss_mb(self) -> float | None:
        if self.proc is None:
            return None
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return None


def process_cpu_s(pid: int) -> float | None:
    """utime + stime of a process (all its threads), in seconds; None where /proc is not there."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def self_cpu_s() -> float:
    t = os.times()
    return t.user + t.system


def run_cli(args: list[str], env: dict[str, str], timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cli", *args], cwd=REPO, env={**os.environ, **env}, capture_output=True, text=True, timeout=timeout
    )


def generation(index_dir: Path, collection: str = COLLECTION) -> int:
    """The collection's committed generation, read as a reader (the version its searches report)."""
    db = sqlite3.connect(f"file:{index_dir / collection / 'docs.sqlite'}?mode=ro", uri=True, timeout=30)
    try:
        return int(db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0])
    finally:
        db.close()


class GenerationWatch:
    """A thread reading the collection's generation every POLL_S: ``seen`` maps each generation to the
    perf_counter time it was first read (an upper bound on its commit time, by at most one poll)."""

    def __init__(self, index_dir: Path, collection: str = COLLECTION):
        self.path = index_dir / collection / "docs.sqlite"
        self.seen: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="generation-watch")

    def __enter__(self) -> GenerationWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30, check_same_thread=False)
        try:
            while not self._stop.is_set():
                g = int(db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0])
                self.seen.setdefault(g, time.perf_counter())
                self._stop.wait(POLL_S)
        finally:
            db.close()


# ---------------------------------------------------------------------------------------------- load


async def drive(url: str, questions: list[str], args, pids: dict[str, int], *, seconds: float, during=None) -> dict[str, Any]:
    """--clients closed loops for --warmup-seconds + ``seconds``; ``during(phase)`` (a coroutine) runs beside
    them from the window's start and may move ``phase["end"]`` later. The CPU time of ``pids`` (name -> pid) and of
    this process (``clients``) is sampled at the window's start and end."""
    import aiohttp

    counter = itertools.count()
    records: list[dict[str, Any]] = []
    t_start = time.perf_counter()
    phase: dict[str, Any] = {"warm_end": t_start + args.warmup_seconds}
    phase["end"] = phase["warm_end"] + seconds
    timeout = aiohttp.ClientTimeout(total=args.timeout, connect=min(args.timeout, 30.0))
    cpu: dict[str, Any] = {}

    def sample() -> dict[str, float | None]:
        out: dict[str, float | None] = {name: process_cpu_s(pid) for name, pid in pids.items()}
        out["clients"] = self_cpu_s()
        return out

    async def sampler() -> None:
        await asyncio.sleep(max(0.0, phase["warm_end"] - time.perf_counter()))
        cpu["start"], cpu["t0"] = sample(), time.perf_counter()
        if during is not None:
            await during(phase)
        while (left := phase["end"] - time.perf_counter()) > 0:
            await asyncio.sleep(left)
        cpu["end"], cpu["t1"] = sample(), time.perf_counter()

    async def client(cid: int) -> None:
        async with aiohttp.ClientSession(url, connector=aiohttp.TCPConnector(limit=1), timeout=timeout) as session:
            while (t0 := time.perf_counter()) < phase["end"]:
                question = questions[next(counter) % len(questions)]
                rec: dict[str, Any] = {"client": cid, "t0": t0, "status": None, "replica": None, "version": None}
                try:
                    params = {"q": question, "collection": COLLECTION, "k": str(SEARCH_K)}
                    async with session.get("/v1/search", params=params) as r:
                        raw = await r.read()
                    rec["status"] = r.status
                    replica = r.headers.get(REPLICA_HEADER)
                    rec["replica"] = int(replica) if replica is not None else None
                    if r.status == 200:
                        body = json.loads(raw)
                        rec["version"] = body.get("collection_version")
                        rec["hits"] = len(body.get("hits") or [])
                    else:
                        rec["detail"] = raw[:300].decode("utf-8", "replace")
                except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
                    rec["error"] = f"{type(exc).__name__}: {exc}"[:300]
                rec["t1"] = time.perf_counter()
                records.append(rec)

    await asyncio.gather(sampler(), *(client(i) for i in range(args.clients)))
    finished = time.perf_counter()
    phase.update(records=records, cpu=cpu, drain_s=max(0.0, finished - phase["end"]), t_start=t_start)
    return phase


def failed(rec: dict[str, Any]) -> bool:
    return rec["status"] is None or not 200 <= rec["status"] < 300


def load_summary(phase: dict[str, Any], replicas: int) -> dict[str, Any]:
    """Throughput, latency, failures, and per replica: searches served, CPU per search (in the window)."""
    warm_end, end = phase["warm_end"], phase["end"]
    window = end - warm_end
    measured = [r for r in phase["records"] if r["t0"] >= warm_end]  # sent in the window (all were answered)
    in_window = [r for r in phase["records"] if warm_end <= r["t1"] <= end]  # answered in the window
    ok_lat = [(r["t1"] - r["t0"]) * 1000 for r in measured if not failed(r)]
    cpu = phase["cpu"]
    cpu_window = cpu["t1"] - cpu["t0"]
    per_replica = []
    for i in range(replicas):
        served = sum(1 for r in in_window if r["replica"] == i and not failed(r))
        used = _delta(cpu, f"replica-{i}")
        per_replica.append(
            {
                "replica": i,
                "searches": served,
                "searches_per_s": served / window,
                "cpu_s": used,
                "cpu_ms_per_search": used / served * 1000 if used is not None and served else None,
                "cpu_cores_busy": used / cpu_window if used is not None else None,
            }
        )
    answered = [r for r in in_window if not failed(r)]
    proxy = _delta(cpu, "proxy")
    clients = _delta(cpu, "clients")
    return {
        "window_s": window,
        "requests": len(measured),
        "throughput_rps": len(answered) / window,
        "p50_ms": percentile(ok_lat, 50),
        "p95_ms": percentile(ok_lat, 95),
        "p99_ms": percentile(ok_lat, 99),
        "max_ms": max(ok_lat) if ok_lat else None,
        "failed": sum(1 for r in phase["records"] if failed(r)),  # warm-up and drain included: none may fail
        "failed_examples": [{k: r.get(k) for k in ("status", "replica", "detail", "error")} for r in phase["records"] if failed(r)][:5],
        "drain_s": phase["drain_s"],
        "per_replica": per_replica,
        "cpu_ms_per_search": _ratio(sum(p["cpu_s"] or 0.0 for p in per_replica), len(answered)),
        "proxy_cpu_ms_per_request": _ratio(proxy, len(answered)),
        "clients_cpu_ms_per_request": _ratio(clients, len(answered)),
        "cpu_cores_busy": {
            "replicas": sum(p["cpu_s"] or 0.0 for p in per_replica) / cpu_window,
            "proxy": proxy / cpu_window if proxy is not None else None,
            "clients": clients / cpu_window if clients is not None else None,
        },
    }


def _delta(cpu: dict[str, Any], name: str) -> float | None:
    a, b = cpu.get("start", {}).get(name), cpu.get("end", {}).get(name)
    return b - a if a is not None and b is not None else None


def _ratio(cpu_s: float | None, n: int) -> float | None:
    return cpu_s / n * 1000 if cpu_s is not None and n else None


def switch_summary(phase: dict[str, Any], replicas: int, seen: dict[int, float], before: int, interval_s: float) -> dict[str, Any]:
    """Per replica: the time from the new generation's commit to its first response carrying it, and the
    responses that carried an older one although sent more than ``interval_s`` after that commit."""
    after = max(seen) if seen else before
    committed = seen.get(after) if after != before else None
    out: dict[str, Any] = {
        "version_before": before,
        "version_after": after,
        "generations_seen": sorted(seen),
        "commit_s": committed - phase["warm_end"] if committed is not None else None,
        "bound_s": interval_s,
        "per_replica": [],
    }
    for i in range(replicas):
        mine = sorted((r for r in phase["records"] if r["replica"] == i and r["version"] is not None), key=lambda r: r["t1"])
        first_new = next((r for r in mine if r["version"] >= after), None) if committed is not None else None
        old_late = [r for r in mine if committed is not None and r["t0"] > committed + interval_s and r["version"] < after]
        versions = sorted({r["version"] for r in mine})
        out["per_replica"].append(
            {
                "replica": i,
                "versions_served": versions,
                "switch_ms": (first_new["t1"] - committed) * 1000 if first_new is not None else None,
                "first_new_request_ms": (first_new["t1"] - first_new["t0"]) * 1000 if first_new is not None else None,
                "old_version_after_bound": len(old_late),
                "older_than_before": sum(1 for r in mine if r["version"] < before),
            }
        )
    return out


# ---------------------------------------------------------------------------------------------- a run


def one_run(n: int, base: Path, work: Path, questions: list[str], args, label: str) -> dict[str, Any]:
    """n replicas over a fresh copy of the base collection: start, warm, steady phase, update phase, stop."""
    import httpx

    folder = work / label
    index_dir = folder / "indexes"
    shutil.copytree(base / COLLECTION, index_dir / COLLECTION, ignore=shutil.ignore_patterns(".write.lock"))
    env = replica_env(index_dir, folder, args.embedder)
    before = generation(index_dir)
    replicas = [Replica(index_dir, env, warm_up=not args.no_warm_up) for _ in range(n)]
    proxy: ProxyProcess | None = None
    run: dict[str, Any] = {"replicas": n, "label": label, "loadavg_before": os.getloadavg()}
    keep_logs = False
    try:
        for replica in replicas:
            replica.start()
        for replica in replicas:
            replica.wait_ready(args.ready_timeout)
        run["ready_s"] = [r.ready_s for r in replicas]
        for replica in replicas:  # load the embedder and open the collection before anything is measured
            with httpx.Client(base_url=replica.url, timeout=120) as client:
                for q in questions[: args.warm_requests]:
                    r = client.get("/v1/search", params={"q": q, "collection": COLLECTION, "k": SEARCH_K})
                    if r.status_code != 200:
                        raise Failed(f"warming {replica.url}: {r.status_code} {r.text[:300]}\n{replica.log_tail()}")
        proxy = ProxyProcess([r.url for r in replicas], args.policy).start()
        pids = {f"replica-{i}": r.proc.pid for i, r in enumerate(replicas)} | {"proxy": proxy.proc.pid}

        print(f"[{label}] steady: {args.clients} clients, {args.warmup_seconds:g} + {args.seconds:g} s", file=sys.stderr, flush=True)
        histograms = [batch_histogram(scrape(r.url)) for r in replicas]
        steady = asyncio.run(drive(proxy.url, questions, args, pids, seconds=args.seconds))
        run["steady"] = load_summary(steady, n)
        for p, replica, before_batches in zip(run["steady"]["per_replica"], replicas, histograms):
            p["embedding_batches"] = mean_batch(before_batches, batch_histogram(scrape(replica.url)))  # warm-up included

        ingest: dict[str, Any] = {}

        async def update(phase: dict[str, Any]) -> None:
            await asyncio.sleep(INGEST_AT_S)
            phase["end"] = float("inf")  # the clients go on until the ingest has finished, and TAIL_S after
            ingest["start_s"] = time.perf_counter() - phase["warm_end"]
            done = await asyncio.to_thread(run_cli, ["ingest", str(MEDQUAD / HELD_OUT), "--collection", COLLECTION, "--json", "-q"], env)
            ingest["end_s"] = time.perf_counter() - phase["warm_end"]
            ingest["returncode"] = done.returncode
            ingest["report"] = _json_or_text(done.stdout)
            if done.returncode != 0:
                ingest["stderr"] = done.stderr[-2000:]
            phase["end"] = max(phase["warm_end"] + args.update_seconds, time.perf_counter() + TAIL_S)

        print(f"[{label}] update: ingest of {HELD_OUT} {INGEST_AT_S:g} s into the window", file=sys.stderr, flush=True)
        with GenerationWatch(index_dir) as watch:
            updating = asyncio.run(drive(proxy.url, questions, args, pids, seconds=args.update_seconds, during=update))
        run["ingest"] = ingest
        run["update"] = load_summary(updating, n) | {"switch": switch_summary(updating, n, watch.seen, before, stale_interval_s())}
        if ingest.get("returncode") != 0:
            raise Failed(f"the ingest failed ({ingest.get('returncode')}): {ingest.get('stderr')}")
        run["proxy_status"] = proxy.status()
        run["rss_mb"] = [r.rss_mb() for r in replicas]
        if args.json_requests:
            run["requests"] = {"steady": steady["records"], "update": updating["records"]}
    except BaseException:
        keep_logs = True
        raise
    finally:
        if proxy is not None:
            proxy.stop()
        run["stop"] = [r.stop() for r in replicas]
        failures = sum(run.get(p, {}).get("failed", 0) for p in ("steady", "update"))
        for i, replica in enumerate(replicas):
            tracebacks = replica.tracebacks()
            if tracebacks:
                run.setdefault("notes", []).append(f"replica {i} logged {len(tracebacks)} traceback(s); the first:\n{tracebacks[0]}")
            if keep_logs or failures or tracebacks:
                run.setdefault("notes", []).append(f"replica {i} log kept: {replica.log_path}")
            else:
                replica.log_path.unlink(missing_ok=True)
        shutil.rmtree(folder, ignore_errors=True)
    return run


def _json_or_text(text: str) -> Any:
    try:
        report = json.loads(text)
    except ValueError:
        return text[-2000:]
    return {k: report.get(k) for k in ("documents_added", "chunks_added", "files_ingested", "totals", "seconds") if k in report}


# ---------------------------------------------------------------------------------------------- summary and printing


def aggregate(runs: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    for n in sorted({r["replicas"] for r in runs}):
        mine = [r for r in runs if r["replicas"] == n]
        rps = [r["steady"]["throughput_rps"] for r in mine]
        cpu = [p["cpu_ms_per_search"] for r in mine for p in r["steady"]["per_replica"] if p["cpu_ms_per_search"] is not None]
        proxy = [r["steady"]["proxy_cpu_ms_per_request"] for r in mine if r["steady"]["proxy_cpu_ms_per_request"] is not None]
        switches = [p["switch_ms"] for r in mine for p in r["update"]["switch"]["per_replica"]]
        out[n] = {
            "runs": len(mine),
            "throughput_rps": rps,
            "mean_rps": sum(rps) / len(rps),
            "cpu_ms_per_search": sum(cpu) / len(cpu) if cpu else None,
            "proxy_cpu_ms_per_request": sum(proxy) / len(proxy) if proxy else None,
            "failed": sum(r["steady"]["failed"] + r["update"]["failed"] for r in mine),
            "max_switch_ms": max((s for s in switches if s is not None), default=None),
            "all_switched": all(s is not None for s in switches),
            "old_version_after_bound": sum(p["old_version_after_bound"] for r in mine for p in r["update"]["switch"]["per_replica"]),
        }
    one = out.get(1)
    for s in out.values():
        s["ratio_to_one"] = s["mean_rps"] / one["mean_rps"] if one else None
    return out


def targets(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    interval = stale_interval_s()
    failures = sum(r["steady"]["failed"] + r["update"]["failed"] for r in runs)
    switches = [p for r in runs for p in r["update"]["switch"]["per_replica"]]
    late = sum(p["old_version_after_bound"] for p in switches)
    unswitched = sum(1 for p in switches if p["switch_ms"] is None)
    # A request sent more than the stale interval after the commit gets the new version (counted above), so the
    # first response carrying it comes within the interval plus one request's time: the longest of the phase.
    slow = [
        p
        for r in runs
        for p in r["update"]["switch"]["per_replica"]
        if p["switch_ms"] is not None and p["switch_ms"] > interval * 1000 + (r["update"]["max_ms"] or 0.0)
    ]
    return [
        {"name": "failed requests (non-2xx or connection errors), all runs", "target": "== 0", "value": failures, "passed": failures == 0},
        {"name": "replicas that never served the new version", "target": "== 0", "value": unswitched, "passed": unswitched == 0},
        {
            "name": f"old version sent > {interval:g} s after the commit",
            "target": "== 0",
            "value": late,
            "passed": late == 0,
        },
        {
            "name": f"switch > {interval:g} s + the phase's longest request",
            "target": "== 0",
            "value": len(slow),
            "passed": not slow,
        },
    ]


RUN_HEADERS = (
    "run",
    "replicas",
    "req/s",
    "p50 ms",
    "p99 ms",
    "failed",
    "CPU ms/search per replica",
    "questions per embedding call",
    "proxy CPU ms/req",
    "cores busy (replicas+proxy+clients)",
    "update req/s",
    "update failed",
    "ingest s",
    "switch ms per replica",
    "old after bound",
)


def run_row(run: dict[str, Any]) -> list[str]:
    s, u = run["steady"], run["update"]
    busy = s["cpu_cores_busy"]
    switch = u["switch"]
    ingest = run["ingest"]
    return [
        run["label"],
        str(run["replicas"]),
        fmt(s["throughput_rps"], 1),
        fmt(s["p50_ms"], 1),
        fmt(s["p99_ms"], 1),
        str(s["failed"]),
        " / ".join(fmt(p["cpu_ms_per_search"], 2) for p in s["per_replica"]),
        " / ".join(fmt((p.get("embedding_batches") or {}).get("mean_batch_size"), 2) for p in s["per_replica"]),
        fmt(s["proxy_cpu_ms_per_request"], 2),
        f"{busy['replicas']:.2f}+{fmt(busy['proxy'], 2)}+{fmt(busy['clients'], 2)}",
        fmt(u["throughput_rps"], 1),
        str(u["failed"]),
        fmt(ingest["end_s"] - ingest["start_s"], 1) if "end_s" in ingest else "-",
        " / ".join(fmt(p["switch_ms"], 0) for p in switch["per_replica"]),
        str(sum(p["old_version_after_bound"] for p in switch["per_replica"])),
    ]


def statement(summary: dict[int, dict[str, Any]], cpu_count: int | None) -> list[str]:
    lines = []
    one, two = summary.get(1), summary.get(2)
    if one and two:
        lines.append(
            f"Measured: {two['mean_rps']:.1f} searches/s through the proxy with 2 replicas against {one['mean_rps']:.1f} with 1 "
            f"(ratio {two['ratio_to_one']:.2f}). This machine has {cpu_count} core(s), shared by the replicas, the proxy, the "
            "load generator (and the ingest in the update phase, and whatever else runs here): a second replica adds no "
            "cores, so this ratio says nothing about scaling across machines; it only shows what a second process costs "
            "or gains on the same cores."
        )
    base = one or two
    if base and base["cpu_ms_per_search"]:
        c = base["cpu_ms_per_search"]
        lines.append(
            f"CPU per search per replica: {c:.2f} ms (one replica; "
            + (f"{two['cpu_ms_per_search']:.2f} ms each with two on the same cores; " if two and two["cpu_ms_per_search"] else "")
            + f"all its threads). A replica with one core to itself can serve at most 1000 / {c:.2f} = {1000 / c:.0f} searches/s, "
            f"so N replicas on N one-core machines about N x {1000 / c:.0f} searches/s (N x cores x {1000 / c:.0f} with more "
            "cores per machine and ASSISTANT_API__SEARCH_THREADS >= cores), as long as the proxy keeps up and the "
            "index folder is local to each machine."
        )
    if base and base["proxy_cpu_ms_per_request"]:
        p = base["proxy_cpu_ms_per_request"]
        lines.append(
            f"The proxy itself (Python, aiohttp) costs {p:.2f} ms CPU per request, a ceiling of about {1000 / p:.0f} requests/s "
            "per proxy core: in front of many replicas use nginx/HAProxy or a cloud load balancer, not this proxy."
        )
    return lines


def report(out: dict[str, Any]) -> None:
    st = out["settings"]
    print(
        f"\n{st['clients']} closed-loop clients through the proxy ({st['policy']}), GET /v1/search k={SEARCH_K}; "
        f"{st['warmup_seconds']:g} s warm-up + {st['seconds']:g} s steady, then {st['warmup_seconds']:g} s + >= "
        f"{st['update_seconds']:g} s with `assistant ingest {HELD_OUT}` {INGEST_AT_S:g} s in; {st['cpu_count']} CPU(s); "
        f"embedder {st['embedder'] or 'the default'}; replicas {'warmed up at start' if not st['no_warm_up'] else 'with --no-warm-up'}; "
        f"stale check every {st['stale_check_interval_s']:g} s"
    )
    print()
    print(markdown_table(RUN_HEADERS, [run_row(r) for r in out["runs"]]))
    print(
        "(req/s: responses received in the window / its seconds; latency of the requests sent in the window; failed: "
        "non-2xx or connection errors, warm-up and drain included; CPU ms/search: a replica's utime+stime in the window / "
        "the searches it answered in it; questions per embedding call: the replica's batching of concurrent searches (its "
        "/metrics, warm-up included); cores busy: CPU seconds / window seconds; switch: commit of the new generation "
        "(first seen by a 5 ms poll) to the replica's first response carrying it; old after bound: responses with the old "
        f"version to requests sent more than {st['stale_check_interval_s']:g} s after the commit)"
    )
    print()
    headers = ("replicas", "runs", "req/s (each run)", "mean req/s", "ratio to 1", "CPU ms/search", "max switch ms", "failed")
    rows = [
        [
            str(n),
            str(s["runs"]),
            ", ".join(f"{x:.1f}" for x in s["throughput_rps"]),
            fmt(s["mean_rps"], 1),
            fmt(s["ratio_to_one"], 2),
            fmt(s["cpu_ms_per_search"], 2),
            fmt(s["max_switch_ms"], 0),
            str(s["failed"]),
        ]
        for n, s in out["summary"].items()
    ]
    print(markdown_table(headers, rows))
    print()
    for line in statement({int(k): v for k, v in out["summary"].items()}, st["cpu_count"]):
        print(line)
    print()
    print("targets:")
    for t in out["targets"]:
        print(f"  {t['name']:<58} {t['target']:>6}   {fmt(t['value'], 1):>6}   {'PASS' if t['passed'] else 'FAIL'}")
    for run in out["runs"]:
        for note in run.get("notes", []):
            print(f"note ({run['label']}): {note}")


# ---------------------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replicas", default="1,2", help="counts of replicas to run, comma-separated (default 1,2)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds over --replicas (default 2: 1, 2, 1, 2)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent closed-loop clients (default 16)")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds of the steady phase (default 20)")
    parser.add_argument("--update-seconds", type=float, default=15.0, help="least measured seconds of the update phase (default 15)")
    parser.add_argument("--warmup-seconds", type=float, default=3.0, help="unrecorded seconds before each phase (default 3)")
    parser.add_argument("--warm-requests", type=int, default=20, help="searches sent to each replica before the proxy starts")
    parser.add_argument("--policy", choices=("round-robin", "least"), default="round-robin", help="the proxy's choice of replica")
    parser.add_argument("--embedder", default=None, help="ASSISTANT_EMBEDDER__MODEL for the build, the replicas and the ingest")
    parser.add_argument("--no-warm-up", action="store_true", help="start the replicas with --no-warm-up (no generator loaded)")
    parser.add_argument("--timeout", type=float, default=60.0, help="per-request timeout in s (default 60)")
    parser.add_argument("--ready-timeout", type=float, default=600.0, help="longest wait for a replica's /readyz in s")
    parser.add_argument("--work-dir", type=Path, default=None, help="where the collections are built (default: a temporary folder)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the settings, runs, summary and targets to FILE")
    parser.add_argument("--json-requests", action="store_true", help="also write every request to the --json file")
    args = parser.parse_args(argv)
    try:
        args.replicas = [int(x) for x in args.replicas.split(",") if x.strip()]
    except ValueError:
        parser.error("--replicas takes counts like 1,2")
    if not args.replicas or min(args.replicas) < 1 or max(args.replicas) > 16:
        parser.error("--replicas: counts of 1-16")
    if args.rounds < 1 or args.clients < 1 or args.seconds <= 0 or args.update_seconds <= 0 or args.warmup_seconds < 0:
        parser.error("--rounds and --clients must be at least 1, --seconds and --update-seconds above 0, --warmup-seconds not negative")
    return args


def proxy_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench/replicas.py proxy", description="The round-robin reverse proxy alone.")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--backend", action="append", required=True, help="a replica's base URL; repeat for each")
    parser.add_argument("--policy", choices=("round-robin", "least"), default="round-robin")
    args = parser.parse_args(argv)
    serve_proxy(args.port, args.backend, args.policy)
    return 0


def git_state() -> dict[str, Any]:
    def git(*a: str) -> str:
        try:
            return subprocess.run(["git", *a], cwd=REPO, capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    return {"head": git("rev-parse", "HEAD"), "status": git("status", "--short").splitlines()}


def bench(args) -> dict[str, Any]:
    questions = medquad_questions()
    if not questions or not (MEDQUAD / HELD_OUT).is_dir():
        raise Failed(f"the MedQuAD sample is missing ({MEDQUAD})")
    work = Path(tempfile.mkdtemp(prefix="bench-replicas-", dir=args.work_dir))
    try:
        base = work / "base"
        folders = [str(p) for p in sorted(MEDQUAD.iterdir()) if p.is_dir() and p.name != HELD_OUT]
        print(f"building the base collection from {len(folders)} MedQuAD folders (all but {HELD_OUT}) ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        built = run_cli(["ingest", *folders, "--collection", COLLECTION, "--json", "-q"], replica_env(base, work, args.embedder))
        if built.returncode != 0:
            raise Failed(f"building the base collection failed: {built.stderr[-2000:]}")
        build = {"seconds": time.perf_counter() - t0, "report": _json_or_text(built.stdout)}
        order = [n for _ in range(args.rounds) for n in args.replicas]
        runs = []
        for k, n in enumerate(order, start=1):
            runs.append(one_run(n, base, work, questions, args, f"{k}-{n}r"))
            s = runs[-1]["steady"]
            print(
                f"[{runs[-1]['label']}] {s['throughput_rps']:.1f} req/s, failed {s['failed']}+{runs[-1]['update']['failed']}",
                file=sys.stderr,
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    settings = {
        k: getattr(args, k)
        for k in ("replicas", "rounds", "clients", "seconds", "update_seconds", "warmup_seconds", "warm_requests", "policy", "embedder")
    }
    settings |= {
        "no_warm_up": args.no_warm_up,
        "order": order,
        "cpu_count": os.cpu_count(),
        "stale_check_interval_s": stale_interval_s(),
        "held_out": HELD_OUT,
        "questions": len(questions),
    }
    summary = aggregate(runs)
    return {
        "settings": settings,
        "git": git_state(),
        "base_collection": build,
        "runs": runs,
        "summary": summary,
        "statement": statement(summary, os.cpu_count()),
        "targets": targets(runs),
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["proxy"]:
        return proxy_main(argv[1:])
    args = parse_args(argv)
    started = time.perf_counter()
    try:
        out = bench(args)
    except Failed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    out["wall_s"] = time.perf_counter() - started
    report(out)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
        print(f"\nwritten to {args.json}")
    print(f"wall time {out['wall_s']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
