"""Versions of a collection (core/collection/history.py): a rollback gives back exactly the search results
of the earlier version, a read "as of" a version equals that rollback, the history lists each write, old
versions are pruned, and a version that cannot be rebuilt is refused with its reason."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import FIVE_DOCS, make_ingestor, run_cli

from core.collection import Collection
from core.collection.collection import AS_OF
from core.errors import VersionNotKept

QUERIES = ["metformin side effects", "blood pressure salt", "inhaler airways", "dividend payout ratio", "revenue liability"]


def _results(collection: Collection, embedder) -> list:
    """Dense and BM25 top 5 of every query, with ids, scores, texts and titles: what "the same search
    results" means."""
    out = []
    for q in QUERIES:
        dense = collection.dense(embedder.embed_query(q), 5)
        bm25 = collection.bm25(" OR ".join(q.split()), 5)
        out.append(
            [(h.chunk_id, round(h.score, 5), h.text, h.title, h.document_id) for h in collection.hits(dense)]
            + [(h.chunk_id, round(h.score, 5), h.text, h.title, h.document_id) for h in collection.hits(bm25)]
        )
    return out


def _ingest(path: Path, embedder, files: list[Path]) -> int:
    collection, ingestor = make_ingestor(path, embedder)
    with collection:
        ingestor.ingest(files)
        return collection.generation


def _change(corpus: Path, path: Path, embedder) -> int:
    """Edit one file, delete another, add a third: version 2."""
    (corpus / "metformin.md").write_text(FIVE_DOCS["metformin.md"] + "\n\nNew: metformin rarely causes lactic acidosis.", encoding="utf-8")
    (corpus / "statins.txt").write_text("Statins lower LDL cholesterol; muscle pain is a known side effect.", encoding="utf-8")
    _ingest(path, embedder, [corpus])
    with Collection.open(path, writable=True) as collection:
        collection.operation = "delete asthma"
        collection.delete_source(str((corpus / "asthma.txt").resolve()))
        collection.checkpoint()
        return collection.generation


@pytest.fixture
def versioned(tmp_path, corpus, embedder):
    """A collection at version 1 (the five documents) and then version 2 (edited, deleted, added), with
    the search results of each."""
    path = tmp_path / "indexes" / "kb"
    v1 = _ingest(path, embedder, [corpus])
    with Collection.open(path) as c:
        first = _results(c, embedder)
    v2 = _change(corpus, path, embedder)
    with Collection.open(path) as c:
        second = _results(c, embedder)
    assert first != second
    return path, v1, v2, first, second


def test_rollback_restores_exactly_the_search_results_and_file_records(versioned, embedder, corpus):
    path, v1, v2, first, second = versioned
    with Collection.open(path, writable=True) as c:
        result = c.rollback(v1)
        assert (result.documents_removed, result.documents_added) == (2, 2)  # new metformin + statins out; old metformin + asthma back
        assert c.check().ok
        back = c.version
    assert back > v2
    with Collection.open(path) as c:
        assert _results(c, embedder) == first
        assert c.counts()["documents"] == 5
    # The file records are version 1's: ingesting the folder again sees the edited and the new file.
    collection, ingestor = make_ingestor(path, embedder)
    with collection:
        report = ingestor.ingest([corpus])
        assert (report.documents_added, report.documents_removed) == (2, 1)  # metformin edited, statins new
        assert collection.check().ok


def test_rolling_forward_again_and_the_history_lists_every_write(versioned, embedder):
    path, v1, v2, first, second = versioned
    with Collection.open(path, writable=True) as c:
        c.rollback(v1)
    with Collection.open(path, writable=True) as c:
        c.rollback(v2)
    with Collection.open(path) as c:
        assert _results(c, embedder) == second
        listed = c.versions()
    assert [v.operation for v in listed] == [f"rollback to {v2}", f"rollback to {v1}", "delete asthma", "ingest", "ingest"]
    assert [v.version for v in listed] == sorted((v.version for v in listed), reverse=True)
    assert (listed[-1].added, listed[-1].removed, listed[-1].documents) == (5, 0, 5)
    assert (listed[-2].added, listed[-2].removed) == (2, 1)  # new metformin and statins in, old metformin out
    assert (listed[-3].added, listed[-3].removed, listed[-3].documents) == (0, 1, 5)


