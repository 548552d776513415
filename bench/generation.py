"""Generation benchmark: the embedded SmolLM2-135M-Instruct on CPU, float32 vs 4-bit vs 4-bit + LoRA on the
transformers engine, the LoRA-tuned model on the llama.cpp engine (``llamacpp+lora``: the adapter merged into
the GGUF, generator/export.py; the default where llama-cpp-python is installed), with llama.cpp on the very
same GGUF file, without the adapter, as the speed reference.

    python bench/generation.py [--max-new-tokens 64] [--repeat 3] [--rounds 3] [--json FILE]
    python bench/generation.py --quick            # smoke run: 1 prompt, 4 tokens, 4-bit only

Every configuration answers the same grounded prompts: build_prompt() over a question and 3-5 passages from the
bundled samples (MedQuAD question/answer files, TAT-QA reports), about 500-900 prompt tokens each, greedy, at
most --max-new-tokens tokens (a prompt may end earlier at end-of-sequence: the tokens actually generated are
reported). Each configuration runs in its own process (this script with --one CONFIG), so its peak RSS is its
own. Per configuration:

- load s: the generator's construction (from_pretrained, quantization, adapter; for llama.cpp the merged file's
  load, the one-time export done before), cached model files;
- memory MB: ``memory_bytes()`` (transformers' get_memory_footprint: parameters + buffers); for llama.cpp the
  GGUF file size;
- peak RSS MB: the process's peak RSS (VmHWM) at the end; RSS delta MB: that minus the peak after the
  imports, before the model load (so the cost of the model and of generating with it);
- TTFT: from calling stream() to the first text piece (prompt encoding and prefill included). The streamer
  releases text a word at a time, so the first piece may hold a few tokens; decode tok/s counts only the
  tokens after the first piece (its tokens measured with the tokenizer) over the time after it;
- total s: stream() to the end of the stream.

After one short warm-up generation, every prompt runs --repeat times; the table shows p50 (and the JSON p95)
over all prompts x repeats. --rounds N runs all configurations N times, interleaved (A B C A B C), so a drift of
a shared machine's speed falls on all of them; figures pool the rounds, ratios are the median of the rounds'. The shipped LoRA adapter row is skipped with a note while the adapter is absent
(e.g. training has not finished). llama.cpp runs when llama-cpp-python is installed
(``make install`` builds it; about 10 minutes); the ratios ours / llama.cpp compare decode speed, TTFT and peak
RSS. --runtime-lora adds llama.cpp applying the adapter unmerged, at run time (its own LoRA support, the adapter
converted by generator/export.py: lora_gguf): what merging saves. --json FILE writes every raw number.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from bench.tables import fmt, markdown_table, percentile  # noqa: E402,F401  (REPO is on the path now)

MEDQUAD = REPO / "data" / "samples" / "medical" / "medquad"
TATQA = REPO / "data" / "samples" / "finance" / "tatqa_sample.json"
DEFAULT_CACHE_DIR = Path.home() / ".cache" / "domain-assistant" / "models"
PROMPT_BUDGET = 900  # prompt tokens, chat template included
PASSAGE_CHARS = 900  # passages are cut (at a sentence end) to about this many characters: several fit the budget
MEDQUAD_PROMPTS = 3
TATQA_PROMPTS = 2
CONFIGS: dict[str, dict[str, Any]] = {
    "float32": {"engine": "transformers", "quantization": "none", "adapter": False},
    "4bit": {"engine": "transformers", "quantization": "4bit", "adapter": False},
    "4bit+lora": {"engine": "transformers", "quantization": "4bit", "adapter": True},
    # the default where llama-cpp-python is installed: the adapter merged into the GGUF (generator/export.py)
    "llamacpp+lora": {"engine": "llamacpp", "quantization": "4bit", "adapter": True},
}
LLAMA = "llama.cpp"
# llama.cpp applying the adapter at run time (unmerged, its own LoRA support): what merging saves (--runtime-lora)
LLAMA_LORA = "llama.cpp+runtime-lora"
LLAMA_SKIPPED = (
    "llama.cpp reference skipped: llama-cpp-python is not installed "
    "(`pip install llama-cpp-python`; it compiles llama.cpp, about 10 minutes)"
)


# ---------------------------------------------------------------------------------------------- statistics


def summarize(runs: list[dict]) -> dict[str, Any]:
    """p50/p95 of TTFT, decode speed and total time over the runs (None where no run has the value)."""

    def values(key: str) -> list[float]:
        return [r[key] for r in runs if r.get(key) is not None]

    out: dict[str, Any] = {}
    for key in ("ttft_s", "decode_tok_s", "total_s"):
        out[f"{key}_p50"] = percentile(values(key), 50)
        out[f"{key}_p95"] = percentile(values(key), 95)
    tokens = values("tokens")
    out["tokens_p50"] = percentile(tokens, 50)
    out["tokens_total"] = int(sum(tokens))
    out["runs"] = len(runs)
    return out


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


# ---------------------------------------------------------------------------------------------- printing


TABLE_HEADERS = ("config", "load s", "memory MB", "peak RSS MB", "RSS delta MB", "TTFT p50 s", "decode tok/s p50", "tokens total")


def table_row(name: str, result: dict) -> list[str]:
    if result.get("status") != "ok":
        return [name, *(["-"] * (len(TABLE_HEADERS) - 2)), result.get("status", "?")]
    s = result["summary"]
    return [
        name,
        fmt(result["load_s"]),
        fmt(result["memory_bytes"] / 2**20, 1),
        fmt(result["peak_rss_mb"], 0),
        fmt(result["rss_delta_mb"], 0),
        fmt(s["ttft_s_p50"], 3),
        fmt(s["decode_tok_s_p50"], 1),
        fmt(s["tokens_total"]),
    ]


# ---------------------------------------------------------------------------------------------- prompts


def cut_text(text: str, limit: int = PASSAGE_CHARS) -> str:
    """``text`` (whitespace collapsed) cut to at most ``limit`` characters, at the last sentence end if any."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    head = text[:limit]
    end = head.rfind(". ")
    return head[: end + 1] if end > limit // 3 else head.rstrip() + " ..."


