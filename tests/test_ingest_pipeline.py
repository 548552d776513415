"""The ingest pipeline against a real SQLite store and a real FAISS index (hash embedder, no model)."""

from __future__ import annotations

import numpy as np
from conftest import ingest_once

from core.collection import Collection
from ingest.pipeline import expand_paths


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


def test_ingest_settings_reach_the_loaders(tmp_path, monkeypatch):
    from assistant import compose
    from core.config import Settings
    from core.embedding import HashEmbedder
    from ingest.loaders import LoadOptions

    for name, value in {"OCR": "never", "OCR_DPI": "300", "MAX_PDF_PAGES": "50", "MAX_IMAGE_MEGAPIXELS": "2.5"}.items():
        monkeypatch.setenv(f"ASSISTANT_INGEST__{name}", value)
    monkeypatch.setenv("ASSISTANT_INGEST__ENCODING_FALLBACK", "cp1252")
    settings = Settings(index_dir=tmp_path, embedder={"model": "hash:64"}, guardrails={"enabled": False})
    options = LoadOptions(encoding_fallback="cp1252", ocr="never", ocr_dpi=300, max_pages=50, max_image_pixels=2_500_000)
    assert compose.load_options(settings) == options
    # The parts a Ray worker builds from the settings, and the in-process ingestor, both read with them.
    assert compose.ingest_parts(settings, "c", HashEmbedder(64)).load_options == options
    ingestor = compose.ingestor(settings, tmp_path / "c", HashEmbedder(64), progress=False)
    with ingestor.collection:
        assert ingestor.load_options == options
    assert Settings().ingest.ocr == "never"
    monkeypatch.delenv("ASSISTANT_INGEST__OCR")
    assert Settings().ingest.ocr == "auto"  # the default: OCR only where there is no text layer


def test_pages_read_by_ocr_show_on_the_progress_bar(tmp_path, embedder, monkeypatch, capsys):
    from conftest import make_ingestor
    from fake_ocr import FakeOcr
    from test_pdf_loader import mixed_pdf, picture

    FakeOcr().install(monkeypatch)
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "scan.pdf").write_bytes(mixed_pdf(["A typed page.", picture(), picture()]))
    collection, ingestor = make_ingestor(tmp_path / "c", embedder)
    ingestor.progress = True
    with collection:
        report = ingestor.ingest([folder])
    assert report.files_read == 1 and not report.skipped
    shown = capsys.readouterr().err
    assert "scan.pdf: OCR page 1/2" in shown and "scan.pdf: OCR page 2/2" in shown
