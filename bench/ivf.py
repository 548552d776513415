"""Collections that outgrow memory: the IVF index kind (core/collection/ivf.py) at 1M and 5M vectors against
exact search. Recall@10, single-query latency, build and training time, memory and disk per vector, measured
through the code the product runs (``VectorIndex.build``, ``.search``, ``.save``, ``.read``).

    python bench/ivf.py --seeds indexes/medical indexes/finance [--sizes 1000000 5000000] [--queries 1000]
                        [--nprobes 8,16,32,64] [--out docs/bench/ivf-2026-12-07]
    python bench/ivf.py --sizes 20000 --queries 100 --flat-queries 50      # a smoke run (a minute)
    python bench/ivf.py reader FILE [--mapped] [--queries-file Q.npy]     # one reader's memory (run by the bench)
    python bench/ivf.py disk COLLECTION_DIR...                            # bytes per chunk of built collections

Data: no corpus of a million real chunks fits this machine's time (embedding MedQuAD's 34,784 chunks took 11
minutes), so the vectors are synthetic, made from real all-MiniLM-L6-v2 vectors: the stored vectors of the
collections given as --seeds, less a tenth held out as queries. Each synthetic vector is a seed chosen at
random plus Gaussian noise shaped like the seeds' own covariance (so it varies in the directions real
embeddings vary in, not in all 384 equally, which would make every neighbour equidistant), L2-normalised.
The noise is scaled so that the median cosine between a synthetic vector and its seed equals the median
cosine between a real vector and its nearest other real vector: each seed becomes a cloud about as wide as
the gap to its neighbours, and the clouds overlap into a continuum, not separate clusters an IVF would find
easy. The vectors are rounded to float16, as the store keeps them; exact search over them is the ground
truth (numpy, in batches).

Two query sets: synthetic (drawn like the data, other random draws: a query from the middle of a cloud)
and real (the held-out real vectors, whose seeds are not in the data: a query between clouds, as a question
about something the collection has no copy of). The "calibration" table checks the data is not easier than
real data: the same IVF on the (remaining) real seeds with the held-out ones as queries, and on as many
synthetic vectors with synthetic queries.

Per size: flat (exact, float16 codes, --flat-queries queries: a scan of every vector) and IVF at each --nprobes
value (the index built once; ``IndexParams.ivf_nprobe`` set per row), each with recall@10 against exact
search for both query sets, p50/p95 latency of one query on one thread (as the product searches) over both,
and with a filter (a random 1 % of the ids allowed, synthetic queries: the search scans proportionally more
lists, ivf.nprobe_for). Build seconds: training and
adding, on every core. Memory per vector: the growth of a fresh process's RSS on reading the saved index
(``reader``), read whole, and memory-mapped (the lists paged in by --queries searches; shared between processes
that map the same file). Disk per chunk: vectors.faiss per vector plus the SQLite vector blob (float16: 2 bytes
a dimension), against today's float32 flat index and blob (1,544 + 1,536 bytes at 384-d).

--out DIR writes ivf.md (the tables) and ivf.json (settings, seeds, every number). HNSW is not measured at
these sizes: building it on 2 cores takes about 100 s per 100k vectors.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.tables import fmt, markdown_table, percentile  # noqa: E402
from core.collection import Collection, IndexParams, ivf  # noqa: E402
from core.collection.vectors import VectorIndex  # noqa: E402

K = 10
BATCH = 65_536
TODAY_BYTES_PER_CHUNK = {"faiss": 1544, "sqlite": 1536}  # IndexFlatIP + float32 blob at 384-d, measured


# ---------------------------------------------------------------------------- data


def load_seeds(paths: list[Path]) -> tuple[np.ndarray, list[dict]]:
    parts, described = [], []
    for path in paths:
        with Collection.open(path) as c:
            _, vectors = c.store.all_vectors(c.dim)
            described.append({"path": str(path), "embedder": c.manifest.embedder.name, "vectors": len(vectors)})
        parts.append(vectors)
    seeds = np.vstack(parts).astype(np.float32)
    return seeds / np.linalg.norm(seeds, axis=1, keepdims=True), described


def nearest_other_cosine(vectors: np.ndarray) -> np.ndarray:
    best = np.empty(len(vectors), dtype=np.float32)
    for start in range(0, len(vectors), 4096):
        sims = vectors[start : start + 4096] @ vectors.T
        sims[np.arange(len(sims)), np.arange(start, start + len(sims))] = -np.inf
        best[start : start + len(sims)] = sims.max(axis=1)
    return best


class Synthesizer:
    """Seeds plus covariance-shaped Gaussian noise, normalised (the module's docstring says why)."""

    def __init__(self, seeds: np.ndarray, seed: int = 0):
        self.seeds = seeds
        self.seed = seed
        centred = seeds - seeds.mean(axis=0)
        cov = centred.T @ centred / max(len(seeds) - 1, 1)
        eigenvalues, eigenvectors = np.linalg.eigh(cov)
        self.shape = (eigenvectors * np.sqrt(np.clip(eigenvalues, 0, None))).T.astype(np.float32)  # z @ shape ~ N(0, cov)
        self.target = float(np.median(nearest_other_cosine(seeds)))
        self.scale = 1.0
        self.scale = self._calibrate()

    def _draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        chosen = self.seeds[rng.integers(0, len(self.seeds), size=n)]
        noise = rng.standard_normal((n, self.seeds.shape[1]), dtype=np.float32) @ self.shape
        x = chosen + self.scale * noise
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    def _calibrate(self) -> float:
        """The noise scale whose median seed cosine is ``target`` (bisection on a fixed draw)."""
        rng = np.random.default_rng([self.seed, 999])
        seeds_idx = rng.integers(0, len(self.seeds), size=4000)
        noise = rng.standard_normal((4000, self.seeds.shape[1]), dtype=np.float32) @ self.shape
        low, high = 0.0, 50.0
        for _ in range(40):
            mid = (low + high) / 2
            x = self.seeds[seeds_idx] + mid * noise
            cos = np.median((x * self.seeds[seeds_idx]).sum(axis=1) / np.linalg.norm(x, axis=1))
            low, high = (mid, high) if cos > self.target else (low, mid)
        return (low + high) / 2

    def vectors(self, n: int, stream: int) -> np.ndarray:
        """``n`` vectors as the store keeps them (float16); the same for the same (n, stream)."""
        out = np.empty((n, self.seeds.shape[1]), dtype=np.float16)
        for i, start in enumerate(range(0, n, BATCH)):
            rng = np.random.default_rng([self.seed, stream, i])
            out[start : start + BATCH] = self._draw(rng, min(BATCH, n - start))
        return out


def exact_top(data: np.ndarray, queries: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k ids (1-based, as chunk ids) and their scores by inner product, scanning ``data`` (float16)
    in batches; ``allowed``: a boolean mask of the rows that may be returned."""
    best_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_ids = np.zeros((len(queries), k), dtype=np.int64)
    for start in range(0, len(data), BATCH):
        block = data[start : start + BATCH].astype(np.float32)
        scores = queries @ block.T
        if allowed is not None:
            scores[:, ~allowed[start : start + len(block)]] = -np.inf
        kk = min(k, scores.shape[1])
        top = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
        merged_scores = np.hstack([best_scores, np.take_along_axis(scores, top, axis=1)])
        merged_ids = np.hstack([best_ids, top + start + 1])
        order = np.argsort(-merged_scores, axis=1)[:, :k]
        best_scores = np.take_along_axis(merged_scores, order, axis=1)
        best_ids = np.take_along_axis(merged_ids, order, axis=1)
    return best_ids, best_scores


# ---------------------------------------------------------------------------- measuring


def build(data: np.ndarray, params: IndexParams) -> tuple[VectorIndex, dict]:
    """``VectorIndex.build`` over the data, timing training (until the first batch is asked for) and adding."""
    n = len(data)
    marks: dict[str, float] = {}

    def batches():
        marks["trained"] = time.perf_counter()
        for start in range(0, n, BATCH):
            yield np.arange(start + 1, min(start + BATCH, n) + 1, dtype=np.int64), data[start : start + BATCH].astype(np.float32)

    def sample(size: int) -> np.ndarray:
        rows = np.linspace(0, n - 1, num=size).astype(np.int64) if size < n else np.arange(n)
        marks["sampled"] = time.perf_counter()
        return data[rows].astype(np.float32)

    started = time.perf_counter()
    index = VectorIndex.build(data.shape[1], params, n, batches(), sample)
    done = time.perf_counter()
    train = marks["trained"] - marks["sampled"] if "sampled" in marks else 0.0
    return index, {"build_s": done - started, "train_s": train, "add_s": done - marks.get("trained", started)}


def latencies_and_recall(index: VectorIndex, queries: np.ndarray, truth: np.ndarray, allowed: np.ndarray | None = None) -> dict:
    times, found = [], []
    for q, expected in zip(queries, truth):
        t = time.perf_counter()
        hits = index.search(q, K, allowed)
        times.append((time.perf_counter() - t) * 1000)
        found.append(len({i for i, _ in hits} & set(expected.tolist())) / K)
    return {
        "recall_at_10": float(np.mean(found)),
        "p50_ms": percentile(times, 50),
        "p95_ms": percentile(times, 95),
        "queries": len(queries),
        "times_ms": times,
    }


def searched(index: VectorIndex, query_sets: dict[str, np.ndarray], truths: dict[str, np.ndarray]) -> dict:
    """Recall per query set, latency over all of them."""
    per_set = {name: latencies_and_recall(index, query_sets[name], truths[name]) for name in query_sets}
    times = [t for got in per_set.values() for t in got.pop("times_ms")]
    return {
        "recall_at_10": {name: got["recall_at_10"] for name, got in per_set.items()},
        "p50_ms": percentile(times, 50),
        "p95_ms": percentile(times, 95),
        "queries": len(times),
    }


def _rss() -> dict[str, int]:
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("RssAnon", "RssFile"):
            fields[key] = int(value.split()[0]) * 1024
    return fields


def reader(file: Path, mapped: bool, queries_file: Path | None, nprobe: int) -> dict:
    """A fresh process's memory for one reader of ``file`` (the ``reader`` command)."""
    before = _rss()
    started = time.perf_counter()
    index = VectorIndex.read(file, IndexParams(ivf_nprobe=nprobe), mapped=mapped)
    loaded = time.perf_counter() - started
    after_load = _rss()
    out = {"mapped": index.mapped, "load_s": loaded, "ntotal": index.ntotal}
    out["anon_after_load"] = after_load["RssAnon"] - before["RssAnon"]
    out["file_after_load"] = after_load["RssFile"] - before["RssFile"]
    if queries_file is not None:
        times = []
        for q in np.load(queries_file):
            t = time.perf_counter()
            index.search(q, K)
            times.append((time.perf_counter() - t) * 1000)
        out["p50_ms"], out["p95_ms"] = percentile(times, 50), percentile(times, 95)
        after = _rss()
        out["anon_after_queries"] = after["RssAnon"] - before["RssAnon"]
        out["file_after_queries"] = after["RssFile"] - before["RssFile"]
    return out


def measure_reader(file: Path, mapped: bool, queries_file: Path, nprobe: int) -> dict:
    args = [sys.executable, __file__, "reader", str(file), "--queries-file", str(queries_file), "--nprobe", str(nprobe)]
    out = subprocess.run([*args, *(["--mapped"] if mapped else [])], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


# ---------------------------------------------------------------------------- the runs


def calibration(synth: Synthesizer, real_queries: np.ndarray, params: IndexParams, nprobes: list[int]) -> list[dict]:
    """The same IVF on the real seeds with the held-out real vectors as queries, and on as many synthetic
    vectors with as many synthetic queries."""
    real_data = synth.seeds.astype(np.float16)
    synthetic = synth.vectors(len(real_data), stream=1)
    synthetic_queries = synth.vectors(len(real_queries), stream=2).astype(np.float32)
    rows = []
    for name, data, queries in (("real", real_data, real_queries), ("synthetic", synthetic, synthetic_queries)):
        forced = replace(params, approx_threshold=1, ivf_threshold=1)
        index, _ = build(data, forced)
        truth, scores = exact_top(data, queries, K)
        for nprobe in nprobes:
            got = latencies_and_recall(VectorIndex(index.index, replace(forced, ivf_nprobe=nprobe)), queries, truth)
            del got["times_ms"]
            rows.append({"data": name, "n": len(data), "nlist": index.nlist, "nprobe": nprobe, **got})
        rows.append({"data": name, "n": len(data), "median_nearest_cosine": float(np.median(scores[:, 0]))})
    return rows


def run_size(n: int, synth: Synthesizer, real_queries: np.ndarray, args: argparse.Namespace, workdir: Path) -> list[dict]:
    rows: list[dict] = []
    started = time.perf_counter()
    data = synth.vectors(n, stream=10)
    query_sets = {"synthetic": synth.vectors(args.queries, stream=11).astype(np.float32), "real": real_queries[: args.queries]}
    queries = query_sets["synthetic"]
    generated = time.perf_counter() - started
    allowed = np.zeros(n, dtype=bool)
    allowed[np.random.default_rng(3).choice(n, size=max(n // 100, K), replace=False)] = True
    allowed_ids = np.flatnonzero(allowed).astype(np.int64) + 1
    started = time.perf_counter()
    truths, nearest = {}, {}
    for name, query_set in query_sets.items():
        truths[name], scores = exact_top(data, query_set, K)
        nearest[name] = float(np.median(scores[:, 0]))
    truth_filtered, _ = exact_top(data, queries[: args.filtered_queries], K, allowed)
    truth_s = time.perf_counter() - started
    print(f"n={n:,}: generated in {generated:.0f} s, ground truth in {truth_s:.0f} s", file=sys.stderr, flush=True)
    queries_file = workdir / "queries.npy"
    np.save(queries_file, queries[: args.reader_queries])

    base = IndexParams(approx_threshold=1, ivf_threshold=1, ivf_nlist=args.nlist or 0, ivf_train_per_list=args.train_per_list)
    index, timing = build(data, base)
    print(f"n={n:,}: IVF built in {timing['build_s']:.0f} s (training {timing['train_s']:.0f} s)", file=sys.stderr, flush=True)
    file = workdir / "vectors.faiss"
    index.save(file)
    disk = file.stat().st_size / n
    for nprobe in args.nprobes:
        searching = VectorIndex(index.index, replace(base, ivf_nprobe=nprobe))
        got = searched(searching, query_sets, truths)
        filtered = latencies_and_recall(searching, queries[: args.filtered_queries], truth_filtered, allowed_ids)
        del filtered["times_ms"]
        rows.append(
            {
                "kind": "ivf",
                "n": n,
                "nlist": index.nlist,
                "nprobe": nprobe,
                **got,
                "median_nearest_cosine": nearest,
                "filtered": filtered,
                **timing,
                "train_sample": ivf.training_size(n, index.nlist or 0, base),
                "faiss_bytes_per_vector": disk,
            }
        )
        recall = ", ".join(f"{name} {value:.3f}" for name, value in got["recall_at_10"].items())
        print(f"  nprobe {nprobe}: recall {recall}, p95 {got['p95_ms']:.2f} ms", file=sys.stderr, flush=True)
    del index, searching
    gc.collect()
    memory = {
        "in_memory": measure_reader(file, False, queries_file, args.default_nprobe),
        "mapped": measure_reader(file, True, queries_file, args.default_nprobe),
    }
    for row in rows:
        row["reader"] = memory

    flat_params = IndexParams()  # n <= approx_threshold is not required: kind is forced below
    flat = VectorIndex.empty("flat", data.shape[1], flat_params)
    started = time.perf_counter()
    for start in range(0, n, BATCH):
        flat.add(np.arange(start + 1, min(start + BATCH, n) + 1, dtype=np.int64), data[start : start + BATCH].astype(np.float32))
    flat_build = time.perf_counter() - started
    flat.save(file)
    rows.append(
        {
            "kind": "flat",
            "n": n,
            "nlist": None,
            "nprobe": None,
            **searched(
                flat,
                {name: q[: args.flat_queries] for name, q in query_sets.items()},
                {name: t[: args.flat_queries] for name, t in truths.items()},
            ),
            "build_s": flat_build,
            "train_s": 0.0,
            "faiss_bytes_per_vector": file.stat().st_size / n,
        }
    )
    del flat
    file.unlink()
    gc.collect()
    return rows


def tables(result: dict) -> str:
    dim = result["dim"]
    today = TODAY_BYTES_PER_CHUNK["faiss"] + TODAY_BYTES_PER_CHUNK["sqlite"]
    seeds = ", ".join(f"{s['path']} ({s['vectors']:,})" for s in result["seeds"])
    lines = [
        f"Seeds: {seeds}; {result['held_out_queries']:,} of them held out as the real queries. Noise scale "
        f"{result['noise_scale']:.3f} (median cosine of a synthetic vector to its seed {result['target_cosine']:.3f}). "
        f"Machine: {result['machine']}.",
        "",
        "Calibration: the same IVF on the real seed vectors (held-out real queries) and on as many synthetic ones (synthetic queries)",
        "",
    ]
    calib = [r for r in result["calibration"] if "nprobe" in r]
    lines.append(
        markdown_table(
            ["data", "n", "nlist", "nprobe", "recall@10", "p50 ms", "p95 ms"],
            [
                [r["data"], f"{r['n']:,}", r["nlist"], r["nprobe"], fmt(r["recall_at_10"], 3), fmt(r["p50_ms"]), fmt(r["p95_ms"])]
                for r in calib
            ],
        )
    )
    near = {r["data"]: r["median_nearest_cosine"] for r in result["calibration"] if "median_nearest_cosine" in r}
    lines += ["", f"Median cosine of a query to its nearest vector: real {near['real']:.3f}, synthetic {near['synthetic']:.3f}."]
    for r in result["runs"]:
        if r["kind"] == "ivf" and r["nprobe"] == result["settings"]["nprobes"][0]:
            cos = r["median_nearest_cosine"]
            lines[-1] += f" At {r['n']:,}: synthetic queries {cos['synthetic']:.3f}, real queries {cos['real']:.3f}."
    lines += [""]
    rows = []
    for r in result["runs"]:
        filtered = r.get("filtered", {})
        disk = r["faiss_bytes_per_vector"] + 2 * dim  # + the float16 blob in SQLite
        memory = r.get("reader", {}).get("in_memory", {}).get("anon_after_load")
        recall = r["recall_at_10"]
        rows.append(
            [
                r["kind"],
                f"{r['n']:,}",
                fmt(r["nlist"]),
                fmt(r["nprobe"]),
                fmt(recall["synthetic"], 3),
                fmt(recall["real"], 3),
                fmt(r["p50_ms"]),
                fmt(r["p95_ms"]),
                fmt(filtered.get("recall_at_10"), 3),
                fmt(filtered.get("p95_ms")),
                fmt(r["build_s"], 0),
                fmt(r["train_s"], 0),
                fmt(memory / r["n"], 0) if memory else "-",
                f"{disk:,.0f} ({100 * (1 - disk / today):.0f} % below)",
            ]
        )
    headers = [
        "kind",
        "n",
        "nlist",
        "nprobe",
        "recall@10 synthetic q.",
        "recall@10 real q.",
        "p50 ms",
        "p95 ms",
        "recall@10, 1 % filter",
        "p95 ms, 1 % filter",
        "build s",
        "of which training s",
        "memory B/vector",
        f"disk B/chunk, vectors (today {today:,})",
    ]
    lines.append(markdown_table(headers, rows))
    lines += ["", "One reader's memory (a fresh process reading vectors.faiss, then running the first searches; MB):", ""]
    reader_rows = []
    seen = set()
    for r in result["runs"]:
        if r["kind"] != "ivf" or r["n"] in seen:
            continue
        seen.add(r["n"])
        for how, m in r["reader"].items():
            reader_rows.append(
                [
                    f"{r['n']:,}",
                    how,
                    fmt(m["load_s"], 2),
                    fmt(m["anon_after_load"] / 2**20, 0),
                    fmt(m["file_after_load"] / 2**20, 0),
                    fmt(m["anon_after_queries"] / 2**20, 0),
                    fmt(m["file_after_queries"] / 2**20, 0),
                    fmt(m.get("p50_ms")),
                    fmt(m.get("p95_ms")),
                ]
            )
    reader_headers = ["n", "read", "load s", "private", "file pages", "private after searches", "file pages after searches"]
    lines.append(markdown_table([*reader_headers, "p50 ms (cold)", "p95 ms (cold)"], reader_rows))
    return "\n".join(lines) + "\n"


def disk(paths: list[Path]) -> str:
    """Bytes per chunk of built collections (``disk``): docs.sqlite + vectors.faiss, and the chunks table's pages
    (where the vectors are), e.g. the MedQuAD sample built by the code before float16 and by today's."""
    rows = []
    for path in paths:
        with Collection.open(path) as c:
            chunks = c.counts()["chunks"]
            widths = sorted(r[0] for r in c.db.execute("SELECT DISTINCT length(vector) FROM chunks"))
            table = c.store.scalar("SELECT SUM(pgsize) FROM dbstat WHERE name = 'chunks'")
        sqlite_bytes, faiss_bytes = (path / "docs.sqlite").stat().st_size, (path / "vectors.faiss").stat().st_size
        rows.append([str(path), chunks, "/".join(map(str, widths)), f"{sqlite_bytes:,}", f"{faiss_bytes:,}", f"{table / chunks:,.0f}"])
        rows[-1].append(f"{(sqlite_bytes + faiss_bytes) / chunks:,.0f}")
    headers = ["collection", "chunks", "vector blob bytes", "docs.sqlite", "vectors.faiss", "chunks table B/chunk", "B/chunk"]
    return markdown_table(headers, rows) + "\n"


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "disk":
        print(disk([Path(p) for p in sys.argv[2:]]), end="")
        return
    if len(sys.argv) > 1 and sys.argv[1] == "reader":
        parser = argparse.ArgumentParser(prog="ivf.py reader")
        parser.add_argument("command")
        parser.add_argument("file", type=Path)
        parser.add_argument("--mapped", action="store_true")
        parser.add_argument("--queries-file", type=Path)
        parser.add_argument("--nprobe", type=int, default=IndexParams().ivf_nprobe)
        a = parser.parse_args()
        print(json.dumps(reader(a.file, a.mapped, a.queries_file, a.nprobe)))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=Path, nargs="+", default=[REPO / "indexes" / "medical", REPO / "indexes" / "finance"])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 5_000_000])
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--flat-queries", type=int, default=100, help="queries for the exact flat row (a full scan each)")
    parser.add_argument("--filtered-queries", type=int, default=200)
    parser.add_argument("--reader-queries", type=int, default=1000)
    parser.add_argument("--nprobes", type=lambda s: [int(x) for x in s.split(",")], default=[8, 16, 32, 64])
    parser.add_argument("--default-nprobe", type=int, default=IndexParams().ivf_nprobe, help="nprobe of the reader-memory runs")
    parser.add_argument("--nlist", type=int, default=0, help="0: the product's choice (ivf.nlist_for)")
    parser.add_argument("--train-per-list", type=int, default=IndexParams().ivf_train_per_list)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    everything, described = load_seeds(args.seeds)
    order = np.random.default_rng(1).permutation(len(everything))
    held = max(len(everything) // 10, 1)
    real_queries, seeds = everything[order[:held]], everything[order[held:]]
    synth = Synthesizer(seeds)
    print(f"{len(seeds):,} seeds, target cosine {synth.target:.3f}, noise scale {synth.scale:.3f}", file=sys.stderr, flush=True)
    result: dict = {
        "dim": int(seeds.shape[1]),
        "seeds": described,
        "target_cosine": synth.target,
        "noise_scale": synth.scale,
        "settings": {k: v for k, v in vars(args).items() if k not in ("seeds", "out")},
        "machine": f"{os.cpu_count()} cores, 1 search thread",
        "held_out_queries": held,
        "calibration": calibration(synth, real_queries, IndexParams(ivf_train_per_list=args.train_per_list), args.nprobes),
        "runs": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            result["runs"] += run_size(n, synth, real_queries, args, Path(tmp))
            text = tables(result)
            if args.out:  # after every size: a long run that fails later keeps what it measured
                args.out.mkdir(parents=True, exist_ok=True)
                (args.out / "ivf.md").write_text(text, encoding="utf-8")
                (args.out / "ivf.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
