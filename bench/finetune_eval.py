"""Held-out comparison of the base model against base + the shipped LoRA adapter.

    python bench/finetune_eval.py --data ../shared/data [--medquad 20 --pubmedqa 15 --tatqa 15] [--engine E ...] [--json FILE]

--engine transformers|llamacpp (repeatable; default: both where llama-cpp-python is installed) runs the rows on
that local engine: transformers (bitsandbytes NF4 + the adapter through peft) or llama.cpp (the adapter merged
into the GGUF, generator/export.py), so the two engines' figures can be compared on the same prompts.

Held-out examples come from the parts of the data that training never sees (training/trainset.py:
MedQuAD files of the sample collection, PubMedQA test PMIDs, the last 20 % of TAT-QA dev reports); the
script refuses to run if any of them is listed in the adapter's training.json. Both models get the same
prompts (the production system prompt and passage layout), greedy decoding, the same token limit.

Metrics (eval/metrics.py):
- token F1 against the reference answer (all examples; a refusal's reference is the refusal sentence);
- valid citation: share of answerable examples whose answer cites at least one given passage;
- cites gold: share of answerable examples whose answer cites a passage that holds the answer;
- supported: share of answer sentences (answerable examples) that cite a passage and whose content words
  are mostly found in the passages they cite;
- refusal accuracy on the MedQuAD items whose passages hold no answer.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from assistant import compose  # noqa: E402
from core.citations import cited_numbers  # noqa: E402
from core.config import Settings  # noqa: E402
from eval.metrics import has_valid_citation, supported_share, token_f1  # noqa: E402
from generator.base import GenerationOptions  # noqa: E402
from generator.local import SHIPPED_ADAPTER, LocalGenerator  # noqa: E402
from guardrails.output_checks import is_refusal  # noqa: E402
from training.trainset import Example, build_examples  # noqa: E402


def training_ids(adapter: Path) -> set[str]:
    card = adapter / "training.json"
    return set(json.loads(card.read_text()).get("example_ids", [])) if card.exists() else set()


def score(example: Example, answer: str) -> dict:
    row = {
        "id": example.id,
        "source": example.source,
        "answer": answer,
        "reference": example.reference,
        "f1": token_f1(answer, example.reference),
    }
    if example.gold:
        passages = [p.text for p in example.passages]
        row["valid_citation"] = float(has_valid_citation(answer, len(passages)))
        row["gold_citation"] = float(bool(set(cited_numbers(answer, len(passages))) & set(example.gold)))
        row["supported"] = supported_share(answer, passages)
    else:
        row["refused"] = float(is_refusal(answer))
    return row


def mean(rows: list[dict], key: str) -> float | None:
    values = [r[key] for r in rows if key in r]
    return statistics.fmean(values) if values else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument(
        "--adapter", type=Path, action="append", help="an adapter to compare with the base (repeatable; default: the shipped one)"
    )
    parser.add_argument("--medquad", type=int, default=20)
    parser.add_argument("--pubmedqa", type=int, default=15)
    parser.add_argument("--tatqa", type=int, default=15)
    parser.add_argument("--engine", action="append", choices=["transformers", "llamacpp"], help="local engine(s) to run the rows on")
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="write every answer and score here")
    args = parser.parse_args()
    if not args.data.exists():
        sys.exit(f"skipped: {args.data} not found (the shared data folder with medquad/, pubmedqa/, tatqa/)")
    adapters = args.adapter or [SHIPPED_ADAPTER]
    for adapter in adapters:
        if not (adapter / "adapter_config.json").exists():
            sys.exit(f"no adapter at {adapter}; train one with `assistant finetune --out {adapter}`")

    examples = build_examples(args.data, "heldout", medquad=args.medquad, pubmedqa=args.pubmedqa, tatqa=args.tatqa, seed=args.seed)
    for adapter in adapters:
        leaked = training_ids(adapter) & {e.id for e in examples}
        if leaked:
            sys.exit(f"refusing to evaluate: {len(leaked)} held-out examples were used to train {adapter}, e.g. {sorted(leaked)[:3]}")
    settings = Settings()
    compose.quiet_model_loading()
    options = GenerationOptions(max_new_tokens=args.max_new_tokens, timeout_s=600)
    results: dict[str, list[dict]] = {}
    from generator.llamacpp import LlamaCppGenerator, available

    engines = args.engine or (["transformers", "llamacpp"] if available() else ["transformers"])
    configs = [
        (f"{label} ({engine})", engine, adapter)
        for engine in engines
        for label, adapter in [("base 4-bit", None)]
        + [(f"+ LoRA {a.name}" if len(adapters) > 1 else "base 4-bit + LoRA", a) for a in adapters]
    ]
    for label, engine, adapter in configs:
        if engine == "llamacpp":
            generator = LlamaCppGenerator(settings.generator.model, adapter=adapter, cache_dir=settings.generator.cache_dir)
        else:
            generator = LocalGenerator(
                settings.generator.model, quantization="4bit", adapter=adapter, cache_dir=settings.generator.cache_dir
            )
        rows = []
        started = time.perf_counter()
        for i, example in enumerate(examples, start=1):
            answer = generator.generate(example.messages(), options).strip()
            rows.append(score(example, answer))
            print(f"\r{label}: {i}/{len(examples)} ({time.perf_counter() - started:.0f} s)", end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
        results[label] = rows
        del generator

    counts = {s: sum(e.source == s for e in examples) for s in ("medquad", "pubmedqa", "tatqa")}
    unanswerable = sum(not e.gold for e in examples)
    print(
        f"\nheld-out examples: {len(examples)} {counts}, {unanswerable} without an answer in the passages; greedy, max {args.max_new_tokens} new tokens\n"
    )
    header = f"{'model':<40} {'token F1':>9} {'valid citation':>15} {'cites gold':>11} {'supported':>10} {'refusal acc.':>13}"
    print(header)
    print("-" * len(header))
    summary = {}
    for label, rows in results.items():
        summary[label] = {key: mean(rows, key) for key in ("f1", "valid_citation", "gold_citation", "supported", "refused")}
        s = summary[label]
        fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
        print(
            f"{label:<40} {fmt(s['f1']):>9} {fmt(s['valid_citation']):>15} {fmt(s['gold_citation']):>11} {fmt(s['supported']):>10} {fmt(s['refused']):>13}"
        )
    print("\nper source, token F1:")
    for label, rows in results.items():
        print(f"  {label:<40} " + "  ".join(f"{src} {mean([r for r in rows if r['source'] == src], 'f1') or 0:.3f}" for src in counts))
    if args.json:
        args.json.write_text(
            json.dumps({"examples": counts, "max_new_tokens": args.max_new_tokens, "summary": summary, "results": results}, indent=2)
        )


if __name__ == "__main__":
    main()
