"""Follow-up questions in a chat: does making them standalone before retrieval find what the turn asks?

    python bench/conversations.py [--data ../shared/data] [--medical DIR] [--finance DIR] [--mtrag DIR]
                                  [--index-dir DIR] [--limit N] [--strategies ...] [--json FILE]

Only follow-up turns (turn 2 onwards) are scored; turn 1 of a conversation is searched as written by every
strategy and only feeds the history. Strategies, one row each:

- ``last-turn``: the user's last message alone;
- ``concatenated``: every user message so far joined (the naive fix);
- ``rules``, ``fusion``, ``generator``: ``retriever.followup.contextualize`` with that strategy, its history
  being the strategy's own standalone questions of the earlier turns (what the product keeps); ``fusion``
  searches with ``fused_search`` (the rules' question fused with the previous standalone question);
  ``anchored``: the rules, and a turn they leave as written searched with ``anchor`` (its hits fused with its
  hits within the file or report the last four standalone questions' searches vote for), as the pipeline
  does with ``conversation.anchor``;
  ``generator`` asks the configured generator (``Settings().generator``: the embedded model unless
  ASSISTANT_GENERATOR__BACKEND=openai) and is only run when named in --strategies: the embedded 135M model
  takes minutes per rewrite on a 2-core CPU; ``adapter`` asks the embedded model with the task adapter
  (--tasks-adapter DIR, ``assistant finetune --tasks``) without the prompt's examples, as it was trained;
  it trained on MTRAG's clapnq rewrites, so compare it with --mtrag-domains govt cloud;
- ``gold``: what a perfect rewrite would search (per set, below).

Sets (one table each; Recall@5 and nDCG@10 over documents via eval.metrics.retrieval_metrics (ranx), a
document ranked where its first chunk is among the --chunks hits):

1. MedQuAD chains (--medical: the medquad folder). --medical-files XML files evenly spaced over the folders are
   ingested whole (every answered QA pair of a focus is a document, so the other question types of the same
   focus compete) into a bench collection. A chain is one file's focus: turn 1 is its "What is (are) X ?"
   question (else its first) verbatim, follow-ups its other questions with the focus written the way people
   write follow-ups, the style picked by a hash of the question id: ``pronoun`` ("What are the treatments for
   it?", "they" for plural foci), ``noun`` ("... for this condition?") or ``ellipsis`` ("What about the
   treatments?", "And the symptoms?"). Gold standalone: the original question. Relevant: the QA pair's document
   and any other ingested document asking the very same question (other NIH sites repeat foci).
2. TAT-QA follow-ups (--finance: the tatqa folder, or the folder holding it). The whole dev file is the corpus
   (a table and paragraph documents per report, as bench/retrieval.py ingests it). A chain is one report's
   questions in their order, verbatim: TAT-QA questions are generic ("What was the change in revenue?"), so the
   conversation decides which report. Relevant: the question's rel_paragraphs of its report, and the report's
   table when answer_from is table or table-text. There is no human standalone rewrite: the ``gold`` row is the
   follow-up searched *within its own report* (filter report_uid), the ceiling a rewrite naming the report
   could reach.
3. MTRAG (--mtrag: the mtrag folder). Conversations from retrieval/<domain>_questions.jsonl (govt, clapnq,
   cloud; every user turn of the conversation); gold standalone from _rewrite.jsonl (human rewrites); relevance
   from _qrels.tsv restricted to the passages in passages.jsonl (the only corpus shipped; all three domains in one
   collection). Scored: turns > 1 with at least one label found there (the table says how many).

--limit N caps the follow-up turns scored per set (whole chains, evenly spaced; 0: all). Collections are
built under --index-dir (default /tmp/assistant-bench-indexes), never in the repository, and reused (ingest is
incremental). Embedder, chunking and retrieval settings come from Settings() (ASSISTANT_* variables apply).
Everything is deterministic. A missing data folder skips its set with a message.

Target (issue 18), follow-up turns only, per set: the standalone strategy's Recall@5 >= 0.9 of the gold row's
and never below last-turn; the standalone step p50 <= 300 ms on 2 cores (0 when skipped).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from bench.retrieval import (  # noqa: E402
    DEFAULT_INDEX_DIR,
    Mistake,
    Skip,
    beir_doc_key,
    build_collection,
    load_embedder,
    open_collection,
    tatqa_doc_key,
)
from bench.tables import fmt, markdown_table, percentile  # noqa: E402
from training.chains import (  # noqa: E402
    Chain,
    Turn,
    evenly_spaced,
    medquad_chains,
    medquad_doc_key,
    medquad_files,
    mtrag_conversations,
    read_jsonl,
    read_medquad,
    user_text,
)

STRATEGIES = ("last-turn", "concatenated", "rules", "fusion", "anchored", "generator", "adapter", "gold")
DEFAULT_STRATEGIES = ("last-turn", "concatenated", "rules", "fusion", "anchored", "gold")
STANDALONE = ("rules", "fusion", "anchored", "generator", "adapter")  # the strategies the target is about
SETS = ("medquad", "tatqa", "mtrag")
SET_TITLES = {"medquad": "MedQuAD chains", "tatqa": "TAT-QA follow-ups", "mtrag": "MTRAG"}
MTRAG_DOMAINS = ("govt", "clapnq", "cloud")
TARGET_RATIO = 0.9
TARGET_P50_MS = 300.0
RECALL_K = 5
HISTORY_TURNS = 4  # conversation.history_turns' default: the earlier questions the pipeline reads
REWRITE_TOKENS = 48  # as assistant/pipeline.py asks the generator strategy's model

# ---------------------------------------------------------------------------------------------- chains


def select_chains(chains: Sequence[Chain], limit: int) -> list[Chain]:
    """Whole chains spread evenly over the list, holding at most ``limit`` scored follow-up turns (0: all)."""
    chains = [c for c in chains if c.scored_turns()]
    if limit <= 0:
        return chains
    total = sum(len(c.scored_turns()) for c in chains)
    if total <= limit:
        return chains
    wanted = max(1, round(limit * len(chains) / total))
    chosen: list[Chain] = []
    while True:
        chosen, count = [], 0
        for chain in evenly_spaced(chains, wanted):
            n = len(chain.scored_turns())
            if count + n > limit:
                continue  # a long chain that does not fit; shorter ones further on still may
            chosen.append(chain)
            count += n
        if count >= limit or wanted >= len(chains) or len(chosen) < wanted:
            return chosen or list(chains[:1])
        wanted += 1


# --- MedQuAD


# --- TAT-QA


def tatqa_relevant(uid: str, question: Mapping[str, Any]) -> dict[str, int]:
    """A TAT-QA question's relevant documents: its rel_paragraphs, and the table when answered from it."""
    relevant = {tatqa_doc_key({"report_uid": uid, "kind": "paragraph", "order": o}): 1 for o in question.get("rel_paragraphs") or []}
    if str(question.get("answer_from") or "") in ("table", "table-text"):
        relevant[tatqa_doc_key({"report_uid": uid, "kind": "table"})] = 1
    return {k: v for k, v in relevant.items() if k}


