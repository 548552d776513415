"""The finance arithmetic questions nobody tuned on, as an eval file.

    python scripts/build_finance_holdout.py --out /tmp/finance-holdout.jsonl
    assistant eval --suite-file /tmp/finance-holdout.jsonl --out /tmp/finance-holdout-report

The planner's rules were partly written after reading the failures of the finance suite
(data/eval/finance.jsonl; docs/computation.md), so its arithmetic figure is not a clean test. This writes
every other arithmetic question of the finance sample's reports (the held-out 20 % of TAT-QA the adapter
never saw; nothing the training used), in the finance suite's format and against the `finance` sample
collection, so the same `assistant eval` scores them end to end (numeric match is the figure to read).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import scripts.build_eval_sets as eval_sets  # noqa: E402


def holdout_items() -> list[dict]:
    suite = {item["id"] for item in eval_sets.read_jsonl(REPO / "data" / "eval" / "finance.jsonl")}
    sample = REPO / eval_sets.COLLECTIONS["finance"][0]
    quotas, per_report = eval_sets.FINANCE_QUOTAS, eval_sets.FINANCE_PER_REPORT
    # Every arithmetic question, no per-report cap: finance_items picks by these module settings.
    eval_sets.FINANCE_QUOTAS, eval_sets.FINANCE_PER_REPORT = {"arithmetic": 10**6}, 10**6
    try:
        items = eval_sets.finance_items(eval_sets.read_json(sample), eval_sets.stored_documents(sample), eval_sets.training_ids() | suite)
    finally:
        eval_sets.FINANCE_QUOTAS, eval_sets.FINANCE_PER_REPORT = quotas, per_report
    return items


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="the JSONL file to write")
    args = parser.parse_args(argv)
    items = holdout_items()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(eval_sets.jsonl(items))
    reports = len({item["report_uid"] for item in items})
    print(f"{len(items)} arithmetic questions of {reports} reports, none in data/eval/finance.jsonl: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
