"""Distributed ingest benchmark: `assistant ingest` in one process vs `assistant ingest --ray auto` (a Ray
cluster started on this machine by the command, N workers) on the same MedQuAD files.

    python bench/ray_ingest.py --data ../shared/data/medquad --limit-files 600 --rounds 2 [--workers 2 ...]
                               [--json] [--out FILE]

Every run is the real CLI in a fresh process with a fresh collection (the embedded all-MiniLM-L6-v2 model,
the default settings). Runs are interleaved, the order reversed every other round (single, Ray, Ray,
single, ...: a machine that gets busier during the benchmark slows both, and neither is always the first
run), and the table shows medians, and the median of each Ray run's ratio to the single-process run of its
round ("paired"). Times:

- wall: the whole command as a user waits for it: process start, model load (in the single process; with
  Ray the command does not load the model), the Ray cluster's start, the workers' start (each loads the
  model), the ingest, the shutdown;
- Ray start: connecting to (here: starting) Ray and the workers being ready;
- work: the report's ``seconds``: from the first file to the last commit (without loading the model, or
  starting Ray and the workers).

Per worker (Ray runs): chunks it produced and the seconds it spent on them (load, clean, chunk, flag,
embed), so chunks per busy second is one worker's throughput, and the workers' busy share of the work
time says whether the driver kept them fed. The driver's CPU seconds during the work (hashing files,
commits: SQLite, FTS5, FAISS; Ray's client) per chunk bound how many workers one writer can feed:
(1 / driver CPU per chunk) / per-worker throughput. Needs the `ray` extra; skips with a message when the
data folder is absent.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "medquad"
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.tables import fmt, markdown_table  # noqa: E402


def run_once(index_dir: str, workers: int, paths: list[str]) -> dict:
    """One `assistant ingest` in this process (``workers`` 0: single-process), timed."""
    os.environ["ASSISTANT_INDEX_DIR"] = index_dir
    from cli import main
    from ingest import distributed, pipeline

    timing = {"start_seconds": 0.0, "ingest_cpu_seconds": 0.0}

    def cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    close, ingest = distributed.RayWorkers.close, pipeline.Ingestor.ingest

    def timed_close(self):  # the time the one pool of the command spent starting Ray and the workers
        timing["start_seconds"] = self.start_seconds
        return close(self)

    def timed_ingest(self, paths):  # this process's CPU from the first file to the last commit
        began = cpu()
        try:
            return ingest(self, paths)
        finally:
            timing["ingest_cpu_seconds"] += cpu() - began

    distributed.RayWorkers.close = timed_close  # type: ignore[method-assign]
    pipeline.Ingestor.ingest = timed_ingest  # type: ignore[method-assign]
    args = ["ingest", *paths, "--collection", "bench", "--json", "--quiet"]
    if workers:
        args += ["--ray", "auto", "--ray-workers", str(workers)]
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        main(args)
    summary = json.loads(buffer.getvalue())
    return {
        "workers": workers,
        "documents": summary["totals"]["documents"],
        "chunks": summary["chunks_added"],
        "embedded": summary["chunks_embedded"],
        "skipped": len(summary["skipped"]),
        "seconds": summary["seconds"],
        **timing,
        "driver_cpu_seconds": cpu(),
        "per_worker": summary["workers"],
    }


def _run(workers: int, paths: list[str], env: dict[str, str]) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-ray-ingest-") as index_dir:
        started = time.perf_counter()
        out = subprocess.run(
            [sys.executable, __file__, "--run", str(workers), index_dir, *paths], capture_output=True, text=True, env=env, cwd=REPO
        )
        wall = time.perf_counter() - started
    if out.returncode != 0:
        sys.exit(f"run with {workers} workers failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["wall_seconds"] = wall
    result["work_seconds"] = result["seconds"]  # the report's seconds leave the Ray start out
    return result


def _median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def summarize(runs: dict[int, list[dict]]) -> dict:
    out: dict = {}
    base = runs[0]
    for workers, results in runs.items():
        row = {
            "runs": len(results),
            "documents": results[0]["documents"],
            "chunks": results[0]["chunks"],
            "wall_seconds": _median(results, "wall_seconds"),
            "seconds": _median(results, "seconds"),
            "start_seconds": _median(results, "start_seconds"),
            "driver_cpu_seconds": _median(results, "driver_cpu_seconds"),
            "ingest_cpu_seconds": _median(results, "ingest_cpu_seconds"),
            "work_seconds": _median(results, "work_seconds"),
        }
        row["chunks_per_second"] = row["chunks"] / row["work_seconds"]
        if workers:
            row["wall_ratio"] = row["wall_seconds"] / _median(base, "wall_seconds")
            row["work_ratio"] = row["work_seconds"] / _median(base, "work_seconds")
            # Each Ray run against the single-process run of its round (a machine whose load drifts).
            row["wall_ratio_paired"] = statistics.median(r["wall_seconds"] / b["wall_seconds"] for r, b in zip(results, base))
            per_worker = [w for r in results for w in r["per_worker"]]
            busy = sum(w["busy_seconds"] for w in per_worker)
            row["worker_chunks_per_busy_second"] = sum(w["chunks"] for w in per_worker) / busy if busy else 0.0
            row["worker_busy_fraction"] = statistics.median(
                sum(w["busy_seconds"] for w in r["per_worker"]) / (workers * r["work_seconds"]) for r in results
            )
            row["driver_cpu_per_1000_chunks"] = 1000 * row["ingest_cpu_seconds"] / row["chunks"]
            ceiling = row["chunks"] / row["ingest_cpu_seconds"]  # chunks/s one driver core could commit
            row["driver_ceiling_chunks_per_second"] = ceiling
            row["max_workers_one_driver"] = ceiling / row["worker_chunks_per_busy_second"] if busy else None
        out[workers] = row
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="MedQuAD folder (default: ../shared/data/medquad)")
    parser.add_argument("--limit-files", type=int, default=600, help="use N XML files spread evenly over all folders (0: all)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of (single, Ray...) runs; the table shows medians")
    parser.add_argument("--workers", type=int, action="append", help="Ray workers per Ray run (repeat for several; default 2)")
    parser.add_argument("--json", action="store_true", help="print the raw runs and the summary as JSON")
    parser.add_argument("--out", type=Path, help="also write the raw runs and the summary (JSON) here")
    parser.add_argument("--run", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.run:
        workers, index_dir, *paths = args.run
        print(json.dumps(run_once(index_dir, int(workers), paths)))
        return

    if not args.data.is_dir():
        print(f"skipped: MedQuAD folder not found at {args.data} (pass --data PATH)", file=sys.stderr)
        return
    files = sorted(str(p) for p in args.data.glob("*/*.xml"))
    if args.limit_files:
        step = max(1, len(files) // args.limit_files)  # every step-th file: all folders represented
        files = files[::step][: args.limit_files]
    worker_counts = args.workers or [2]
    with tempfile.TemporaryDirectory(prefix="bench-ray-auth-") as auth:
        token = Path(auth) / "auth_token"
        token.write_text(secrets.token_hex(32))
        # The local cluster's token in a file of the benchmark's own (Ray would write ~/.ray/auth_token).
        env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
        env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token), TOKENIZERS_PARALLELISM="false")
        runs: dict[int, list[dict]] = {0: [], **{n: [] for n in worker_counts}}
        for round_ in range(max(1, args.rounds)):
            order = list(runs) if round_ % 2 == 0 else list(reversed(runs))  # A B, B A, ...: no side always first
            for workers in order:
                result = _run(workers, files, env)
                runs[workers].append(result)
                label = f"Ray, {workers} workers" if workers else "single process"
                print(
                    f"round {round_ + 1}: {label}: {result['chunks']} chunks, wall {result['wall_seconds']:.1f} s, "
                    f"ingest {result['seconds']:.1f} s",
                    file=sys.stderr,
                )
    summary = summarize(runs)
    report = {"data": str(args.data), "files": len(files), "rounds": max(1, args.rounds), "summary": summary, "runs": runs}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2))
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"MedQuAD: {len(files)} XML files from {args.data}; medians of {report['rounds']} interleaved round(s)\n")
    rows = []
    for workers, row in summary.items():
        label = f"`--ray auto`, {workers} local workers" if workers else "single process"
        rows.append(
            (
                label,
                row["chunks"],
                fmt(row["wall_seconds"], 1),
                fmt(row["start_seconds"], 1) if workers else "-",
                fmt(row["work_seconds"], 1),
                fmt(row["chunks_per_second"], 1),
                fmt(row.get("wall_ratio"), 3),
                fmt(row.get("wall_ratio_paired"), 3),
                fmt(row.get("work_ratio"), 3),
            )
        )
    headers = ["run", "chunks", "wall s", "Ray start s", "work s", "chunks/s (work)", "wall / single", "paired", "work / single"]
    print(markdown_table(headers, rows))
    print()
    rows = [
        (
            workers,
            fmt(row["worker_chunks_per_busy_second"], 1),
            fmt(100 * row["worker_busy_fraction"], 0),
            fmt(row["driver_cpu_per_1000_chunks"], 2),
            fmt(row["driver_ceiling_chunks_per_second"], 0),
            fmt(row["max_workers_one_driver"], 1),
        )
        for workers, row in summary.items()
        if workers
    ]
    headers = [
        "workers",
        "chunks/s per busy worker",
        "worker busy %",
        "driver CPU s / 1000 chunks",
        "driver ceiling chunks/s",
        "workers one driver feeds",
    ]
    print(markdown_table(headers, rows))


if __name__ == "__main__":
    main()
