"""The offline evaluation runner behind ``assistant eval``.

    assistant eval --suite medical|finance|unanswerable|guardrails|all [--config FILE] [--compare FILE]
                   [--gate FILE] [--limit N] [--out DIR] [--json]

For every question of the answer suites (medical, finance, unanswerable) it asks ``Assistant.stream`` on
the item's collection, timing the first text piece and the whole answer, and ranks the top ``depth``
passages with the same retriever for the retrieval metrics. Every text of the guardrails suite goes through
the input rails of the collection it was written for. Each result is appended to ``DIR/cache.jsonl`` as
soon as it exists, keyed by the configuration's hash, the suite and the item id, so an interrupted run
resumes where it stopped. Scores and aggregates are computed from the cached records (eval/scoring.py);
the report goes to ``DIR/report.json`` and ``DIR/report.html`` (eval/report.py). docs/eval.md has the
details.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from core.config import Settings
from core.errors import UserError
from core.storage import atomic_write_text
from eval import compare as compare_mod
from eval import gate as gate_mod
from eval import scoring
from eval.config import EvalConfig, load_config, stable_hash

REPO = Path(__file__).resolve().parents[1]
EVAL_DIR = REPO / "data" / "eval"
# The sample collections the eval sets are asked of (as `make collections` builds them).
SAMPLES = {
    "medical": REPO / "data" / "samples" / "medical" / "medquad",
    "finance": REPO / "data" / "samples" / "finance" / "tatqa_sample.json",
}
# Guardrail texts taken from one domain's questions are checked with that collection's packs; the others
# (injections, harmful requests, general benign text) with every domain's, a rail counting as fired when
# it blocks in either (a user may type them into any chat).
GUARD_COLLECTIONS = {"medquad": ("medical",), "tatqa": ("finance",)}
GUARD_DEFAULT = ("medical", "finance")
CACHE_NAME = "cache.jsonl"
REPORT_JSON = "report.json"
REPORT_HTML = "report.html"

Echo = Callable[[str], None]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- items --------------------------------------------------------------------------------------------


def suites_for(suite: str) -> tuple[str, ...]:
    if suite == "all":
        return scoring.SUITES
    if suite not in scoring.SUITES:
        raise UserError(f"unknown suite {suite!r}: choose one of {', '.join(scoring.SUITES)} or all")
    return (suite,)


def _interleave(items: list[dict], key: str) -> list[dict]:
    """Items of each ``key`` value taken in turn (values in order of first appearance, items in file order),
    so that the first N of a set sorted by class cover every class."""
    groups: dict[Any, list[dict]] = {}
    for item in items:
        groups.setdefault(item.get(key), []).append(item)
    out: list[dict] = []
    queues = list(groups.values())
    while any(queues):
        for queue in queues:
            if queue:
                out.append(queue.pop(0))
    return out


def suite_files(data_dir: Path, suites: Sequence[str], files: Sequence[Path] = ()) -> dict[str, Path]:
    """The eval file of each suite: ``data_dir/<suite>.jsonl`` for the named suites, and each extra file under
    its own name (its stem: ``--suite-file my_questions.jsonl`` is the suite "my_questions")."""
    paths = {suite: Path(data_dir) / f"{suite}.jsonl" for suite in suites}
    for file in files:
        name = Path(file).stem
        if name in paths:
            raise UserError(f"two eval sets are named {name!r} ({paths[name]} and {file}): rename one file")
        if name == scoring.GUARD_SUITE:
            raise UserError(f"{file}: a guardrail set runs as `--suite guardrails --data DIR`, not as a suite file")
        paths[name] = Path(file)
    return paths


def _check_item(path: Path, number: int, suite: str, item: Any) -> None:
    if not isinstance(item, dict):
        raise UserError(f"{path}:{number}: an item is a JSON object")
    if suite == scoring.GUARD_SUITE:
        needed: tuple[str, ...] = ("id", "text", "expected")
    elif "turns" in item:
        needed = ("id", "collection")
        if (
            not isinstance(item["turns"], list)
            or not item["turns"]
            or not all(isinstance(t, dict) and t.get("question") for t in item["turns"])
        ):
            raise UserError(f"{path}:{number}: turns must be a non-empty list of objects with a question")
    else:
        needed = ("id", "question", "collection")
    missing = [k for k in needed if k not in item]
    if missing:
        raise UserError(f"{path}:{number}: missing {', '.join(missing)}")


def load_items(data_dir: Path, suites: Sequence[str], limit: int | None = None, files: Sequence[Path] = ()) -> dict[str, list[dict]]:
    """The items of each suite from ``data_dir/<suite>.jsonl`` and of each extra file (``suite_files``); with
    ``limit``, the first N of each in file order, except that guardrails (by expected rail) and unanswerable
    (by collection) interleave their classes first so that a small subset holds each. A suite's items are
    questions, or conversations (``turns``: questions asked in order, each with its own gold), not both."""
    out = {}
    for suite, path in suite_files(data_dir, suites, files).items():
        if not path.exists():
            raise UserError(f"no eval set {path} (the sets ship in data/eval; see data/eval/README.md)")
        items = []
        with path.open(encoding="utf-8") as f:
            for number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    item = json.loads(line)
                except ValueError as exc:
                    raise UserError(f"{path}:{number}: not JSON: {exc}") from None
                _check_item(path, number, suite, item)
                items.append(item)
        if not items:
            raise UserError(f"{path}: no items")
        if len({"turns" in i for i in items}) > 1:
            raise UserError(f"{path}: mixes conversations (items with turns) and single questions: split it in two files")
        ids = [i["id"] for i in items]
        if len(set(ids)) != len(ids):
            raise UserError(f"{path}: duplicate item ids")
        if limit is not None:
            if suite == scoring.GUARD_SUITE:
                items = _interleave(items, "expected")
            elif suite in scoring.NOT_COVERED_SUITES:
                items = _interleave(items, "collection")
            items = items[:limit]
        out[suite] = items
    return out


def item_digest(item: Mapping[str, Any]) -> str:
    return stable_hash(item, 12)


# --- the cache ----------------------------------------------------------------------------------------


class Cache:
    """Per-item records in a JSON-lines file, one line per result, appended (and flushed) as each is made.
    A line cut short by a crash is ignored; a later line for the same key wins."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.records: dict[tuple[str, str, str], tuple[str, dict]] = {}
        if self.path.exists():
            with self.path.open(encoding="utf-8") as f:
                for line in f:
                    try:
                        row = json.loads(line)
                        self.records[(row["config"], row["suite"], row["id"])] = (row["item"], row["record"])
                    except (ValueError, KeyError, TypeError):
                        continue
        self._file = None

    def get(self, config: str, suite: str, item: Mapping[str, Any]) -> dict | None:
        found = self.records.get((config, suite, item["id"]))
        if found is None or found[0] != item_digest(item):
            return None
        return found[1]

    def put(self, config: str, suite: str, item: Mapping[str, Any], record: dict) -> None:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", encoding="utf-8")
        row = {"config": config, "suite": suite, "id": item["id"], "item": item_digest(item), "record": record}
        self._file.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
        self._file.flush()
        self.records[(config, suite, item["id"])] = (row["item"], record)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