def test_a_read_as_of_a_version_equals_its_rollback(versioned, embedder):
    path, v1, v2, first, second = versioned
    with Collection.open_as_of(path, v1) as old:
        assert old.version == v1
        assert _results(old, embedder) == first
        assert old.hits(old.dense(embedder.embed_query("inhaler"), 1))[0].ingested_at  # when that version was ingested
    assert [p.name for p in (path / AS_OF).iterdir()] == [str(v1)]
    with Collection.open_as_of(path, v1) as again:  # reused, not rebuilt
        assert _results(again, embedder) == first
    with Collection.open_as_of(path, v2) as live:  # the current version is the collection itself
        assert live.path == path and _results(live, embedder) == second
    with Collection.open(path) as c:  # the live collection was not touched
        assert _results(c, embedder) == second and c.version == v2


def test_versions_that_cannot_be_rebuilt_are_refused_with_the_reason(versioned, embedder):
    path, v1, v2, *_ = versioned
    with pytest.raises(VersionNotKept, match=rf"collection 'kb' has no version {v2 + 5} \(it is at version {v2}\)"):
        Collection.open_as_of(path, v2 + 5)
    with Collection.open(path, writable=True) as c:
        pruned = c.prune(1)
        assert (pruned.versions, pruned.documents, pruned.oldest_kept) == (2, 2, v2)
        assert c.oldest_version() == v2
        with pytest.raises(VersionNotKept, match=rf"version {v1} of collection 'kb' is no longer kept \(versions {v2} to {v2} are kept\)"):
            c.rollback(v1)
        assert c.check().ok
    db = sqlite3.connect(path / "docs.sqlite")
    assert db.execute("SELECT COUNT(*) FROM documents_archive").fetchone()[0] == 0
    assert db.execute("SELECT COUNT(*) FROM chunks_archive").fetchone()[0] == 0


def test_every_write_prunes_to_the_kept_number_of_versions(tmp_path, corpus, embedder):
    from core.collection import IndexParams

    path = tmp_path / "kb"
    collection, ingestor = make_ingestor(path, embedder, params=IndexParams(keep_versions=2))
    with collection:
        ingestor.ingest([corpus])
    for i in range(3):
        (corpus / "metformin.md").write_text(f"Metformin edition {i}: take it with meals.", encoding="utf-8")
        collection, ingestor = make_ingestor(path, embedder, params=IndexParams(keep_versions=2))
        with collection:
            ingestor.ingest([corpus])
    with Collection.open(path) as c:
        assert len(c.versions()) == 2
        kept = c.document_versions(str((corpus / "metformin.md").resolve()))
    # the current edition and the one the older kept version holds; the rest were pruned
    assert [v.removed is None for v in kept] == [True, False]
    assert kept[0].added > kept[1].added


def test_an_unchanged_ingest_makes_no_version_and_no_history(tmp_path, corpus, embedder):
    path = tmp_path / "kb"
    _ingest(path, embedder, [corpus])
    size = (path / "docs.sqlite").stat().st_size
    for _ in range(3):
        _ingest(path, embedder, [corpus])
    with Collection.open(path) as c:
        assert len(c.versions()) == 1
    db = sqlite3.connect(path / "docs.sqlite")
    assert not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'documents_archive'").fetchone()  # created on first removal
    assert (path / "docs.sqlite").stat().st_size == size


def test_a_document_keeps_its_versions_and_answers_can_tell_a_changed_source(versioned, corpus):
    path, v1, v2, *_ = versioned
    source = str((corpus / "metformin.md").resolve())
    with Collection.open(path) as c:
        kept = c.document_versions(source)
        assert len(kept) == 2
        now, before = kept
        assert now.removed is None and before.removed == now.added and before.added <= v1
        assert c.live_document_ids([now.document_id, before.document_id]) == {now.document_id}