def tatqa_chains(reports: Sequence[Mapping[str, Any]], max_turns: int) -> list[Chain]:
    """One chain per report: its questions in order, verbatim; the gold row searches within the report."""
    chains = []
    for report in reports:
        uid = str(report["table"].get("uid", ""))
        questions = sorted(
            (q for q in report.get("questions", []) if str(q.get("question") or "").strip()),
            key=lambda q: float(q.get("order") or 0),
        )
        turns = []
        for position, question in enumerate(questions[:max_turns]):
            relevant = tatqa_relevant(uid, question) if position else {}
            turns.append(
                Turn(
                    id=str(question.get("uid") or f"{uid}/q{position}"),
                    message=" ".join(str(question["question"]).split()),
                    gold_question=question["question"] if relevant else "",
                    gold_filters={"report_uid": [uid]} if relevant else None,
                    relevant=relevant,
                )
            )
        if len(turns) > 1:
            chains.append(Chain(id=uid, turns=tuple(turns)))
    return chains


# --- MTRAG


def mtrag_chains(
    domain: str,
    questions: Sequence[Mapping[str, str]],
    rewrites: Mapping[str, str],
    qrels: Mapping[str, Mapping[str, int]],
    passages: set[str],
) -> tuple[list[Chain], dict[str, int]]:
    """Conversations of one domain (questions.jsonl rows: {_id: "<conv><::><turn>", text}) and counts:
    follow-up turns labelled, and those with a label found in ``passages`` (the scored ones)."""
    chains, labelled, scored = [], 0, 0
    for conversation, messages in mtrag_conversations(questions).items():
        turns = []
        for number, message in enumerate(messages, 1):
            turn_id = f"{conversation}<::>{number}"
            found = {doc: grade for doc, grade in qrels.get(turn_id, {}).items() if doc in passages and grade > 0}
            if number > 1 and turn_id in qrels:
                labelled += 1
                scored += bool(found)
            if number == 1 or turn_id not in rewrites:
                found = {}
            turns.append(Turn(id=turn_id, message=message, gold_question=rewrites.get(turn_id, ""), relevant=found, kind=domain))
        if turns:
            chains.append(Chain(id=conversation, turns=tuple(turns)))
    return chains, {"labelled": labelled, "scored": scored}


