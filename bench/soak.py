"""Soak test of the HTTP API: the real server (``assistant serve``) under moderate mixed load for --minutes
(default 30): searches, answers and document uploads / deletions at once, with the server's memory sampled
throughout.

    python bench/soak.py [--minutes 30] [--search-clients 4] [--ask-clients 2] [--upload-every 20] [--json FILE]
    python bench/soak.py --minutes 2                  # a short trial

Target (issue 22): over a 30-minute soak at moderate load the memory grows by at most 5 % and no response is a 5xx.

The server: started as in bench/load.py (its ``Server``: ``python -m cli serve`` on a free loopback port, the rate
limit raised to 1000000 a minute, ASSISTANT_API_KEYS removed, waits for ``GET /readyz``, stopped with SIGTERM at
the end), over a COPY of the sample collections ``medical`` and ``finance`` taken from --index-dir (default
ASSISTANT_INDEX_DIR, else ``indexes``; ``make collections`` builds them; without them the soak is skipped, exit 0)
into a temporary ASSISTANT_INDEX_DIR, so the uploads never touch the source folder. The guardrail audit log goes to
that temporary folder too. The rest of the environment passes through (ASSISTANT_API__QUEUE_SIZE, ... apply).

The load, all in this process (aiohttp, one connection per client), for --minutes from the moment /readyz answers:
- --search-clients (4) closed loops of ``GET /v1/search?q=QUESTION&collection=C&k=5``, pausing --search-think-s
  (0.2 s) between requests (the questions as in bench/load.py: MedQuAD for ``medical``, TAT-QA for ``finance``,
  alternating);
- --ask-clients (2) loops of ``POST /v1/ask {"question", "collection", "max_tokens": --max-tokens (48)}``, pausing
  --ask-think-s (0.5 s) between requests. They are polite: after a 503 or 429 they wait its Retry-After. More ask
  clients than the server's generation slots (ASSISTANT_API__GENERATION_CONCURRENCY, else the local generator's
  ASSISTANT_GENERATOR__MAX_BATCH, 4) makes answers queue, and beyond the queue the server refuses with 503: the
  soak says so in a note;
- one upload client: every --upload-every s (20) a new small document (Markdown and plain text in turn, ~1 KB, with
  a unique marker word) is posted to the collection ``soak`` (created by the first upload) with ``POST
  /v1/documents`` (multipart); its document id is then looked up with ``GET /v1/search?mode=bm25`` on the marker
  ("lookup"), and after every --delete-every (3) uploads the oldest uploaded document still there is deleted
  with ``DELETE /v1/documents/{id}?collection=soak``.
A request times out after --timeout s (300). After a dropped connection a client waits 1 s before the next request.

Memory: the resident set of the server process plus its descendants (VmRSS in /proc/PID/status) every --sample-s
s (10) from the start of the load, and once more after it. Growth = the median RSS over the last 5 minutes of the
load / the median RSS over minutes 5-10 (after warm-up) - 1; for runs under 15 minutes both windows scale with the
length (minutes T/6-T/3 and the last T/6). Also reported: the first, the last and the peak sample, and the open file
descriptors of the same processes (/proc/PID/fd) over the same windows: a leaked connection or file shows there long
before it shows in memory (the first soaks found a SQLite connection left open by every answer that way).

Per endpoint (search, ask, upload, lookup, delete): requests, requests a second, p50 / p95 latency of the 200s
(sorted values, linear interpolation between closest ranks), counts by status ("dropped": a connection error or
timeout), 5xx other than the generation queue's refusals (a 503 with Retry-After from /v1/ask), those refusals,
dropped connections, and 200s whose body was not what the endpoint returns. Targets (printed with pass / fail):
memory growth <= 5 %; open files growth <= 32 (our own bound); no 5xx (other than queue refusals) and no dropped
connection; no queue refusal (a refusal is a 5xx too: the load is sized so that the queue does not overflow). A
timeline gives the requests, the non-200s, the RSS and the open files per interval.

--json FILE writes the settings, the summaries, the memory samples, the timeline and the targets. Exit status 0
when the soak ran (whether or not the targets are met), 1 when the server could not be started or exited during
the soak, 2 for bad options.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.load import (  # noqa: E402
    COLLECTIONS,
    MEDQUAD,
    SEARCH_K,
    TATQA,
    Failed,
    Questions,
    Server,
    Skip,
    free_port,
    medquad_questions,
    tatqa_questions,
)
from bench.tables import fmt, markdown_table, percentile  # noqa: E402

UPLOAD_COLLECTION = "soak"
ENDPOINTS = ("search", "ask", "upload", "lookup", "delete")
WARM_WINDOW_MIN = (5.0, 10.0)  # minutes of the load whose median RSS is the baseline
END_WINDOW_MIN = 5.0  # the last minutes, whose median RSS is compared with it
FULL_WINDOWS_FROM_MIN = 15.0  # shorter runs scale both windows with their length
# open_files_growth: our own bound, not the issue's. Answers in flight hold a few connections each (three descriptors
# apiece); a leak of one per request adds hundreds over the soak.
TARGETS = {"memory_growth_pct": 5.0, "open_files_growth": 32, "5xx_not_queue": 0, "dropped": 0, "queue_503": 0}
MIB = 1024.0  # VmRSS is in KiB


# ---------------------------------------------------------------------------------------------- memory


def rss_kib(pid: int) -> int | None:
    """VmRSS of one process in KiB; None when it is gone (or a kernel thread)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def descendants(pid: int) -> list[int]:
    """The processes below ``pid`` (children, theirs, ...), from the parent ids in /proc/*/stat."""
    children: dict[int, list[int]] = collections.defaultdict(list)
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", encoding="ascii", errors="replace") as f:
                stat = f.read()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])  # the name may hold spaces and parentheses
        except (OSError, ValueError, IndexError):
            continue
        children[ppid].append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def open_files(pid: int) -> int | None:
    """How many file descriptors ``pid`` holds open; None when it is gone."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def tree_usage(pid: int) -> tuple[int | None, int | None, int]:
    """(RSS in KiB, open file descriptors) of ``pid`` and its descendants, and how many processes; (None, None, 0)
    when ``pid`` is gone."""
    own = rss_kib(pid)
    if own is None:
        return None, None, 0
    others = [(rss_kib(p), open_files(p)) for p in descendants(pid)]
    others = [(r, f or 0) for r, f in others if r is not None]
    return own + sum(r for r, _ in others), (open_files(pid) or 0) + sum(f for _, f in others), 1 + len(others)


def memory_windows(minutes: float) -> tuple[tuple[float, float], tuple[float, float]]:
    """(warm window, end window) in minutes of the load."""
    if minutes >= FULL_WINDOWS_FROM_MIN:
        return WARM_WINDOW_MIN, (minutes - END_WINDOW_MIN, minutes)
    return (minutes / 6, minutes / 3), (minutes * 5 / 6, minutes)


def memory_summary(samples: list[dict[str, Any]], minutes: float) -> dict[str, Any]:
    valid = [s for s in samples if s["rss_kib"] is not None]
    warm_w, end_w = memory_windows(minutes)

    def median_of(key: str, window: tuple[float, float]) -> float | None:
        values = [s[key] for s in valid if window[0] * 60 <= s["t_s"] <= window[1] * 60 + 1e-6]
        return statistics.median(values) if values else None

    warm, end = median_of("rss_kib", warm_w), median_of("rss_kib", end_w)
    peak = max(valid, key=lambda s: s["rss_kib"]) if valid else None
    return {
        "warm_window_min": list(warm_w),
        "end_window_min": list(end_w),
        "first_mib": valid[0]["rss_kib"] / MIB if valid else None,
        "last_mib": valid[-1]["rss_kib"] / MIB if valid else None,
        "peak_mib": peak["rss_kib"] / MIB if peak else None,
        "peak_at_min": peak["t_s"] / 60 if peak else None,
        "warm_median_mib": warm / MIB if warm is not None else None,
        "end_median_mib": end / MIB if end is not None else None,
        "growth_pct": (end / warm - 1) * 100 if warm and end is not None else None,
        "first_to_last_pct": (valid[-1]["rss_kib"] / valid[0]["rss_kib"] - 1) * 100 if valid else None,
        "samples": len(valid),
        "max_processes": max((s["processes"] for s in valid), default=0),
        # A leak of connections or files shows here long before memory: each holds a few KiB but a descriptor.
        "open_files_warm_median": median_of("open_files", warm_w),
        "open_files_end_median": median_of("open_files", end_w),
        "open_files_peak": max((s["open_files"] for s in valid), default=None),
    }


# ---------------------------------------------------------------------------------------------- the server


def copy_collections(source: Path, target: Path) -> None:
    target.mkdir(parents=True)
    for name in COLLECTIONS:
        shutil.copytree(source / name, target / name)


def generation_slots(env: dict[str, str]) -> int:
    """How many answers the server generates at once (api/service.py), from the environment it runs with."""
    from core.config import GeneratorSettings

    if env.get("ASSISTANT_API__GENERATION_CONCURRENCY"):
        return int(env["ASSISTANT_API__GENERATION_CONCURRENCY"])
    if env.get("ASSISTANT_GENERATOR__BACKEND", "local") == "openai":
        return 1
    return int(env.get("ASSISTANT_GENERATOR__MAX_BATCH") or GeneratorSettings.model_fields["max_batch"].default)


# ---------------------------------------------------------------------------------------------- load


def soak_document(n: int, topics: list[str], minute: float) -> tuple[str, str, str, str]:
    """(file name, content type, text, marker) of upload ``n``: Markdown for odd n, plain text for even."""
    marker = f"soakdoc{n:05d}"
    picked = [topics[(n * 5 + i) % len(topics)] for i in range(5)] if topics else ["(no topics)"]
    if n % 2:
        name, content_type = f"soak-{n:05d}.md", "text/markdown"
        text = f"# Soak note {n}\n\nReference {marker}, uploaded {minute:.1f} minutes into the soak.\n\n"
        text += "\n".join(f"- {t}" for t in picked) + "\n\n## Notes\n\n"
    else:
        name, content_type = f"soak-{n:05d}.txt", "text/plain"
        text = f"Soak note {n}\n\nReference {marker}, uploaded {minute:.1f} minutes into the soak.\n\n"
        text += "\n".join(picked) + "\n\n"
    text += f"This document exists only to be ingested and later removed by the soak benchmark ({marker}).\n"
    return name, content_type, text, marker


class Soak:
    """The clients, the memory sampler and what they record, on one event loop."""

    def __init__(self, server: Server, by_collection: dict[str, list[str]], args):
        self.server = server
        self.args = args
        self.by_collection = by_collection
        self.search_questions = Questions(by_collection)
        self.ask_questions = Questions(by_collection)
        self.records: list[dict[str, Any]] = []
        self.samples: list[dict[str, Any]] = []
        self.uploads = {"uploaded": 0, "deleted": 0, "live": 0, "last_totals": None}
        self.start = 0.0
        self.end = 0.0
        self.stopped = asyncio.Event()  # the server went away: stop early

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def running(self) -> bool:
        return time.perf_counter() < self.end and not self.stopped.is_set()

    async def pause(self, seconds: float) -> None:
        remaining = self.end - time.perf_counter()
        if remaining > 0 and seconds > 0:
            try:
                await asyncio.wait_for(self.stopped.wait(), timeout=min(seconds, remaining))
            except asyncio.TimeoutError:
                pass

    async def request(self, session, endpoint: str, method: str, path: str, **kwargs) -> tuple[dict[str, Any], Any]:
        """One request, recorded; (record, the JSON body of a 200 or None)."""
        import aiohttp

        rec: dict[str, Any] = {"endpoint": endpoint, "status": None, "kind": None}
        body = None
        t0 = time.perf_counter()
        try:
            async with session.request(method, path, **kwargs) as r:
                raw = await r.read()
            t1 = time.perf_counter()
            rec["status"], rec["kind"] = r.status, str(r.status)
            if r.status in (429, 503):
                rec["retry_after"] = r.headers.get("retry-after")
            if r.status == 200:
                try:
                    body = json.loads(raw)
                except ValueError:
                    rec["invalid"] = True
            else:
                rec["detail"] = raw[:300].decode("utf-8", "replace")
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            t1 = time.perf_counter()
            rec["kind"] = "dropped"
            rec["error"] = f"{type(exc).__name__}: {exc}"[:300]
        rec["t_s"] = t0 - self.start
        rec["latency_ms"] = (t1 - t0) * 1000
        self.records.append(rec)
        return rec, body

    async def after(self, rec: dict[str, Any], think_s: float) -> None:
        """The pause before a client's next request: Retry-After after a 503 / 429, 1 s after a dropped connection."""
        if rec["status"] in (429, 503):
            try:
                wait = float(rec.get("retry_after") or 1)
            except ValueError:
                wait = 1.0
            await self.pause(wait)
        elif rec["kind"] == "dropped":
            await self.pause(1.0)
        else:
            await self.pause(think_s)

    def session(self):
        import aiohttp

        timeout = aiohttp.ClientTimeout(total=self.args.timeout, connect=min(self.args.timeout, 30.0))
        return aiohttp.ClientSession(self.server.url, connector=aiohttp.TCPConnector(limit=1), timeout=timeout)

    async def search_client(self) -> None:
        async with self.session() as session:
            while self.running():
                collection, question = self.search_questions.next()
                params = {"q": question, "collection": collection, "k": str(SEARCH_K)}
                rec, body = await self.request(session, "search", "GET", "/v1/search", params=params)
                if body is not None and not isinstance(body.get("hits"), list):
                    rec["invalid"] = True
                await self.after(rec, self.args.search_think_s)

    async def ask_client(self) -> None:
        async with self.session() as session:
            while self.running():
                collection, question = self.ask_questions.next()
                payload = {"question": question, "collection": collection, "max_tokens": self.args.max_tokens}
                rec, body = await self.request(session, "ask", "POST", "/v1/ask", json=payload)
                if body is not None:
                    rec["invalid"] = not isinstance(body.get("answer"), str)
                    rec["tokens"] = body.get("tokens")
                await self.after(rec, self.args.ask_think_s)

    async def upload_client(self) -> None:
        import aiohttp

        live: collections.deque[tuple[str, list[str]]] = collections.deque()  # (file name, its document ids)
        topics = self.by_collection["medical"] + self.by_collection["finance"]
        n = 0
        next_at = self.start + min(5.0, self.args.upload_every)
        async with self.session() as session:
            while True:
                await self.pause(next_at - time.perf_counter())
                if not self.running():
                    break
                n += 1
                next_at += self.args.upload_every
                name, content_type, text, marker = soak_document(n, topics, self.elapsed() / 60)
                form = aiohttp.FormData()
                form.add_field("collection", UPLOAD_COLLECTION)
                form.add_field("files", text.encode("utf-8"), filename=name, content_type=content_type)
                rec, body = await self.request(session, "upload", "POST", "/v1/documents", data=form)
                if body is not None:
                    files = [f.get("file") for f in body.get("files") or []]
                    rec["invalid"] = name not in files or body.get("documents_added", 0) < 1
                    self.uploads["uploaded"] += 1
                    self.uploads["last_totals"] = body.get("totals")
                    params = {"q": marker, "collection": UPLOAD_COLLECTION, "k": "20", "mode": "bm25"}
                    look, hits = await self.request(session, "lookup", "GET", "/v1/search", params=params)
                    if hits is not None:
                        ids = sorted({h["document_id"] for h in hits.get("hits") or [] if Path(h.get("source", "")).name == name})
                        look["invalid"] = not ids
                        if ids:
                            live.append((name, ids))
                if n % self.args.delete_every == 0 and live and self.running():
                    _, ids = live.popleft()
                    for doc_id in ids:
                        params = {"collection": UPLOAD_COLLECTION}
                        rec, body = await self.request(session, "delete", "DELETE", f"/v1/documents/{doc_id}", params=params)
                        if body is not None:
                            rec["invalid"] = body.get("documents_removed", 0) < 1
                            self.uploads["deleted"] += body.get("documents_removed", 0)
        self.uploads["live"] = len(live)

    def sample(self) -> None:
        rss, files, processes = tree_usage(self.server.proc.pid)
        self.samples.append({"t_s": self.elapsed(), "rss_kib": rss, "open_files": files, "processes": processes})
        if rss is None or self.server.proc.poll() is not None:
            self.stopped.set()

    async def sampler(self) -> None:
        k = 0
        while self.running():
            self.sample()
            if k and k % max(1, round(60 / self.args.sample_s)) == 0:
                self.progress()  # about once a minute
            k += 1
            await self.pause(self.start + k * self.args.sample_s - time.perf_counter())

    def progress(self) -> None:
        counts = collections.Counter(r["endpoint"] for r in self.records)
        bad = sum(1 for r in self.records if r["status"] != 200)
        rss = self.samples[-1]["rss_kib"] if self.samples else None
        print(
            f"[{self.elapsed() / 60:5.1f} min] " + " ".join(f"{e} {counts.get(e, 0)}" for e in ENDPOINTS) + f" | non-200 {bad}"
            f" | RSS {fmt(rss / MIB if rss else None, 1)} MiB | open files {self.samples[-1]['open_files'] if self.samples else '-'}",
            file=sys.stderr,
            flush=True,
        )

    async def run(self) -> float:
        """The load for --minutes; returns its wall time (the drain included)."""
        self.start = time.perf_counter()
        self.end = self.start + self.args.minutes * 60
        clients = [self.search_client() for _ in range(self.args.search_clients)]
        clients += [self.ask_client() for _ in range(self.args.ask_clients)]
        if self.args.upload_every > 0:
            clients.append(self.upload_client())
        await asyncio.gather(self.sampler(), *clients)
        if not self.stopped.is_set():
            self.sample()  # after the drain
        return self.elapsed()


