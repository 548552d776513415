"""The collection store (core/collection/): opening and creating, the SQLite store, the FAISS checkpoint and
its repair, deletes, the write lock, readers shared by a server's threads (a connection per thread, and a
cheap check for commits made since a handle was opened), metadata filters, names and ``check``. Real SQLite
and FAISS, the hash embedder."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from conftest import ingest_once, make_ingestor

import core.collection.collection as collection_module
from core.collection import (
    DATABASE,
    VECTORS,
    Collection,
    IndexParams,
    collection_path,
    filter_clause,
    list_collections,
    parse_filters,
    replace_collection,
)
from core.embedding import HashEmbedder
from core.errors import CollectionMismatch, CorruptCollection, UserError


@pytest.fixture
def built(tmp_path, corpus, embedder):
    ingest_once(tmp_path / "c", embedder, [corpus])
    return tmp_path / "c"


def test_each_thread_reads_through_its_own_connection_and_close_closes_them_all(built):
    reader = Collection.open(built)
    seen: dict[str, sqlite3.Connection] = {}

    def read(name):
        seen[name] = reader.db
        assert reader.db is seen[name]  # the same connection for the same thread
        assert reader.counts()["documents"] == 5

    threads = [threading.Thread(target=read, args=(f"t{i}",)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    read("main")
    assert len({id(db) for db in seen.values()}) == 4
    reader.close()
    for db in seen.values():
        with pytest.raises(sqlite3.ProgrammingError, match="closed"):
            db.execute("SELECT 1")
    with pytest.raises(RuntimeError, match="closed"):
        _ = reader.db


def test_connections_of_ended_threads_are_closed_so_thread_per_request_servers_keep_their_file_descriptors(built):
    # The API answers each question on a thread of its own; their connections once stayed open until the
    # collection closed: three file descriptors and a page cache per answer, for the server's life.
    reader = Collection.open(built)
    open_fds = lambda: len(list(Path("/proc/self/fd").iterdir()))  # noqa: E731
    reader.counts()
    before = open_fds()
    kept: list[sqlite3.Connection] = []
    release = threading.Event()

    def read_and_stay():
        kept.append(reader.db)
        reader.counts()
        release.wait()

    long_lived = threading.Thread(target=read_and_stay, daemon=True)
    long_lived.start()
    try:
        for _ in range(200):
            t = threading.Thread(target=lambda: reader.counts())
            t.start()
            t.join()
        assert open_fds() - before <= 2 * 3  # the long-lived thread's and the last one's, not 201
        assert kept[0].execute("SELECT 1").fetchone()[0] == 1  # a live thread's connection stays open
    finally:
        release.set()
        long_lived.join()
        reader.close()


def test_a_reader_dropped_without_close_closes_its_connections_without_waiting_for_the_garbage_collector(built):
    # Servers drop a stale reader unclosed (another thread may still be searching it). A sqlite3.Connection is in
    # a reference cycle with its statement cache, so its descriptors once stayed open until a full collection.
    import gc

    open_fds = lambda: len(list(Path("/proc/self/fd").iterdir()))  # noqa: E731
    before = open_fds()
    gc.disable()
    try:
        for _ in range(20):
            reader = Collection.open(built)
            reader.counts()
            t = threading.Thread(target=reader.counts)
            t.start()
            t.join()
            del reader
        assert open_fds() - before <= 3
    finally:
        gc.enable()


def test_a_writer_uses_one_connection_from_every_thread(built):
    with Collection.open(built, writable=True) as writer:
        got = []
        t = threading.Thread(target=lambda: got.append(writer.db))
        t.start()
        t.join()
        assert got == [writer.db]


def test_a_commit_by_this_process_is_seen_at_once(tmp_path, corpus, embedder, monkeypatch):
    monkeypatch.setattr(collection_module, "STALE_CHECK_INTERVAL_S", 3600.0)
    ingest_once(tmp_path / "c", embedder, [corpus / "asthma.txt"])
    reader = Collection.open(tmp_path / "c")
    assert not reader.stale and reader.version == reader.loaded_generation
    ingest_once(tmp_path / "c", embedder, [corpus])  # a writer in this process commits
    assert reader.stale
    assert Collection.open(tmp_path / "c").version > reader.version
    reader.close()


def test_a_commit_by_another_process_is_seen_after_the_interval(built, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(collection_module.time, "monotonic", lambda: clock[0])
    reader = Collection.open(built)
    assert not reader.stale
    # Another process commits: only the database changes, nothing this process knows about.
    other = sqlite3.connect(built / DATABASE, isolation_level=None)
    other.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")
    other.close()
    assert not reader.stale  # not asked again within the interval
    clock[0] += collection_module.STALE_CHECK_INTERVAL_S
    assert reader.stale
    clock[0] += 100
    assert reader.stale  # stays stale: its owner reopens it
    reader.close()


def test_a_folder_swapped_for_a_rebuilt_one_is_seen_after_the_interval(tmp_path, corpus, embedder, monkeypatch):
    """`ingest --rebuild` swaps folders: the reader's connections keep the old, unlinked database, whose
    generation never moves, so only the database file's identity can tell it that it serves a dead copy."""
    clock = [1000.0]
    monkeypatch.setattr(collection_module.time, "monotonic", lambda: clock[0])
    target = tmp_path / "c"
    ingest_once(target, embedder, [corpus])
    reader = Collection.open(target)
    ingest_once(tmp_path / ".c.rebuild", embedder, [corpus / "asthma.txt"])
    replace_collection(tmp_path / ".c.rebuild", target)
    assert reader.generation == reader.loaded_generation  # the old database says nothing changed
    clock[0] += collection_module.STALE_CHECK_INTERVAL_S
    assert reader.stale
    reader.close()
    with Collection.open(target) as reopened:
        assert reopened.counts()["documents"] == 1 and not reopened.stale


