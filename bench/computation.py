"""Arithmetic in code on TAT-QA: how many questions the planner (compute/planner.py) turns into a program, how
many of those programs give TAT-QA's answer, how often it fires on a question that is not arithmetic, and
what a computation costs.

    python bench/computation.py [--data ../shared/data] [--json FILE]

Every report of TAT-QA dev is read as `assistant ingest` reads it (ingest/loaders/tatqa.py: the same table
cells), and each question is planned and evaluated over that report's table, the way the assistant does once
retrieval has found the table (so this is the computation's own accuracy, retrieval aside; the eval suite's
finance figures include retrieval). The planner's rules were written looking at the first 80 % of reports
(the adapter's training share); the last 20 % (the held-out reports the eval's finance suite comes from) are
the test. A right answer is TAT-QA's, within the eval's numeric match (eval/metrics.py: numeric_match).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(REPO))

from bench.tables import fmt, markdown_table, percentile  # noqa: E402
from compute.computation import SourceTable, compute  # noqa: E402
from eval.metrics import numeric_match  # noqa: E402
from ingest.loaders.grid import read_grid  # noqa: E402
from training.tasks import tatqa_reference  # noqa: E402
from training.trainset import TATQA_TRAIN_SHARE  # noqa: E402

NUMERIC_TYPES = ("arithmetic", "count")
SCORED = ("arithmetic", "count", "span, numeric answer")  # the answer is one number: right or wrong


_ONE_NUMBER = re.compile(r"^\(?\s*[-–]?\s*[$€£]?\s*\(?[\d,]*\.?\d+\)?\s*%?\s*\)?$")


def _is_numeric(question: dict) -> bool:
    """An answer that is one number ("1,234", "$(168)", "13.0%"): what the eval's numeric match scores."""
    return question["answer_type"] in NUMERIC_TYPES or bool(_ONE_NUMBER.match(str(tatqa_reference(question)).strip()))


def measure(reports: list[dict], write: Any = None, planner: bool = True) -> dict[str, Any]:
    counts: dict[str, dict[str, int]] = {}
    times: list[float] = []
    for report in reports:
        text, table = read_grid(report["table"]["table"])
        sources = [SourceTable(table, ((1, text),))] if table else []
        for question in report["questions"]:
            kind = question["answer_type"]
            numeric = _is_numeric(question)
            if kind == "span":
                kind = "span, numeric answer" if numeric else "span, text answer"
            row = counts.setdefault(kind, {"questions": 0, "computed": 0, "right": 0, "failed": 0})
            row["questions"] += 1
            started = time.perf_counter()
            done = compute(question["question"], sources, write, planner=planner)
            times.append((time.perf_counter() - started) * 1000)
            if done is None:
                continue
            if done.value is None:
                row["failed"] += 1
                continue
            row["computed"] += 1
            if numeric:
                try:
                    row["right"] += numeric_match(done.text, tatqa_reference(question), question.get("scale") or "")
                except ValueError:
                    pass
    return {"by_type": counts, "p50_ms": percentile(times, 50), "p95_ms": percentile(times, 95), "n": len(times)}


class ProgramWriter:
    """The task adapter on the embedded base as compute()'s ``write``: greedy, 64 tokens, each reply cached
    (the planner-then-adapter run asks the same questions again) and timed."""

    def __init__(self, adapter: Path):
        from assistant import compose
        from core.config import Settings
        from generator.base import GenerationOptions

        compose.quiet_model_loading()
        self.generator = compose.generator(Settings(generator={"adapter": str(adapter)}))
        self.options = GenerationOptions(max_new_tokens=64, temperature=0.0)
        self.replies: dict[str, str] = {}
        self.ms: list[float] = []

    def __call__(self, messages: list[dict[str, str]]) -> str:
        key = json.dumps(messages)
        if key not in self.replies:
            started = time.perf_counter()
            self.replies[key] = self.generator.generate(messages, self.options)
            self.ms.append((time.perf_counter() - started) * 1000)
        return self.replies[key]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    parser.add_argument(
        "--adapter",
        type=Path,
        metavar="DIR",
        help="also measure programs written by this task adapter (assistant finetune --tasks) on the held-out reports, "
        "alone and after the planner",
    )
    args = parser.parse_args()
    reports = json.loads((args.data / "tatqa" / "tatqa_dataset_dev.json").read_text(encoding="utf-8"))
    cut = int(len(reports) * TATQA_TRAIN_SHARE)
    held_out = "held out (last 20 %)"
    results = {("rules written on (first 80 %)", "planner"): measure(reports[:cut]), (held_out, "planner"): measure(reports[cut:])}
    if args.adapter:
        write = ProgramWriter(args.adapter)
        results[(held_out, "adapter")] = measure(reports[cut:], write, planner=False)
        results[(held_out, "planner, then adapter")] = measure(reports[cut:], write)  # replies cached: no second generation
        print(
            f"adapter: {len(write.replies)} programs asked, p50 {percentile(write.ms, 50):.0f} ms, p95 {percentile(write.ms, 95):.0f} ms each"
        )
    rows = []
    for (split, who), result in results.items():
        for kind, c in sorted(result["by_type"].items()):
            n = c["questions"]
            right = fmt(c["right"] / n, 3) if kind in SCORED else "-"
            of_computed = fmt(c["right"] / c["computed"], 3) if c["computed"] and kind in SCORED else "-"
            rows.append([split, who, kind, n, fmt(c["computed"] / n, 3), right, of_computed, c["failed"]])
    print(
        markdown_table(
            ["reports", "program by", "answer type", "questions", "computed", "right (of all)", "right (of computed)", "failed in words"],
            rows,
        )
    )
    held = results[(held_out, "planner")]
    print(f"\ncompute() per question (plan + evaluate + text): p50 {held['p50_ms']:.2f} ms, p95 {held['p95_ms']:.2f} ms over {held['n']}")
    if args.json:
        args.json.write_text(json.dumps({f"{split}, {who}": r for (split, who), r in results.items()}, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