# ---------------------------------------------------------------------------------------------- strategies


@dataclass
class Outcome:
    """One strategy's results on one scored follow-up turn."""

    question: str
    rewritten: bool
    standalone_ms: float | None  # None: the strategy has no standalone step (gold)
    search_ms: float
    run: dict[str, float]


def document_run(hits: Sequence[Any], key: Callable[[Mapping[str, Any]], str | None]) -> dict[str, float]:
    """Documents of the hits in rank order (a document ranked where its first chunk is), scores n, n-1, ..."""
    run: dict[str, float] = {}
    for hit in hits:
        doc = key(hit.metadata) or f"doc:{hit.document_id}"
        if doc not in run:
            run[doc] = float(len(hits) - len(run))
    return run


def load_followup():
    """retriever.followup, or None while it does not exist (the strategies that need it are skipped)."""
    try:
        from retriever import followup
    except ImportError:
        return None
    return followup if hasattr(followup, "contextualize") else None


def run_strategy(
    strategy: str,
    chains: Sequence[Chain],
    retriever: Any,
    key: Callable[[Mapping[str, Any]], str | None],
    k: int,
    *,
    followup: Any = None,
    rewrite: Callable[[list[dict[str, str]]], str] | None = None,
) -> dict[str, Outcome]:
    """{turn id: Outcome} over the scored follow-up turns. The history handed to ``contextualize`` is this
    strategy's own standalone questions of the earlier turns (turn 1 stands alone)."""
    out: dict[str, Outcome] = {}
    for chain in chains:
        history: list[str] = []
        said: list[str] = []
        for position, turn in enumerate(chain.turns):
            said.append(turn.message)
            scored = position > 0 and turn.scored
            filters = None
            ms: float | None = 0.0
            rewritten = False
            previous = history[-1] if history else None
            if strategy == "last-turn":
                question = turn.message
            elif strategy == "concatenated":
                started = time.perf_counter()
                question = " ".join(said)
                ms = (time.perf_counter() - started) * 1000
                rewritten = position > 0
            elif strategy == "gold":
                question, filters, ms = turn.gold_question or turn.message, turn.gold_filters, None
            else:
                extra = {"rewrite": rewrite, "shots": strategy == "generator"} if strategy in ("generator", "adapter") else {}
                # The task adapter is a generator without examples; anchoring changes the search, not the question.
                how = {"adapter": "generator", "anchored": "rules"}.get(strategy, strategy)
                standalone = followup.contextualize(turn.message, list(history), strategy=how, **extra)
                question, rewritten, ms = standalone.question, standalone.rewritten, standalone.ms
            history.append(question)
            if not scored:
                continue
            started = time.perf_counter()
            if strategy == "fusion":
                hits = followup.fused_search(retriever, question, previous, k)
            elif strategy == "anchored" and not rewritten:  # as the pipeline: the earlier questions' searches vote
                hits = followup.anchor(retriever, retriever.search(question, k).hits, question, k, history[:-1][-HISTORY_TURNS:])
            else:
                hits = retriever.search(question, k, filters).hits
            search_ms = (time.perf_counter() - started) * 1000
            out[turn.id] = Outcome(question, rewritten, ms, search_ms, document_run(hits, key))
    return out