def _evenly(items: Sequence, n: int) -> list:
    return list(items) if n >= len(items) else [items[i * len(items) // n] for i in range(n)]


def sample_questions() -> list[tuple[str, str, list]]:
    """(id, question, passages) from the bundled samples: MedQuAD files with at least 3 question/answer
    pairs (the question's own answer first, then the file's other answers), and TAT-QA reports (a question,
    then the report's table and paragraphs)."""
    from generator.prompt import Passage
    from ingest.loaders import load_file
    from ingest.loaders.tatqa import report_documents

    items: list[tuple[str, str, list]] = []
    files = []
    for path in sorted(MEDQUAD.glob("*/*.xml")):
        docs = load_file(path)
        if len(docs) >= 3:
            files.append((path, docs))
    for path, docs in _evenly(files, MEDQUAD_PROMPTS):
        passages = [
            Passage(f"{d.metadata.get('focus') or d.title} ({d.metadata.get('source_name', 'MedQuAD')})", cut_text(d.text))
            for d in docs[:5]
        ]
        items.append((f"medquad/{path.stem}", docs[0].title, passages))
    reports = [r for r in json.loads(TATQA.read_text(encoding="utf-8")) if r.get("questions") and len(r.get("paragraphs", [])) >= 2]
    for report in _evenly(reports, TATQA_PROMPTS):
        docs = report_documents(report)
        passages = [
            Passage(d.title, cut_text(d.text, 2 * PASSAGE_CHARS if d.metadata.get("kind") == "table" else PASSAGE_CHARS)) for d in docs[:5]
        ]
        items.append((f"tatqa/{str(report['table'].get('uid', ''))[:8]}", report["questions"][0]["question"], passages))
    return items


def build_prompts(count_tokens, limit: int = 0) -> list[dict]:
    """The grounded prompts every configuration answers: [{id, question, messages, prompt_tokens, passages}]."""
    from generator.prompt import build_prompt

    prompts = []
    for pid, question, passages in sample_questions():
        prompt = build_prompt(question, passages, count_tokens=count_tokens, budget=PROMPT_BUDGET)
        prompts.append(
            {
                "id": pid,
                "question": question,
                "messages": prompt.messages,
                "prompt_tokens": count_tokens(prompt.messages),
                "passages": len(prompt.included),
            }
        )
    if limit:
        prompts = prompts[:limit]
    return prompts


def tokenizer_counter(cache_dir: Path):
    """count_tokens(messages) with the embedded model's tokenizer and chat template (as LocalGenerator counts)."""
    from transformers import AutoTokenizer

    from generator.model_files import resolve_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_model("embedded", cache_dir)[0])

    def count(messages) -> int:
        return len(tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True)["input_ids"])

    return count


