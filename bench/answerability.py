"""Fit and measure the answerability decision (retriever/answerability.py) on dev data where documents were
left out.

    python bench/answerability.py [--fit retriever/models] [--data ../shared/data] [--json FILE]

The dev data are the shipped eval sets asked of the sample collections (data/eval, scripts/build_eval_sets.py):
answerable questions (medical.jsonl, finance.jsonl) and questions the collections do not cover
(uncovered.jsonl: their documents left out while neighbouring ones stay; unanswerable.jsonl). Every item
carries a ``split`` by the entity it is about (a MedQuAD focus, a TAT-QA report, a company, a PubMedQA id),
so the model is fitted on the "fit" half and measured on the "test" half, and no entity is in both.

With ``--data`` pointing at the shared data, one more test that nothing was fitted on: financial-qa-10k
(no declared licence: read here, never copied or fitted), half of its 69 companies' 10-K passages as a
collection, the other half's questions as uncovered and the first half's as answerable.

``--fit DIR`` fits class-balanced logistic regressions on the fit half (scikit-learn, then stored as plain
JSON: features, coefficients, intercept, threshold, a card with the figures): one per domain
(answerability-medical.json, answerability-finance.json, each on its own questions) and a general one on
both (answerability-general.json, for other collections); each threshold keeps ``--keep`` (0.98) of its
fit half's answerable questions. Without ``--fit`` it measures the models the settings pick
(ASSISTANT_ANSWERABILITY__MODELS). Re-fit them for another embedder or domain with sets in the same shape.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from assistant.pipeline import Assistant  # noqa: E402
from bench.tables import fmt, markdown_table, percentile  # noqa: E402
from core.config import Settings  # noqa: E402
from core.errors import UserError  # noqa: E402
from eval.runner import ensure_collections  # noqa: E402
from retriever.answerability import FEATURES, Answerability, AnswerabilityModel, key_terms  # noqa: E402

EVAL = REPO / "data" / "eval"
ANSWERABLE = ("medical", "finance")
NOT_COVERED = ("uncovered", "unanswerable")
K = 5  # passages retrieved, as an ask does by default


# MedQuAD's questions are its documents' titles, and the collection embeds each chunk with its title: asked
# verbatim, a covered question finds its own title (cosine near 1), which no user's wording does. Each
# MedQuAD question is also asked the way people ask it, so the fit cannot lean on the verbatim match.
_USER_WORDING = (
    (r"^What are the symptoms of (.+)$", "What signs should I look out for with {x}?"),
    (r"^What are the signs and symptoms of (.+)$", "how do I know if someone has {x}"),
    (r"^What are the treatments for (.+)$", "How do doctors treat {x}?"),
    (r"^What causes (.+)$", "Why do people get {x}?"),
    (r"^Is (.+) inherited$", "Does {x} run in families?"),
    (r"^How many people are affected by (.+)$", "How common is {x}?"),
    (r"^What is the outlook for (.+)$", "What is the prognosis for someone with {x}?"),
    (r"^How to diagnose (.+)$", "How do doctors find out if someone has {x}?"),
    (r"^What are the genetic changes related to (.+)$", "Which genes are involved in {x}?"),
    (r"^What research \(or clinical trials\) is being done for (.+)$", "Are there any new studies on {x}?"),
    (r"^How to prevent (.+)$", "Can {x} be prevented?"),
    (r"^Who is at risk for (.+?)\??$", "Who is most likely to get {x}?"),
    (r"^What are the stages of (.+)$", "How is {x} staged?"),
    (r"^What is \(are\) (.+)$", "Can you tell me about {x}?"),
    (r"^What are the complications of (.+)$", "What problems can {x} lead to?"),
)


def user_wording(question: str) -> str | None:
    """A MedQuAD question as a person would type it ("What are the treatments for X ?" -> "How do doctors
    treat x?"), or None for a question of another shape."""
    text = question.strip().rstrip("?").strip()
    for pattern, template in _USER_WORDING:
        match = re.match(pattern, text, flags=re.IGNORECASE)
        if match:
            return template.format(x=match.group(1).strip().lower())
    return None


def load_items() -> list[dict]:
    """The eval sets' items, and each MedQuAD question once more in a person's wording (``source`` "worded")."""
    items = []
    for suite in ANSWERABLE + NOT_COVERED:
        items += [json.loads(line) for line in (EVAL / f"{suite}.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    worded = []
    for item in items:
        question = user_wording(item["question"]) if item.get("source") == "medquad" else None
        if question:
            worded.append({**item, "id": item["id"] + "#worded", "question": question, "source": "worded"})
    return items + worded


def signals_for(assistant: Assistant, items: list[dict], model_of: Callable[[str], AnswerabilityModel]) -> list[dict]:
    """Each item with its signals, its collection's model's decision and the time the decision took."""
    deciders: dict[str, Answerability] = {}
    rows = []
    for item in items:
        retriever = assistant.retriever(item["collection"])
        if item["collection"] not in deciders:
            deciders[item["collection"]] = Answerability(retriever.collection, model_of(item["collection"]))
        result = retriever.search(item["question"], K)
        decision = deciders[item["collection"]].decide(item["question"], result.hits, result.relevance)
        rows.append({"item": item, "signals": decision.signals, "decision": decision})
    return rows


def fit(rows: list[dict], keep: float) -> AnswerabilityModel:
    """A class-balanced logistic regression on the fit half of ``rows``; the threshold keeps ``keep`` of
    its answerable questions."""
    from sklearn.linear_model import LogisticRegression

    train = [r for r in rows if r["item"]["split"] == "fit"]
    x = np.array([[r["signals"][f] for f in FEATURES] for r in train])
    y = np.array([int(r["item"]["answerable"]) for r in train])
    regression = LogisticRegression(C=1.0, class_weight="balanced", max_iter=1000).fit(x, y)
    model = AnswerabilityModel(
        FEATURES, tuple(round(float(c), 6) for c in regression.coef_[0]), round(float(regression.intercept_[0]), 6), 0.5
    )
    scores = np.array([model.probability(dict(zip(FEATURES, row))) for row in x])
    threshold = float(np.quantile(scores[y == 1], 1 - keep))
    return AnswerabilityModel(model.features, model.coef, model.intercept, round(threshold, 4))


def refused(row: dict, model_of: Callable[[str], AnswerabilityModel]) -> bool:
    model = model_of(row["item"]["collection"])
    return model.probability(row["signals"]) < model.threshold


def rates(rows: list[dict], model_of: Callable[[str], AnswerabilityModel]) -> dict[str, Any]:
    """Refused (not answerable) shares of the answerable and the not-covered questions."""

    def share(subset: list[dict]) -> float | None:
        return sum(refused(r, model_of) for r in subset) / len(subset) if subset else None

    answerable = [r for r in rows if r["item"]["answerable"]]
    out = {"answerable": len(answerable), "false_refusal": share(answerable)}
    for suite in NOT_COVERED:
        subset = [r for r in rows if r["item"]["suite"] == suite]
        out[suite] = len(subset)
        out[f"{suite}_refused"] = share(subset)
    return out


def table(rows: list[dict], model_of: Callable[[str], AnswerabilityModel], extra: dict[str, dict] | None = None) -> tuple[str, dict]:
    figures: dict[str, Any] = {}
    lines = []
    groups = [(domain, split, False) for domain in ANSWERABLE for split in ("fit", "test")]
    groups += [("medical", split, True) for split in ("fit", "test")]  # MedQuAD questions in a person's wording
    for domain, split, worded in groups:
        subset = [r for r in rows if r["item"]["collection"] == domain and r["item"]["split"] == split]
        subset = [r for r in subset if (r["item"].get("source") == "worded") == worded]
        name = f"{domain}/{split}" + ("/worded" if worded else "")
        figures[name] = f = rates(subset, model_of)
        label = f"{domain} (worded)" if worded else domain
        lines.append([label, split, f["answerable"], fmt(f["false_refusal"], 3), f["uncovered"], fmt(f["uncovered_refused"], 3),
                      f["unanswerable"], fmt(f["unanswerable_refused"], 3)])  # fmt: skip
    for name, f in (extra or {}).items():
        figures[name] = f
        lines.append([name, "test", f["answerable"], fmt(f["false_refusal"], 3), f["uncovered"], fmt(f["uncovered_refused"], 3), "-", "-"])
    headers = ["collection", "half", "answerable", "false refusal", "uncovered", "refused", "unanswerable", "refused"]
    return markdown_table(headers, lines), figures


def financial_qa(data: Path, cache: Path, model: AnswerabilityModel) -> dict[str, Any] | None:
    """financial-qa-10k, companies left out: half the tickers' passages form the collection."""
    source = data / "financial-qa-10k" / "Financial-QA-10k.csv"
    if not source.exists():
        print(f"skipped financial-qa-10k: {source} not found", file=sys.stderr)
        return None
    rows = [r for r in csv.DictReader(source.open(encoding="utf-8")) if r["question"] and r["context"]]
    tickers = sorted({r["ticker"] for r in rows}, key=lambda t: hashlib.sha1(t.encode()).hexdigest())
    inside = set(tickers[: len(tickers) // 2])
    settings = Settings(index_dir=cache / "indexes")
    folder = cache / "fqa-contexts"
    folder.mkdir(parents=True, exist_ok=True)
    contexts = folder / "contexts.jsonl"
    if not contexts.exists():
        seen: set[str] = set()
        with contexts.open("w", encoding="utf-8") as out:
            for r in rows:
                if r["ticker"] in inside and r["context"] not in seen:
                    seen.add(r["context"])
                    out.write(json.dumps({"title": f"{r['ticker']} 10-K", "text": r["context"]}) + "\n")
    if not (cache / "indexes" / "fqa" / "manifest.json").exists():
        from assistant import compose

        embedder = compose.embedder(settings)
        ingestor = compose.ingestor(settings, cache / "indexes" / "fqa", embedder, name="fqa", progress=True)
        with ingestor.collection:
            ingestor.ingest([contexts])
    ordered = sorted(rows, key=lambda r: hashlib.sha1(r["question"].encode()).hexdigest())
    items = [
        {"collection": "fqa", "question": r["question"], "answerable": True, "suite": "fqa", "split": "test"}
        for r in ordered
        if r["ticker"] in inside
    ][:200]
    items += [
        {"collection": "fqa", "question": r["question"], "answerable": False, "suite": "uncovered", "split": "test"}
        for r in ordered
        if r["ticker"] not in inside
    ][:200]
    with Assistant(settings) as assistant:
        scored = signals_for(assistant, items, lambda _: model)
    figures = rates(scored, lambda _: model)
    named = [r for r in scored if not r["item"]["answerable"] and any(t.name for t in key_terms(r["item"]["question"]))]
    figures["uncovered_naming_a_name"] = len(named)
    figures["uncovered_naming_a_name_refused"] = sum(refused(r, lambda _: model) for r in named) / len(named) if named else None
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fit", type=Path, help="fit on the fit half and write the models into this folder")
    parser.add_argument("--keep", type=float, default=0.98, help="share of the fit half's answerable questions a threshold keeps")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data", help="shared data (financial-qa-10k test)")
    parser.add_argument(
        "--cache", type=Path, default=Path("/tmp/assistant-answerability"), help="where the financial-qa-10k collection is built"
    )
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)

    settings = Settings()
    ensure_collections(settings, {"medical", "finance"}, echo=lambda m: print(m, file=sys.stderr), progress=True)
    neutral = AnswerabilityModel(FEATURES, (0.0,) * len(FEATURES), 0.0, 0.5)  # signals do not depend on the model

    def shipped(assistant: Assistant, collection: str) -> AnswerabilityModel:
        try:
            return assistant.answerability_model(collection)
        except UserError:
            if not args.fit:
                raise
            return neutral  # fitting the first models: nothing ships yet

    with Assistant(settings) as assistant:
        rows = signals_for(assistant, load_items(), lambda name: shipped(assistant, name))
        models = {name: shipped(assistant, name) for name in ANSWERABLE}
        general = shipped(assistant, "any other collection")
    if args.fit:
        models = {domain: fit([r for r in rows if r["item"]["collection"] == domain], args.keep) for domain in ANSWERABLE}
        general = fit(rows, args.keep)
    fqa = financial_qa(args.data, args.cache, general)
    text, figures = table(rows, lambda name: models[name], {"financial-qa-10k (general model)": fqa} if fqa else None)
    latency = [r["decision"].ms for r in rows]
    figures["decision_ms"] = {"p50": percentile(latency, 50), "p95": percentile(latency, 95), "n": len(latency)}
    print(text)
    print(
        f"\ndecision time (before generation, {len(latency)} questions): p50 {percentile(latency, 50):.2f} ms, p95 {percentile(latency, 95):.2f} ms"
    )
    for name, model in {**models, "general": general}.items():
        print(
            f"{name}:",
            json.dumps(
                {
                    "coef": dict(zip(model.features, (round(c, 3) for c in model.coef))),
                    "intercept": round(model.intercept, 3),
                    "threshold": model.threshold,
                }
            ),
        )
    if args.fit:
        args.fit.mkdir(parents=True, exist_ok=True)
        for name, model in {**models, "general": general}.items():
            card = {
                "fitted_by": f"python bench/answerability.py --fit {args.fit}",
                "keep": args.keep,
                "embedder": settings.embedder.model,
                "data": f"data/eval fit half ({'both domains' if name == 'general' else name}; scripts/build_eval_sets.py)",
                "figures": figures,
                "fitted_at": time.strftime("%Y-%m-%d"),
            }
            path = args.fit / f"answerability-{name}.json"
            AnswerabilityModel(model.features, model.coef, model.intercept, model.threshold, card).save(path)
            print(f"wrote {path}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