def summarise(outcomes: Mapping[str, Outcome], chains: Sequence[Chain]) -> dict[str, Any]:
    """Recall@5, nDCG@10 (ranx, eval.metrics), n, rewritten share, p50/p95 of the standalone step and of the
    search; per turn kind too."""
    from eval.metrics import retrieval_metrics

    turns = {t.id: t for c in chains for t in c.scored_turns()}
    qrels = {tid: dict(turns[tid].relevant) for tid in outcomes}
    run = {tid: o.run for tid, o in outcomes.items()}
    metrics = retrieval_metrics(run, qrels, ks=(RECALL_K,), per_query=True)
    per_query = metrics.pop("per_query")
    standalone = [o.standalone_ms for o in outcomes.values() if o.standalone_ms is not None]
    search = [o.search_ms for o in outcomes.values()]
    kinds: dict[str, list[str]] = {}
    for tid in outcomes:
        kinds.setdefault(turns[tid].kind or "all", []).append(tid)
    recall = per_query[f"recall@{RECALL_K}"]
    return {
        f"recall@{RECALL_K}": metrics[f"recall@{RECALL_K}"],
        "ndcg@10": metrics["ndcg@10"],
        "n": metrics["n_queries"],
        "rewritten": sum(o.rewritten for o in outcomes.values()) / len(outcomes) if outcomes else None,
        "p50_ms": percentile(standalone, 50) if standalone else None,
        "p95_ms": percentile(standalone, 95) if standalone else None,
        "search_p50_ms": percentile(search, 50) if search else None,
        "by_kind": {
            kind: {"n": len(ids), f"recall@{RECALL_K}": sum(recall.get(i, 0.0) for i in ids) / len(ids)}
            for kind, ids in sorted(kinds.items())
        },
        "per_turn": {
            tid: {"question": o.question, "rewritten": o.rewritten, f"recall@{RECALL_K}": recall.get(tid, 0.0)}
            for tid, o in outcomes.items()
        },
    }


def target_verdict(results: Mapping[str, Mapping[str, Any]], strategy: str) -> dict[str, Any] | None:
    """The issue's target for one standalone strategy against the gold and last-turn rows of the same set."""
    row, gold, last = results.get(strategy), results.get("gold"), results.get("last-turn")
    metric = f"recall@{RECALL_K}"
    if not row or not gold or not last or row[metric] is None or not gold[metric]:
        return None
    ratio = row[metric] / gold[metric]
    p50 = row["p50_ms"] or 0.0
    met = ratio >= TARGET_RATIO and row[metric] >= last[metric] and p50 <= TARGET_P50_MS
    return {"ratio": ratio, "vs_last_turn": row[metric] - last[metric], "p50_ms": p50, "met": met}


# ---------------------------------------------------------------------------------------------- sets


@dataclass
class BenchSet:
    name: str
    chains: list[Chain]
    key: Callable[[Mapping[str, Any]], str | None]
    collection: Path
    notes: list[str]


def _folder(given: Path | None, data: Path, name: str, marker: str) -> Path:
    """--medical/--finance/--mtrag as given (the data set's folder or the folder holding it), else data/name."""
    for candidate in [given, given / name] if given else [data / name]:
        if (candidate / marker).exists():
            return candidate
    raise Skip(f"{name} not found at {given or data / name} (pass --{_OPTION[name]} DIR or --data DIR)")


_OPTION = {"medquad": "medical", "tatqa": "finance", "mtrag": "mtrag"}