def test_history_and_rollback_from_the_command_line(tmp_path, corpus, cli_env):
    env = cli_env
    assert run_cli(["ingest", str(corpus), "-c", "kb", "-q"], env).returncode == 0
    (corpus / "asthma.txt").unlink()
    (corpus / "gout.txt").write_text("Gout is inflammatory arthritis caused by urate crystals.", encoding="utf-8")
    assert run_cli(["ingest", str(corpus), "-c", "kb", "-q"], env).returncode == 0
    out = run_cli(["collections", "--history", "kb", "--json"], env)
    assert out.returncode == 0, out.stderr
    listed = json.loads(out.stdout)
    first = listed["versions"][-1]["version"]
    assert [v["operation"] for v in listed["versions"]] == ["ingest", "ingest"] and listed["oldest_kept"] <= first
    gout = run_cli(["search", "urate crystals arthritis", "-c", "kb", "--json"], env)
    assert json.loads(gout.stdout)["hits"][0]["title"] == "gout"
    before = run_cli(["search", "urate crystals arthritis", "-c", "kb", "--json", "--as-of", str(first)], env)
    assert before.returncode == 0, before.stderr
    assert json.loads(before.stdout)["collection_version"] == first
    assert "gout" not in [h["title"] for h in json.loads(before.stdout)["hits"]]
    out = run_cli(["rollback", "-c", "kb", "--to", str(first)], env)
    assert out.returncode == 0, out.stderr
    assert f"back to version {first}" in out.stdout
    hits = json.loads(run_cli(["search", "urate crystals arthritis", "-c", "kb", "--json"], env).stdout)["hits"]
    assert "gout" not in [h["title"] for h in hits]
    out = run_cli(["rollback", "-c", "kb", "--to", "999"], env)
    assert out.returncode == 2 and "collection 'kb' has no version 999" in out.stderr
    out = run_cli(["prune", "-c", "kb", "--keep", "1"], env)
    assert out.returncode == 0 and "dropped 2 versions" in out.stdout, out.stdout + out.stderr
    out = run_cli(["collections", "--history", "kb", "--source", str(corpus / "asthma.txt")], env)
    assert out.returncode == 0 and "current" in out.stdout


def test_an_old_collection_starts_its_history_when_next_written(tmp_path, corpus, embedder):
    path = tmp_path / "kb"
    _ingest(path, embedder, [corpus])
    db = sqlite3.connect(path / "docs.sqlite")  # what a collection written before versions looks like
    for table in ("versions", "documents_archive", "chunks_archive", "files_archive"):
        db.execute(f"DROP TABLE IF EXISTS {table}")
    db.execute("ALTER TABLE documents DROP COLUMN added_gen")
    db.execute("ALTER TABLE files DROP COLUMN added_gen")
    db.execute("DELETE FROM meta WHERE key = 'history_since'")
    db.commit()
    db.close()
    with Collection.open(path) as c:  # a reader reads it as before
        assert len(c.hits(c.dense(embedder.embed_query("asthma"), 3))) == 3
    with Collection.open(path, writable=True) as c:
        since = c.generation
        assert c.oldest_version() == since and c.versions() == []
        with pytest.raises(VersionNotKept, match="no longer kept"):
            c.rollback(since - 1)
        c.delete_source(str((corpus / "asthma.txt").resolve()))
    with Collection.open(path, writable=True) as c:
        c.rollback(since)
        assert c.counts()["documents"] == 5 and c.check().ok
        assert np.isfinite(c.dense(embedder.embed_query("asthma"), 1)[0][1])


def test_the_api_answers_and_searches_as_of_a_version_lists_versions_and_rolls_back(tmp_path, corpus, embedder):
    import httpx
    from pydantic import SecretStr

    from api.app import create_app
    from core.config import Settings
    from core.embedding import HashEmbedder
    from generator.fake import QueuedGenerator
    from tests.live_server import live

    path = tmp_path / "indexes" / "docs"
    v1 = _ingest(path, embedder, [corpus])
    (corpus / "asthma.txt").write_text("Asthma inhalers: a new leaflet replaced the old advice on spacers.", encoding="utf-8")
    v2 = _ingest(path, embedder, [corpus])
    settings = Settings(
        index_dir=tmp_path / "indexes",
        embedder={"model": "hash:64"},
        chunking={"chunk_tokens": 40, "overlap_tokens": 8},
        retrieval={"min_relevance": 0.0},
        answerability={"threshold": 0.01},
        guardrails={"audit_log": tmp_path / "audit.jsonl"},
        conversation={"path": tmp_path / "conversations.sqlite"},
        api_keys=SecretStr("reader-key-0123456789,admin-key-0123456789:admin"),
    )
    generator = QueuedGenerator(["Inhalers open the airways [1]."] * 4)
    app = create_app(settings, generator=generator, embedders={"hash:64": HashEmbedder(64)}, warm_up=False)
    reader, admin = {"Authorization": "Bearer reader-key-0123456789"}, {"Authorization": "Bearer admin-key-0123456789"}
    with live(app) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        listed = client.get("/v1/collections/docs/versions", headers=reader).json()
        assert [v["version"] for v in listed["versions"]] == [v2, v1] and listed["version"] == v2

        def top(as_of=None):
            params = {"q": "asthma inhalers", "collection": "docs", "k": 1, **({"as_of": as_of} if as_of is not None else {})}
            r = client.get("/v1/search", params=params, headers=reader)
            assert r.status_code == 200, r.text
            return r.json()

        old, new = top(v1), top()
        assert old["collection_version"] == v1 and "chronic disease" in old["hits"][0]["snippet"]
        assert new["collection_version"] == v2 and "new leaflet" in new["hits"][0]["snippet"]
        assert old["hits"][0]["ingested_at"] and old["hits"][0]["page"] is None

        asked = client.post("/v1/ask", json={"question": "What do asthma inhalers do?", "collection": "docs", "as_of": v1}, headers=reader)
        assert asked.status_code == 200, asked.text
        body = asked.json()
        assert body["collection_version"] == v1 and "chronic disease" in body["citations"][0]["snippet"]
        assert body["citations"][0]["ingested_at"]
        # The stored turn cites a version of asthma.txt the collection no longer holds: marked as changed.
        turns = client.get(f"/v1/conversations/{body['conversation_id']}", headers=reader).json()["turns"]
        assert [c["changed"] for c in turns[0]["citations"]] == [True]

        r = client.get("/v1/search", params={"q": "asthma", "collection": "docs", "as_of": v2 + 9}, headers=reader)
        assert r.status_code == 404 and f"has no version {v2 + 9}" in r.json()["detail"]
        r = client.post("/v1/collections/docs/rollback", json={"to": v1}, headers=reader)
        assert r.status_code == 403
        r = client.post("/v1/collections/docs/rollback", json={"to": v1}, headers=admin)
        assert r.status_code == 200, r.text
        assert (r.json()["to"], r.json()["documents_restored"], r.json()["documents_removed"]) == (v1, 1, 1)
        time.sleep(0.3)  # servers see another write within 0.25 s
        again = top()
        assert "chronic disease" in again["hits"][0]["snippet"] and again["collection_version"] == r.json()["version"]
        assert client.post("/v1/collections/nope/rollback", json={"to": 1}, headers=admin).status_code == 404