# ---------------------------------------------------------------------------------------------- workers


def _peak_rss_mb() -> float:
    """This process's peak RSS. VmHWM where Linux has it: ru_maxrss survives exec, so a worker forked from
    this script (about 500 MB once the tokenizer is loaded) would report at least that much, whatever it used."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def timed_stream(pieces: Iterable[str], started: float, tokens_of, total_tokens) -> dict:
    """Consume a stream of text pieces and time it. ``tokens_of(piece)`` estimates the tokens in the first
    piece; ``total_tokens()`` (called at the end) gives the tokens generated."""
    first_at = None
    first_tokens = 0
    chars = 0
    for piece in pieces:
        if first_at is None and piece:
            first_at = time.perf_counter()
            first_tokens = max(1, tokens_of(piece))
        chars += len(piece)
    ended = time.perf_counter()
    tokens = int(total_tokens())
    after = tokens - first_tokens
    decode = after / (ended - first_at) if first_at is not None and after > 0 and ended > first_at else None
    return {
        "ttft_s": None if first_at is None else first_at - started,
        "decode_tok_s": decode,
        "total_s": ended - started,
        "tokens": tokens,
        "first_piece_tokens": first_tokens,
        "chars": chars,
    }


def worker_ours(config: str, prompts: list[dict], args) -> dict:
    from generator.base import GenerationOptions

    spec = CONFIGS[config]
    adapter = args.adapter if spec["adapter"] else None
    threads = args.threads or os.cpu_count()
    if spec["engine"] == "llamacpp":
        # torch and transformers stay out of this process, as the engine keeps them out (its peak RSS is its own)
        from generator.llamacpp import LlamaCppGenerator

        before = _peak_rss_mb()
        started = time.perf_counter()
        # the merged file is exported before the bench (bench()), so this is the load a user sees every start
        gen: Any = LlamaCppGenerator("embedded", adapter=adapter, cache_dir=args.cache_dir, threads=args.threads or None)
    else:
        import torch

        from assistant.compose import quiet_model_loading
        from generator.local import LocalGenerator

        if args.threads:
            torch.set_num_threads(args.threads)
        threads = torch.get_num_threads()
        quiet_model_loading()
        before = _peak_rss_mb()
        started = time.perf_counter()
        gen = LocalGenerator("embedded", quantization=spec["quantization"], adapter=adapter, cache_dir=args.cache_dir)
    load_s = time.perf_counter() - started
    gen.generate([{"role": "user", "content": "Hello"}], GenerationOptions(max_new_tokens=2))  # warm-up
    options = GenerationOptions(max_new_tokens=args.max_new_tokens, temperature=0.0, timeout_s=3600)
    runs = []
    for repeat in range(args.repeat):
        for prompt in prompts:
            t0 = time.perf_counter()
            stream = gen.stream(prompt["messages"], options)
            run = timed_stream(stream, t0, gen.count_tokens, lambda stream=stream: stream.tokens)
            runs.append(
                {
                    "prompt": prompt["id"],
                    "repeat": repeat,
                    "prompt_tokens": gen.prompt_tokens(prompt["messages"]),
                    "finish_reason": stream.finish_reason,
                    **run,
                }
            )
    peak = _peak_rss_mb()
    return {
        "status": "ok",
        "name": gen.name,
        "load_s": load_s,
        "memory_bytes": gen.memory_bytes(),
        "memory_source": "GGUF file size" if spec["engine"] == "llamacpp" else "get_memory_footprint",
        "rss_before_load_mb": before,
        "peak_rss_mb": peak,
        "rss_delta_mb": peak - before,
        "threads": threads,
        "runs": runs,
        "summary": summarize(runs),
    }


def worker_llama(prompts: list[dict], args, lora: Path | None = None) -> dict:
    from llama_cpp import Llama

    from generator.model_files import embedded_gguf

    gguf = embedded_gguf()
    threads = args.threads or os.cpu_count()
    before = _peak_rss_mb()
    started = time.perf_counter()
    llm = Llama(model_path=str(gguf), n_ctx=2048, n_threads=threads, verbose=False, **({"lora_path": str(lora)} if lora else {}))
    load_s = time.perf_counter() - started
    llm.create_chat_completion([{"role": "user", "content": "Hello"}], max_tokens=2, temperature=0)  # warm-up
    runs = []
    for repeat in range(args.repeat):
        for prompt in prompts:
            count = {"tokens": 0}

            def pieces(chunks, count=count):
                for chunk in chunks:
                    text = (chunk["choices"][0].get("delta") or {}).get("content") or ""
                    if text:
                        count["tokens"] += 1  # llama.cpp streams one token per chunk
                        yield text

            t0 = time.perf_counter()
            chunks = llm.create_chat_completion(prompt["messages"], max_tokens=args.max_new_tokens, temperature=0, stream=True)
            run = timed_stream(pieces(chunks), t0, lambda piece: 1, lambda count=count: count["tokens"])
            runs.append({"prompt": prompt["id"], "repeat": repeat, "prompt_tokens": prompt["prompt_tokens"], **run})
    peak = _peak_rss_mb()
    return {
        "status": "ok",
        "name": f"llama.cpp {gguf.name}" + (f" + {lora.name} at run time" if lora else ""),
        "load_s": load_s,
        "memory_bytes": gguf.stat().st_size,
        "memory_source": "GGUF file size",
        "rss_before_load_mb": before,
        "peak_rss_mb": peak,
        "rss_delta_mb": peak - before,
        "threads": threads,
        "runs": runs,
        "summary": summarize(runs),
    }


def run_worker(config: str, prompts_file: Path, args) -> dict:
    """This script with --one CONFIG in a fresh process; its last stdout line is its JSON result."""
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--one",
        config,
        "--prompts",
        str(prompts_file),
        "--max-new-tokens",
        str(args.max_new_tokens),
        "--repeat",
        str(args.repeat),
        "--cache-dir",
        str(args.cache_dir),
    ]
    if args.threads:
        command += ["--threads", str(args.threads)]
    if args.adapter:
        command += ["--adapter", str(args.adapter)]
    if config == LLAMA_LORA:
        command += ["--lora-file", str(args.lora_file)]
    out = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    lines = out.stdout.strip().splitlines()
    if out.returncode != 0 or not lines:
        return {"status": "failed", "note": out.stderr.strip()[-3000:] or f"exit status {out.returncode}"}
    return json.loads(lines[-1])


# ---------------------------------------------------------------------------------------------- main


def adapter_missing(adapter: Path | None) -> str | None:
    """Why the LoRA row cannot run, or None when it can."""
    if adapter is None:
        return "no adapter path"
    if not (adapter / "adapter_config.json").exists():
        return f"no LoRA adapter at {adapter} yet (train it with `assistant finetune`, or pass --adapter PATH)"
    return None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-new-tokens", type=int, default=64, help="greedy tokens per answer at most (default 64)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of every prompt per configuration (default 3)")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds of all configurations (default 1)")
    parser.add_argument("--prompts-limit", type=int, default=0, help="use only the first N prompts (0: all 5)")
    parser.add_argument("--configs", default=",".join(CONFIGS), help=f"comma-separated subset of {', '.join(CONFIGS)}")
    parser.add_argument("--adapter", type=Path, default=None, help="LoRA adapter for 4bit+lora (default: the shipped one)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for torch and llama.cpp (0: their defaults)")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR, help="converted model cache")
    parser.add_argument("--skip-llamacpp", action="store_true")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 prompt, 4 tokens, 1 repeat, 4bit only, no llama.cpp")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write every raw number to FILE")
    parser.add_argument("--runtime-lora", action="store_true", help=f"also run {LLAMA_LORA}: llama.cpp applying the adapter unmerged")
    parser.add_argument("--one", choices=[*CONFIGS, LLAMA, LLAMA_LORA], help=argparse.SUPPRESS)
    parser.add_argument("--lora-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--prompts", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.max_new_tokens, args.repeat, args.prompts_limit, args.configs, args.skip_llamacpp = 4, 1, 1, "4bit", True
    if args.max_new_tokens < 1 or args.repeat < 1 or args.rounds < 1:
        parser.error("--max-new-tokens, --repeat and --rounds must be at least 1")
    unknown = [c for c in args.configs.split(",") if c not in CONFIGS]
    if unknown:
        parser.error(f"unknown config(s) {', '.join(unknown)}; choose from {', '.join(CONFIGS)}")
    return args


def bench(args) -> dict:
    from generator.local import SHIPPED_ADAPTER

    args.adapter = args.adapter or SHIPPED_ADAPTER
    prompts = build_prompts(tokenizer_counter(args.cache_dir), args.prompts_limit)
    results: dict[str, dict] = {}
    notes: list[str] = []
    order: list[str] = []
    for config in args.configs.split(","):
        missing = adapter_missing(args.adapter) if CONFIGS[config]["adapter"] else None
        if CONFIGS[config]["engine"] == "llamacpp" and importlib.util.find_spec("llama_cpp") is None:
            missing = "llama-cpp-python is not installed"
        if missing:
            results[config] = {"status": "skipped", "note": missing}
            notes.append(f"{config} skipped: {missing}")
        else:
            order.append(config)
    if args.skip_llamacpp:
        notes.append("llama.cpp reference skipped (--skip-llamacpp or --quick)")
    elif importlib.util.find_spec("llama_cpp") is None:
        notes.append(LLAMA_SKIPPED)
    else:
        order.append(LLAMA)
        if args.runtime_lora:
            order.append(LLAMA_LORA)
    if any(CONFIGS.get(c, {}).get("engine") == "llamacpp" and CONFIGS[c]["adapter"] for c in order):
        from generator.export import merged_gguf
        from generator.model_files import embedded_gguf

        merged_gguf(embedded_gguf(), args.adapter, args.cache_dir)  # the one-time export, outside the timed load
    # Rounds interleave the configurations (A B C A B C ...): a drift of the shared machine's speed hits all of
    # them alike; a configuration's figures pool its rounds' runs, and a ratio is the median of its rounds'.
    rounds: list[dict[str, dict]] = []
    with tempfile.TemporaryDirectory(prefix="bench-generation-") as tmp:
        prompts_file = Path(tmp) / "prompts.json"
        prompts_file.write_text(json.dumps(prompts), encoding="utf-8")
        if LLAMA_LORA in order:
            from generator.export import lora_gguf
            from generator.model_files import embedded_gguf

            args.lora_file = lora_gguf(embedded_gguf(), args.adapter, Path(tmp) / "lora.gguf")
        for number in range(args.rounds):
            done: dict[str, dict] = {}
            for config in order:
                print(f"round {number + 1}/{args.rounds}: running {config} ...", file=sys.stderr, flush=True)
                done[config] = run_worker(config, prompts_file, args)
            rounds.append(done)
    for config in order:
        runs = [r[config] for r in rounds]
        failed = next((r for r in runs if r["status"] != "ok"), None)
        if failed:
            results[config] = failed
            notes.append(f"{config} failed: {failed['note']}")
            continue
        pooled = [run for r in runs for run in r["runs"]]
        results[config] = {
            **runs[0],
            "load_s": statistics.median(r["load_s"] for r in runs),
            "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in runs),
            "rss_delta_mb": statistics.median(r["rss_delta_mb"] for r in runs),
            "runs": pooled,
            "summary": summarize(pooled),
            "rounds": [r["summary"] for r in runs],
        }

    def ok(name: str) -> dict | None:
        return results[name] if results.get(name, {}).get("status") == "ok" else None

    ratios: dict[str, Any] = {}
    if ok("float32") and ok("4bit"):
        ratios["memory_float32_over_4bit"] = ratio(results["float32"]["memory_bytes"], results["4bit"]["memory_bytes"])
    if ok(LLAMA):
        for name in [*CONFIGS, LLAMA_LORA]:
            if ok(name):
                pairs = [(r[name], r[LLAMA]) for r in rounds]
                ratios[f"{name}_over_llamacpp"] = {
                    key: _median([ratio(ours["summary"][f"{key}_p50"], ref["summary"][f"{key}_p50"]) for ours, ref in pairs])
                    for key in ("decode_tok_s", "ttft_s")
                } | {"peak_rss_mb": _median([ratio(ours["peak_rss_mb"], ref["peak_rss_mb"]) for ours, ref in pairs])}
    return {
        "settings": {
            "max_new_tokens": args.max_new_tokens,
            "repeat": args.repeat,
            "rounds": args.rounds,
            "threads": args.threads or None,
            "cpu_count": os.cpu_count(),
            "quick": args.quick,
            "adapter": str(args.adapter),
            "prompt_budget": PROMPT_BUDGET,
            "prompts": [{k: p[k] for k in ("id", "question", "prompt_tokens", "passages")} for p in prompts],
        },
        "configs": results,
        "ratios": ratios,
        "notes": notes,
    }


def report(out: dict) -> None:
    settings, results, ratios = out["settings"], out["configs"], out["ratios"]
    tokens = [p["prompt_tokens"] for p in settings["prompts"]]
    print(
        f"{len(tokens)} grounded prompt(s), {min(tokens)}-{max(tokens)} prompt tokens; greedy, max {settings['max_new_tokens']} "
        f"new tokens; {settings['repeat']} repeat(s) x {settings.get('rounds', 1)} interleaved round(s); p50 over prompts x repeats x rounds, "
        f"ratios: median of the rounds'; {settings['cpu_count']} CPU(s)\n"
    )
    print(markdown_table(TABLE_HEADERS, [table_row(name, r) for name, r in results.items()]))
    print()
    if "memory_float32_over_4bit" in ratios:
        print(f"memory float32 / 4-bit: {ratios['memory_float32_over_4bit']:.2f}x")
    for name in [*CONFIGS, LLAMA_LORA]:
        r = ratios.get(f"{name}_over_llamacpp")
        if r:
            print(
                f"{name} / llama.cpp: decode tok/s {fmt(r['decode_tok_s'])}x (>1: faster), TTFT {fmt(r['ttft_s'])}x (>1: slower), "
                f"peak RSS {fmt(r['peak_rss_mb'])}x"
            )
    for note in out["notes"]:
        print(f"note: {note}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.one:
        prompts = json.loads(args.prompts.read_text(encoding="utf-8"))
        if args.one in (LLAMA, LLAMA_LORA):
            result = worker_llama(prompts, args, args.lora_file if args.one == LLAMA_LORA else None)
        else:
            result = worker_ours(args.one, prompts, args)
        print(json.dumps(result))
        return 0
    from core.errors import UserError

    started = time.perf_counter()
    try:
        out = bench(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out["wall_s"] = time.perf_counter() - started
    report(out)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2), encoding="utf-8")
        print(f"raw numbers written to {args.json}")
    print(f"\nwall time {out['wall_s']:.1f} s")
    return 1 if any(r.get("status") == "failed" for r in out["configs"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