# ---------------------------------------------------------------------------------------------- summaries


def is_queue_refusal(r: dict[str, Any]) -> bool:
    return r["endpoint"] == "ask" and r["status"] == 503 and bool(r.get("retry_after"))


def summarize(records: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    ok = [r for r in records if r["status"] == 200]
    lat = [r["latency_ms"] for r in ok]
    by_status = collections.Counter(r["kind"] for r in records)
    out: dict[str, Any] = {
        "requests": len(records),
        "rps": len(records) / seconds if seconds else None,
        "ok": len(ok),
        "p50_ms": percentile(lat, 50),
        "p95_ms": percentile(lat, 95),
        "max_ms": max(lat) if lat else None,
        "by_status": dict(sorted(by_status.items())),
        "5xx": sum(1 for r in records if (r["status"] or 0) >= 500),
        "5xx_not_queue": sum(1 for r in records if (r["status"] or 0) >= 500 and not is_queue_refusal(r)),
        "queue_503": sum(1 for r in records if is_queue_refusal(r)),
        "other_non_200": sum(1 for r in records if r["status"] is not None and r["status"] < 500 and r["status"] != 200),
        "dropped": sum(1 for r in records if r["kind"] == "dropped"),
        "invalid_200_body": sum(1 for r in ok if r.get("invalid")),
    }
    tokens = [r["tokens"] for r in ok if isinstance(r.get("tokens"), int)]
    if tokens:
        out["mean_tokens"] = sum(tokens) / len(tokens)
    failures = [r for r in records if r["kind"] == "dropped" or ((r["status"] or 0) >= 400 and not is_queue_refusal(r))]
    out["first_failures"] = [
        {k: r.get(k) for k in ("t_s", "status", "kind", "error", "detail") if r.get(k) is not None} for r in failures[:5]
    ]
    return out


def timeline(records: list[dict[str, Any]], samples: list[dict[str, Any]], minutes: float, bucket_min: float) -> list[dict[str, Any]]:
    out = []
    start = 0.0
    while start < minutes - 1e-9:
        stop = min(start + bucket_min, minutes)
        last = stop >= minutes - 1e-9  # the last interval takes the drain and the final sample too
        recs = [r for r in records if start * 60 <= r["t_s"] < stop * 60 or (last and r["t_s"] >= stop * 60)]
        window = [
            s for s in samples if s["rss_kib"] is not None and (start * 60 <= s["t_s"] < stop * 60 or (last and s["t_s"] >= stop * 60))
        ]
        rss = [s["rss_kib"] for s in window]
        out.append(
            {
                "from_min": start,
                "to_min": stop,
                "requests": dict(collections.Counter(r["endpoint"] for r in recs)),
                "non_200": sum(1 for r in recs if r["status"] != 200),
                "5xx": sum(1 for r in recs if (r["status"] or 0) >= 500),
                "rss_median_mib": statistics.median(rss) / MIB if rss else None,
                "rss_max_mib": max(rss) / MIB if rss else None,
                "open_files_max": max((s["open_files"] for s in window), default=None),
            }
        )
        start = stop
    return out


def targets(endpoints: dict[str, dict[str, Any]], memory: dict[str, Any]) -> list[dict[str, Any]]:
    growth = memory["growth_pct"]
    warm_files, end_files = memory["open_files_warm_median"], memory["open_files_end_median"]
    files = None if warm_files is None or end_files is None else end_files - warm_files
    total = {k: sum(s[k] for s in endpoints.values()) for k in ("5xx_not_queue", "dropped", "queue_503")}
    return [
        {
            "name": "memory growth % (end / warm median)",
            "target": f"<= {TARGETS['memory_growth_pct']:g}",
            "value": growth,
            "passed": None if growth is None else growth <= TARGETS["memory_growth_pct"],
        },
        {
            "name": "open files growth (end - warm median)",
            "target": f"<= {TARGETS['open_files_growth']}",
            "value": files,
            "passed": None if files is None else files <= TARGETS["open_files_growth"],
        },
        {
            "name": "5xx other than queue refusals",
            "target": f"== {TARGETS['5xx_not_queue']}",
            "value": total["5xx_not_queue"],
            "passed": total["5xx_not_queue"] == TARGETS["5xx_not_queue"],
        },
        {
            "name": "dropped connections",
            "target": f"== {TARGETS['dropped']}",
            "value": total["dropped"],
            "passed": total["dropped"] == TARGETS["dropped"],
        },
        {
            "name": "ask: 503 queue refusals (Retry-After)",
            "target": f"== {TARGETS['queue_503']}",
            "value": total["queue_503"],
            "passed": total["queue_503"] == TARGETS["queue_503"],
        },
    ]


# ---------------------------------------------------------------------------------------------- printing


def report(out: dict[str, Any]) -> None:
    st, mem = out["settings"], out["memory"]
    print(
        f"\nsoak: {st['minutes']:g} min of load ({out['load_wall_s']:.0f} s with the drain); {st['search_clients']} search "
        f"clients (think {st['search_think_s']:g} s, k={SEARCH_K}), {st['ask_clients']} ask clients (think "
        f"{st['ask_think_s']:g} s, max_tokens {st['max_tokens']}, Retry-After honoured; {st['generation_slots']} "
        f"generation slots), 1 upload client (every {st['upload_every']:g} s to '{UPLOAD_COLLECTION}', a delete every "
        f"{st['delete_every']} uploads); {st['cpu_count']} CPU(s); server ready after {fmt(out['server']['ready_s'], 1)} s"
    )
    server_env = {k: v for k, v in st["server_env"].items() if k.startswith(("ASSISTANT_API__", "ASSISTANT_GENERATOR__"))}
    print("server settings: " + ", ".join(f"{k}={v}" for k, v in server_env.items()))
    print()
    headers = ("endpoint", "requests", "req/s", "p50 ms", "p95 ms", "by status", "5xx not queue", "queue 503", "dropped", "bad 200 body")
    rows = []
    for endpoint, s in out["endpoints"].items():
        statuses = " ".join(f"{k}:{v}" for k, v in s["by_status"].items()) or "-"
        rows.append(
            [
                endpoint,
                s["requests"],
                fmt(s["rps"], 2),
                fmt(s["p50_ms"], 1),
                fmt(s["p95_ms"], 1),
                statuses,
                s["5xx_not_queue"],
                s["queue_503"],
                s["dropped"],
                s["invalid_200_body"],
            ]
        )
    print(markdown_table(headers, rows))
    print("(latency percentiles of the 200s; lookup: the search for an upload's document id; requests sent in the load window)")
    ask = out["endpoints"].get("ask", {})
    up = out["uploads"]
    print(
        f"ask: mean tokens {fmt(ask.get('mean_tokens'), 1)}; uploads: {up['uploaded']} ingested, {up['deleted']} documents "
        f"deleted, '{UPLOAD_COLLECTION}' totals at the last upload {up['last_totals']}"
    )
    print()
    warm_w, end_w = mem["warm_window_min"], mem["end_window_min"]
    mem_headers = (
        "RSS first MiB",
        f"warm median MiB (min {warm_w[0]:.3g}-{warm_w[1]:.3g})",
        f"end median MiB (min {end_w[0]:.3g}-{end_w[1]:.3g})",
        "last MiB",
        "peak MiB (at min)",
        "growth %",
        "first to last %",
        "open files (warm / end median, peak)",
        "samples",
    )
    mem_row = [
        fmt(mem["first_mib"], 1),
        fmt(mem["warm_median_mib"], 1),
        fmt(mem["end_median_mib"], 1),
        fmt(mem["last_mib"], 1),
        f"{fmt(mem['peak_mib'], 1)} ({fmt(mem['peak_at_min'], 1)})",
        fmt(mem["growth_pct"], 2),
        fmt(mem["first_to_last_pct"], 2),
        f"{fmt(mem['open_files_warm_median'], 0)} / {fmt(mem['open_files_end_median'], 0)}, {fmt(mem['open_files_peak'], 0)}",
        f"{mem['samples']} (every {st['sample_s']:g} s; {mem['max_processes']} process(es))",
    ]
    print(markdown_table(mem_headers, [mem_row]))
    print()
    tl_headers = ("minutes", *ENDPOINTS, "non-200", "5xx", "RSS median MiB", "RSS max MiB", "open files max")
    tl_rows = [
        [f"{t['from_min']:g}-{t['to_min']:g}", *(t["requests"].get(e, 0) for e in ENDPOINTS), t["non_200"], t["5xx"]]
        + [fmt(t["rss_median_mib"], 1), fmt(t["rss_max_mib"], 1), fmt(t["open_files_max"], 0)]
        for t in out["timeline"]
    ]
    print(markdown_table(tl_headers, tl_rows))
    print()
    print("targets:")
    for t in out["targets"]:
        verdict = {True: "PASS", False: "FAIL", None: "n/a"}[t["passed"]]
        print(f"  {t['name']:<40} {t['target']:>8}   {fmt(t['value'], 2):>8}   {verdict}")
    for endpoint, s in out["endpoints"].items():
        for failure in s["first_failures"]:
            print(f"  {endpoint} failure: {failure}")
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
        help="where the medical and finance collections are copied from (default ASSISTANT_INDEX_DIR, else indexes)",
    )
    parser.add_argument("--port", type=int, default=0, help="server port (default: a free one)")
    parser.add_argument("--minutes", type=float, default=30.0, help="minutes of load (default 30)")
    parser.add_argument("--search-clients", type=int, default=4, help="search clients (default 4)")
    parser.add_argument("--search-think-s", type=float, default=0.2, help="pause between a search client's requests (default 0.2)")
    parser.add_argument("--ask-clients", type=int, default=2, help="ask clients (default 2)")
    parser.add_argument("--ask-think-s", type=float, default=0.5, help="pause between an ask client's requests (default 0.5)")
    parser.add_argument("--max-tokens", type=int, default=48, help="max_tokens of every ask (default 48)")
    parser.add_argument("--upload-every", type=float, default=20.0, help="seconds between uploads (default 20; 0: no uploads)")
    parser.add_argument("--delete-every", type=int, default=3, help="delete the oldest upload after every N uploads (default 3)")
    parser.add_argument("--sample-s", type=float, default=10.0, help="seconds between RSS samples (default 10)")
    parser.add_argument("--timeout", type=float, default=300.0, help="per-request timeout in s (default 300)")
    parser.add_argument("--ready-timeout", type=float, default=600.0, help="longest wait for /readyz in s (default 600)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the settings, summaries and samples to FILE")
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.timeout <= 0 or args.sample_s <= 0:
        parser.error("--minutes, --timeout and --sample-s must be above 0")
    if args.search_clients < 0 or args.ask_clients < 0 or args.search_clients + args.ask_clients == 0:
        parser.error("--search-clients and --ask-clients must not be negative, and not both 0")
    if args.search_think_s < 0 or args.ask_think_s < 0 or args.upload_every < 0 or args.delete_every < 1:
        parser.error("the think times and --upload-every must not be negative, --delete-every at least 1")
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
    if not Path("/proc/self/status").exists():
        raise Skip("no /proc: the server's memory cannot be sampled here")
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


