"""Verbs over collections: ingest, delete, check, reindex, collections (--history), rollback, prune. Heavy modules (models, FAISS) are imported
inside the commands, so `assistant --help` stays quick."""

from __future__ import annotations

import dataclasses
import errno
import os
import shutil
import sys
from pathlib import Path

import click

from cli.output import emit, print_ingest
from core.config import Settings
from core.errors import CollectionBusy, DiskFull, UserError


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--collection", "-c", required=True, help="Collection to add to (created if absent).")
@click.option("--rebuild", is_flag=True, help="Build a fresh collection from PATHS with the current settings and swap it in.")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option(
    "--ray",
    "ray_address",
    metavar="auto|ADDRESS",
    help="Load, chunk and embed on Ray workers (the ray extra): `auto` joins the running cluster or starts one on "
    "this machine; ADDRESS (host:port, ray://host:port) joins that one. Commits stay in this process.",
)
@click.option(
    "--ray-workers", type=click.IntRange(min=1), help="Ray workers to use (default: one per GPU of the cluster, else one per CPU)."
)
@click.pass_obj
def ingest(
    settings: Settings,
    paths: tuple[Path, ...],
    collection: str,
    rebuild: bool,
    as_json: bool,
    quiet: bool,
    ray_address: str | None,
    ray_workers: int | None,
) -> None:
    """Load, chunk, embed and index files and folders into a collection."""
    from assistant import compose
    from core.collection import collection_path, replace_collection

    if ray_workers is not None and ray_address is None:
        raise UserError("--ray-workers needs --ray")
    embedder = None  # with --ray the model is loaded by the workers alone, which check the chunk size as they start
    if ray_address is not None:
        from ingest.distributed import require_ray

        require_ray()  # a missing extra is said at once
    else:
        embedder = compose.embedder(settings)
        compose.check_chunking(settings, embedder)
    target = collection_path(settings.index_dir, collection)
    where = target.parent / f".{target.name}.rebuild" if rebuild else target
    if rebuild:
        shutil.rmtree(where, ignore_errors=True)
    ingestor = compose.ingestor(
        settings, where, embedder, name=collection, progress=not quiet and not as_json, ray=ray_address, ray_workers=ray_workers
    )
    with ingestor.collection as store:
        report = ingestor.ingest(paths)
        totals = store.counts()
    if rebuild and not report.interrupted:
        replace_collection(where, target)
    summary = {**report.to_dict(), "totals": totals, "path": str(target)}
    if as_json:
        emit(summary)
    else:
        print_ingest(report, totals, target)
    if report.interrupted:
        click.echo("interrupted: what was committed is kept; run the same command again to finish", err=True)
        sys.exit(130)
    if report.missing_paths:
        raise UserError(f"{len(report.missing_paths)} path(s) do not exist: {', '.join(report.missing_paths)}")


@click.command()
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
        store.operation = f"delete {source}"
        for src in matches:
            d, c = store.delete_source(src)
            documents, chunks = documents + d, chunks + c
        store.checkpoint()
        totals = store.counts()
    result = {"sources": matches, "documents_removed": documents, "chunks_removed": chunks, "totals": totals}
    if as_json:
        emit(result)
    else:
        click.echo(f"removed {documents} documents ({chunks} chunks) from {len(matches)} source(s) in {collection!r}")


