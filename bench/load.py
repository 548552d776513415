"""Load benchmark of the HTTP API: the real server (``assistant serve``) under concurrent closed-loop clients,
``/v1/search`` and ``/v1/ask`` in turn.

    python bench/load.py [--clients 32] [--seconds 60] [--endpoints search,ask] [--max-tokens 64] [--json FILE]
    python bench/load.py --clients 8 --seconds 10          # a short run

The server: ``python -m cli serve --host 127.0.0.1 --port PORT`` in a subprocess (PORT: --port, or a
free one), with ASSISTANT_INDEX_DIR set to --index-dir (default ``indexes``, which must hold the sample
collections ``medical`` and ``finance``: ``make collections`` builds them; without them the benchmark is skipped
with that message, exit 0). The rest of the environment passes through, so ASSISTANT_API__QUEUE_SIZE,
ASSISTANT_API__GENERATION_CONCURRENCY, ASSISTANT_API__EMBED_BATCH_MS, ... set by the caller apply. Two
settings are changed for the run:
- ASSISTANT_API__RATE_LIMIT_PER_MINUTE is 1000000 (all clients share one address, hence one rate-limit
  bucket: at the default 120 a minute most requests would be 429s and the figures would measure the limiter).
  A value the caller sets explicitly is kept (and said);
- ASSISTANT_API_KEYS is removed, so the server runs without authentication on loopback (and /metrics needs no key).
The benchmark waits for ``GET /readyz`` to answer 200 (the collections and models load in a background thread;
30-60 s on a 2-core machine) and at the end stops the server with SIGTERM, reporting whether it exited cleanly
(status 0 within the shutdown grace + 15 s; otherwise it is killed). The server's log goes to a temporary file,
kept (and its path printed) when something went wrong.

Phases, one per endpoint in --endpoints order, each with --clients concurrent clients for --warmup-seconds
(requests sent then are not recorded) plus --seconds (recorded):
- search: ``GET /v1/search?q=QUESTION&collection=C&k=5``;
- ask: ``POST /v1/ask {"question", "collection", "max_tokens": --max-tokens}``.
Every client is a closed loop on its own connection (an ``aiohttp.ClientSession`` limited to one connection; it
costs the load generator a third of the CPU httpx did, 0.3 vs 0.9 ms a request, and shares the cores): send,
wait for the response, send the next; no pause, also after a 503 (``--honor-retry-after`` makes a client sleep
for the 503's Retry-After instead, as a polite client would). All clients run in this one process, on the
same CPUs as the server: on a small machine part of the latency is the load generator's own. A request times
out after --timeout s (default 300). After the measured window no request is sent; the ones in flight finish
and are recorded (the "drain").

Questions: real and varied, MedQuAD questions from data/samples/medical/medquad/**/*.xml for ``medical`` and
TAT-QA questions from data/samples/finance/tatqa_sample.json for ``finance``; requests alternate between the
two collections and cycle through each list (one counter shared by all clients), so consecutive requests differ.

Recorded per request: status code, latency (send to the whole response read), and the error kind: the HTTP
status, or "dropped" for a connection error or timeout (the aiohttp exception in the JSON); for a 503 whether
it carries Retry-After. Per endpoint: requests, throughput (recorded requests / time from the window's start
to the last recorded response; also 200s a second), p50/p95/p99 latency of the 200s in ms (sorted values,
linear interpolation between closest ranks), counts by status, 5xx other than 503, dropped, 503 without
Retry-After. For ask also the mean tokens generated and answers blocked by a guardrail.

Targets (printed with pass / fail): no 5xx on search; no dropped connection anywhere; search p99 <= 100 ms at
this concurrency; every ask a 200 or a 503 with Retry-After. The local generator decodes up to
ASSISTANT_GENERATOR__MAX_BATCH (4) answers together behind a queue of ASSISTANT_API__QUEUE_SIZE (8): with more
clients than 4 + 8, 503s are the designed answer.

Context, from the server's /metrics (scraped before the first phase and after each): the histogram
``assistant_query_embedding_batch_size``, whose sum / count is the mean number of questions embedded per model
call (concurrent searches batched into one call); per phase from the difference of the scrapes, and the final
excerpt as the server printed it.

--json FILE writes the settings, the per-phase summaries and the targets (--json-requests: every request too). Exit status 0
when the benchmark ran (whether or not the targets are met), 1 when the server could not be started or stopped
being reachable, 2 for bad options.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import itertools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.tables import fmt, markdown_table, percentile  # noqa: E402

MEDQUAD = REPO / "data" / "samples" / "medical" / "medquad"
TATQA = REPO / "data" / "samples" / "finance" / "tatqa_sample.json"
COLLECTIONS = ("medical", "finance")
ENDPOINTS = ("search", "ask")
RATE_LIMIT = "1000000"
SEARCH_K = 5
TARGETS = {"search_5xx": 0, "dropped": 0, "search_p99_ms": 100.0, "ask_other_status": 0}
BATCH_METRIC = "assistant_query_embedding_batch_size"
_QUESTION = re.compile(r"<Question\b[^>]*>(.*?)</Question>", re.S)


class Skip(Exception):
    """A prerequisite is missing: print the message, exit 0."""


class Failed(Exception):
    """The server could not be started or used: print the message, exit 1."""


# ---------------------------------------------------------------------------------------------- statistics


# ---------------------------------------------------------------------------------------------- questions


def medquad_questions(folder: Path = MEDQUAD) -> list[str]:
    out = []
    for path in sorted(folder.rglob("*.xml")):
        raw = path.read_text(encoding="utf-8", errors="replace")
        out += [" ".join(html.unescape(q).split()) for q in _QUESTION.findall(raw)]
    return _unique(out)


def tatqa_questions(path: Path = TATQA) -> list[str]:
    reports = json.loads(path.read_text(encoding="utf-8"))
    return _unique(" ".join(str(q.get("question", "")).split()) for r in reports for q in r.get("questions", []))


def _unique(items: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for item in items:
        if item and len(item) <= 4000:
            seen.setdefault(item, None)
    return list(seen)


class Questions:
    """Request n: collection medical for even n, finance for odd, the next question of that collection's list."""

    def __init__(self, by_collection: dict[str, list[str]]):
        self.by_collection = by_collection
        self.counter = itertools.count()  # one event loop: next() needs no lock

    def next(self) -> tuple[str, str]:
        n = next(self.counter)
        collection = COLLECTIONS[n % len(COLLECTIONS)]
        questions = self.by_collection[collection]
        return collection, questions[(n // len(COLLECTIONS)) % len(questions)]


# ---------------------------------------------------------------------------------------------- the server


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``assistant serve`` in a subprocess, its output in a log file."""

    def __init__(self, index_dir: Path, port: int):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.env = dict(os.environ)
        self.env["ASSISTANT_INDEX_DIR"] = str(index_dir)
        self.env.pop("ASSISTANT_API_KEYS", None)
        self.env.setdefault("TOKENIZERS_PARALLELISM", "false")
        self.rate_limit_kept = "ASSISTANT_API__RATE_LIMIT_PER_MINUTE" in os.environ
        self.env.setdefault("ASSISTANT_API__RATE_LIMIT_PER_MINUTE", RATE_LIMIT)
        self.grace_s = float(self.env.get("ASSISTANT_API__SHUTDOWN_GRACE_S") or 30)
        fd, name = tempfile.mkstemp(prefix="bench-load-server-", suffix=".log")
        os.close(fd)
        self.log_path = Path(name)
        self.proc: subprocess.Popen | None = None
        self.ready_s: float | None = None
        self.ready_body: dict[str, Any] = {}

    def settings(self) -> dict[str, str]:
        """The ASSISTANT_* variables the server runs with."""
        return {k: v for k, v in sorted(self.env.items()) if k.startswith("ASSISTANT_")}

    def start(self) -> None:
        command = [sys.executable, "-m", "cli", "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(command, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.started_at = time.perf_counter()

    def wait_ready(self, timeout_s: float) -> None:
        import httpx

        deadline = self.started_at + timeout_s
        last = "no answer yet"
        with httpx.Client(base_url=self.url, timeout=5) as client:
            while time.perf_counter() < deadline:
                if self.proc.poll() is not None:
                    raise Failed(f"the server exited with status {self.proc.returncode} before it was ready\n{self.log_tail()}")
                try:
                    r = client.get("/readyz")
                    body = r.json()
                    if r.status_code == 200:
                        self.ready_s = time.perf_counter() - self.started_at
                        self.ready_body = body
                        return
                    if body.get("error"):
                        raise Failed(f"the server's warm-up failed: {body['error']}\n{self.log_tail()}")
                    last = f"/readyz {r.status_code}"
                except (httpx.HTTPError, ValueError) as exc:
                    last = f"{type(exc).__name__}"
                time.sleep(0.5)
        raise Failed(f"the server was not ready after {timeout_s:g} s ({last})\n{self.log_tail()}")

    def stop(self) -> dict[str, Any]:
        """SIGTERM, then wait up to the shutdown grace + 15 s; SIGKILL after that."""
        if self.proc is None:
            return {"clean": False, "note": "not started"}
        if self.proc.poll() is not None:
            return {"clean": False, "returncode": self.proc.returncode, "note": "had already exited"}
        t0 = time.perf_counter()
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=self.grace_s + 15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
            return {
                "clean": False,
                "returncode": rc,
                "seconds": time.perf_counter() - t0,
                "note": f"still running {self.grace_s + 15:g} s after SIGTERM: killed",
            }
        seconds = time.perf_counter() - t0
        if rc == 0:
            return {"clean": True, "returncode": rc, "seconds": seconds, "note": "exited cleanly (status 0)"}
        # uvicorn (>= 0.29) re-raises the SIGTERM it caught once its graceful shutdown is done, so a clean
        # exit can read -15: clean when the log shows the shutdown completed.
        if rc == -signal.SIGTERM and "Finished server process" in self.log_text():
            return {
                "clean": True,
                "returncode": rc,
                "seconds": seconds,
                "note": "exited cleanly (graceful shutdown completed; status -15: uvicorn re-raises the SIGTERM it handled)",
            }
        return {"clean": False, "returncode": rc, "seconds": seconds, "note": f"exited with status {rc} without completing its shutdown"}

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "server log (last lines):\n" + "\n".join(self.log_text().splitlines()[-lines:])

    def tracebacks(self) -> list[str]:
        """The tracebacks in the server's log (an unhandled error is logged with one), each with the line
        before it (the log message) and chained causes kept together."""
        lines = self.log_text().splitlines()
        found, i = [], 0
        while i < len(lines):
            if not lines[i].startswith("Traceback (most recent call last):"):
                i += 1
                continue
            start, j = max(0, i - 1), i + 1
            while j < len(lines):
                if lines[j].startswith((" ", "Traceback")) or not lines[j].strip():
                    j += 1
                elif lines[j].startswith(("During handling", "The above exception")):
                    j += 1
                elif (
                    j + 1 < len(lines)
                    and not lines[j + 1].strip()
                    and j + 2 < len(lines)
                    and lines[j + 2].startswith(("During handling", "The above exception"))
                ):
                    j += 3  # an exception line followed by a chained one
                else:
                    break
            found.append("\n".join(lines[start : j + 1]))
            i = j + 1
        return found


# ---------------------------------------------------------------------------------------------- metrics


def scrape(url: str) -> str | None:
    import httpx

    try:
        r = httpx.get(f"{url}/metrics", timeout=30)
    except httpx.HTTPError:
        return None
    return r.text if r.status_code == 200 else None


def batch_histogram(text: str | None) -> dict[str, float] | None:
    """sum and count of the query-embedding batch-size histogram in a /metrics text."""
    if not text:
        return None
    out: dict[str, float] = {}
    for line in text.splitlines():
        for part in ("sum", "count"):
            if line.startswith(f"{BATCH_METRIC}_{part} "):
                out[part] = float(line.split()[-1])
    return out if len(out) == 2 else None


def batch_excerpt(text: str | None) -> list[str]:
    return [line for line in (text or "").splitlines() if BATCH_METRIC in line]


def mean_batch(before: dict[str, float] | None, after: dict[str, float] | None) -> dict[str, Any] | None:
    if not before or not after:
        return None
    calls = after["count"] - before["count"]
    questions = after["sum"] - before["sum"]
    return {"embedding_calls": int(calls), "questions_embedded": int(questions), "mean_batch_size": questions / calls if calls else None}


# ---------------------------------------------------------------------------------------------- load


async def run_phase(endpoint: str, url: str, questions: Questions, args) -> dict[str, Any]:
    """--clients closed loops for --warmup-seconds + --seconds; the requests sent after the warm-up."""
    import aiohttp

    records: list[dict[str, Any]] = []
    completions: list[bool] = []  # per response received within the measured window: was it a 200
    t_start = time.perf_counter()
    warm_end = t_start + args.warmup_seconds
    end = warm_end + args.seconds
    timeout = aiohttp.ClientTimeout(total=args.timeout, connect=min(args.timeout, 30.0))

    async def one(session: aiohttp.ClientSession, cid: int) -> None:
        while (t0 := time.perf_counter()) < end:
            collection, question = questions.next()
            rec: dict[str, Any] = {"client": cid, "collection": collection, "status": None, "kind": None}
            retry_after = None
            try:
                if endpoint == "search":
                    request = session.get("/v1/search", params={"q": question, "collection": collection, "k": str(SEARCH_K)})
                else:
                    request = session.post("/v1/ask", json={"question": question, "collection": collection, "max_tokens": args.max_tokens})
                async with request as r:
                    raw = await r.read()
                t1 = time.perf_counter()
                rec["status"] = r.status
                rec["kind"] = str(r.status)
                retry_after = r.headers.get("retry-after")
                if r.status == 503:
                    rec["retry_after"] = retry_after
                if r.status == 200:
                    try:
                        body = json.loads(raw)
                        if endpoint == "search":
                            rec["valid"] = isinstance(body.get("hits"), list)
                            rec["hits"] = len(body.get("hits") or [])
                        else:
                            rec["valid"] = isinstance(body.get("answer"), str)
                            rec["tokens"] = body.get("tokens")
                            rec["blocked"] = body.get("blocked")
                            rec["finish_reason"] = body.get("finish_reason")
                    except ValueError:
                        rec["valid"] = False
                elif r.status >= 500:
                    rec["detail"] = raw[:500].decode("utf-8", "replace")
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:  # connect / read errors, timeouts, a closed connection
                t1 = time.perf_counter()
                rec["kind"] = "dropped"
                rec["error"] = f"{type(exc).__name__}: {exc}"[:300]
            rec["sent_s"] = t0 - warm_end
            rec["latency_ms"] = (t1 - t0) * 1000
            rec["done_s"] = t1 - warm_end
            if t0 >= warm_end:
                records.append(rec)
            if warm_end <= t1 <= end:
                completions.append(rec["status"] == 200)
            if args.honor_retry_after and rec["status"] in (429, 503):
                try:
                    pause = float(retry_after or 1)
                except ValueError:
                    pause = 1.0
                await asyncio.sleep(max(0.0, min(pause, end - time.perf_counter())))

    async def client_loop(cid: int) -> None:
        # One connection per client (limit=1), kept alive between its requests.
        async with aiohttp.ClientSession(url, connector=aiohttp.TCPConnector(limit=1), timeout=timeout) as session:
            await one(session, cid)

    await asyncio.gather(*(client_loop(i) for i in range(args.clients)))
    finished = time.perf_counter()
    return {
        "endpoint": endpoint,
        "records": records,
        "completions": completions,
        "window_s": args.seconds,
        "drain_s": max(0.0, finished - end),
        "wall_s": finished - t_start,
    }


def summarize(endpoint: str, phase: dict[str, Any]) -> dict[str, Any]:
    records = phase["records"]
    n = len(records)
    window = phase["window_s"]
    completions = phase["completions"]
    ok = [r for r in records if r["status"] == 200]
    lat = [r["latency_ms"] for r in ok]
    by_status: dict[str, int] = {}
    for r in records:
        by_status[r["kind"]] = by_status.get(r["kind"], 0) + 1
    busy = [r for r in records if r["status"] == 503]
    out: dict[str, Any] = {
        "requests": n,
        "seconds": window,
        "drain_s": phase["drain_s"],
        "responses_in_window": len(completions),
        "throughput_rps": len(completions) / window,
        "ok_rps": sum(completions) / window,
        "ok": len(ok),
        "p50_ms": percentile(lat, 50),
        "p95_ms": percentile(lat, 95),
        "p99_ms": percentile(lat, 99),
        "max_ms": max(lat) if lat else None,
        "by_status": dict(sorted(by_status.items())),
        "5xx": sum(1 for r in records if r["status"] is not None and r["status"] >= 500),
        "5xx_not_503": sum(1 for r in records if r["status"] is not None and r["status"] >= 500 and r["status"] != 503),
        "503": len(busy),
        "503_without_retry_after": sum(1 for r in busy if not r.get("retry_after")),
        "dropped": sum(1 for r in records if r["kind"] == "dropped"),
        "invalid_200_body": sum(1 for r in ok if not r.get("valid", True)),
        "dropped_errors": sorted({r["error"].split(":")[0] for r in records if r["kind"] == "dropped"}),
    }
    if endpoint == "ask":
        tokens = [r["tokens"] for r in ok if isinstance(r.get("tokens"), int)]
        out["mean_tokens"] = sum(tokens) / len(tokens) if tokens else None
        out["blocked"] = sum(1 for r in ok if r.get("blocked"))
        out["other_status"] = sum(1 for r in records if not (r["status"] == 200 or (r["status"] == 503 and r.get("retry_after"))))
        busy_lat = [r["latency_ms"] for r in busy]
        out["503_p50_ms"] = percentile(busy_lat, 50)
    if endpoint == "search":
        out["mean_hits"] = sum(r.get("hits", 0) for r in ok) / len(ok) if ok else None
    return out


def targets(summaries: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """[{name, target, value, passed}]; passed None when the phase did not run."""
    s, a = summaries.get("search"), summaries.get("ask")
    out = [
        {
            "name": "search: 5xx responses",
            "target": f"== {TARGETS['search_5xx']}",
            "value": s["5xx"] if s else None,
            "passed": (s["5xx"] == TARGETS["search_5xx"]) if s else None,
        },
        {
            "name": "dropped connections (all phases)",
            "target": f"== {TARGETS['dropped']}",
            "value": sum(x["dropped"] for x in summaries.values()),
            "passed": sum(x["dropped"] for x in summaries.values()) == TARGETS["dropped"] if summaries else None,
        },
        {
            "name": "search: p99 latency ms",
            "target": f"<= {TARGETS['search_p99_ms']:g}",
            "value": s["p99_ms"] if s else None,
            "passed": (s["p99_ms"] is not None and s["p99_ms"] <= TARGETS["search_p99_ms"]) if s else None,
        },
        {
            "name": "ask: not 200 nor 503+Retry-After",
            "target": f"== {TARGETS['ask_other_status']}",
            "value": a["other_status"] if a else None,
            "passed": (a["other_status"] == TARGETS["ask_other_status"]) if a else None,
        },
    ]
    return out


# ---------------------------------------------------------------------------------------------- printing


TABLE_HEADERS = (
    "endpoint",
    "requests",
    "req/s",
    "200/s",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "by status",
    "5xx not 503",
    "dropped",
    "503 no Retry-After",
)


def table_row(endpoint: str, s: dict[str, Any]) -> list[str]:
    statuses = " ".join(f"{k}:{v}" for k, v in s["by_status"].items()) or "-"
    return [
        endpoint,
        fmt(s["requests"], 1),
        fmt(s["throughput_rps"], 2),
        fmt(s["ok_rps"], 2),
        fmt(s["p50_ms"], 1),
        fmt(s["p95_ms"], 1),
        fmt(s["p99_ms"], 1),
        statuses,
        fmt(s["5xx_not_503"], 1),
        fmt(s["dropped"], 1),
        fmt(s["503_without_retry_after"], 1),
    ]


def report(out: dict[str, Any]) -> None:
    st = out["settings"]
    print(
        f"\n{st['clients']} closed-loop clients (one connection each), {st['warmup_seconds']:g} s warm-up + "
        f"{st['seconds']:g} s measured per endpoint; search k={SEARCH_K}, ask max_tokens={st['max_tokens']}; "
        f"{st['cpu_count']} CPU(s); server ready after {fmt(out['server']['ready_s'], 1)} s"
    )
    print(
        f"questions: {st['questions']['medical']} MedQuAD (medical), {st['questions']['finance']} TAT-QA (finance), "
        f"alternating; Retry-After {'honoured' if st['honor_retry_after'] else 'not honoured (no pause after a 503)'}"
    )
    server_env = {k: v for k, v in st["server_env"].items() if k.startswith("ASSISTANT_API__")}
    print("server settings: " + ", ".join(f"{k}={v}" for k, v in server_env.items()))
    print()
    print(markdown_table(TABLE_HEADERS, [table_row(e, s) for e, s in out["phases"].items()]))
    print(
        "(requests: sent in the measured window, all answered (the drain waits for them); req/s and 200/s: responses "
        "received within the window / its seconds; latency percentiles of the 200s among the requests)"
    )
    for endpoint, s in out["phases"].items():
        extra = [f"drain {s['drain_s']:.1f} s"]
        if s.get("dropped_errors"):
            extra.append("dropped: " + ", ".join(s["dropped_errors"]))
        if s["invalid_200_body"]:
            extra.append(f"{s['invalid_200_body']} 200s with an unexpected body")
        if endpoint == "ask":
            extra.append(f"mean tokens {fmt(s['mean_tokens'], 1)}, blocked {s['blocked']}, 503 p50 {fmt(s['503_p50_ms'], 1)} ms")
        if endpoint == "search":
            extra.append(f"mean hits {fmt(s['mean_hits'], 1)}")
        batch = out["embedding_batches"].get(endpoint)
        if batch:
            extra.append(
                f"query embeddings: {batch['questions_embedded']} in {batch['embedding_calls']} model calls, "
                f"mean batch {fmt(batch['mean_batch_size'], 2)}"
            )
        print(f"{endpoint}: " + "; ".join(extra))
    print()
    print("targets:")
    for t in out["targets"]:
        verdict = {True: "PASS", False: "FAIL", None: "n/a (phase not run)"}[t["passed"]]
        print(f"  {t['name']:<38} {t['target']:>8}   {fmt(t['value'], 1):>8}   {verdict}")
    print()
    if out["metrics_excerpt"]:
        print(f"/metrics at the end ({BATCH_METRIC}; sum / count = mean questions per embedding call):")
        for line in out["metrics_excerpt"]:
            print(f"  {line}")
    else:
        print("/metrics: not available")
    stop = out["server"]["stop"]
    print(f"\nserver shutdown (SIGTERM): {stop['note']}" + (f" after {stop['seconds']:.1f} s" if "seconds" in stop else ""))
    for note in out["notes"]:
        print(f"note: {note}")


# ---------------------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--index-dir",
        type=Path,
        default=None,
        help="the index folder with the medical and finance collections (default ASSISTANT_INDEX_DIR, else indexes in the repository)",
    )
    parser.add_argument("--port", type=int, default=0, help="server port (default: a free one)")
    parser.add_argument("--clients", type=int, default=32, help="concurrent closed-loop clients (default 32)")
    parser.add_argument("--seconds", type=float, default=60.0, help="measured seconds per endpoint (default 60)")
    parser.add_argument("--warmup-seconds", type=float, default=5.0, help="unrecorded seconds before each phase (default 5)")
    parser.add_argument("--endpoints", default=",".join(ENDPOINTS), help="comma-separated phases, in order (default search,ask)")
    parser.add_argument("--max-tokens", type=int, default=64, help="max_tokens of every ask (default 64)")
    parser.add_argument("--timeout", type=float, default=300.0, help="per-request timeout in s (default 300)")
    parser.add_argument("--ready-timeout", type=float, default=600.0, help="longest wait for /readyz in s (default 600)")
    parser.add_argument("--honor-retry-after", action="store_true", help="after a 503/429, sleep for its Retry-After")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the settings and summaries to FILE")
    parser.add_argument("--json-requests", action="store_true", help="also write every request to the --json file (tens of MB)")
    args = parser.parse_args(argv)
    args.endpoints = [e.strip() for e in args.endpoints.split(",") if e.strip()]
    unknown = [e for e in args.endpoints if e not in ENDPOINTS]
    if unknown or not args.endpoints:
        parser.error(f"unknown endpoint(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(ENDPOINTS)}")
    if len(set(args.endpoints)) != len(args.endpoints):
        parser.error("an endpoint is named twice in --endpoints")
    if args.clients < 1 or args.seconds <= 0 or args.warmup_seconds < 0 or args.timeout <= 0:
        parser.error("--clients must be at least 1, --seconds and --timeout above 0, --warmup-seconds not negative")
    if not 1 <= args.max_tokens <= 4096:
        parser.error("--max-tokens must be 1-4096 (the API's range)")
    if not 0 <= args.port <= 65535:
        parser.error("--port must be 0-65535")
    return args


def check_prerequisites(args) -> None:
    import importlib.util

    for package in ("httpx", "aiohttp"):
        if importlib.util.find_spec(package) is None:
            raise Skip(f"{package} is not installed (pip install -e '.[bench]')")
    if args.index_dir is None:
        args.index_dir = Path(os.environ["ASSISTANT_INDEX_DIR"]) if os.environ.get("ASSISTANT_INDEX_DIR") else REPO / "indexes"
    index_dir = args.index_dir if args.index_dir.is_absolute() else (Path.cwd() / args.index_dir)
    missing = [c for c in COLLECTIONS if not (index_dir / c / "manifest.json").exists()]
    if missing:
        raise Skip(
            f"collection(s) {', '.join(missing)} not found under {index_dir}; build the sample collections "
            f"with `make collections` (from {REPO}), or pass --index-dir"
        )
    if not MEDQUAD.is_dir() or not TATQA.exists():
        raise Skip(f"the sample questions are missing ({MEDQUAD}, {TATQA})")
    args.index_dir = index_dir.resolve()


def bench(args) -> dict[str, Any]:
    by_collection = {"medical": medquad_questions(), "finance": tatqa_questions()}
    empty = [c for c, q in by_collection.items() if not q]
    if empty:
        raise Skip(f"no sample questions found for {', '.join(empty)}")
    questions = Questions(by_collection)
    server = Server(args.index_dir, args.port or free_port())
    notes: list[str] = []
    if server.rate_limit_kept:
        notes.append(
            f"ASSISTANT_API__RATE_LIMIT_PER_MINUTE={os.environ['ASSISTANT_API__RATE_LIMIT_PER_MINUTE']} "
            "kept from the environment (429s measure the limiter)"
        )
    if "ASSISTANT_API_KEYS" in os.environ:
        notes.append("ASSISTANT_API_KEYS removed for the server: it runs without authentication on 127.0.0.1")
    summaries: dict[str, dict[str, Any]] = {}
    phases: dict[str, dict[str, Any]] = {}
    batches: dict[str, Any] = {}
    metrics_text = None
    stop: dict[str, Any] = {"clean": False, "note": "not started"}
    keep_log = False
    print(f"starting the server on port {server.port} (index {args.index_dir}; log {server.log_path}) ...", file=sys.stderr, flush=True)
    server.start()
    try:
        server.wait_ready(args.ready_timeout)
        print(f"ready after {server.ready_s:.1f} s: {server.ready_body}", file=sys.stderr, flush=True)
        before = batch_histogram(scrape(server.url))
        for endpoint in args.endpoints:
            print(
                f"{endpoint}: {args.clients} clients, {args.warmup_seconds:g} s warm-up + {args.seconds:g} s ...",
                file=sys.stderr,
                flush=True,
            )
            phase = asyncio.run(run_phase(endpoint, server.url, questions, args))
            if server.proc.poll() is not None:
                keep_log = True
                raise Failed(f"the server exited (status {server.proc.returncode}) during the {endpoint} phase\n{server.log_tail()}")
            phases[endpoint] = phase
            summaries[endpoint] = summarize(endpoint, phase)
            if not summaries[endpoint]["responses_in_window"]:
                notes.append(f"{endpoint}: no response arrived within the {args.seconds:g} s window; lengthen --seconds")
            metrics_text = scrape(server.url)
            after = batch_histogram(metrics_text)
            batches[endpoint] = mean_batch(before, after)
            if batches[endpoint] and not batches[endpoint]["embedding_calls"] and summaries[endpoint]["ok"]:
                notes.append(
                    f"{BATCH_METRIC} did not move during the {endpoint} phase although "
                    f"{summaries[endpoint]['ok']} requests succeeded: the server does not record it"
                )
            before = after
    except BaseException:
        keep_log = True
        raise
    finally:
        stop = server.stop()
        if not stop["clean"] or keep_log or any(s["5xx_not_503"] or s["dropped"] for s in summaries.values()):
            tracebacks = server.tracebacks()
            if tracebacks:
                notes.append(f"the server logged {len(tracebacks)} traceback(s); the first:\n{tracebacks[0]}")
            notes.append(f"server log kept: {server.log_path}")
        else:
            server.log_path.unlink(missing_ok=True)
    settings = {
        "clients": args.clients,
        "seconds": args.seconds,
        "warmup_seconds": args.warmup_seconds,
        "endpoints": args.endpoints,
        "max_tokens": args.max_tokens,
        "timeout_s": args.timeout,
        "honor_retry_after": args.honor_retry_after,
        "index_dir": str(args.index_dir),
        "port": server.port,
        "cpu_count": os.cpu_count(),
        "server_env": server.settings(),
        "questions": {c: len(q) for c, q in by_collection.items()},
    }
    out = {
        "settings": settings,
        "phases": summaries,
        "targets": targets(summaries),
        "embedding_batches": batches,
        "metrics_excerpt": batch_excerpt(metrics_text),
        "server": {"ready_s": server.ready_s, "ready": server.ready_body, "stop": stop},
        "notes": notes,
    }
    if args.json_requests:
        out["requests"] = {e: p["records"] for e, p in phases.items()}
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    try:
        check_prerequisites(args)
        out = bench(args)
    except Skip as exc:
        print(f"skipped: {exc}", file=sys.stderr)
        return 0
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
        print(f"summaries{' and every request' if args.json_requests else ''} written to {args.json}")
    print(f"\nwall time {out['wall_s']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
