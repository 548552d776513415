"""A read-only collection handle shared by a server's threads: a connection per thread, and a cheap check for
commits made since it was opened (at once for this process's own, within an interval for another's)."""

from __future__ import annotations

import sqlite3
import threading

import pytest

import assistant.collection as collection_module
from assistant.collection import DATABASE, Collection

from conftest import ingest_once


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
        reader.db


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