@click.command()
@click.option("--collection", "-c", required=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def check(settings: Settings, collection: str, as_json: bool) -> None:
    """Verify a collection: SQLite integrity, FTS5, offsets, vectors, FAISS ids. Repairs a lagging index."""
    from assistant import compose

    try:
        store = compose.open_collection(settings, collection, writable=True)
    except (CollectionBusy, DiskFull):  # check what is committed, without writing
        store = compose.open_collection(settings, collection)
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        store = compose.open_collection(settings, collection)  # a full disk: the repair cannot be saved, check anyway
    with store:
        report = store.check()
    if as_json:
        emit(
            {
                "collection": collection,
                "ok": report.ok,
                "problems": report.problems,
                "repaired": report.repaired,
                "advice": report.advice,
                **report.stats,
            }
        )
    else:
        for line in report.repaired:
            click.echo(f"repaired: {line}")
        for line in report.problems:
            click.echo(f"problem: {line}")
        for line in report.advice:
            click.echo(f"advice: {line}")
        stats = report.stats
        state = "ok" if report.ok else "PROBLEMS FOUND"
        click.echo(
            f"{collection}: {state} ({stats['files']} files, {stats['documents']} documents, {stats['chunks']} chunks, "
            f"{stats['indexed_vectors']} vectors in a {stats['index_kind']} index)"
        )
    if not report.ok:
        sys.exit(1)


@click.command()
@click.option("--collection", "-c", required=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def reindex(settings: Settings, collection: str, as_json: bool) -> None:
    """Build a collection's vector index again from its stored vectors with the current settings
    (re-training an IVF index's centroids on the collection as it is now). Holds the write lock; the new
    index replaces the old one atomically."""
    from assistant import compose

    with compose.open_collection(settings, collection, writable=True) as store:
        was = store.index_kind
        result = store.reindex()
    summary = {"collection": collection, "was": was, **dataclasses.asdict(result)}
    if as_json:
        emit(summary)
        return
    trained = f", trained on {result.sample:,} of them in {result.nlist:,} lists" if result.nlist and result.sample else ""
    click.echo(f"{collection}: {result.vectors:,} vectors in a {result.kind} index (was {was}){trained}, {result.seconds:.1f} s")


@click.command("collections")
@click.option("--history", "history_of", metavar="NAME", help="List the versions collection NAME keeps (newest first).")
@click.option("--source", type=click.Path(path_type=Path), help="With --history: the versions of this source file's documents instead.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def collections_cmd(settings: Settings, history_of: str | None, source: Path | None, as_json: bool) -> None:
    """List the collections under ASSISTANT_INDEX_DIR, or one collection's versions (--history NAME)."""
    from assistant.views import collection_view
    from core.collection import list_collections, retrain_advice

    if source is not None and history_of is None:
        raise UserError("--source goes with --history NAME")
    if history_of is not None:
        _history(settings, history_of, source, as_json)
        return
    found = list_collections(settings.index_dir)
    if as_json:
        emit([collection_view(m) for m in found])
        return
    if not found:
        click.echo(f"no collections under {settings.index_dir}")
    for m in found:
        click.echo(
            f"{m.name:16} {m.documents:7} documents {m.index.chunks:8} chunks  {m.embedder.name} "
            f"({m.embedder.dim}-d), {m.chunking.chunk_tokens}/{m.chunking.overlap_tokens} tokens, {m.index.kind}"
        )
        if advice := retrain_advice(m.index.trained_on, m.index.chunks, m.name):
            click.echo(f"{'':16} advice: {advice}")


def _history(settings: Settings, collection: str, source: Path | None, as_json: bool) -> None:
    from assistant import compose
    from assistant.views import document_version_view, history_view

    with compose.open_collection(settings, collection) as store:
        if source is not None:
            rows = store.document_versions(str(source.resolve()))
            if not rows:
                raise UserError(f"no documents from {source} in collection {collection!r}, now or in its kept history")
            if as_json:
                emit([document_version_view(v) for v in rows])
                return
            for v in rows:
                until = f"removed in version {v.removed} ({v.removed_at})" if v.removed is not None else "current"
                click.echo(f"{v.document_id[:12]}  ingested {v.ingested_at}  from version {v.added}  {until}  {v.title}")
            return
        rows, current, oldest = store.versions(), store.version, store.oldest_version()
    if as_json:
        emit(history_view(collection, current, oldest, rows))
        return
    if oldest < 0:
        click.echo(f"{collection}: no history yet (it starts at the next write)")
        return
    click.echo(f"{collection}: version {current}; versions {oldest} to {current} can be restored (`assistant rollback`)")
    for v in rows:
        click.echo(
            f"  {v.version:6}  {v.created_at}  {v.operation:24} +{v.added} -{v.removed} documents  "
            f"({v.documents} documents, {v.chunks} chunks)"
        )


@click.command()
@click.option("--collection", "-c", required=True)
@click.option(
    "--to", "version", required=True, type=click.IntRange(min=0), help="The version to go back to (`assistant collections --history NAME`)."
)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def rollback(settings: Settings, collection: str, version: int, as_json: bool) -> None:
    """Make a collection what it was at an earlier version: its documents, chunks, vectors and BM25 rows,
    so searches and answers are those of that version. It is recorded as a new version: the versions in
    between stay in the history (roll forward again with --to)."""
    from assistant import compose
    from assistant.views import rollback_view

    with compose.open_collection(settings, collection, writable=True) as store:
        result = store.rollback(version)
        summary = rollback_view(collection, version, store.version, result, store.counts())
    if as_json:
        emit(summary)
        return
    totals = summary["totals"]
    click.echo(
        f"{collection}: back to version {version} as version {summary['version']} ({result.documents_added} documents restored, "
        f"{result.documents_removed} removed; {totals['documents']} documents, {totals['chunks']} chunks)"
    )


@click.command()
@click.option("--collection", "-c", required=True)
@click.option("--keep", required=True, type=click.IntRange(min=1), help="How many of the newest versions to keep.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def prune(settings: Settings, collection: str, keep: int, as_json: bool) -> None:
    """Drop a collection's oldest versions, keeping the newest KEEP, and give their space back. (Each write
    also prunes to ASSISTANT_INDEX__KEEP_VERSIONS.)"""
    from assistant import compose

    with compose.open_collection(settings, collection, writable=True) as store:
        pruned = store.prune(keep)
    if as_json:
        emit({"collection": collection, **dataclasses.asdict(pruned)})
        return
    click.echo(
        f"{collection}: dropped {pruned.versions} versions ({pruned.documents} archived documents, {pruned.chunks} chunks); "
        f"versions from {pruned.oldest_kept} on can be restored"
    )