def test_delete_source_removes_the_document_everywhere(tmp_path, corpus, embedder):
    ingest_once(tmp_path / "c", embedder, [corpus])
    source = str((corpus / "asthma.txt").resolve())
    collection, _ = make_ingestor(tmp_path / "c", embedder)
    with collection:
        docs, chunks = collection.delete_source(source)
        collection.checkpoint()
        assert docs == 1 and chunks >= 1
        assert collection.counts()["documents"] == 4
        assert collection.file_sha256(source) is None
        fts = collection.db.execute("SELECT COUNT(*) FROM chunks_fts WHERE chunks_fts MATCH 'corticosteroids'").fetchone()[0]
        assert fts == 0
        assert collection.check().ok
    with Collection.open(tmp_path / "c") as c:
        assert c.index.ntotal == c.counts()["chunks"]


def test_other_settings_give_a_clear_error_naming_the_rebuild(tmp_path, corpus, embedder):
    ingest_once(tmp_path / "c", embedder, [corpus], chunk_tokens=40)
    with pytest.raises(CollectionMismatch, match=r"chunking 40/8 tokens.*--rebuild"):
        make_ingestor(tmp_path / "c", embedder, chunk_tokens=50)
    with pytest.raises(CollectionMismatch, match=r"embedder hash:64 \(64-d\) on disk, hash:32 \(32-d\) now"):
        make_ingestor(tmp_path / "c", HashEmbedder(32))


def test_second_writer_is_refused_while_the_first_holds_the_lock(tmp_path, corpus, embedder):
    from core.errors import CollectionBusy

    collection, _ = make_ingestor(tmp_path / "c", embedder)
    with collection:
        with pytest.raises(CollectionBusy, match="being written by another process"):
            Collection.open(tmp_path / "c", writable=True)
        with Collection.open(tmp_path / "c") as reader:  # readers are never blocked
            assert reader.counts()["documents"] == 0


def test_hnsw_index_above_the_size_threshold(tmp_path, corpus, embedder):
    params = IndexParams(approx_threshold=3)
    report, counts = ingest_once(tmp_path / "c", embedder, [corpus], params=params)
    with Collection.open(tmp_path / "c", params=params) as c:
        assert c.index_kind == "hnsw" and c.manifest.index.kind == "hnsw"
        hits = c.hits(c.dense(embedder.embed_query("asthma inhalers airways"), 2))
        assert hits[0].source.endswith("asthma.txt")
    # HNSW cannot remove vectors: deleting rebuilds the index from the stored vectors.
    collection, _ = make_ingestor(tmp_path / "c", embedder, params=params)
    with collection:
        collection.delete_source(str((corpus / "asthma.txt").resolve()))
        collection.checkpoint()
        assert collection.index_kind == "hnsw"
        assert collection.check().ok


@pytest.mark.parametrize("damage", ["delete", "garbage", "stale"])
def test_a_damaged_or_stale_faiss_file_is_rebuilt_from_the_store(tmp_path, corpus, embedder, damage):
    ingest_once(tmp_path / "c", embedder, [corpus])
    vectors = tmp_path / "c" / VECTORS
    if damage == "delete":
        vectors.unlink()
    elif damage == "garbage":
        vectors.write_bytes(b"not a faiss index at all")
    else:  # the store moved on after the checkpoint (as after a kill between commit and checkpoint)
        db = sqlite3.connect(tmp_path / "c" / "docs.sqlite")
        db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")
        db.commit()
        db.close()
    with Collection.open(tmp_path / "c", writable=True) as c:
        assert c.repaired, "the repair must be reported"
        report = c.check()
        assert report.ok, report.problems
        assert c.index.ntotal == c.counts()["chunks"]
    with Collection.open(tmp_path / "c") as c:  # the repair was saved: a plain reader needs none
        assert not c.repaired


