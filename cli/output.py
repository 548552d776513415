"""How the command line prints: JSON for --json (the shapes of assistant/views.py), lines for people."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click


def emit(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, ensure_ascii=False, default=str))


def print_ingest(report, totals: dict, target: Path) -> None:
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
    if report.workers:
        busy = sum(w.busy_seconds for w in report.workers)
        rate = sum(w.chunks for w in report.workers) / busy if busy else 0.0
        click.echo(f"  workers    {len(report.workers)} on Ray, {rate:.1f} chunks/s per busy worker")
    if report.skipped:
        click.echo("Skipped:")
        for item in report.skipped:
            click.echo(f"  {item.path}: {item.reason}")
    if report.notes:
        click.echo("Ingested, with notes:")
        for item in report.notes:
            click.echo(f"  {item.path}: {item.reason}")


def print_search(result) -> None:
    if not result.relevant:
        click.echo(f"(nothing relevant: best similarity {result.relevance:.2f} is under the threshold)")
    if not result.hits:
        click.echo("no results")
    for rank, hit in enumerate(result.hits, 1):
        snippet = " ".join(hit.text.split())
        snippet = snippet[:237] + "..." if len(snippet) > 240 else snippet
        click.echo(f"{rank}. [{hit.score:.3f}] {click.style(hit.title, bold=True)}")
        click.echo(f"   {hit.source}  (chars {hit.start}-{hit.end})")
        click.echo(f"   {snippet}")


def print_checked(answer, *, streamed: bool) -> None:
    """After a streamed answer, what the output rails changed: usually a disclaimer or note appended (shown
    as such); when they rewrote the text, the checked answer in full."""
    if not streamed:
        click.echo(answer.text)
        return
    if answer.text.startswith(answer.raw_text):
        click.echo(answer.text[len(answer.raw_text) :])
        return
    click.echo("\n--- checked answer (the guardrails changed the text above) ---")
    click.echo(answer.text)


def print_sources(answer) -> None:
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
        click.echo(
            f"({answer.generator}: first token {timings['first_token'] / 1000:.1f} s, {answer.tokens} tokens in {timings['total'] / 1000:.1f} s)",
            err=True,
        )


def print_followup(answer) -> None:
    """How a question in a conversation was read: the standalone question searched when the follow-up was
    rewritten (so a wrong reading shows), on stderr with the timings."""
    if answer.rewritten:
        click.echo(f"(searched as: {answer.standalone})", err=True)