def test_reads_as_of_more_versions_than_kept_copies_reopen_pruned_ones_and_hold_only_the_kept(tmp_path, corpus, embedder):
    # Opening a third copy prunes the first one's folder; the server's handle on it once stayed cached, and the
    # next read of that version on a new thread (every answer runs on one) failed: "unable to open database file".
    import threading

    from assistant.pipeline import Assistant
    from core.collection.collection import AS_OF_COPIES
    from core.config import Settings
    from core.embedding import HashEmbedder

    path = tmp_path / "indexes" / "docs"
    versions = []
    for i in range(AS_OF_COPIES + 2):
        (corpus / f"leaflet{i}.txt").write_text(f"Inhaler leaflet number {i}: spacers and airways.", encoding="utf-8")
        versions.append(_ingest(path, embedder, [corpus]))
    settings = Settings(
        index_dir=tmp_path / "indexes",
        embedder={"model": "hash:64"},
        chunking={"chunk_tokens": 40, "overlap_tokens": 8},
        conversation={"path": tmp_path / "conversations.sqlite"},
        guardrails={"audit_log": tmp_path / "audit.jsonl"},
    )

    def leaflets_found(assistant: Assistant, version: int) -> set[str]:
        found: dict[str, object] = {}

        def search():  # on a thread of its own, as the API answers
            try:
                retriever = assistant.retriever("docs", as_of=version)
                found["titles"] = {h.title for h in retriever.search("inhaler leaflet spacers", 10).hits if "leaflet" in h.title}
            except Exception as exc:
                found["titles"] = exc

        thread = threading.Thread(target=search)
        thread.start()
        thread.join()
        assert not isinstance(found["titles"], Exception), found["titles"]
        return found["titles"]

    with Assistant(settings, embedders={"hash:64": HashEmbedder(64)}) as assistant:
        older = versions[:-1]  # the last one is the live collection, no copy
        for version in [*older, older[0], older[1]]:
            assert leaflets_found(assistant, version) == {f"leaflet{i}" for i in range(versions.index(version) + 1)}
            copies = [name for name in assistant._stores if name[1] is not None]
            assert len(copies) <= AS_OF_COPIES and ("docs", version) in copies
        assert len([f for f in (path / AS_OF).iterdir() if not f.name.startswith(".")]) == AS_OF_COPIES


def test_the_chat_says_which_version_a_changed_source_came_from():
    from ui.render import source_caption

    source = {"source": "/docs/leaflet.pdf", "start": 10, "end": 90, "score": 0.81234, "ingested_at": "2026-11-02T09:00:00+00:00"}
    assert source_caption({**source, "page": 3, "changed": False}) == "`/docs/leaflet.pdf`, page 3, characters 10-90, score 0.812"
    assert source_caption({**source, "page": None, "changed": True}).endswith(
        "score 0.812. From the version of 2026-11-02; the document has changed since"
    )