# --- collections --------------------------------------------------------------------------------------


def ensure_collections(settings: Settings, names: Iterable[str], *, echo: Echo = _stderr, progress: bool = True) -> dict[str, Any]:
    """The manifests' fingerprints of the named collections; the sample collections are built first when
    missing (as `make collections` does), any other missing one is a UserError naming the command."""
    from core.collection import MANIFEST, collection_path, list_collections

    names = sorted(set(names))
    for name in names:
        path = collection_path(settings.index_dir, name)
        if (path / MANIFEST).exists():
            continue
        source = SAMPLES.get(name)
        if source is None or not source.exists():
            hint = f"assistant ingest {_shown(source) if source else 'PATH'} --collection {name}"
            more = " (or `make collections`)" if source else ""
            raise UserError(f"collection {name!r} not found under {settings.index_dir}; build it with `{hint}`{more}")
        echo(
            f"collection {name!r} not found under {settings.index_dir}: building it from {_shown(source)} "
            f"(as `assistant ingest {_shown(source)} --collection {name}` would) ..."
        )
        build_collection(settings, name, source, progress=progress)
    manifests = {m.name: m for m in list_collections(settings.index_dir)}
    return {
        name: {
            "embedder": manifests[name].embedder.model_dump(),
            "chunking": manifests[name].chunking.model_dump(),
            "documents": manifests[name].documents,
            "chunks": manifests[name].index.chunks,
        }
        for name in names
        if name in manifests
    }


