"""The ingest pipeline against a real SQLite store and a real FAISS index (hash embedder, no model)."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from assistant.collection import VECTORS, Collection, IndexParams
from assistant.embedding import HashEmbedder
from assistant.errors import CollectionMismatch
from ingest.pipeline import expand_paths

from conftest import ingest_once, make_ingestor


def test_first_ingest_stores_every_document_with_valid_offsets(tmp_path, corpus, embedder):
    report, counts = ingest_once(tmp_path / "c", embedder, [corpus])
    assert report.documents_added == 5 and report.files_read == 5 and not report.skipped
    assert counts["documents"] == 5 and counts["files"] == 5
    assert counts["chunks"] == report.chunks_added >= 5
    with Collection.open(tmp_path / "c") as c:
        result = c.check()
        assert result.ok, result.problems
        rows = c.db.execute(
            "SELECT d.text, d.title, c.start_char, c.end_char, c.text FROM chunks c JOIN documents d ON d.pk = c.doc_pk"
        ).fetchall()
        for doc_text, _title, start, end, chunk_text in rows:
            assert doc_text[start:end] == chunk_text
        titles = {r[1] for r in rows}
        assert "Metformin" in titles and "Revenue recognition" in titles  # Markdown heading becomes the title
        assert c.index.ntotal == counts["chunks"]


def test_dense_search_finds_the_matching_document(tmp_path, corpus, embedder):
    ingest_once(tmp_path / "c", embedder, [corpus])
    with Collection.open(tmp_path / "c") as c:
        hits = c.hits(c.dense(embedder.embed_query("dividends payout ratio net income"), 3))
    assert hits[0].source.endswith("dividends.txt")
    assert hits[0].score > hits[1].score


def test_reingest_of_unchanged_files_adds_nothing_and_is_fast(tmp_path, corpus, embedder):
    first, counts = ingest_once(tmp_path / "c", embedder, [corpus])
    second, counts_again = ingest_once(tmp_path / "c", embedder, [corpus])
    assert second.documents_added == second.chunks_added == second.chunks_embedded == 0
    assert second.files_unchanged == 5 and second.files_read == 0
    assert counts_again == counts


def test_edited_file_replaces_its_old_chunks(tmp_path, corpus, embedder):
    ingest_once(tmp_path / "c", embedder, [corpus])
    (corpus / "asthma.txt").write_text("Asthma attacks are treated with salbutamol inhalers.", encoding="utf-8")
    report, counts = ingest_once(tmp_path / "c", embedder, [corpus])
    assert report.files_read == 1 and report.files_unchanged == 4
    assert report.documents_added == 1 and report.documents_removed == 1
    assert counts["documents"] == 5
    with Collection.open(tmp_path / "c") as c:
        texts = [r[0] for r in c.db.execute("SELECT text FROM chunks")]
        assert any("salbutamol" in t for t in texts)
        assert not any("corticosteroids" in t for t in texts)
        hits = c.hits(c.dense(embedder.embed_query("corticosteroids reduce inflammation"), 5))
        assert all("corticosteroids" not in h.text for h in hits)
        assert c.check().ok


def test_unchanged_chunks_of_an_edited_document_reuse_their_vectors(tmp_path, embedder):
    folder = tmp_path / "docs"
    folder.mkdir()
    paragraphs = [f"Paragraph {i} talks about topic number {i} in some detail with words." for i in range(12)]
    (folder / "long.txt").write_text("\n\n".join(paragraphs), encoding="utf-8")
    first, _ = ingest_once(tmp_path / "c", embedder, [folder], chunk_tokens=20, overlap=0)
    assert first.chunks_added >= 10
    paragraphs[-1] = "The last paragraph was rewritten entirely."
    (folder / "long.txt").write_text("\n\n".join(paragraphs), encoding="utf-8")
    second, _ = ingest_once(tmp_path / "c", embedder, [folder], chunk_tokens=20, overlap=0)
    assert second.chunks_added >= first.chunks_added - 2
    assert 0 < second.chunks_embedded <= 2  # only the chunks around the rewrite are embedded again


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
    from assistant.errors import CollectionBusy

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


def test_bad_input_is_reported_and_the_rest_ingested(tmp_path, corpus, embedder):
    (corpus / "binary.txt").write_bytes(b"\x00\x01\x02ELF\x00\x00" * 50)
    (corpus / "empty.txt").write_bytes(b"")
    (corpus / "latin1.txt").write_bytes("caf\xe9 cr\xe8me".encode("latin-1"))
    (corpus / "huge.txt").write_bytes(b"word " * 300_000)  # 1.5 MB, over the 1 MB limit below
    (corpus / "broken.pdf").write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog")
    report, counts = ingest_once(tmp_path / "c", embedder, [corpus, tmp_path / "nope.txt"], max_bytes=2**20)
    reasons = {p.rsplit("/", 1)[-1]: r for p, r in ((s.path, s.reason) for s in report.skipped)}
    assert set(reasons) == {"binary.txt", "empty.txt", "latin1.txt", "huge.txt", "broken.pdf", "nope.txt"}
    assert "binary" in reasons["binary.txt"]
    assert "empty" in reasons["empty.txt"]
    assert "UTF-8" in reasons["latin1.txt"]
    assert "over the 1 MB limit" in reasons["huge.txt"]
    assert "PDF" in reasons["broken.pdf"]
    assert reasons["nope.txt"] == "no such file or directory"
    assert report.missing_paths == [str(tmp_path / "nope.txt")]
    assert counts["documents"] == 5 and report.documents_added == 5
    with Collection.open(tmp_path / "c") as c:
        assert c.check().ok


def test_expand_paths_walks_folders_sorted_without_hidden_files(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "2.txt").write_text("x")
    (tmp_path / "a.txt").write_text("x")
    (tmp_path / ".hidden.txt").write_text("x")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "x.txt").write_text("x")
    files, missing = expand_paths([tmp_path, tmp_path / "a.txt", tmp_path / "missing"])
    assert [f.relative_to(tmp_path).as_posix() for f in files] == ["a.txt", "b/2.txt"]
    assert missing == [str(tmp_path / "missing")]


def test_identical_vectors_for_identical_inputs_across_runs(tmp_path, corpus, embedder):
    ingest_once(tmp_path / "a", embedder, [corpus])
    ingest_once(tmp_path / "b", embedder, [corpus])
    with Collection.open(tmp_path / "a") as a, Collection.open(tmp_path / "b") as b:
        va = a.db.execute("SELECT embed_hash, vector FROM chunks ORDER BY embed_hash").fetchall()
        vb = b.db.execute("SELECT embed_hash, vector FROM chunks ORDER BY embed_hash").fetchall()
    assert [h for h, _ in va] == [h for h, _ in vb]
    assert all(np.array_equal(np.frombuffer(x, np.float32), np.frombuffer(y, np.float32)) for (_, x), (_, y) in zip(va, vb))


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
    from assistant.errors import UserError

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
