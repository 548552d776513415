"""An answer-quality eval set from financial-qa-10k (2023 10-K passages), written outside the repository.

    python scripts/build_finqa_eval.py --shared ../shared/data --out /tmp/finqa-eval [--questions 60]
    ASSISTANT_INDEX_DIR=/tmp/finqa-index assistant ingest /tmp/finqa-eval/finqa-10k.jsonl --collection finqa-10k
    export ASSISTANT_GUARDRAILS__PACKS='{"finqa-10k": ["common", "finance"]}'  # the finance rails, as for `finance`
    ASSISTANT_INDEX_DIR=/tmp/finqa-index assistant eval --suite-file /tmp/finqa-eval/finqa.jsonl --out /tmp/finqa-report

financial-qa-10k has no declared licence (../shared/data/README.md): it may be used for evaluation but never
copied into the repository, so this script writes the set and the corpus where it is told, and the shipped
eval sets stay TAT-QA's. The corpus is every distinct context of the CSV (6,757 passages of 69 companies), one
BEIR record each with the company's ticker and filing as metadata; each question is asked of its own company's
passages (the item's ``filters``, as the finance suite asks each TAT-QA question of its own report), so
retrieval still has to pick the right passage among that company's ~100. The questions are evenly spaced over
the file (deterministic). Each item has the published answer as its reference; when that answer states one
amount or percentage (a year is not one), the item also has its value and scale, so numeric match is scored.
The items are written in the finance suite's format (``answer_type`` "sentence") to ``finqa.jsonl``, so
`assistant eval --suite-file DIR/finqa.jsonl` scores answer quality, citations, faithfulness, numeric match and
numbers stated unshown, as the suite "finqa".
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from eval.metrics import numbers_in_text  # noqa: E402
from scripts.build_eval_sets import stored_documents  # noqa: E402
from training.chains import evenly_spaced  # noqa: E402

COLLECTION = "finqa-10k"
DEFAULT_SHARED = REPO.parent / "shared" / "data"
# "June 6, 2007": the day of a date is not an amount.
_DATE = re.compile(r"\b(?:January|February|March|April|May|June|July|August|September|October|November|December)\s+\d{1,2}\b")
_SCALES = {"thousand": "thousand", "million": "million", "billion": "billion", "%": "percent"}


def reference_value(answer: str) -> tuple[float, str] | None:
    """The one amount or percentage the answer states, with its scale; None when it states none or several
    different ones (a bare integer from 1900 to 2100 is taken for a year, a date's day is not an amount)."""
    values = []
    for value, unit, _signed, _parenthesised in numbers_in_text(_DATE.sub("", answer)):
        if not unit and value.is_integer() and 1900 <= value <= 2100:
            continue
        if unit and unit not in _SCALES:
            continue
        values.append((value, _SCALES.get(unit, "")))
    distinct = set(values)
    return values[0] if len(distinct) == 1 else None


def read_rows(path: Path) -> list[dict]:
    """The CSV's rows that have a question, an answer and a context (two published rows lack one)."""
    with open(path, encoding="utf-8", newline="") as handle:
        rows = [{k: (v or "").strip() for k, v in row.items()} for row in csv.DictReader(handle)]
    return [r for r in rows if r.get("question") and r.get("answer") and r.get("context")]


def build(shared: Path, out: Path, questions: int) -> dict:
    csv_path = shared / "financial-qa-10k" / "Financial-QA-10k.csv"
    if not csv_path.is_file():
        raise SystemExit(f"financial-qa-10k not found: {csv_path} (pass --shared PATH to the shared data folder)")
    rows = read_rows(csv_path)
    context_ids: dict[str, str] = {}
    corpus: list[dict] = []
    for row in rows:
        if row["context"] not in context_ids:
            context_ids[row["context"]] = f"ctx-{len(context_ids):05d}"
            corpus.append(
                {
                    "_id": context_ids[row["context"]],
                    "title": f"{row['ticker']} {row['filing']}".strip(),
                    "text": row["context"],
                    "metadata": {"ticker": row["ticker"], "filing": row["filing"]},
                }
            )
    items = []
    for row in evenly_spaced(rows, questions):
        context_id = context_ids[row["context"]]
        value = reference_value(row["answer"])
        items.append(
            {
                "id": f"finqa:{context_id}:{len(items):03d}",
                "suite": "finqa",
                "collection": COLLECTION,
                "question": row["question"],
                "reference": row["answer"],
                "answerable": True,
                "gold": [{"key": f"finqa:{context_id}", "metadata": {"beir_id": context_id}, "title": row["ticker"]}],
                "source": "financial-qa-10k",
                "answer_type": "sentence",
                "reference_value": value[0] if value else None,
                "scale": value[1] if value else "",
                "filters": {"ticker": row["ticker"]},
                "entity": row["ticker"],
            }
        )
    out.mkdir(parents=True, exist_ok=True)
    corpus_path = out / f"{COLLECTION}.jsonl"
    with open(corpus_path, "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in corpus)
    # The ids `assistant ingest` gives these passages (content hashes): citations are scored by document id.
    ids = {doc.metadata["beir_id"]: doc.id for doc, _ in stored_documents(corpus_path)}
    for item in items:
        for gold in item["gold"]:
            gold["document_id"] = ids[gold["metadata"]["beir_id"]]
    with open(out / "finqa.jsonl", "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(i, ensure_ascii=False) + "\n" for i in items)
    return {"items": len(items), "numeric": sum(i["reference_value"] is not None for i in items), "contexts": len(corpus)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED, help=f"shared data folder (default: {DEFAULT_SHARED})")
    parser.add_argument("--out", type=Path, required=True, help="output folder (outside the repository: the data has no licence)")
    parser.add_argument("--questions", type=int, default=60, help="questions, evenly spaced over the file (default: 60)")
    args = parser.parse_args(argv)
    if args.out.resolve().is_relative_to(REPO):
        parser.error("--out must be outside the repository: financial-qa-10k has no declared licence")
    counts = build(args.shared, args.out, args.questions)
    print(
        f"{counts['items']} questions ({counts['numeric']} with one numeric answer) and {counts['contexts']:,} passages "
        f"written to {args.out}; ingest {args.out / (COLLECTION + '.jsonl')} as collection {COLLECTION!r}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