def test_fts5_table_answers_bm25_queries_with_stemming(tmp_path, corpus, embedder):
    ingest_once(tmp_path / "c", embedder, [corpus])
    with Collection.open(tmp_path / "c") as c:
        rows = c.db.execute(
            """SELECT c.text, bm25(chunks_fts) AS score FROM chunks_fts JOIN chunks c ON c.id = chunks_fts.rowid
               WHERE chunks_fts MATCH ? ORDER BY score LIMIT 3""",
            ("inhaler",),  # Porter stemming: "inhaler" matches "inhalers"
        ).fetchall()
        assert rows and "Inhalers" in rows[0][0]
        # Titles are indexed too: the Markdown heading "Revenue recognition" is found by the title column.
        titled = c.db.execute("SELECT COUNT(*) FROM chunks_fts WHERE chunks_fts MATCH 'title: recognition'").fetchone()[0]
        assert titled >= 1


def test_a_folder_of_the_users_own_files_is_never_taken_over(tmp_path, embedder):
    from core.errors import UserError

    own = tmp_path / "notes"
    own.mkdir()
    (own / "keep.txt").write_text("my own file")
    with pytest.raises(UserError, match="exists and is not a collection"):
        make_ingestor(own, embedder)
    assert (own / "keep.txt").read_text() == "my own file"
    empty = tmp_path / "empty"
    empty.mkdir()
    collection, _ = make_ingestor(empty, embedder)  # an empty folder is fine to use
    collection.close()


def test_collection_files_get_ordinary_permissions(tmp_path, corpus, embedder):
    import os

    old = os.umask(0o022)
    try:
        ingest_once(tmp_path / "c", embedder, [corpus])
    finally:
        os.umask(old)
    for name in ("manifest.json", "vectors.faiss", "docs.sqlite"):
        assert (tmp_path / "c" / name).stat().st_mode & 0o777 == 0o644, name


def test_filters_from_key_value_text():
    assert parse_filters([]) is None
    assert parse_filters(["kind=table", "year=2019", "year=2020", " report_uid =a=b"]) == {
        "kind": "table",
        "year": ["2019", "2020"],
        "report_uid": "a=b",  # only the first "=" splits
    }
    assert parse_filters(["source=docs/a.txt"]) == {"source": str(Path("docs/a.txt").resolve())}  # as ingest stores it
    for bad in ("nokeyvalue", "=value", "  =x"):
        with pytest.raises(UserError, match="expected KEY=VALUE"):
            parse_filters([bad])


def test_filter_sql_binds_every_value_and_refuses_unsafe_keys():
    where, params = filter_clause({"source": "/a", "document_id": ["d1", "d2"], "kind": "table"})
    assert where == "d.source IN (?) AND d.id IN (?,?) AND json_extract(d.metadata, ?) IN (?)"
    assert params == ["/a", "d1", "d2", '$."kind"', "table"]
    assert filter_clause(None) == ("", [])
    with pytest.raises(UserError, match="invalid filter key"):
        filter_clause({"kind') OR 1=1 --": "x"})
    with pytest.raises(UserError, match="empty list"):
        filter_clause({"kind": []})
    with pytest.raises(UserError, match="strings, numbers or booleans"):
        filter_clause({"kind": [{"nested": 1}]})


@pytest.mark.parametrize("name", ["", ".hidden", "../up", "a/b", "a\\b", "spaces here", "semi;colon"])
def test_collection_names_cannot_escape_the_index_folder(tmp_path, name):
    with pytest.raises(UserError, match="invalid collection name"):
        collection_path(tmp_path, name)


def test_list_collections_skips_hidden_and_other_format_folders_and_reports_damage(tmp_path, corpus, embedder):
    ingest_once(tmp_path / "idx" / "good", embedder, [corpus])
    ingest_once(tmp_path / "idx" / "future", embedder, [corpus])
    (tmp_path / "idx" / ".good.rebuild").mkdir()
    manifest = tmp_path / "idx" / "future" / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"format_version": 1', '"format_version": 99'))
    assert [m.name for m in list_collections(tmp_path / "idx")] == ["good"]
    assert list_collections(tmp_path / "nowhere") == []
    manifest.write_text("{not json")
    with pytest.raises(CorruptCollection, match="future/manifest.json is not a valid manifest"):
        list_collections(tmp_path / "idx")


def test_check_names_what_disagrees(tmp_path, corpus, embedder):
    ingest_once(tmp_path / "c", embedder, [corpus])
    db = sqlite3.connect(tmp_path / "c" / DATABASE)
    db.execute("UPDATE chunks SET text = 'tampered' WHERE id = (SELECT MIN(id) FROM chunks)")
    db.execute("DELETE FROM chunks_fts WHERE rowid = (SELECT MAX(id) FROM chunks)")
    db.commit()
    db.close()
    with Collection.open(tmp_path / "c") as c:
        report = c.check()
    assert not report.ok
    assert any("do not match their document text" in p for p in report.problems)
    assert any(p.startswith("FTS5 table has") for p in report.problems)
    assert report.stats["chunks"] == report.stats["indexed_vectors"]


def test_a_read_only_handle_refuses_to_write(tmp_path, corpus, embedder):
    ingest_once(tmp_path / "c", embedder, [corpus])
    with Collection.open(tmp_path / "c") as c, pytest.raises(RuntimeError, match="read-only"):
        c.delete_source(c.sources()[0])