def medquad_set(args, settings, embedder) -> BenchSet:
    folder = _folder(args.medical, args.data, "medquad", "1_CancerGov_QA")
    files, records = read_medquad(medquad_files(folder, args.medical_files))
    if not files:
        raise Skip(f"no MedQuAD XML files under {folder}")
    path, report = build_collection(args.index_dir, f"conv-medquad-{args.medical_files}", files, embedder, settings, False)
    chains = select_chains(medquad_chains(records, args.turns), args.limit)
    notes = [
        f"corpus: {len(files)} MedQuAD files evenly spaced over the 9 folders, {len(records):,} QA documents "
        f"({report.chunks_embedded:,} chunks embedded this run); {len(chains)} chains of up to {args.turns} turns"
    ]
    return BenchSet("medquad", chains, medquad_doc_key, path, notes)


def tatqa_set(args, settings, embedder) -> BenchSet:
    folder = _folder(args.finance, args.data, "tatqa", "tatqa_dataset_dev.json")
    dev = folder / "tatqa_dataset_dev.json"
    reports = json.loads(dev.read_text(encoding="utf-8"))
    path, report = build_collection(args.index_dir, "tatqa-dev", [dev], embedder, settings, False)
    chains = select_chains(tatqa_chains(reports, args.turns), args.limit)
    notes = [
        f"corpus: the whole TAT-QA dev file ({len(reports)} reports: a table and paragraphs each); {len(chains)} reports, "
        f"questions in order, up to {args.turns} turns",
        "gold row: no human rewrite exists; it is the follow-up searched within its own report (filter report_uid)",
    ]
    return BenchSet("tatqa", chains, tatqa_doc_key, path, notes)


def mtrag_set(args, settings, embedder) -> BenchSet:
    folder = _folder(args.mtrag, args.data, "mtrag", "passages.jsonl")
    from bench.retrieval import read_qrels

    passages_file = folder / "passages.jsonl"
    passages = {str(r["_id"]) for r in read_jsonl(passages_file)}
    chains: list[Chain] = []
    counts = {}
    for domain in args.mtrag_domains:
        base = folder / "retrieval" / domain
        questions = Path(f"{base}_questions.jsonl")
        if not questions.is_file():
            continue
        rewrites = {str(r["_id"]): user_text(r["text"]) for r in read_jsonl(Path(f"{base}_rewrite.jsonl"))}
        domain_chains, counts[domain] = mtrag_chains(
            domain, read_jsonl(questions), rewrites, read_qrels(Path(f"{base}_qrels.tsv")), passages
        )
        chains += domain_chains
    if not chains:
        raise Skip(f"no retrieval/<domain>_questions.jsonl in {folder}")
    path, report = build_collection(args.index_dir, "conv-mtrag-passages", [passages_file], embedder, settings, False)
    chosen = select_chains(chains, args.limit)
    found = ", ".join(f"{d} {c['scored']} of {c['labelled']}" for d, c in counts.items())
    notes = [
        f"corpus: passages.jsonl ({len(passages):,} passages, all domains in one collection); follow-up turns with a "
        f"label found there, of those labelled: {found}; relevant = the labels found there",
        f"{len(chosen)} conversations scored; gold row: the human rewrite (_rewrite.jsonl)",
    ]
    return BenchSet("mtrag", chosen, beir_doc_key, path, notes)


SET_BUILDERS = {"medquad": medquad_set, "tatqa": tatqa_set, "mtrag": mtrag_set}


def evaluate_set(bench: BenchSet, strategies: Sequence[str], args, settings, embedder, followup, rewriters) -> dict[str, Any]:
    from assistant import compose

    results: dict[str, Any] = {}
    with open_collection(bench.collection, settings) as collection:
        retriever = compose.retriever(settings, collection, embedder)
        for strategy in strategies:
            rewrite = rewriters.get(strategy)
            outcomes = run_strategy(strategy, bench.chains, retriever, bench.key, args.chunks, followup=followup, rewrite=rewrite)
            results[strategy] = summarise(outcomes, bench.chains)
    return results


# ---------------------------------------------------------------------------------------------- printing

