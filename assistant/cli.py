"""The `assistant` command line: verbs over collections, each with --json for scripts.

Exit codes: 0 success, 1 a check found problems or the collection is damaged, 2 a user mistake
(one line on stderr, no traceback), 130 interrupted.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from assistant.config import Settings
from assistant.errors import AssistantError, CollectionBusy, CorruptCollection, UserError
from generator.finetune import LoraOptions

LORA = LoraOptions()  # the fine-tuning defaults shown by `assistant finetune --help`

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _emit(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, ensure_ascii=False, default=str))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="domain-assistant")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Domain assistant for medical and finance questions.

    Collections live under ASSISTANT_INDEX_DIR (default ./indexes); every setting is an ASSISTANT_* variable.
    """
    try:
        ctx.obj = Settings()
    except Exception as exc:  # pydantic's validation message names the bad variable
        raise UserError(f"invalid settings: {exc}".replace("\n", " ")) from exc


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--collection", "-c", required=True, help="Collection to add to (created if absent).")
@click.option("--rebuild", is_flag=True, help="Build a fresh collection from PATHS with the current settings and swap it in.")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.pass_obj
def ingest(settings: Settings, paths: tuple[Path, ...], collection: str, rebuild: bool, as_json: bool, quiet: bool) -> None:
    """Load, chunk, embed and index files and folders into a collection."""
    from assistant import compose
    from assistant.collection import collection_path, replace_collection

    target = collection_path(settings.index_dir, collection)
    embedder = compose.embedder(settings)
    chunk = settings.chunking
    if chunk.chunk_tokens + 8 > embedder.max_tokens:
        raise UserError(
            f"chunk_tokens={chunk.chunk_tokens} exceeds what {embedder.name} reads ({embedder.max_tokens} tokens); "
            "lower ASSISTANT_CHUNKING__CHUNK_TOKENS"
        )
    where = target.parent / f".{target.name}.rebuild" if rebuild else target
    if rebuild:
        shutil.rmtree(where, ignore_errors=True)
    ingestor = compose.ingestor(settings, where, embedder, name=collection, progress=not quiet and not as_json)
    with ingestor.collection as store:
        report = ingestor.ingest(paths)
        totals = store.counts()
    if rebuild and not report.interrupted:
        replace_collection(where, target)
    summary = {**report.to_dict(), "totals": totals, "path": str(target)}
    if as_json:
        _emit(summary)
    else:
        _print_ingest(report, totals, target)
    if report.interrupted:
        click.echo("interrupted: what was committed is kept; run the same command again to finish", err=True)
        sys.exit(130)
    if report.missing_paths:
        raise UserError(f"{len(report.missing_paths)} path(s) do not exist: {', '.join(report.missing_paths)}")


def _print_ingest(report, totals: dict, target: Path) -> None:
    click.echo(f"Collection {report.collection!r} at {target}")
    click.echo(
        f"  documents  {report.documents_added} added, {report.documents_removed} removed, "
        f"{report.documents_unchanged} unchanged  (total {totals['documents']})"
    )
    click.echo(
        f"  chunks     {report.chunks_added} added ({report.chunks_embedded} embedded, "
        f"{report.chunks_added - report.chunks_embedded} reused), {report.chunks_removed} removed  (total {totals['chunks']})"
    )
    click.echo(f"  files      {report.files_read} read, {report.files_unchanged} unchanged, {len(report.skipped)} skipped")
    click.echo(f"  time       {report.seconds:.1f} s, {report.chunks_per_second:.1f} chunks/s")
    if report.skipped:
        click.echo("Skipped:")
        for item in report.skipped:
            click.echo(f"  {item.path}: {item.reason}")


def _parse_filters(pairs: tuple[str, ...]) -> dict[str, Any] | None:
    """KEY=VALUE options; a repeated key means any of its values."""
    filters: dict[str, list[str]] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UserError(f"bad filter {pair!r}: expected KEY=VALUE, e.g. --filter kind=table")
        key = key.strip()
        if key == "source":
            value = str(Path(value).resolve())
        filters.setdefault(key, []).append(value)
    return {k: v[0] if len(v) == 1 else v for k, v in filters.items()} or None


def _retriever(settings: Settings, store, embedders: dict | None = None, **overrides: Any):
    from assistant import compose

    return compose.retriever_for(settings, store, embedders if embedders is not None else {}, **overrides)


