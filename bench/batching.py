"""Concurrent generation: the local generator's continuous batching (generator/batching.py) against one
generation at a time, on the embedded SmolLM2-135M-Instruct in 4-bit with the shipped LoRA adapter.

    python bench/batching.py [--streams 8] [--max-batch 1,4,8] [--max-new-tokens 64] [--fixed-tokens 128]
                             [--repeat 3] [--json FILE]
    python bench/batching.py --quick        # smoke run: 2 streams, max_batch 1 and 2, few tokens

--streams concurrent streams start together, each on its own thread, as the API's answer threads do; the
prompts are bench/generation.py's five grounded prompts (553-781 tokens), cycled. Two workloads:

- natural: greedy, at most --max-new-tokens, each answer ends where the model ends it (as in the product);
  the answers are compared with max_batch=1's, which must be identical;
- fixed: every answer exactly --fixed-tokens tokens (end of sequence ignored): a decode-heavy load, like
  longer answers or a model that writes more.

Per max_batch (1 = one generation at a time, the previous behaviour) and workload: wall s (first start to
last end), tokens, aggregate tokens/s, time to first token p50 and max, stream total p50, mean rows per decode
step. Medians over --repeat runs; every run is a fresh process that loads its own generator, and the runs
are interleaved across max_batch values (1, 4, 8, 1, 4, 8, ...) so that a shared machine's drift spreads
over all of them.

The alternative a user would pick, transformers' own continuous batching (``model.generate_batch``), does not
run on a CPU in transformers 4.57: its paged cache sizes itself from CUDA memory (``get_available_memory``
subtracts from None). llama.cpp's server batches parallel slots too; llama-cpp-python compiles for ten
minutes, see bench/generation.py for its single-stream figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
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
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from bench.generation import DEFAULT_CACHE_DIR, build_prompts, tokenizer_counter  # noqa: E402
from bench.tables import fmt, markdown_table, percentile  # noqa: E402

WORKLOADS = ("natural", "fixed")


def run_streams(generator, prompts: list[dict], streams: int, options) -> dict[str, Any]:
    """``streams`` concurrent streams over ``prompts`` (cycled), started together; their timings and texts."""
    rows: list[int] = []
    generator.engine.on_step = rows.append
    results: list[dict | None] = [None] * streams
    start = threading.Barrier(streams + 1)

    def one(i: int) -> None:
        start.wait()
        began = time.perf_counter()
        stream = generator.stream(prompts[i % len(prompts)]["messages"], options)
        first, pieces = None, []
        for piece in stream:
            if first is None and piece:
                first = time.perf_counter()
            pieces.append(piece)
        ended = time.perf_counter()
        results[i] = {
            "ttft_s": None if first is None else first - began,
            "total_s": ended - began,
            "ended": ended,
            "tokens": stream.tokens,
            "text": "".join(pieces),
            "finish_reason": stream.finish_reason,
        }

    threads = [threading.Thread(target=one, args=(i,)) for i in range(streams)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    generator.engine.on_step = None
    done = [r for r in results if r is not None]
    wall = max(r["ended"] for r in done) - began
    tokens = sum(r["tokens"] for r in done)
    ttfts = [r["ttft_s"] for r in done if r["ttft_s"] is not None]
    return {
        "wall_s": wall,
        "tokens": tokens,
        "tok_s": tokens / wall if wall > 0 else None,
        "ttft_p50_s": percentile(ttfts, 50),
        "ttft_max_s": max(ttfts, default=None),
        "total_p50_s": percentile([r["total_s"] for r in done], 50),
        "rows_per_step": statistics.fmean(rows) if rows else None,
        "texts": [r["text"] for r in done],
    }


def median_run(runs: list[dict]) -> dict[str, Any]:
    """Each figure's median over the runs; the texts of the first run."""
    keys = [k for k in runs[0] if k != "texts"]
    out = {k: statistics.median([r[k] for r in runs if r[k] is not None]) if any(r[k] is not None for r in runs) else None for k in keys}
    out["texts"] = runs[0]["texts"]
    return out


def worker(args) -> dict[str, Any]:
    """One run of both workloads with max_batch ``args.one`` (this process loads its own generator)."""
    from assistant.compose import quiet_model_loading
    from generator.base import GenerationOptions
    from generator.local import SHIPPED_ADAPTER, LocalGenerator

    quiet_model_loading()
    prompts = json.loads(args.prompts.read_text(encoding="utf-8"))
    options = {
        "natural": GenerationOptions(max_new_tokens=args.max_new_tokens, timeout_s=3600),
        "fixed": GenerationOptions(max_new_tokens=args.fixed_tokens, timeout_s=3600),
    }
    generator = LocalGenerator("embedded", quantization="4bit", adapter=SHIPPED_ADAPTER, cache_dir=args.cache_dir, max_batch=args.one)
    generator.generate([{"role": "user", "content": "Hello"}], GenerationOptions(max_new_tokens=2))  # warm-up
    eos = generator.engine.eos_ids
    out = {}
    for workload in WORKLOADS:
        # The fixed workload ignores end of sequence: every answer runs to its token limit.
        generator.engine.eos_ids = eos if workload == "natural" else set()
        out[workload] = run_streams(generator, prompts, args.streams, options[workload])
    generator.close()
    return out