LABELS = {"gold": "gold standalone"}


def results_table(results: Mapping[str, Mapping[str, Any]]) -> str:
    gold = (results.get("gold") or {}).get(f"recall@{RECALL_K}")
    rows = []
    for strategy, values in results.items():
        recall = values[f"recall@{RECALL_K}"]
        ratio = recall / gold if gold and recall is not None else None
        rows.append(
            [
                LABELS.get(strategy, strategy),
                fmt(recall, 4),
                fmt(values["ndcg@10"], 4),
                values["n"],
                fmt(ratio, 3),
                "-" if values["rewritten"] is None or strategy == "gold" else f"{100 * values['rewritten']:.0f} %",
                fmt(values["p50_ms"], 2),
                fmt(values["p95_ms"], 2),
                fmt(values["search_p50_ms"], 1),
            ]
        )
    headers = [
        "strategy",
        f"Recall@{RECALL_K}",
        "nDCG@10",
        "n",
        "vs gold",
        "rewritten",
        "standalone p50 ms",
        "p95 ms",
        "search p50 ms",
    ]
    return markdown_table(headers, rows)


def kinds_table(results: Mapping[str, Mapping[str, Any]]) -> str | None:
    kinds = sorted({kind for values in results.values() for kind in values["by_kind"]})
    if len(kinds) < 2:
        return None
    first = next(iter(results.values()))["by_kind"]
    headers = ["strategy", *(f"{kind} (n={first[kind]['n']})" for kind in kinds)]
    rows = [[LABELS.get(s, s), *(fmt(v["by_kind"][kind][f"recall@{RECALL_K}"], 4) for kind in kinds)] for s, v in results.items()]
    return markdown_table(headers, rows)


def print_set(name: str, notes: Sequence[str], results: Mapping[str, Mapping[str, Any]]) -> None:
    print(f"\n## {SET_TITLES[name]}\n")
    for note in notes:
        print(f"- {note}")
    print()
    print(results_table(results))
    kinds = kinds_table(results)
    if kinds:
        print(f"\nRecall@{RECALL_K} by {'follow-up style' if name == 'medquad' else 'domain'}:\n")
        print(kinds)
    for strategy in STANDALONE:
        verdict = target_verdict(results, strategy)
        if verdict:
            print(
                f"\nTarget ({strategy}): Recall@{RECALL_K} >= {TARGET_RATIO} of gold and >= last-turn, standalone p50 <= "
                f"{TARGET_P50_MS:g} ms: {'MET' if verdict['met'] else 'NOT MET'} ({verdict['ratio']:.3f} of gold, "
                f"{verdict['vs_last_turn']:+.4f} vs last-turn, p50 {verdict['p50_ms']:.2f} ms)",
                end="",
            )
    print()


# ---------------------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data", help="shared data folder (default ../shared/data)")
    parser.add_argument("--medical", type=Path, metavar="DIR", help="the MedQuAD folder (or the folder holding medquad/)")
    parser.add_argument("--finance", type=Path, metavar="DIR", help="the TAT-QA folder (or the folder holding tatqa/)")
    parser.add_argument("--mtrag", type=Path, metavar="DIR", help="the MTRAG folder (or the folder holding mtrag/)")
    parser.add_argument("--sets", nargs="+", choices=SETS, default=list(SETS), help="which sets to run (default all)")
    parser.add_argument(
        "--index-dir", type=Path, default=DEFAULT_INDEX_DIR, help=f"where benchmark collections are kept (default {DEFAULT_INDEX_DIR})"
    )
    parser.add_argument("--limit", type=int, default=0, help="follow-up turns scored per set, whole chains evenly spaced (0: all)")
    parser.add_argument(
        "--strategies", nargs="+", choices=STRATEGIES, default=list(DEFAULT_STRATEGIES), help="rows (default: all but generator)"
    )
    parser.add_argument("--turns", type=int, default=5, help="MedQuAD and TAT-QA chains: at most this many turns (default 5)")
    parser.add_argument("--medical-files", type=int, default=400, help="MedQuAD XML files ingested, evenly spaced (default 400)")
    parser.add_argument("--chunks", type=int, default=30, help="chunks retrieved per search, grouped into documents (default 30)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the results (per turn included) to FILE")
    parser.add_argument(
        "--tasks-adapter", type=Path, metavar="DIR", help="the adapter strategy's task adapter (assistant finetune --tasks)"
    )
    parser.add_argument(
        "--mtrag-domains", nargs="+", choices=MTRAG_DOMAINS, default=list(MTRAG_DOMAINS), help="MTRAG domains scored (default all)"
    )
    args = parser.parse_args(argv)
    if "adapter" in args.strategies and not args.tasks_adapter:
        parser.error("the adapter strategy needs --tasks-adapter DIR")
    if args.turns < 2 or args.chunks < 10 or args.medical_files < 1:
        parser.error("--turns must be at least 2, --chunks at least 10 and --medical-files at least 1")
    args.strategies = [s for s in STRATEGIES if s in args.strategies]
    return args