@cli.command()
@click.argument("query")
@click.option("--collection", "-c", required=True)
@click.option("-k", default=5, show_default=True, type=click.IntRange(1, 1000), help="Number of passages.")
@click.option("--mode", type=click.Choice(["dense", "bm25", "hybrid"]), help="Default: ASSISTANT_RETRIEVAL__MODE (hybrid).")
@click.option("--fusion", type=click.Choice(["rrf", "weighted"]), help="How hybrid combines the lists (default rrf).")
@click.option("--dense-weight", type=click.FloatRange(0, 1), help="Weight of the dense list in fusion.")
@click.option("--mmr", "mmr_lambda", type=click.FloatRange(0, 1), help="Diversify with MMR (1 = pure relevance).")
@click.option("--filter", "filters", multiple=True, metavar="KEY=VALUE", help="source, document_id or a metadata key; repeat for any-of.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def search(settings: Settings, query: str, collection: str, k: int, mode, fusion, dense_weight, mmr_lambda, filters, as_json: bool) -> None:
    """Top-k passages (hybrid dense + BM25 by default) with scores, titles, sources and snippets."""
    from assistant import compose

    with compose.open_collection(settings, collection) as store:
        retriever = _retriever(settings, store, mode=mode, fusion=fusion, dense_weight=dense_weight, mmr_lambda=mmr_lambda)
        result = retriever.search(query, k, _parse_filters(filters))
    if as_json:
        _emit(
            {
                "relevant": result.relevant,
                "relevance": round(result.relevance, 4),
                "timings_ms": {name: round(ms, 2) for name, ms in result.timings_ms.items()},
                "hits": [{"rank": i + 1, **asdict(h)} for i, h in enumerate(result.hits)],
            }
        )
        return
    if not result.relevant:
        click.echo(f"(nothing relevant: best similarity {result.relevance:.2f} is under the threshold)")
    _print_hits(result.hits)


def _print_hits(hits) -> None:
    if not hits:
        click.echo("no results")
    for rank, hit in enumerate(hits, 1):
        snippet = " ".join(hit.text.split())
        snippet = snippet[:237] + "..." if len(snippet) > 240 else snippet
        click.echo(f"{rank}. [{hit.score:.3f}] {click.style(hit.title, bold=True)}")
        click.echo(f"   {hit.source}  (chars {hit.start}-{hit.end})")
        click.echo(f"   {snippet}")


@cli.command()
@click.option("--collection", "-c", required=True)
@click.option("--source", required=True, type=click.Path(path_type=Path), help="A file, or a folder: every file under it.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def delete(settings: Settings, collection: str, source: Path, as_json: bool) -> None:
    """Remove a source file's documents, chunks, vectors and BM25 rows from a collection."""
    from assistant import compose

    resolved = str(source.resolve())
    with compose.open_collection(settings, collection, writable=True) as store:
        matches = [s for s in store.sources() if s == resolved or s.startswith(resolved.rstrip(os.sep) + os.sep)]
        if not matches:
            raise UserError(f"no documents from {source} in collection {collection!r} (see `assistant collections`)")
        documents = chunks = 0
        for src in matches:
            d, c = store.delete_source(src)
            documents, chunks = documents + d, chunks + c
        store.checkpoint()
        totals = store.counts()
    result = {"sources": matches, "documents_removed": documents, "chunks_removed": chunks, "totals": totals}
    if as_json:
        _emit(result)
    else:
        click.echo(f"removed {documents} documents ({chunks} chunks) from {len(matches)} source(s) in {collection!r}")


@cli.command()
@click.option("--collection", "-c", required=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def check(settings: Settings, collection: str, as_json: bool) -> None:
    """Verify a collection: SQLite integrity, FTS5, offsets, vectors, FAISS ids. Repairs a lagging index."""
    from assistant import compose

    try:
        store = compose.open_collection(settings, collection, writable=True)
    except CollectionBusy:  # check what is committed, without writing
        store = compose.open_collection(settings, collection)
    with store:
        report = store.check()
    if as_json:
        _emit({"collection": collection, "ok": report.ok, "problems": report.problems, "repaired": report.repaired, **report.stats})
    else:
        for line in report.repaired:
            click.echo(f"repaired: {line}")
        for line in report.problems:
            click.echo(f"problem: {line}")
        stats = report.stats
        state = "ok" if report.ok else "PROBLEMS FOUND"
        click.echo(
            f"{collection}: {state} ({stats['files']} files, {stats['documents']} documents, {stats['chunks']} chunks, "
            f"{stats['indexed_vectors']} vectors in a {stats['index_kind']} index)"
        )
    if not report.ok:
        sys.exit(1)


@cli.command("collections")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def collections_cmd(settings: Settings, as_json: bool) -> None:
    """List the collections under ASSISTANT_INDEX_DIR."""
    from assistant.collection import list_collections

    found = list_collections(settings.index_dir)
    if as_json:
        _emit([m.model_dump() for m in found])
        return
    if not found:
        click.echo(f"no collections under {settings.index_dir}")
    for m in found:
        click.echo(
            f"{m.name:16} {m.documents:7} documents {m.index.chunks:8} chunks  {m.embedder.name} "
            f"({m.embedder.dim}-d), {m.chunking.chunk_tokens}/{m.chunking.overlap_tokens} tokens, {m.index.kind}"
        )


@cli.command()
@click.option("--collection", "-c", default=None, help="Collection to start with (default: the first one).")
@click.option("-k", default=5, show_default=True, type=click.IntRange(1, 100))
@click.option("--answer", is_flag=True, help="Answer each question with the generator (streamed, cited) instead of listing passages.")
@click.pass_obj
def shell(settings: Settings, collection: str | None, k: int, answer: bool) -> None:
    """Interactive search (or, with --answer, question answering) in the terminal. Commands: :c NAME
    (switch collection), :k N, :q."""
    from assistant import compose
    from assistant.collection import list_collections
    from assistant.pipeline import Answer, Assistant

    names = [m.name for m in list_collections(settings.index_dir)]
    if not names:
        raise UserError(f"no collections under {settings.index_dir}; run `assistant ingest PATH --collection NAME` first")
    current = collection or names[0]
    embedders: dict[str, Any] = {}
    assistant = Assistant(settings, embedders=embedders) if answer else None
    click.echo(f"collections: {', '.join(names)}. Type a question; ':c NAME' switches, ':k N' sets k, ':q' quits.")
    while True:
        try:
            line = input(f"{current}> ").strip()
        except (EOFError, KeyboardInterrupt):
            click.echo()
            return
        if not line:
            continue
        if line in {":q", ":quit", "exit"}:
            return
        if line.startswith(":c"):
            wanted = line[2:].strip()
            if wanted in names:
                current = wanted
            else:
                click.echo(f"unknown collection {wanted!r}; choose one of {', '.join(names)}")
            continue
        if line.startswith(":k"):
            try:
                k = max(1, int(line[2:].strip()))
            except ValueError:
                click.echo("usage: :k NUMBER")
            continue
        try:
            if assistant is not None:
                for item in assistant.stream(line, current, k=min(k, 50)):
                    if isinstance(item, Answer):
                        _print_checked(item, streamed=True)
                        _print_sources(item)
                    else:
                        click.echo(item, nl=False)
                continue
            with compose.open_collection(settings, current) as store:
                result = _retriever(settings, store, embedders).search(line, k)
            if not result.relevant:
                click.echo(f"(nothing relevant: best similarity {result.relevance:.2f} is under the threshold)")
            _print_hits(result.hits)
        except UserError as exc:
            click.echo(f"error: {exc}")


@cli.command()
@click.argument("question")
@click.option("--collection", "-c", required=True)
@click.option("-k", default=5, show_default=True, type=click.IntRange(1, 50), help="Passages retrieved for the prompt.")
@click.option("--filter", "filters", multiple=True, metavar="KEY=VALUE", help="Restrict retrieval, as in `search`.")
@click.option("--max-tokens", type=click.IntRange(1, 8192), help="Longest answer (default ASSISTANT_GENERATOR__MAX_NEW_TOKENS).")
@click.option("--temperature", type=click.FloatRange(0, 2), help="0 = greedy (default).")
@click.option("--no-adapter", is_flag=True, help="Answer with the base model only.")
@click.option("--stream/--no-stream", default=None, help="Print tokens as they come (default: on, unless --json).")
@click.option("--json", "as_json", is_flag=True, help="Print the whole answer with sources, citations and timings.")
@click.pass_obj
def ask(settings: Settings, question: str, collection: str, k: int, filters, max_tokens, temperature, no_adapter: bool, stream, as_json: bool) -> None:
    """Answer QUESTION from a collection's passages, citing them as [n]."""
    from assistant import compose
    from assistant.pipeline import Answer, Assistant

    if no_adapter:
        settings = settings.model_copy(update={"generator": settings.generator.model_copy(update={"adapter": "none"})})
    options = compose.generation_options(settings, max_new_tokens=max_tokens, temperature=temperature)
    show_tokens = (not as_json) if stream is None else stream
    answer = None
    for item in Assistant(settings).stream(question, collection, k=k, filters=_parse_filters(filters), options=options):
        if isinstance(item, Answer):
            answer = item
        elif show_tokens:
            click.echo(item, nl=False)
    assert answer is not None
    if as_json:
        if show_tokens:
            click.echo()
        _emit(answer.to_dict())
        return
    _print_checked(answer, streamed=show_tokens)
    _print_sources(answer)


def _print_checked(answer, *, streamed: bool) -> None:
    """After a streamed answer, what the output rails changed: usually a disclaimer or note appended (shown
    as such); when they rewrote the text, the checked answer in full."""
    if not streamed:
        click.echo(answer.text)
        return
    if answer.text.startswith(answer.raw_text):
        click.echo(answer.text[len(answer.raw_text):])
        return
    click.echo("\n--- checked answer (the guardrails changed the text above) ---")
    click.echo(answer.text)


def _print_sources(answer) -> None:
    if not answer.relevant:
        click.echo(f"(nothing clearly relevant was found: best similarity {answer.relevance:.2f})")
    if answer.invalid_citations:
        click.echo(f"(the answer cites passages that were not given: {', '.join(f'[{n}]' for n in answer.invalid_citations)})")
    if not answer.cited and answer.sources:
        click.echo("(the answer cites no passage)")
    for source in answer.citations:
        click.echo(f"[{source.number}] {source.title} - {source.source} (chars {source.start}-{source.end})")
    timings = answer.timings_ms
    if "first_token" in timings:
        click.echo(f"({answer.generator}: first token {timings['first_token'] / 1000:.1f} s, {answer.tokens} tokens in {timings['total'] / 1000:.1f} s)", err=True)


@cli.command()
@click.argument("text", required=False)
@click.option("--stage", type=click.Choice(["input", "ingest", "output"]), default="input", show_default=True)
@click.option("--pack", "packs", multiple=True, default=("common",), show_default=True, help="Built-in pack name or YAML file; repeat to combine.")
@click.option("--file", "file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help='JSON lines, one {"text": ...} per line (output stage: optionally "passages" and "question"); one JSON result per line.')
@click.option("--passage", "passages", multiple=True, help="Output stage: a passage the answer may cite, numbered in order.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def guard(settings: Settings, text: str | None, stage: str, packs: tuple[str, ...], file: Path | None, passages: tuple[str, ...], as_json: bool) -> None:
    """Run the guardrail rules of one stage over TEXT (or every line of --file) and print what fires."""
    from guardrails.engine import Guard

    if (text is None) == (file is None):
        raise UserError("give either TEXT or --file FILE.jsonl")
    checker = Guard.from_packs(list(packs))
    if file is None:
        result = checker.check(text, stage, {"passages": list(passages), "question": ""})
        if as_json:
            _emit(result.to_dict())
            return
        click.echo(f"{'BLOCKED' if result.blocked else 'allowed'}: {result.reply or result.text}")
        for event in result.events:
            where = f" at {event.span[0]}-{event.span[1]}" if event.span else ""
            click.echo(f"  {event.rule_id} [{event.category}] {event.action}{where}{': ' + event.message if event.message else ''}")
        return
    for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            if not isinstance(item, dict) or not isinstance(item.get("text"), str):
                raise ValueError('expected an object with a "text" string')
        except ValueError as exc:
            raise UserError(f"{file}:{number}: {exc}") from None
        context = {"passages": item.get("passages") or list(passages), "question": item.get("question", "")}
        click.echo(json.dumps({"line": number, **checker.check(item["text"], stage, context).to_dict()}, ensure_ascii=False))


@cli.command()
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Folder for the adapter (PEFT format, with README.md card).")
@click.option("--data", "data_dir", default=Path("../shared/data"), show_default=True, type=click.Path(path_type=Path), help="Shared data folder: medquad/, pubmedqa/, tatqa/.")
@click.option("--medquad", default=300, show_default=True, type=click.IntRange(0), help="MedQuAD examples.")
@click.option("--pubmedqa", default=150, show_default=True, type=click.IntRange(0), help="PubMedQA examples (non-test PMIDs).")
@click.option("--tatqa", default=200, show_default=True, type=click.IntRange(0), help="TAT-QA examples (first 80% of dev reports).")
@click.option("--base", default=None, help="Base model (default: ASSISTANT_GENERATOR__MODEL, the embedded SmolLM2).")
@click.option("--quantization", type=click.Choice(["4bit", "8bit", "none"]), default="4bit", show_default=True)
# Defaults come from LoraOptions: the shipped adapter's recipe.
@click.option("--rank", default=LORA.rank, show_default=True, type=click.IntRange(1, 512))
@click.option("--alpha", default=LORA.alpha, show_default=True, type=click.IntRange(1))
@click.option("--dropout", default=LORA.dropout, show_default=True, type=click.FloatRange(0, 0.9))
@click.option("--targets", default=",".join(LORA.target_modules), show_default=True, help="Comma-separated module names to adapt.")
@click.option("--epochs", default=LORA.epochs, show_default=True, type=click.FloatRange(0.01, 100))
@click.option("--lr", default=LORA.learning_rate, show_default=True, type=click.FloatRange(1e-7, 1))
@click.option("--batch-size", default=LORA.batch_size, show_default=True, type=click.IntRange(1, 256))
@click.option("--max-tokens", default=LORA.max_tokens, show_default=True, type=click.IntRange(64, 32768), help="Longer examples are skipped.")
@click.option("--seed", default=LORA.seed, show_default=True, type=int)
@click.pass_obj
def finetune(settings: Settings, out: Path, data_dir: Path, medquad: int, pubmedqa: int, tatqa: int, base, quantization,
             rank, alpha, dropout, targets, epochs, lr, batch_size, max_tokens, seed) -> None:
    """Train a QLoRA adapter on grounded, cited answers built from the shared data sets."""
    import platform
    from collections import Counter

    from assistant import compose
    from assistant.trainset import build_examples
    from generator.finetune import TrainingExample, train_lora
    from generator.local import load_model

    options = LoraOptions(rank=rank, alpha=alpha, dropout=dropout, target_modules=tuple(t.strip() for t in targets.split(",") if t.strip()),
                          epochs=epochs, learning_rate=lr, batch_size=batch_size, max_tokens=max_tokens, seed=seed)
    click.echo(f"building examples from {data_dir} ...", err=True)
    examples = build_examples(data_dir, "train", medquad=medquad, pubmedqa=pubmedqa, tatqa=tatqa, seed=seed)
    counts = dict(Counter(e.source for e in examples))
    compose.quiet_model_loading()
    model_name = base or settings.generator.model
    model, tokenizer, display = load_model(model_name, quantization, settings.generator.cache_dir, settings.generator.device)
    click.echo(f"training {display} on {len(examples)} examples {counts} ...", err=True)
    card = {
        "title": f"Grounded, cited answers for {display.split()[0]}",
        "description": "Answers questions from numbered passages only, cites them as [n], and says when they do not contain the answer. "
                       "Trained with `assistant finetune` (QLoRA) on examples built by assistant/trainset.py.",
        "base_model": display.split()[0] if model_name == "embedded" else model_name,
        "quantization": quantization,
        "example_counts": counts,
        "data": "MedQuAD (CC BY 4.0), PubMedQA PQA-L non-test PMIDs (MIT), TAT-QA dev first 80% of reports (CC BY 4.0); see data/README.md",
        "hardware": f"{os.cpu_count()} CPU cores ({platform.machine()})",
        "command": "assistant " + " ".join(sys.argv[1:]) if sys.argv and sys.argv[0].endswith("assistant") else "assistant finetune",
        "example_ids": sorted(e.id for e in examples),
    }
    result = train_lora(model, tokenizer, [TrainingExample(e.id, e.messages(), e.answer) for e in examples], out, options, card=card)
    click.echo(f"saved {out}: {result.examples} examples, {result.steps} steps, loss {result.first_loss:.3f} -> {result.final_loss:.3f}, {result.wall_s / 60:.1f} min")


@cli.command("eval")
@click.option("--suite", default="all", show_default=True, type=click.Choice(["medical", "finance", "unanswerable", "guardrails", "all"]))
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="YAML: Settings overrides merged over the environment's, plus `name` and `eval: {k, closed}`.")
@click.option("--compare", "compare_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A second configuration: both run on the same items, with deltas and bootstrap intervals.")
@click.option("--gate", "gate_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="YAML thresholds (metric: min, or metric: {min, max}); exit 1 when one fails.")
@click.option("--limit", type=click.IntRange(1), help="Only the first N items of each suite (deterministic).")
@click.option("--out", default=Path("reports"), show_default=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for report.json, report.html and the per-item cache (an interrupted run resumes from it).")
@click.option("--data", "data_dir", default=None, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder with the eval sets (default: the shipped data/eval).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary, metrics and gate as JSON instead of tables.")
@click.pass_obj
def eval_cmd(settings: Settings, suite: str, config_file, compare_file, gate_file, limit, out: Path, data_dir, as_json: bool) -> None:
    """Offline evaluation: answer quality, retrieval, refusals, guardrails and latency, with an HTML report."""
    from eval.report import gate_text, summary_text
    from eval.runner import EVAL_DIR, evaluate

    report = evaluate(settings, suite, config_file=config_file, compare_file=compare_file, gate_file=gate_file, limit=limit,
                      out=out, data_dir=data_dir or EVAL_DIR, progress=not as_json)
    gate = report.get("gate")
    if as_json:
        _emit({k: report[k] for k in ("created_at", "suite", "limit", "config", "summary", "metrics", "latency", "counts", "gate",
                                      "compare", "wall_s", "paths") if k in report})
    else:
        click.echo(summary_text(report))
        if gate:
            click.echo(gate_text(gate))
        click.echo(f"report: {report['paths']['html']} and {report['paths']['json']} ({report['wall_s']:.0f} s)")
    if gate and not gate["passed"]:
        click.echo(f"error: gate failed: {', '.join(gate['failed'])}", err=True)
        sys.exit(1)


@cli.command()
@click.option("--host", default=None, help="Address to listen on (default ASSISTANT_API__HOST, 127.0.0.1).")
@click.option("--port", default=None, type=click.IntRange(0, 65535), help="Port (default ASSISTANT_API__PORT, 8000).")
@click.option("--insecure", is_flag=True, help="Allow a non-loopback address without API keys.")
@click.option("--no-warm-up", is_flag=True, help="Load collections and models on first use instead of at startup.")
@click.pass_obj
def serve(settings: Settings, host: str | None, port: int | None, insecure: bool, no_warm_up: bool) -> None:
    """Serve the HTTP API (FastAPI on uvicorn): /v1/ask, /v1/ask/stream, /v1/chat/completions, /v1/search, ..."""
    import ipaddress

    import uvicorn

    from api.app import create_app
    from api.auth import KeyStore

    host = host or settings.api.host
    port = settings.api.port if port is None else port
    keys = KeyStore.parse(settings.api_keys.get_secret_value() if settings.api_keys else None)
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not keys.enabled and not loopback and not insecure:
        raise UserError(f"no API keys configured (ASSISTANT_API_KEYS): refusing to serve on {host} without authentication; "
                        "set keys, bind to 127.0.0.1, or pass --insecure")
    if not keys.enabled:
        click.echo("warning: no API keys configured (ASSISTANT_API_KEYS): every caller is admin", err=True)
    uvicorn.run(create_app(settings, warm_up=not no_warm_up), host=host, port=port, log_level="info",
                timeout_graceful_shutdown=int(settings.api.shutdown_grace_s) or None, limit_concurrency=1024)


@cli.command("ui")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address the chat listens on.")
@click.option("--port", default=None, type=click.IntRange(0, 65535), help="Port (default ASSISTANT_UI__PORT, 8501).")
@click.pass_obj
def ui_cmd(settings: Settings, host: str, port: int | None) -> None:
    """Start the Streamlit chat (the assistant in-process, or a running API with ASSISTANT_UI__API_URL)."""
    import ui

    app = Path(ui.__file__).resolve().parent / "app.py"
    port = settings.ui.port if port is None else port
    command = [sys.executable, "-m", "streamlit", "run", str(app), "--server.address", host, "--server.port", str(port),
               "--server.headless", "true", "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
               "--client.toolbarMode", "minimal",
               "--server.maxUploadSize", str(max(1, int(settings.api.max_upload_mb * settings.api.max_upload_files)))]
    click.echo(f"chat on http://{host}:{port} (Ctrl+C stops it)")
    sys.stdout.flush()
    # Streamlit replaces this process rather than running as its child: a SIGTERM from a supervisor (or a
    # test) reaches the server itself instead of orphaning it.
    os.execv(sys.executable, command)


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="assistant", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2 if exc.exit_code == 2 else exc.exit_code)
    except UserError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except CorruptCollection as exc:
        click.echo(f"error: damaged collection: {exc}", err=True)
        sys.exit(1)
    except AssistantError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except OSError as exc:  # unwritable index folder, full disk: the machine's problem, said in one line
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        click.echo(f"error: {exc.strerror or exc}{where}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