def run_worker(max_batch: int, prompts_file: Path, args) -> dict[str, Any]:
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--one",
        str(max_batch),
        "--prompts",
        str(prompts_file),
        "--streams",
        str(args.streams),
        "--max-new-tokens",
        str(args.max_new_tokens),
        "--fixed-tokens",
        str(args.fixed_tokens),
        "--cache-dir",
        str(args.cache_dir),
    ]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"max_batch={max_batch} failed: {done.stderr.strip()[-3000:] or done.returncode}")
    return json.loads(lines[-1])


def bench(args) -> dict[str, Any]:
    prompts = build_prompts(tokenizer_counter(args.cache_dir))
    runs: dict[int, list[dict]] = {m: [] for m in args.max_batch}
    with tempfile.TemporaryDirectory(prefix="bench-batching-") as tmp:
        prompts_file = Path(tmp) / "prompts.json"
        prompts_file.write_text(json.dumps(prompts), encoding="utf-8")
        # Interleaved (1, 4, 8, 1, 4, 8, ...): a shared machine's speed drifts, and drift then spreads over
        # every configuration instead of favouring whichever ran in a quiet minute.
        for repeat in range(args.repeat):
            for max_batch in args.max_batch:
                print(f"run {repeat + 1}/{args.repeat}: max_batch={max_batch} ...", file=sys.stderr, flush=True)
                runs[max_batch].append(run_worker(max_batch, prompts_file, args))
    results = {w: {str(m): median_run([r[w] for r in runs[m]]) for m in args.max_batch} for w in WORKLOADS}
    base = str(args.max_batch[0])
    for by_batch in results.values():
        reference = by_batch[base]
        for summary in by_batch.values():
            summary["throughput_x"] = summary["tok_s"] / reference["tok_s"] if summary["tok_s"] and reference["tok_s"] else None
            summary["same_texts"] = sum(a == b for a, b in zip(summary["texts"], reference["texts"]))
    return {
        "settings": {
            "streams": args.streams,
            "max_batch": args.max_batch,
            "max_new_tokens": args.max_new_tokens,
            "fixed_tokens": args.fixed_tokens,
            "repeat": args.repeat,
            "cpu_count": os.cpu_count(),
            "prompt_tokens": [p["prompt_tokens"] for p in prompts],
        },
        "results": results,
    }


HEADERS = (
    "workload",
    "max_batch",
    "wall s",
    "tokens",
    "tok/s",
    "x vs first",
    "TTFT p50 s",
    "TTFT max s",
    "stream p50 s",
    "rows/step",
    "same text",
)


def report(out: dict[str, Any]) -> None:
    s = out["settings"]
    print(
        f"{s['streams']} concurrent streams, prompts of {min(s['prompt_tokens'])}-{max(s['prompt_tokens'])} tokens, greedy; "
        f"natural: up to {s['max_new_tokens']} tokens, fixed: {s['fixed_tokens']} tokens each; median of {s['repeat']} run(s); "
        f"{s['cpu_count']} CPU(s)\n"
    )
    rows = []
    for workload, by_batch in out["results"].items():
        for max_batch, r in by_batch.items():
            same = f"{r['same_texts']}/{s['streams']}" if workload == "natural" else "-"
            rows.append(
                [
                    workload,
                    max_batch,
                    fmt(r["wall_s"], 1),
                    fmt(r["tokens"]),
                    fmt(r["tok_s"], 1),
                    fmt(r["throughput_x"]),
                    fmt(r["ttft_p50_s"]),
                    fmt(r["ttft_max_s"]),
                    fmt(r["total_p50_s"]),
                    fmt(r["rows_per_step"]),
                    same,
                ]
            )
    print(markdown_table(HEADERS, rows))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=8, help="concurrent streams (default 8)")
    parser.add_argument("--max-batch", default="1,4,8", help="comma-separated max_batch values; the first is the reference (default 1,4,8)")
    parser.add_argument("--max-new-tokens", type=int, default=64, help="token limit of the natural workload (default 64)")
    parser.add_argument("--fixed-tokens", type=int, default=128, help="tokens per answer in the fixed workload (default 128)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per configuration; medians are shown (default 3)")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR, help="converted model cache")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 streams, max_batch 1,2, 4 / 6 tokens, 1 run")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the settings and results to FILE")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--prompts", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.streams, args.max_batch, args.max_new_tokens, args.fixed_tokens, args.repeat = 2, "1,2", 4, 6, 1
    try:
        args.max_batch = [int(v) for v in str(args.max_batch).split(",")]
    except ValueError:
        parser.error(f"--max-batch takes comma-separated integers, got {args.max_batch!r}")
    if min(args.max_batch) < 1 or args.streams < 1 or args.max_new_tokens < 1 or args.fixed_tokens < 1 or args.repeat < 1:
        parser.error("--streams, --max-batch, --max-new-tokens, --fixed-tokens and --repeat must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.one:
        print(json.dumps(worker(args)))
        return 0
    started = time.perf_counter()
    out = bench(args)
    out["wall_s"] = time.perf_counter() - started
    report(out)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2), encoding="utf-8")
        print(f"results written to {args.json}")
    print(f"\nwall time {out['wall_s']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
