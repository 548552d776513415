"""Verbs that read a collection: search, ask, shell (both, interactively), and guard (the rules alone). ask
continues a stored conversation with --conversation; shell --answer keeps one for the session."""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

import click

from cli.output import emit, print_checked, print_followup, print_search, print_sources
from core.config import Settings
from core.errors import UserError

# Search or answer from the collection as it was at an earlier version (core/collection/history.py).
AS_OF = click.option(
    "--as-of",
    "as_of",
    type=click.IntRange(min=0),
    metavar="VERSION",
    help="The collection as it was at this version (`collections --history`).",
)


@click.command()
@click.argument("query")
@click.option("--collection", "-c", required=True)
@click.option("-k", default=5, show_default=True, type=click.IntRange(1, 1000), help="Number of passages.")
@click.option("--mode", type=click.Choice(["dense", "bm25", "hybrid"]), help="Default: ASSISTANT_RETRIEVAL__MODE (hybrid).")
@click.option(
    "--fusion",
    type=click.Choice(["rrf", "weighted"]),
    help="How hybrid combines the lists (default: ASSISTANT_RETRIEVAL__FUSION, weighted).",
)
@click.option("--dense-weight", type=click.FloatRange(0, 1), help="Weight of the dense list in fusion.")
@click.option("--mmr", "mmr_lambda", type=click.FloatRange(0, 1), help="Diversify with MMR (1 = pure relevance).")
@click.option("--filter", "filters", multiple=True, metavar="KEY=VALUE", help="source, document_id or a metadata key; repeat for any-of.")
@AS_OF
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def search(
    settings: Settings, query: str, collection: str, k: int, mode, fusion, dense_weight, mmr_lambda, filters, as_of, as_json: bool
) -> None:
    """Top-k passages (hybrid dense + BM25 by default) with scores, titles, sources and snippets."""
    from assistant.pipeline import Assistant
    from assistant.views import search_view
    from core.collection import parse_filters

    with Assistant(settings) as assistant:
        retriever = assistant.retriever(collection, as_of, mode=mode, fusion=fusion, dense_weight=dense_weight, mmr_lambda=mmr_lambda)
        result = retriever.search(query, k, parse_filters(filters))
        version = retriever.collection.version
    if as_json:
        emit(search_view(query, collection, result, version))
    else:
        print_search(result)


@click.command()
@click.argument("question")
@click.option("--collection", "-c", required=True)
@click.option("-k", default=5, show_default=True, type=click.IntRange(1, 50), help="Passages retrieved for the prompt.")
@click.option("--filter", "filters", multiple=True, metavar="KEY=VALUE", help="Restrict retrieval, as in `search`.")
@click.option("--max-tokens", type=click.IntRange(1, 8192), help="Longest answer (default ASSISTANT_GENERATOR__MAX_NEW_TOKENS).")
@click.option("--temperature", type=click.FloatRange(0, 2), help="0 = greedy (default).")
@click.option("--no-adapter", is_flag=True, help="Answer with the base model only.")
@click.option("--stream/--no-stream", default=None, help="Print tokens as they come (default: on, unless --json).")
@click.option(
    "--conversation",
    metavar="ID|new",
    help="Ask within a stored conversation: its last turns are the question's history and the answer becomes its next turn. "
    "`new` starts one and prints its id.",
)
@AS_OF
@click.option("--json", "as_json", is_flag=True, help="Print the whole answer with sources, citations and timings.")
@click.pass_obj
def ask(
    settings: Settings,
    question: str,
    collection: str,
    k: int,
    filters,
    max_tokens,
    temperature,
    no_adapter: bool,
    stream,
    conversation: str | None,
    as_of: int | None,
    as_json: bool,
) -> None:
    """Answer QUESTION from a collection's passages, citing them as [n]."""
    from assistant import compose
    from assistant.conversations import Exchange, Turn, open_conversations
    from assistant.pipeline import Answer, Assistant
    from assistant.views import answer_view
    from core.collection import parse_filters

    if no_adapter:
        settings = settings.model_copy(update={"generator": settings.generator.model_copy(update={"adapter": "none"})})
    options = compose.generation_options(settings, max_new_tokens=max_tokens, temperature=temperature)
    show_tokens = (not as_json) if stream is None else stream
    answer = None
    with ExitStack() as stack:
        exchange = None
        if conversation is not None:  # local conversations belong to the owner "" (the API's to an API key)
            store = stack.enter_context(open_conversations(settings))
            started = None if conversation == "new" else conversation
            exchange = Exchange(store, "", started, history_turns=settings.conversation.history_turns)
        assistant = stack.enter_context(Assistant(settings))

        def answering(history: Sequence[Turn]):
            return assistant.stream(
                question, collection, k=k, filters=parse_filters(filters), options=options, history=history, as_of=as_of
            )

        for item in exchange.run(answering) if exchange is not None else answering(()):
            if isinstance(item, Answer):
                answer = item
            elif show_tokens:
                click.echo(item, nl=False)
    assert answer is not None
    if as_json:
        if show_tokens:
            click.echo()
        emit({**answer_view(answer), "conversation_id": exchange.conversation_id} if exchange is not None else answer_view(answer))
        return
    print_checked(answer, streamed=show_tokens)
    print_sources(answer)
    if exchange is None:
        return
    print_followup(answer)
    if conversation == "new":
        kept = exchange.conversation_id
        click.echo(
            f"conversation {kept} (continue it with --conversation {kept})" if kept else "(nothing was kept: no conversation)", err=True
        )


