"""Calibrate the retriever's "nothing relevant" threshold (ASSISTANT_RETRIEVAL__MIN_RELEVANCE).

    python bench/relevance.py --data ../shared/data [--index-dir /tmp/assistant-relevance] [--json]

The signal is the best cosine similarity between the query and any candidate passage. It is measured on
two collections, each with questions it covers and questions from the other domain:

- medical: NFCorpus (PubMed abstracts); covered = NFCorpus dev queries (each has relevant documents in
  the qrels); off-domain = financial-qa-10k and TAT-QA questions.
- finance: TAT-QA dev reports; covered = TAT-QA questions about them; off-domain = NFCorpus dev queries.

Two thresholds are printed: the one that maximises balanced accuracy (mean of the share of covered
questions kept and the share of off-domain questions flagged) over both collections together, and the
one that keeps 95 % of covered questions (the 5th percentile of their scores), which is the default: a
wrongly refused question costs the user more than a weak passage that the answer's grounding checks
catch later. Neither says much about in-domain questions the documents happen not to cover, which look
much more like covered ones.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from assistant import compose  # noqa: E402
from core.collection import Collection, collection_path  # noqa: E402
from core.config import Settings  # noqa: E402
from retriever.hybrid import Retriever, RetrieverConfig  # noqa: E402

PER_SET = 300


def _evenly(items: list, n: int) -> list:
    if len(items) <= n:
        return items
    step = len(items) / n
    return [items[int(i * step)] for i in range(n)]


def _build(index_dir: Path, name: str, paths: list[Path], embedder, settings: Settings) -> Collection:
    path = collection_path(index_dir, name)
    ingestor = compose.ingestor(settings, path, embedder, name=name)
    with ingestor.collection:
        ingestor.ingest(paths)
    return Collection.open(path)


def _questions(data: Path) -> dict[str, list[str]]:
    nf = data / "nfcorpus"
    dev_ids = {line.split("\t")[0] for line in (nf / "qrels" / "dev.tsv").read_text().splitlines()[1:]}
    nf_queries = [q["text"] for q in map(json.loads, (nf / "queries.jsonl").read_text().splitlines()) if q["_id"] in dev_ids]
    reports = json.loads((data / "tatqa" / "tatqa_dataset_dev.json").read_text())
    tatqa = [q["question"] for r in reports for q in r["questions"]]
    with open(data / "financial-qa-10k" / "Financial-QA-10k.csv", newline="", encoding="utf-8") as fh:
        fqa = [row["question"] for row in csv.DictReader(fh) if row.get("question")]
    return {
        "nfcorpus": _evenly(nf_queries, PER_SET),
        "tatqa": _evenly(tatqa, PER_SET),
        "financial-qa-10k": _evenly(fqa, PER_SET),
    }


def _relevance(retriever: Retriever, questions: list[str]) -> np.ndarray:
    return np.array([retriever.search(q, k=1).relevance for q in questions])


def _best_threshold(covered: np.ndarray, off: np.ndarray) -> tuple[float, float]:
    candidates = np.unique(np.concatenate([covered, off]))
    best_t, best_score = 0.0, -1.0
    for t in candidates:
        score = 0.5 * ((covered >= t).mean() + (off < t).mean())
        if score > best_score:
            best_t, best_score = float(t), float(score)
    return best_t, best_score


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--index-dir", type=Path, default=Path("/tmp/assistant-relevance"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not (args.data / "nfcorpus").is_dir() or not (args.data / "tatqa").is_dir():
        print(f"skipped: shared data not found at {args.data} (pass --data PATH)", file=sys.stderr)
        return
    settings = Settings()
    embedder = compose.embedder(settings)
    medical = _build(args.index_dir, "nfcorpus", [args.data / "nfcorpus" / "corpus.jsonl"], embedder, settings)
    finance = _build(args.index_dir, "tatqa", [args.data / "tatqa" / "tatqa_dataset_dev.json"], embedder, settings)
    questions = _questions(args.data)
    config = RetrieverConfig(mode="hybrid")
    med, fin = Retriever(medical, embedder, config), Retriever(finance, embedder, config)
    scores = {
        ("medical", "covered"): _relevance(med, questions["nfcorpus"]),
        ("medical", "off-domain"): _relevance(med, questions["financial-qa-10k"][: PER_SET // 2] + questions["tatqa"][: PER_SET // 2]),
        ("finance", "covered"): _relevance(fin, questions["tatqa"]),
        ("finance", "off-domain"): _relevance(fin, questions["nfcorpus"]),
    }
    covered = np.concatenate([scores[("medical", "covered")], scores[("finance", "covered")]])
    off = np.concatenate([scores[("medical", "off-domain")], scores[("finance", "off-domain")]])
    balanced_t, balanced = _best_threshold(covered, off)
    keep95_t = float(np.percentile(covered, 5))
    result: dict = {"questions_per_set": PER_SET, "thresholds": {}}
    for label, threshold in (("balanced", balanced_t), ("keep-95%", keep95_t)):
        rows = {}
        for collection in ("medical", "finance"):
            c, o = scores[(collection, "covered")], scores[(collection, "off-domain")]
            rows[collection] = {
                "covered_median": float(np.median(c)),
                "off_domain_median": float(np.median(o)),
                "covered_kept": float((c >= threshold).mean()),
                "off_domain_flagged": float((o < threshold).mean()),
            }
        result["thresholds"][label] = {"threshold": round(threshold, 3), "collections": rows}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print("| threshold | value | collection | covered: median cosine | off-domain: median cosine | covered kept | off-domain flagged |")
    print("|---|---:|---|---:|---:|---:|---:|")
    for label, entry in result["thresholds"].items():
        for name, r in entry["collections"].items():
            print(
                f"| {label} | {entry['threshold']:.3f} | {name} | {r['covered_median']:.3f} | {r['off_domain_median']:.3f} | "
                f"{r['covered_kept'] * 100:.1f}% | {r['off_domain_flagged'] * 100:.1f}% |"
            )


if __name__ == "__main__":
    main()
