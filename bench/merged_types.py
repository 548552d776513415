"""Which GGML type to store the LoRA-merged weights in: decode speed against llama.cpp on the base 4-bit file, and
whether the adapter's answers survive the type.

    python bench/merged_types.py [--types Q8_0 Q5_1] [--repeat 2] [--tokens 48] [--json FILE]

The shipped adapter is merged into the embedded GGUF (generator/export.py: merge_into_gguf, the NF4 values plus
the adapter's update) once per type in --types (Q8_0, the shipped type, from the engine's cache; others into a
temporary folder); llama.cpp's reference is the base GGUF itself (Q4_1, no adapter). Each file answers
bench/generation.py's five grounded prompts through llama-cpp-python, greedy, --repeat times, in turn in one process
(files loaded one after the other).

Decode speed is measured at a fixed length: every answer runs --tokens tokens whatever the model would stop at
(end-of-sequence ignored), and tokens/s is (tokens - 1) over the time from the first token to the last, so a file
whose model stops early is not charged for its shorter answers (bench/generation.py times answers as they stop).
Reported per file: size, decode tokens/s p50, ratio to the base file's, and for each prompt whether the answer (cut at
end-of-sequence) is word for word the Q8_0 file's: what a type change would do to the shipped answers.

Why this exists: on a quiet machine decoding this 135M model is bound by reading the weights once a token, so the
8-bit merged file decodes at about 0.7x the 4-bit reference, and the adapter cannot be stored in 4 bits (its update
is smaller than a 4-bit step: the merged Q4_1 answered like the base model; README, "Answers at llama.cpp speed").
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.generation import DEFAULT_CACHE_DIR, build_prompts  # noqa: E402
from bench.tables import fmt, markdown_table  # noqa: E402

ADAPTER = REPO / "generator" / "adapters" / "smollm2-grounded"
THREADS = 2


def merged_file(base: Path, kind: str, folder: Path) -> Path:
    from generator.export import MERGED_TYPE, merge_into_gguf, merged_gguf

    if kind == MERGED_TYPE:
        return merged_gguf(base, ADAPTER, DEFAULT_CACHE_DIR)  # the engine's own file
    return merge_into_gguf(base, ADAPTER, folder / f"merged-{kind}.gguf", kind)


def run_file(path: Path, prompts: list[dict] | None, tokens: int, repeat: int) -> tuple[list[dict], dict]:
    """(the prompts, built with this file's tokenizer when None; {decode rates, answers})."""
    from llama_cpp import Llama
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    llm = Llama(model_path=str(path), n_ctx=2048, n_batch=256, n_threads=THREADS, flash_attn=False, verbose=False)
    special = {"eos_token": llm.token_eos(), "bos_token": llm.token_bos()}
    template = Jinja2ChatFormatter(
        template=str(llm.metadata["tokenizer.chat_template"]),
        add_generation_prompt=True,
        **{k: llm.detokenize([v], special=True).decode("utf-8", "replace") for k, v in special.items()},
    )

    def encode(messages: list[dict]) -> list[int]:
        return llm.tokenize(template(messages=messages).prompt.encode("utf-8"), add_bos=False, special=True)

    if prompts is None:
        prompts = build_prompts(lambda messages: len(encode(messages)))
    rates, answers = [], []
    for round_ in range(repeat):
        for prompt in prompts:
            generated: list[int] = []
            first = 0.0
            for token in llm.generate(encode(prompt["messages"]), reset=True, temp=0.0, top_k=0, top_p=1.0, min_p=0.0, repeat_penalty=1.0):
                if not generated:
                    first = time.perf_counter()
                generated.append(token)
                if len(generated) >= tokens:
                    break
            rates.append((tokens - 1) / (time.perf_counter() - first))
            if round_ == 0:
                eos = llm.token_eos()
                cut = generated.index(eos) if eos in generated else len(generated)
                answers.append(llm.detokenize(generated[:cut]).decode("utf-8", "replace"))
    llm.close()
    return prompts, {"decode_tok_s_p50": statistics.median(rates), "decode_tok_s": rates, "answers": answers}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--types", nargs="+", default=["Q8_0", "Q5_1"], help="GGML types of the merged weights (default Q8_0 Q5_1)")
    parser.add_argument("--repeat", type=int, default=2, help="runs of every prompt per file (default 2)")
    parser.add_argument("--tokens", type=int, default=48, help="tokens every answer runs to (default 48)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the figures and the answers to FILE")
    args = parser.parse_args(argv)
    if args.tokens < 2 or args.repeat < 1:
        parser.error("--tokens must be >= 2 and --repeat >= 1")
    if "Q8_0" not in args.types:
        args.types.insert(0, "Q8_0")  # what the answers are compared with
    from generator.model_files import embedded_gguf

    base = embedded_gguf()
    results: dict[str, dict] = {}
    prompts = None
    with tempfile.TemporaryDirectory(prefix="bench-merged-") as tmp:
        files = {f"merged {kind}": merged_file(base, kind, Path(tmp)) for kind in args.types}
        files["llama.cpp base (Q4_1, no adapter)"] = base
        for name, path in files.items():
            prompts, result = run_file(path, prompts, args.tokens, args.repeat)
            results[name] = {"file_mb": path.stat().st_size / 1e6, **result}
    reference = results["llama.cpp base (Q4_1, no adapter)"]["decode_tok_s_p50"]
    shipped = results["merged Q8_0"]["answers"]
    rows = []
    for name, r in results.items():
        same = sum(a == b for a, b in zip(r["answers"], shipped))
        r["ratio_to_base"] = r["decode_tok_s_p50"] / reference
        r["answers_as_q8_0"] = same
        rows.append([name, fmt(r["file_mb"], 1), fmt(r["decode_tok_s_p50"], 1), f"{r['ratio_to_base']:.2f}x", f"{same} of {len(shipped)}"])
    print(
        f"{len(shipped)} grounded prompts, {args.tokens} tokens each (end-of-sequence ignored), {args.repeat} repeat(s), {THREADS} threads"
    )
    print(markdown_table(("file", "MB", "decode tok/s p50", "vs base", "answers as Q8_0"), rows))
    for i in range(len(shipped)):
        print(f"\nprompt {i}:")
        for name, r in results.items():
            print(f"  {name}: {r['answers'][i][:140]!r}")
    if args.json:
        args.json.write_text(json.dumps({"settings": vars(args) | {"json": str(args.json)}, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