@click.command()
@click.option("--collection", "-c", default=None, help="Collection to start with (default: the first one).")
@click.option("-k", default=5, show_default=True, type=click.IntRange(1, 100))
@click.option("--answer", is_flag=True, help="Answer each question with the generator (streamed, cited) instead of listing passages.")
@click.pass_obj
def shell(settings: Settings, collection: str | None, k: int, answer: bool) -> None:
    """Interactive search (or, with --answer, question answering) in the terminal. Commands: :c NAME
    (switch collection), :k N, :n (a new conversation: forget the earlier questions), :q. With --answer, a
    question is read with the ones before it (ASSISTANT_CONVERSATION__HISTORY_TURNS), so follow-ups work."""
    from assistant.conversations import Turn, keeps, turn_of
    from assistant.pipeline import Answer, Assistant
    from core.collection import list_collections

    names = [m.name for m in list_collections(settings.index_dir)]
    if not names:
        raise UserError(f"no collections under {settings.index_dir}; run `assistant ingest PATH --collection NAME` first")
    current = collection or names[0]
    new = ", ':n' starts a new conversation" if answer else ""
    click.echo(f"collections: {', '.join(names)}. Type a question; ':c NAME' switches, ':k N' sets k{new}, ':q' quits.")
    keep = settings.conversation.history_turns
    history: list[Turn] = []  # this session's conversation, in memory only
    with Assistant(settings) as assistant:
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
            if line in {":n", ":new"}:
                history.clear()
                click.echo("(a new conversation: the questions before are forgotten)")
                continue
            try:
                if not answer:
                    print_search(assistant.retriever(current).search(line, k))
                    continue
                for item in assistant.stream(line, current, k=min(k, 50), history=history):
                    if isinstance(item, Answer):
                        print_checked(item, streamed=True)
                        print_sources(item)
                        print_followup(item)
                        if keeps(item):
                            history = [*history, turn_of(item)][-keep:] if keep else []
                    else:
                        click.echo(item, nl=False)
            except UserError as exc:
                click.echo(f"error: {exc}")


@click.command()
@click.argument("text", required=False)
@click.option("--stage", type=click.Choice(["input", "ingest", "output"]), default="input", show_default=True)
@click.option(
    "--pack", "packs", multiple=True, default=("common",), show_default=True, help="Built-in pack name or YAML file; repeat to combine."
)
@click.option(
    "--file",
    "file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help='JSON lines, one {"text": ...} per line (output stage: optionally "passages" and "question"); one JSON result per line.',
)
@click.option("--passage", "passages", multiple=True, help="Output stage: a passage the answer may cite, numbered in order.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def guard(
    settings: Settings, text: str | None, stage: str, packs: tuple[str, ...], file: Path | None, passages: tuple[str, ...], as_json: bool
) -> None:
    """Run the guardrail rules of one stage over TEXT (or every line of --file) and print what fires."""
    from guardrails.engine import Guard

    if (text is None) == (file is None):
        raise UserError("give either TEXT or --file FILE.jsonl")
    checker = Guard.from_packs(list(packs))
    if file is None:
        result = checker.check(text, stage, {"passages": list(passages), "question": ""})
        if as_json:
            emit(result.to_dict())
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