def _shown(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def build_collection(settings: Settings, name: str, source: Path, *, progress: bool = True) -> None:
    from assistant import compose
    from core.collection import collection_path

    embedder = compose.embedder(settings)
    ingestor = compose.ingestor(settings, collection_path(settings.index_dir, name), embedder, name=name, progress=progress)
    with ingestor.collection:
        report = ingestor.ingest([source])
    if report.interrupted:
        raise KeyboardInterrupt
    if report.skipped:
        raise UserError(
            f"building collection {name!r}: {len(report.skipped)} file(s) skipped, e.g. {report.skipped[0].path}: {report.skipped[0].reason}"
        )


# --- asking -------------------------------------------------------------------------------------------


def ask_item(assistant: Any, suite: str, item: Mapping[str, Any], config: EvalConfig, history: Sequence[Any] = ()) -> dict[str, Any]:
    """One question through ``Assistant.stream``, timed, plus the ranked hits for the retrieval metrics: the
    answer in the shape every front end shows (assistant/views.py) with ``retrieved`` hits and timings.
    ``history``: the conversation's earlier turns (a follow-up is ranked by the question it was made into)."""
    from assistant.pipeline import Answer
    from assistant.views import answer_view, hit_view

    options = config.options
    filters = item.get("filters") if options.closed else None
    collection = item["collection"]
    started = time.perf_counter()
    first = None
    answer = None
    for piece in assistant.stream(item["question"], collection, k=options.k, filters=filters or None, history=history):
        if isinstance(piece, Answer):
            answer = piece
        elif first is None:
            first = time.perf_counter()
    ended = time.perf_counter()
    assert answer is not None
    # Outside the timed part: the same retriever, ranked deeper, for Recall@10 / MRR@10 / nDCG@10.
    retriever = assistant.retriever(collection)
    depth = max(options.depth, options.k)

    def ranked(hits: list) -> list[dict[str, Any]]:
        return [hit_view(h, rank) for rank, h in enumerate(hits, start=1)]

    retrieved = ranked(retriever.search(answer.standalone or item["question"], depth, filters or None).hits)
    retrieved_open = ranked(retriever.search(item["question"], depth).hits) if filters and item.get("gold") else None
    return {
        **answer_view(answer),
        "retrieved": retrieved,
        "retrieved_open": retrieved_open,
        "ttft_ms": round(((first or ended) - started) * 1000, 2),
        "total_ms": round((ended - started) * 1000, 2),
    }


def ask_conversation(assistant: Any, suite: str, item: Mapping[str, Any], config: EvalConfig) -> dict[str, Any]:
    """The turns asked in order, each with the answers before it as history (the assistant's own, as a user
    would have seen them); each follow-up is also ranked as written (the last-turn-only baseline) and as its
    gold standalone question, for the follow-up retrieval figures."""
    from assistant.conversations import Turn
    from assistant.views import hit_view

    filters = (item.get("filters") if config.options.closed else None) or None
    retriever = assistant.retriever(item["collection"])
    depth = max(config.options.depth, config.options.k)
    history: list[Any] = []
    turns = []
    for turn in item["turns"]:
        record = ask_item(assistant, suite, {**item, **turn}, config, history=history)
        if history:
            hits = retriever.search(turn["question"], depth, filters).hits
            record["retrieved_last"] = [hit_view(h, rank) for rank, h in enumerate(hits, start=1)]
            if turn.get("standalone"):
                hits = retriever.search(turn["standalone"], depth, filters).hits
                record["retrieved_gold"] = [hit_view(h, rank) for rank, h in enumerate(hits, start=1)]
        history.append(Turn(record["question"], record["standalone"], record["answer"], item["collection"]))
        turns.append(record)
    return {"turns": turns, "total_ms": round(sum(t["total_ms"] for t in turns), 2)}


def check_item(guards: Mapping[str, Any], item: Mapping[str, Any]) -> dict[str, Any]:
    """One text through the input rails of the collections it belongs to."""
    collections = GUARD_COLLECTIONS.get(item.get("source"), GUARD_DEFAULT)
    fired: set[str] = set()
    rules: list[str] = []
    blocked = False
    started = time.perf_counter()
    for collection in collections:
        guard = guards.get(collection)
        if guard is None:  # guardrails disabled in this configuration
            continue
        result = guard.check(item["text"], item.get("stage", "input"), {"collection": collection})
        blocking = [e for e in result.events if e.action == "block"]
        fired |= {e.category for e in blocking}
        rules += [e.rule_id for e in blocking if e.rule_id not in rules]
        blocked = blocked or result.blocked
    return {
        "fired": sorted(fired),
        "rules": rules,
        "blocked": blocked,
        "collections": list(collections),
        "check_ms": round((time.perf_counter() - started) * 1000, 3),
    }


def _default_assistant(config: EvalConfig):
    from assistant.pipeline import Assistant

    return Assistant(config.settings)


def run_config(
    config: EvalConfig,
    items: Mapping[str, Sequence[dict]],
    cache: Cache,
    *,
    make_assistant: Callable[[EvalConfig], Any] | None = None,
    progress: bool = True,
    echo: Echo = _stderr,
) -> dict[str, Any]:
    """Records for every item (cached ones read back, the rest produced and appended to the cache)."""
    from assistant import compose

    answer_suites = [s for s in items if s != scoring.GUARD_SUITE]
    collections = {i["collection"] for s in answer_suites for i in items[s]}
    fingerprints = ensure_collections(config.settings, collections, echo=echo, progress=progress) if collections else {}
    key = stable_hash({**config.fingerprint(), "collections": fingerprints})
    records: dict[str, list[dict | None]] = {s: [cache.get(key, s, i) for i in items[s]] for s in items}
    cached = {s: sum(r is not None for r in records[s]) for s in items}
    todo = [(s, n) for s in items for n, r in enumerate(records[s]) if r is None]
    started = time.perf_counter()
    assistant = None
    if todo:
        if any(s != scoring.GUARD_SUITE for s, _ in todo):
            assistant = (make_assistant or _default_assistant)(config)
            # Load the models and open the collections before the clock starts for the first question.
            for collection in sorted({items[s][n]["collection"] for s, n in todo if s != scoring.GUARD_SUITE}):
                assistant.retriever(collection).search("warm up", 1)
                assistant.guard(collection)
            _ = assistant.generator
        guards = (
            {c: compose.guard(config.settings, c) for c in {*GUARD_DEFAULT, *[c for cs in GUARD_COLLECTIONS.values() for c in cs]}}
            if any(s == scoring.GUARD_SUITE for s, _ in todo)
            else {}
        )
        from tqdm import tqdm

        bar = tqdm(
            total=len(todo),
            desc=f"eval {config.name}",
            unit="item",
            disable=not progress,
            file=sys.stderr,
            dynamic_ncols=True,
            mininterval=1.0,
        )
        try:
            for suite, n in todo:
                item = items[suite][n]
                bar.set_postfix_str(suite, refresh=False)
                if suite == scoring.GUARD_SUITE:
                    record = check_item(guards, item)
                elif "turns" in item:
                    record = ask_conversation(assistant, suite, item, config)
                else:
                    record = ask_item(assistant, suite, item, config)
                cache.put(key, suite, item, record)
                records[suite][n] = record
                bar.update(1)
        finally:
            bar.close()
            if assistant is not None and hasattr(assistant, "close"):
                assistant.close()
    return {
        "key": key,
        "records": records,
        "cached": cached,
        "ran": len(todo),
        "wall_s": time.perf_counter() - started,
        "collections": fingerprints,
    }


# --- results ------------------------------------------------------------------------------------------


def score_config(items: Mapping[str, Sequence[dict]], records: Mapping[str, Sequence[dict]]) -> dict[str, Any]:
    metrics, rows = {}, {}
    for suite in items:
        if suite == scoring.GUARD_SUITE:
            metrics[suite], rows[suite] = scoring.guard_suite(items[suite], records[suite])
        elif scoring.is_conversation_suite(items[suite]):
            metrics[suite], rows[suite] = scoring.conversation_suite(suite, items[suite], records[suite])
        else:
            metrics[suite], rows[suite] = scoring.answer_suite(suite, items[suite], records[suite])
    summary = scoring.summarize(metrics, records, rows)
    answer_suites = [s for s in items if s != scoring.GUARD_SUITE]
    latency = (
        {
            # Per question: a conversation's record times all its turns (its suite's latency is per turn).
            "overall": scoring.latency(r for s in answer_suites if "follow_up" not in metrics[s] for r in records[s]),
            **{s: metrics[s]["latency"] for s in answer_suites},
        }
        if answer_suites
        else {}
    )
    return {"summary": summary, "metrics": metrics, "latency": latency, "rows": rows}


def _round(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value


def item_view(suite: str, row: Mapping[str, Any]) -> dict[str, Any]:
    """One item as the report lists it: the UI's keys (id, question, answer, scores) and what to read."""
    item, record = row["item"], row["record"]
    scores = {k: _round(v) for k, v in row["scores"].items() if v is not None}
    if suite == scoring.GUARD_SUITE:
        answer = ("blocked: " + ", ".join(record["rules"])) if record.get("blocked") else "allowed"
        return {
            "id": item["id"],
            "suite": suite,
            "question": item["text"],
            "answer": answer,
            "scores": scores,
            "failures": row["failures"],
            "expected": item.get("expected"),
            "fired": record.get("fired", []),
            "source": item.get("source"),
        }
    gold = scoring.gold_numbers(record.get("sources") or [], item.get("gold") or [])
    return {
        "id": item["id"],
        "suite": suite,
        "collection": item.get("collection"),
        "question": item["question"],
        "answer": record["answer"],
        "reference": item.get("reference", ""),
        "scores": scores,
        "failures": row["failures"],
        "refused": row["refused"],
        "finish_reason": record.get("finish_reason"),
        "computation": record.get("computation"),
        "cited": record.get("cited", []),
        "sources": [
            {"number": s["number"], "title": s["title"], "document_id": s["document_id"], "gold": s["number"] in gold}
            for s in record.get("sources") or []
        ],
        "latency_ms": {"ttft": record.get("ttft_ms"), "total": record.get("total_ms")},
    }


def _items_report(result: Mapping[str, Any]) -> list[dict]:
    return [item_view(suite, row) for suite, rows in result["rows"].items() for row in rows]


def _json_ready(obj: Any) -> Any:
    if isinstance(obj, float):
        return round(obj, 6)
    if isinstance(obj, Mapping):
        return {str(k): _json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_ready(v) for v in obj]
    return obj


def evaluate(
    settings: Settings,
    suite: str | None = "all",
    *,
    config_file: Path | None = None,
    compare_file: Path | None = None,
    gate_file: Path | None = None,
    limit: int | None = None,
    out: Path = Path("reports"),
    data_dir: Path = EVAL_DIR,
    progress: bool = True,
    make_assistant: Callable[[EvalConfig], Any] | None = None,
    echo: Echo = _stderr,
    configs: Sequence[EvalConfig] | None = None,
    files: Sequence[Path] = (),
) -> dict[str, Any]:
    """Run the suite(s) on one configuration (or two, with ``compare_file``), write the report and return it.
    ``files``: eval files run as suites of their own name (with ``suite`` None, only they run). ``configs``
    (tests) replaces the files."""
    wall = time.perf_counter()
    named = suites_for(suite) if suite is not None else ()
    if limit is not None and limit < 1:
        raise UserError(f"--limit must be at least 1, got {limit}")
    if configs is None:
        configs = [load_config(config_file, settings)]
        if compare_file is not None:
            configs.append(load_config(compare_file, settings))
    configs = list(configs)
    if len(configs) == 2 and configs[0].name == configs[1].name:
        configs[1] = EvalConfig(**{**configs[1].__dict__, "name": f"{configs[1].name} (compare)"})
    thresholds = gate_mod.load_gate(gate_file) if gate_file is not None else None
    items = load_items(data_dir, named, limit, files)
    suites = list(items)
    if not suites:
        raise UserError("nothing to evaluate: name a suite or give an eval file")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cache = Cache(out / CACHE_NAME)
    runs = []
    try:
        for config in configs:
            runs.append(run_config(config, items, cache, make_assistant=make_assistant, progress=progress, echo=echo))
    except KeyboardInterrupt:
        done = sum(1 for key in cache.records)
        echo(f"interrupted: {done} result(s) are cached in {cache.path}; run the same command again to resume")
        raise
    finally:
        cache.close()
    results = [score_config(items, run["records"]) for run in runs]

    main, main_run = results[0], runs[0]
    report: dict[str, Any] = {
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "suite": suite,
        "suites": list(suites),
        "limit": limit,
        "data": str(data_dir),
        "config": {**configs[0].describe(), "hash": main_run["key"], "collections": main_run["collections"]},
        "summary": main["summary"],
        "metrics": main["metrics"],
        "latency": main["latency"],
        "counts": {
            s: {
                "items": len(items[s]),
                "cached": main_run["cached"][s],
                "run": len(items[s]) - main_run["cached"][s],
                "failures": sum(bool(r["failures"]) for r in main["rows"][s]),
                "refused": sum(bool(r["refused"]) for r in main["rows"][s]),
            }
            for s in suites
        },
        "items": _items_report(main),
    }
    if len(results) == 2:
        other, other_run = results[1], runs[1]
        report["compare"] = {
            "config": {**configs[1].describe(), "hash": other_run["key"], "collections": other_run["collections"]},
            "summary": other["summary"],
            "metrics": other["metrics"],
            "latency": other["latency"],
            "deltas": compare_mod.deltas(main["summary"], other["summary"], main["rows"], other["rows"]),
        }
        by_key = {(i["suite"], i["id"]): i for i in _items_report(other)}
        for view in report["items"]:
            b = by_key[(view["suite"], view["id"])]
            view["compare"] = {
                "answer": b["answer"],
                "scores": b["scores"],
                "failures": b["failures"],
                "latency_ms": b.get("latency_ms"),
                "delta": {m: _round(b["scores"][m] - view["scores"][m]) for m in view["scores"] if m in b["scores"]},
            }
    if thresholds is not None:
        report["gate"] = gate_mod.check(thresholds, main["summary"], suites, file=str(gate_file))
    report["wall_s"] = round(time.perf_counter() - wall, 1)
    report = _json_ready(report)
    from eval.report import render_html

    atomic_write_text(out / REPORT_JSON, json.dumps(report, indent=2, ensure_ascii=False))
    atomic_write_text(out / REPORT_HTML, render_html(report))
    report["paths"] = {"json": str(out / REPORT_JSON), "html": str(out / REPORT_HTML), "cache": str(out / CACHE_NAME)}
    return report
