"""Retrieval benchmark: our ingest pipeline and Retriever on public data, scored with ranx.

    python bench/retrieval.py --beir ../shared/data/nfcorpus [--split dev] [--sweep] [--json]
    python bench/retrieval.py --finance ../shared/data [--limit-questions 1000] [--json]
    python bench/retrieval.py --latency /tmp/mq --collection medquad [--queries 300] [--json]

Collections are built under --index-dir (default /tmp/assistant-bench-indexes) and kept there: ingest is
incremental, so only the first run embeds. Embedder, chunking, index and retrieval defaults come from
``Settings()`` (so ASSISTANT_* variables apply); --fusion, --dense-weight, --rrf-k and --candidates override
the RetrieverConfig. Each query retrieves --chunks chunks (each retriever contributes max(candidates, chunks)
before fusion); a document scores the max over its chunks and the best --top-docs documents form the ranx Run.

1. BEIR (--beir DIR): corpus.jsonl ingested with our BEIR loader (title + text, metadata ``beir_id``); the
   queries of qrels/<split>.tsv (any file name there: dev, train, ...) run in modes bm25, dense and hybrid;
   nDCG@10, Recall@100 and MRR@10 from ranx with the graded qrels as given. --sweep adds hybrid over
   fusion {rrf, weighted} x dense_weight {0.3 .. 0.7}; that tunes on the split it reports, so say so.
2. Finance (--finance DIR): (a) financial-qa-10k: the distinct CSV contexts, written as a BEIR JSONL into the
   index dir (never into the repo: the data has no licence), one document each; a question's relevant document
   is its own context; Recall@10 and MRR@10 over --limit-questions questions spaced evenly. (b) TAT-QA dev: the
   JSON file ingested with our loader; for questions with rel_paragraphs the relevant documents are those
   paragraphs of the question's report; Recall@5.
3. Latency (--latency INDEX_DIR --collection NAME): Retriever.search(query, k=10) per mode on an existing
   collection, queries taken from its own document titles (evenly spaced), after 10 warm-up queries; p50/p95 of
   the wall time around the call, query embedding included. --faiss-threads N is an experiment knob (the product
   leaves FAISS's OpenMP default alone).

--json prints only metrics: {"bm25": {...}, "dense": {...}, "hybrid": {...}} for BEIR and latency, one such
object per data set for finance. A missing data path is skipped with a message (exit 0); a mistake such as an
unknown split exits 2.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from training.chains import evenly_spaced  # noqa: E402,F401  (re-exported: the benches and eval-set builders use it)

MODES = ("bm25", "dense", "hybrid")
DEFAULT_INDEX_DIR = Path("/tmp/assistant-bench-indexes")
BEIR_METRICS = ("ndcg@10", "recall@100", "mrr@10")
FINQA_METRICS = ("recall@10", "mrr@10")
TATQA_METRICS = ("recall@5",)
METRIC_LABELS = {"ndcg@10": "nDCG@10", "recall@100": "Recall@100", "mrr@10": "MRR@10", "recall@10": "Recall@10", "recall@5": "Recall@5"}
# Published nDCG@10 on the NFCorpus *test* split (BEIR and model cards), for reference only.
PUBLISHED_NFCORPUS_TEST = (("BM25", "0.325"), ("all-MiniLM-L6-v2", "≈0.31"), ("bge-small-en-v1.5", "0.343"))
TARGET_HYBRID_NDCG = 0.33
TARGET_LATENCY_MS = {"p50_ms": 25.0, "p95_ms": 60.0}
SWEEP_FUSIONS = ("rrf", "weighted")
SWEEP_WEIGHTS = (0.3, 0.4, 0.5, 0.6, 0.7)
WARMUP_QUERIES = 10

DocKey = Callable[[dict], "str | None"]  # a hit's metadata -> the evaluation id of its document


class Skip(Exception):
    """The data a benchmark needs is absent: say so and exit 0."""


class Mistake(Exception):
    """The command asks for something that cannot be (an unknown split, a missing collection): exit 2."""


# ---------------------------------------------------------------------------------------------- data sets


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    """BEIR qrels TSV (``query-id corpus-id score``, header line optional) -> {query: {doc: grade}}."""
    qrels: dict[str, dict[str, int]] = {}
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 3:
                raise Mistake(f"{path}:{number}: expected 3 fields (query-id corpus-id score), got {len(fields)}")
            query_id, doc_id, grade = fields
            try:
                value = int(float(grade))
            except ValueError:
                if number == 1:
                    continue  # the header line
                raise Mistake(f"{path}:{number}: score {grade!r} is not a number") from None
            qrels.setdefault(query_id, {})[doc_id] = value
    return qrels


def read_queries(path: Path, wanted: Iterable[str]) -> dict[str, str]:
    """BEIR queries.jsonl -> {id: text} for the wanted ids, in file order."""
    wanted = set(wanted)
    queries: dict[str, str] = {}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                record = json.loads(line)
                query_id = str(record["_id"])
                if query_id in wanted and str(record.get("text") or "").strip():
                    queries[query_id] = record["text"]
    return queries


def read_finqa(path: Path) -> tuple[list[dict], list[tuple[str, str, str]]]:
    """Financial-QA-10k CSV -> (BEIR records of the distinct contexts, [(question id, question, context id)])."""
    records: list[dict] = []
    context_ids: dict[str, str] = {}
    questions: list[tuple[str, str, str]] = []
    with open(path, encoding="utf-8", newline="") as handle:
        for row, record in enumerate(csv.DictReader(handle)):
            question, context = (record.get("question") or "").strip(), (record.get("context") or "").strip()
            if not question or not context:
                continue  # two rows of the published file have an empty field
            if context not in context_ids:
                context_ids[context] = f"ctx-{len(context_ids):05d}"
                title = f"{(record.get('ticker') or '').strip()} {(record.get('filing') or '').strip()}".strip()
                records.append({"_id": context_ids[context], "title": title, "text": context})
            questions.append((f"q-{row:05d}", question, context_ids[context]))
    return records, questions


def _order(value: Any) -> str:
    """A TAT-QA paragraph order as a canonical string: 2, "2" and " 2 " are the same paragraph."""
    text = str(value).strip()
    try:
        return str(int(float(text)))
    except ValueError:
        return text


def tatqa_doc_key(metadata: dict) -> str | None:
    """Evaluation id of a TAT-QA document from the metadata our loader gives it."""
    uid, kind = metadata.get("report_uid"), metadata.get("kind")
    if not uid or kind not in ("paragraph", "table"):
        return None
    return f"{uid}/table" if kind == "table" else f"{uid}/paragraph/{_order(metadata.get('order'))}"


def read_tatqa(path: Path) -> tuple[dict[str, str], dict[str, dict[str, int]]]:
    """TAT-QA questions with rel_paragraphs -> ({question id: question}, qrels of paragraph ids)."""
    reports = json.loads(path.read_text(encoding="utf-8"))
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    for report in reports:
        uid = str(report["table"].get("uid", ""))
        for question in report.get("questions", []):
            relevant = question.get("rel_paragraphs") or []
            if not relevant or not str(question.get("question") or "").strip():
                continue
            query_id = str(question.get("uid") or f"{uid}/q{len(queries)}")
            queries[query_id] = question["question"]
            qrels[query_id] = {tatqa_doc_key({"report_uid": uid, "kind": "paragraph", "order": o}): 1 for o in relevant}
    return queries, qrels


def beir_doc_key(metadata: dict) -> str | None:
    value = metadata.get("beir_id")
    return None if value is None else str(value)


# ---------------------------------------------------------------------------------------------- building


def load_embedder(name: str, settings):
    from assistant import compose

    return compose.embedder(settings, name)


def _collection_name(prefix: str, folder: Path) -> str:
    stem = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in folder.resolve().name) or "data"
    return f"{prefix}-{stem}"


def build_collection(index_dir: Path, name: str, files: list[Path], embedder, settings, progress: bool):
    """Ingest files into index_dir/name with the real pipeline (incremental: unchanged files are skipped)."""
    from assistant import compose
    from core.collection import collection_path

    target = collection_path(index_dir, name)
    ingestor = compose.ingestor(settings, target, embedder, name=name, progress=progress)
    with ingestor.collection:
        report = ingestor.ingest(files)
    if report.interrupted:
        raise KeyboardInterrupt
    if report.skipped:
        raise Mistake("; ".join(f"{s.path}: {s.reason}" for s in report.skipped))
    return target, report


def open_collection(path: Path, settings):
    from assistant import compose
    from core.collection import Collection

    return Collection.open(path, params=compose.index_params(settings))


def write_if_changed(path: Path, text: str) -> None:
    """Rewrite only on change, so an unchanged corpus keeps its hash and re-ingest skips it."""
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.tmp")
    staging.write_text(text, encoding="utf-8")
    staging.replace(path)


# ---------------------------------------------------------------------------------------------- retrieval


class CachedQueryEmbedder:
    """Delegates to an embedder and remembers query vectors: the modes and sweep rows share the same queries.

    Only for quality runs; the latency benchmark uses the embedder itself so embedding is timed.
    """

    def __init__(self, embedder):
        self._inner = embedder
        self.name, self.dim, self.max_tokens = embedder.name, embedder.dim, embedder.max_tokens
        self._vectors: dict[str, Any] = {}

    def count_tokens(self, text: str) -> int:
        return self._inner.count_tokens(text)

    def embed_passages(self, texts: list[str]):
        return self._inner.embed_passages(texts)

    def embed_query(self, text: str):
        if text not in self._vectors:
            self._vectors[text] = self._inner.embed_query(text)
        return self._vectors[text]


def retriever_config(settings, args, **changes):
    """RetrieverConfig from Settings().retrieval, then the command-line overrides, then ``changes``."""
    from retriever.hybrid import RetrieverConfig

    names = {f.name for f in dataclasses.fields(RetrieverConfig)}
    values = {k: v for k, v in settings.retrieval.model_dump().items() if k in names}
    for name in ("fusion", "dense_weight", "rrf_k", "candidates"):
        if getattr(args, name, None) is not None:
            values[name] = getattr(args, name)
    values.update(changes)
    return RetrieverConfig(**values)


def aggregate(hits, key: DocKey, top: int) -> dict[str, float]:
    """Documents of the hits, each scored by its best chunk, best ``top`` kept."""
    scores: dict[str, float] = {}
    for hit in hits:
        doc = key(hit.metadata)
        if doc is not None and (doc not in scores or hit.score > scores[doc]):
            scores[doc] = float(hit.score)
    return dict(sorted(scores.items(), key=lambda item: item[1], reverse=True)[:top])


def make_run(retriever, queries: dict[str, str], key: DocKey, chunks: int, top_docs: int) -> dict[str, dict[str, float]]:
    return {qid: aggregate(retriever.search(text, k=chunks).hits, key, top_docs) for qid, text in queries.items()}


def score(qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]], metrics: Sequence[str]) -> dict[str, float]:
    from ranx import Qrels, Run, evaluate

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numba's "unsafe cast" notices from inside ranx
        # make_comparable: a query with no retrieved document counts as a miss instead of an error.
        values = evaluate(Qrels(qrels), Run(run), list(metrics), make_comparable=True)
    if isinstance(values, float) or not isinstance(values, dict):
        values = {metrics[0]: values}
    return {m: float(values[m]) for m in metrics}


@dataclasses.dataclass
class EvalSet:
    """Queries, their qrels and how a retrieved chunk maps to an evaluated document."""

    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    key: DocKey
    metrics: tuple[str, ...]


def evaluate_config(collection, embedder, config, data: EvalSet, chunks: int, top_docs: int) -> dict[str, float]:
    from retriever.hybrid import Retriever

    run = make_run(Retriever(collection, embedder, config), data.queries, data.key, chunks, top_docs)
    return score(data.qrels, run, data.metrics)


def evaluate_modes(collection, embedder, settings, args, data: EvalSet) -> dict[str, dict[str, float]]:
    return {
        mode: evaluate_config(collection, embedder, retriever_config(settings, args, mode=mode), data, args.chunks, args.top_docs)
        for mode in MODES
    }


def sweep_hybrid(collection, embedder, settings, args, data: EvalSet) -> list[tuple[str, float, dict[str, float]]]:
    rows = []
    for fusion in SWEEP_FUSIONS:
        for weight in SWEEP_WEIGHTS:
            config = retriever_config(settings, args, mode="hybrid", fusion=fusion, dense_weight=weight)
            rows.append((fusion, weight, evaluate_config(collection, embedder, config, data, args.chunks, args.top_docs)))
    return rows


# ---------------------------------------------------------------------------------------------- printing


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|---|" + "---:|" * (len(headers) - 1)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def metrics_table(results: dict[str, dict[str, float]], metrics: Sequence[str]) -> str:
    headers = ["mode", *(METRIC_LABELS.get(m, m) for m in metrics)]
    return markdown_table(headers, [[mode, *(f"{values[m]:.4f}" for m in metrics)] for mode, values in results.items()])


def config_line(config) -> str:
    return (
        f"fusion={config.fusion}, dense_weight={config.dense_weight:g}, rrf_k={config.rrf_k}, "
        f"candidates={config.candidates}, mmr_lambda={config.mmr_lambda}"
    )


def ingest_line(report, collection) -> str:
    counts = collection.counts()
    return (
        f"collection {collection.path}: {counts['documents']:,} documents, {counts['chunks']:,} chunks "
        f"(this run: {report.chunks_embedded:,} chunks embedded, {report.files_unchanged} file(s) unchanged, "
        f"{report.seconds:.1f} s)"
    )


# ---------------------------------------------------------------------------------------------- BEIR


def _beir_files(folder: Path, split: str) -> tuple[Path, Path, Path]:
    corpus, queries, qrels = folder / "corpus.jsonl", folder / "queries.jsonl", folder / "qrels" / f"{split}.tsv"
    if not folder.is_dir() or not corpus.is_file() or not queries.is_file():
        raise Skip(f"BEIR data set not found at {folder} (needs corpus.jsonl, queries.jsonl, qrels/); pass --beir PATH")
    if not qrels.is_file():
        available = sorted(p.stem for p in (folder / "qrels").glob("*.tsv"))
        raise Mistake(f"no qrels/{split}.tsv in {folder}; splits there: {', '.join(available) or 'none'}")
    return corpus, queries, qrels


def beir_eval_set(queries_file: Path, qrels_file: Path) -> EvalSet:
    qrels = read_qrels(qrels_file)
    queries = read_queries(queries_file, qrels)
    qrels = {qid: docs for qid, docs in qrels.items() if qid in queries}
    if not queries:
        raise Mistake(f"none of the query ids in {qrels_file} is in {queries_file}")
    return EvalSet(queries, qrels, beir_doc_key, BEIR_METRICS)


def bench_beir(args, settings) -> dict:
    corpus, queries_file, qrels_file = _beir_files(args.beir, args.split)
    data = beir_eval_set(queries_file, qrels_file)
    embedder = load_embedder(settings.embedder.model, settings)
    path, report = build_collection(args.index_dir, _collection_name("beir", args.beir), [corpus], embedder, settings, not args.json)
    started = time.perf_counter()
    cached = CachedQueryEmbedder(embedder)
    with open_collection(path, settings) as collection:
        results = evaluate_modes(collection, cached, settings, args, data)
        sweep = sweep_hybrid(collection, cached, settings, args, data) if args.sweep else None
        ingest = ingest_line(report, collection)
    return {
        "results": results,
        "sweep": sweep,
        "ingest": ingest,
        "queries": len(data.queries),
        "eval_seconds": time.perf_counter() - started,
        "embedder": embedder.name,
        "config": retriever_config(settings, args),
    }


def print_beir(out: dict, args, settings) -> None:
    results, chunk = out["results"], settings.chunking
    print(f"BEIR {args.beir.resolve().name}, split {args.split}: {out['queries']} queries with qrels")
    print(f"{out['ingest']}")
    print(f"embedder {out['embedder']}, chunks {chunk.chunk_tokens}/{chunk.overlap_tokens} tokens (title embedded: {chunk.embed_title})")
    print(f"retrieval: {args.chunks} chunks -> top {args.top_docs} documents (max chunk score); hybrid: {config_line(out['config'])}")
    print(f"queries scored in {out['eval_seconds']:.1f} s\n")
    print(metrics_table(results, BEIR_METRICS))
    print()
    published = ", ".join(f"{name} {value}" for name, value in PUBLISHED_NFCORPUS_TEST)
    print(f"Published nDCG@10, NFCorpus test split (reference; dev is harder): {published}")
    print(target_line(results, args.split))
    if out["sweep"]:
        print_sweep(out["sweep"], args.split)


def target_line(results: dict[str, dict[str, float]], split: str) -> str:
    if split != "dev":
        return f"Target (hybrid nDCG@10 >= {TARGET_HYBRID_NDCG} on NFCorpus dev) is not judged on split {split!r}."
    hybrid = results["hybrid"]["ndcg@10"]
    best_other = max(results["bm25"]["ndcg@10"], results["dense"]["ndcg@10"])
    met = hybrid >= TARGET_HYBRID_NDCG and hybrid > best_other
    return (
        f"Target (NFCorpus dev): hybrid nDCG@10 >= {TARGET_HYBRID_NDCG} and above bm25 and dense: "
        f"{'MET' if met else 'NOT MET'} (hybrid {hybrid:.4f}, {hybrid - TARGET_HYBRID_NDCG:+.4f} vs target, "
        f"{hybrid - best_other:+.4f} vs the better single mode)"
    )


def print_sweep(rows, split: str) -> None:
    best = max(rows, key=lambda row: row[2]["ndcg@10"])
    print(f"\nHybrid sweep (tuned on the {split} split it is scored on: the best row is optimistic)\n")
    table = []
    for fusion, weight, values in rows:
        mark = " (best)" if (fusion, weight) == best[:2] else ""
        table.append([f"{fusion}{mark}", f"{weight:.1f}", *(f"{values[m]:.4f}" for m in BEIR_METRICS)])
    print(markdown_table(["fusion", "dense_weight", *(METRIC_LABELS[m] for m in BEIR_METRICS)], table))


# ---------------------------------------------------------------------------------------------- finance


def build_and_evaluate(name: str, files: list[Path], data: EvalSet, args, settings, embedder) -> dict:
    """Ingest files into collection `name` (incremental) and score every mode on `data`."""
    path, report = build_collection(args.index_dir, name, files, embedder, settings, not args.json)
    with open_collection(path, settings) as collection:
        started = time.perf_counter()
        results = evaluate_modes(collection, CachedQueryEmbedder(embedder), settings, args, data)
        return {"results": results, "ingest": ingest_line(report, collection), "seconds": time.perf_counter() - started}


def finqa_part(folder: Path, args, settings, embedder) -> dict | None:
    csv_path = folder / "financial-qa-10k" / "Financial-QA-10k.csv"
    if not csv_path.is_file():
        print(f"skipped financial-qa-10k: {csv_path} not found", file=sys.stderr)
        return None
    records, questions = read_finqa(csv_path)
    # The corpus goes to the index dir, never the repo: the data set has no licence.
    corpus = args.index_dir / ".data" / "financial-qa-10k" / "corpus.jsonl"
    write_if_changed(corpus, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    chosen = evenly_spaced(questions, args.limit_questions)
    data = EvalSet({q: text for q, text, _ in chosen}, {q: {ctx: 1} for q, _, ctx in chosen}, beir_doc_key, FINQA_METRICS)
    return {
        **build_and_evaluate("finqa-10k", [corpus], data, args, settings, embedder),
        "questions": len(chosen),
        "of": len(questions),
        "contexts": len(records),
    }


def tatqa_part(folder: Path, args, settings, embedder) -> dict | None:
    dev = folder / "tatqa" / "tatqa_dataset_dev.json"
    if not dev.is_file():
        print(f"skipped TAT-QA: {dev} not found", file=sys.stderr)
        return None
    queries, qrels = read_tatqa(dev)
    data = EvalSet(queries, qrels, tatqa_doc_key, TATQA_METRICS)
    return {**build_and_evaluate("tatqa-dev", [dev], data, args, settings, embedder), "questions": len(queries)}


def bench_finance(args, settings) -> dict:
    folder = args.finance
    if not folder.is_dir():
        raise Skip(f"finance data not found at {folder} (pass --finance PATH to the shared data folder)")
    if not (folder / "financial-qa-10k").is_dir() and not (folder / "tatqa").is_dir():
        raise Skip(f"neither financial-qa-10k/ nor tatqa/ is in {folder}")
    embedder = load_embedder(settings.embedder.model, settings)
    return {
        "financial-qa-10k": finqa_part(folder, args, settings, embedder),
        "tatqa": tatqa_part(folder, args, settings, embedder),
        "config": retriever_config(settings, args),
    }


def print_finance(out: dict, args) -> None:
    print(
        f"Finance retrieval: {args.chunks} chunks -> top {args.top_docs} documents (max chunk score); hybrid: {config_line(out['config'])}"
    )
    finqa, tatqa = out["financial-qa-10k"], out["tatqa"]
    if finqa:
        print(
            f"\nfinancial-qa-10k: {finqa['questions']} of {finqa['of']} questions (evenly spaced) over "
            f"{finqa['contexts']:,} distinct contexts; relevant = the question's own context"
        )
        print(finqa["ingest"])
        print(f"queries scored in {finqa['seconds']:.1f} s\n")
        print(metrics_table(finqa["results"], FINQA_METRICS))
    if tatqa:
        print(
            f"\nTAT-QA dev: {tatqa['questions']} questions with rel_paragraphs; relevant = those paragraphs of "
            f"the question's report (tables are retrievable but never count as relevant)"
        )
        print(tatqa["ingest"])
        print(f"queries scored in {tatqa['seconds']:.1f} s\n")
        print(metrics_table(tatqa["results"], TATQA_METRICS))


# ---------------------------------------------------------------------------------------------- latency


def document_titles(collection) -> list[str]:
    """Distinct document titles in insertion order: in MedQuAD these are the questions."""
    titles = (r[0] for r in collection.db.execute("SELECT title FROM documents ORDER BY pk"))
    return list(dict.fromkeys(t for t in titles if t and t.strip()))


def time_queries(retrievers: dict, queries: list[str], k: int = 10) -> dict[str, dict[str, list[float]]]:
    """Per mode: wall ms around search() ('outer') and the retriever's own timings_ms, per query.

    Modes rotate per query so that none always runs first (cold caches) or last (warm ones).
    """
    samples: dict[str, dict[str, list[float]]] = {
        m: {"outer": [], "total": [], "embed": [], "dense": [], "bm25": [], "rest": []} for m in retrievers
    }
    modes = list(retrievers)
    for i, query in enumerate(queries):
        for mode in modes[i % len(modes) :] + modes[: i % len(modes)]:
            started = time.perf_counter()
            result = retrievers[mode].search(query, k=k)
            outer = (time.perf_counter() - started) * 1000
            t = result.timings_ms
            s = samples[mode]
            s["outer"].append(outer)
            s["total"].append(t.get("total", float("nan")))
            for part in ("embed", "dense", "bm25"):
                s[part].append(t.get(part, 0.0))
            s["rest"].append(t.get("total", 0.0) - t.get("embed", 0.0) - t.get("dense", 0.0) - t.get("bm25", 0.0))
    return samples


def summarise_latency(samples: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, float]]:
    import numpy as np

    out = {}
    for mode, s in samples.items():
        outer = np.asarray(s["outer"])
        out[mode] = {"p50_ms": float(np.percentile(outer, 50)), "p95_ms": float(np.percentile(outer, 95))}
        out[mode]["detail"] = {
            "mean_ms": float(outer.mean()),
            **{f"{part}_p50_ms": float(np.percentile(s[part], 50)) for part in ("total", "embed", "dense", "bm25", "rest")},
            "total_p95_ms": float(np.percentile(s["total"], 95)),
        }
    return out


def langchain_latency(collection, queries: list[str], k: int = 10) -> dict | None:
    """The alternative a user would pick, in the same run: LangChain's FAISS store over the same chunks and
    vectors (built from our stored vectors, so nothing is re-embedded) and `similarity_search`, which embeds
    the query with HuggingFaceEmbeddings (PyTorch) as LangChain does. None without the bench extra."""
    try:
        from langchain_community.vectorstores import FAISS
        from langchain_huggingface import HuggingFaceEmbeddings
    except ImportError:
        return None
    import numpy as np

    from core.embedding.sentence_transformer import embedded_model_path

    name = collection.manifest.embedder.name
    texts = [r[0] for r in collection.db.execute("SELECT text FROM chunks ORDER BY id")]
    _, vectors = collection.store.all_vectors(collection.dim)  # in id order, float16 or float32 blobs decoded
    pairs = [(text, vector.tolist()) for text, vector in zip(texts, vectors)]
    store = FAISS.from_embeddings(pairs, HuggingFaceEmbeddings(model_name=embedded_model_path(name) or name))
    # FAISS's own OpenMP team, as a LangChain user gets it: our searches leave this thread at one.
    import faiss

    from core.collection.vectors import _OMP_DEFAULT

    faiss.omp_set_num_threads(_OMP_DEFAULT)
    for query in queries[:WARMUP_QUERIES]:
        store.similarity_search(query, k=k)
    times = []
    for query in queries:
        started = time.perf_counter()
        store.similarity_search(query, k=k)
        times.append((time.perf_counter() - started) * 1000)
    times = np.asarray(times)
    nan = float("nan")
    detail = {
        "mean_ms": float(times.mean()),
        "total_p50_ms": nan,
        "embed_p50_ms": nan,
        "dense_p50_ms": nan,
        "bm25_p50_ms": nan,
        "rest_p50_ms": nan,
    }
    return {"p50_ms": float(np.percentile(times, 50)), "p95_ms": float(np.percentile(times, 95)), "detail": detail}


def bench_latency(args, settings) -> dict:
    from core.collection import MANIFEST, collection_path, list_collections
    from retriever.hybrid import Retriever

    if not args.latency.is_dir():
        raise Skip(f"index folder not found at {args.latency} (pass --latency INDEX_DIR --collection NAME)")
    if not args.collection:
        raise Mistake("--latency needs --collection NAME")
    path = collection_path(args.latency, args.collection)
    if not (path / MANIFEST).exists():
        names = ", ".join(m.name for m in list_collections(args.latency)) or "none"
        raise Mistake(f"no collection {args.collection!r} in {args.latency}; collections there: {names}")
    with open_collection(path, settings) as collection:
        embedder = load_embedder(collection.manifest.embedder.name, settings)
        titles = document_titles(collection)
        if not titles:
            raise Mistake(f"collection {args.collection!r} has no documents to take queries from")
        retrievers = {
            mode: Retriever(collection, embedder, retriever_config(settings, args, mode=mode)) for mode in ("dense", "bm25", "hybrid")
        }
        time_queries(retrievers, evenly_spaced(titles[len(titles) // 20 :], WARMUP_QUERIES))
        queries = evenly_spaced(titles, args.queries)
        started = time.perf_counter()
        samples = time_queries(retrievers, queries)
        latency = summarise_latency(samples)
        langchain = langchain_latency(collection, queries)
        if langchain:
            latency["langchain-dense"] = langchain
        return {
            "latency": latency,
            "queries": len(queries),
            "seconds": time.perf_counter() - started,
            "chunks": collection.counts()["chunks"],
            "index_kind": collection.index_kind,
            "embedder": f"{embedder.name} ({getattr(embedder, 'backend', '?')} backend)",
            "config": retrievers["hybrid"].config,
        }


def print_latency(out: dict, args) -> None:
    import faiss

    print(
        f"Latency: {out['queries']} queries (document titles, evenly spaced) x 3 modes after {WARMUP_QUERIES} warm-up queries, "
        f"k=10, on {args.latency / args.collection} ({out['chunks']:,} chunks, {out['index_kind']} index), "
        f"{os.cpu_count()} CPU(s), FAISS OpenMP threads {faiss.omp_get_max_threads()}"
    )
    print(f"embedder {out['embedder']}; hybrid: {config_line(out['config'])}; timed in {out['seconds']:.1f} s\n")
    rows = []
    for mode, v in out["latency"].items():
        d = v["detail"]
        rows.append(
            [
                mode,
                f"{v['p50_ms']:.1f}",
                f"{v['p95_ms']:.1f}",
                f"{d['mean_ms']:.1f}",
                f"{d['total_p50_ms']:.1f}",
                f"{d['embed_p50_ms']:.1f}",
                f"{d['dense_p50_ms']:.1f}",
                f"{d['bm25_p50_ms']:.1f}",
                f"{d['rest_p50_ms']:.1f}",
            ]
        )
    print(
        markdown_table(
            ["mode", "p50 ms", "p95 ms", "mean ms", "timings total p50", "embed p50", "dense p50", "bm25 p50", "fuse+hits p50"], rows
        )
    )
    hybrid = out["latency"]["hybrid"]
    if "langchain-dense" in out["latency"]:
        lc = out["latency"]["langchain-dense"]["p50_ms"]
        print(
            f"\nLangChain FAISS.similarity_search (same chunks and vectors) p50 {lc:.1f} ms: "
            f"ours dense is {lc / out['latency']['dense']['p50_ms']:.1f}x faster, ours hybrid {lc / hybrid['p50_ms']:.1f}x"
        )
    met = all(hybrid[key] <= limit for key, limit in TARGET_LATENCY_MS.items())
    print(
        f"\nTarget: hybrid p50 <= {TARGET_LATENCY_MS['p50_ms']:g} ms and p95 <= {TARGET_LATENCY_MS['p95_ms']:g} ms: "
        f"{'MET' if met else 'NOT MET'} (p50 {hybrid['p50_ms']:.1f}, p95 {hybrid['p95_ms']:.1f})"
    )


# ---------------------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--beir", type=Path, metavar="DIR", help="BEIR data set folder (corpus.jsonl, queries.jsonl, qrels/)")
    what.add_argument("--finance", type=Path, metavar="DIR", help="shared data folder holding financial-qa-10k/ and tatqa/")
    what.add_argument("--latency", type=Path, metavar="INDEX_DIR", help="index folder holding the collection to time")
    parser.add_argument("--split", default="dev", help="qrels file name under qrels/ (default dev)")
    parser.add_argument("--collection", help="collection name for --latency")
    parser.add_argument(
        "--index-dir", type=Path, default=DEFAULT_INDEX_DIR, help=f"where benchmark collections are kept (default {DEFAULT_INDEX_DIR})"
    )
    parser.add_argument("--fusion", choices=("rrf", "weighted"), help="hybrid fusion (default: Settings)")
    parser.add_argument("--dense-weight", type=float, help="hybrid dense weight in [0, 1] (default: Settings)")
    parser.add_argument("--rrf-k", type=int, help="RRF constant (default: Settings)")
    parser.add_argument("--candidates", type=int, help="candidates per retriever before fusion (default: Settings)")
    parser.add_argument("--chunks", type=int, default=200, help="chunks retrieved per query before grouping into documents (default 200)")
    parser.add_argument("--top-docs", type=int, default=100, help="documents kept per query (default 100)")
    parser.add_argument("--sweep", action="store_true", help="BEIR: also run hybrid over fusion x dense_weight (a table; not with --json)")
    parser.add_argument(
        "--limit-questions", type=int, default=1000, help="financial-qa-10k questions, evenly spaced (0: all; default 1000)"
    )
    parser.add_argument("--queries", type=int, default=300, help="latency: timed queries (default 300)")
    parser.add_argument(
        "--faiss-threads", type=int, help="experiment: faiss.omp_set_num_threads(N) before searching (default: FAISS's own)"
    )
    parser.add_argument("--json", action="store_true", help="print only the metrics as JSON")
    args = parser.parse_args(argv)
    if args.sweep and (args.json or not args.beir):
        parser.error("--sweep goes with --beir and prints a table; drop --json")
    if args.chunks < 1 or args.top_docs < 1 or args.queries < 1:
        parser.error("--chunks, --top-docs and --queries must be at least 1")
    return args


def _metrics_only(results: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    return {mode: {k: v for k, v in values.items() if k != "detail"} for mode, values in results.items()}


def run(args: argparse.Namespace) -> None:
    from core.config import Settings

    settings = Settings()
    if args.faiss_threads:
        import faiss

        faiss.omp_set_num_threads(args.faiss_threads)
    started = time.perf_counter()
    if args.beir:
        out = bench_beir(args, settings)
        payload = _metrics_only(out["results"])
        printer = lambda: print_beir(out, args, settings)  # noqa: E731
    elif args.finance:
        out = bench_finance(args, settings)
        payload = {name: _metrics_only(out[name]["results"]) for name in ("financial-qa-10k", "tatqa") if out[name]}
        printer = lambda: print_finance(out, args)  # noqa: E731
    else:
        out = bench_latency(args, settings)
        payload = _metrics_only(out["latency"])
        printer = lambda: print_latency(out, args)  # noqa: E731
    if args.json:
        print(json.dumps(payload, indent=2))
    else:
        printer()
        print(f"\nwall time {time.perf_counter() - started:.1f} s")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from core.errors import UserError

    try:
        run(args)
    except Skip as exc:
        print(f"skipped: {exc}", file=sys.stderr)
        return 0
    except (Mistake, UserError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: what was ingested is kept; run the same command again to finish", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