def soak(args) -> tuple[dict[str, Any], bool]:
    """(the results, whether the server stayed up)."""
    by_collection = {"medical": medquad_questions(), "finance": tatqa_questions()}
    empty = [c for c, q in by_collection.items() if not q]
    if empty:
        raise Skip(f"no sample questions found for {', '.join(empty)}")
    work = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    notes: list[str] = []
    try:
        copy_collections(args.index_dir, work / "indexes")
        server = Server(work / "indexes", args.port or free_port())
        server.env.setdefault("ASSISTANT_GUARDRAILS__AUDIT_LOG", str(work / "guard-audit.jsonl"))
        slots = generation_slots(server.env)
        if args.ask_clients > slots:
            notes.append(f"{args.ask_clients} ask clients for {slots} generation slots: answers queue, and 503s are possible")
        if server.rate_limit_kept:
            notes.append(
                f"ASSISTANT_API__RATE_LIMIT_PER_MINUTE={os.environ['ASSISTANT_API__RATE_LIMIT_PER_MINUTE']} kept from the environment"
            )
        if "ASSISTANT_API_KEYS" in os.environ:
            notes.append("ASSISTANT_API_KEYS removed for the server: it runs without authentication on 127.0.0.1")
        print(
            f"starting the server on port {server.port} (index copy {work / 'indexes'}; log {server.log_path}) ...",
            file=sys.stderr,
            flush=True,
        )
        runner = Soak(server, by_collection, args)
        stop: dict[str, Any] = {"clean": False, "note": "not started"}
        server.start()
        try:
            server.wait_ready(args.ready_timeout)
            print(f"ready after {server.ready_s:.1f} s: {server.ready_body}; {args.minutes:g} min of load ...", file=sys.stderr, flush=True)
            load_wall = asyncio.run(runner.run())
        finally:
            alive = server.proc.poll() is None
            stop = server.stop()
        if not alive:
            notes.append(f"the server exited (status {server.proc.returncode}) during the soak\n{server.log_tail()}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    seconds = args.minutes * 60
    endpoints = {e: summarize([r for r in runner.records if r["endpoint"] == e], seconds) for e in ENDPOINTS}
    endpoints = {e: s for e, s in endpoints.items() if s["requests"]}
    memory = memory_summary(runner.samples, args.minutes)
    if memory["samples"] < 2:
        notes.append("fewer than two memory samples")
    bad = any(s["5xx_not_queue"] or s["dropped"] for s in endpoints.values())
    if bad or not stop["clean"] or not alive:
        tracebacks = server.tracebacks()
        if tracebacks:
            notes.append(f"the server logged {len(tracebacks)} traceback(s); the first:\n{tracebacks[0]}")
        notes.append(f"server log kept: {server.log_path}")
    else:
        server.log_path.unlink(missing_ok=True)
    settings = {
        **{k: getattr(args, k) for k in ("minutes", "search_clients", "search_think_s", "ask_clients", "ask_think_s", "max_tokens")},
        **{k: getattr(args, k) for k in ("upload_every", "delete_every", "sample_s", "timeout")},
        "index_dir": str(args.index_dir),
        "port": server.port,
        "cpu_count": os.cpu_count(),
        "generation_slots": slots,
        "server_env": server.settings(),
        "questions": {c: len(q) for c, q in by_collection.items()},
    }
    bucket = 5.0 if args.minutes >= FULL_WINDOWS_FROM_MIN else 1.0
    out = {
        "settings": settings,
        "load_wall_s": load_wall,
        "endpoints": endpoints,
        "uploads": runner.uploads,
        "memory": memory,
        "timeline": timeline(runner.records, runner.samples, args.minutes, bucket),
        "targets": targets(endpoints, memory),
        "rss_samples": [
            {"t_s": round(s["t_s"], 2), "rss_mib": s["rss_kib"] / MIB if s["rss_kib"] else None, "open_files": s["open_files"]}
            for s in runner.samples
        ],
        "server": {"ready_s": server.ready_s, "ready": server.ready_body, "stop": stop, "stayed_up": alive},
        "notes": notes,
    }
    return out, alive


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    try:
        check_prerequisites(args)
        out, alive = soak(args)
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
        print(f"results written to {args.json}")
    print(f"\nwall time {out['wall_s']:.1f} s")
    return 0 if alive else 1


if __name__ == "__main__":
    sys.exit(main())