def make_rewriter(settings) -> Callable[[list[dict[str, str]]], str]:
    """The configured generator asked for a standalone question as the pipeline asks it: greedy, 48 tokens."""
    from assistant import compose
    from generator.base import GenerationOptions

    generator, options = compose.generator(settings), GenerationOptions(max_new_tokens=REWRITE_TOKENS, temperature=0.0)
    return lambda messages: generator.generate(messages, options)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from core.config import Settings

    settings = Settings()
    started = time.perf_counter()
    strategies = list(args.strategies)
    followup = load_followup()
    if followup is None:
        missing = [s for s in strategies if s in STANDALONE]
        strategies = [s for s in strategies if s not in STANDALONE]
        if missing:
            print(f"skipped {', '.join(missing)}: retriever/followup.py (contextualize, fused_search) is not there yet", file=sys.stderr)
    rewriters = {}
    if "generator" in strategies:
        rewriters["generator"] = make_rewriter(settings)
    if "adapter" in strategies:
        rewriters["adapter"] = make_rewriter(Settings(generator={**settings.generator.model_dump(), "adapter": str(args.tasks_adapter)}))
    print("# Follow-up questions: standalone before retrieval (bench/conversations.py)\n")
    print(
        f"Follow-up turns only (turn 2 on); Recall@{RECALL_K} and nDCG@10 over documents from the top {args.chunks} chunks; "
        f"'vs gold': Recall@{RECALL_K} / the gold row's; 'rewritten': share of turns the strategy changed; standalone ms: "
        f"the step before retrieval (p50/p95; '-' for gold); search ms: retrieval (two searches for fusion and anchored, one for the others)."
    )
    if "generator" not in strategies:
        print(
            "generator: not run (name it in --strategies; it uses Settings().generator, and the embedded 135M model takes minutes per rewrite on 2 cores)."
        )
    embedder = load_embedder(settings.embedder.model, settings)
    print(
        f"embedder {embedder.name}; retrieval mode {settings.retrieval.mode}, fusion {settings.retrieval.fusion}; {os.cpu_count()} CPU(s)"
    )
    out: dict[str, Any] = {"strategies": strategies, "limit": args.limit, "sets": {}}
    for name in args.sets:
        try:
            bench = SET_BUILDERS[name](args, settings, embedder)
        except Skip as exc:
            print(f"\n## {SET_TITLES[name]}\n\nskipped: {exc}")
            continue
        results = evaluate_set(bench, strategies, args, settings, embedder, followup, rewriters)
        print_set(name, bench.notes, results)
        out["sets"][name] = {
            "notes": bench.notes,
            "results": results,
            "targets": {s: target_verdict(results, s) for s in STANDALONE if s in results},
        }
    print(f"\nwall time {time.perf_counter() - started:.1f} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return out


def main(argv: Iterable[str] | None = None) -> int:
    args = parse_args(list(argv) if argv is not None else None)
    from core.errors import UserError

    try:
        run(args)
    except (Mistake, UserError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: what was ingested is kept; run the same command again to finish", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
