"""The three index kinds (flat, HNSW, IVF) behave alike: search, filters, deletes, the repair on open after a
crash, `check` and `assistant reindex`; vectors are stored as float16 and collections whose vectors were
stored as float32 keep working. Small synthetic collections with the thresholds set low (IVF above 200
chunks), real SQLite and FAISS, the hash embedder."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import faiss
import numpy as np
import pytest
from conftest import make_ingestor, run_cli

from core.collection import DATABASE, VECTORS, Collection, IndexParams, codec, ivf
from core.errors import CorruptCollection

DIM = 64
N_DOCS = 300
KINDS = {
    "flat": IndexParams(),
    "hnsw": IndexParams(approx_threshold=50),
    "ivf": IndexParams(approx_threshold=50, ivf_threshold=200),
}
LOW_THRESHOLDS = {"ASSISTANT_INDEX__APPROX_THRESHOLD": "50", "ASSISTANT_INDEX__IVF_THRESHOLD": "200"}
# Words shared by the documents of one topic make a clustered collection, as real documents are.
TOPICS = ["cardiology heart rhythm", "oncology tumour biopsy", "revenue margin guidance", "asthma inhaler airway", "dividend payout ratio"]


def _text(i: int) -> str:
    return f"Note {i} on {TOPICS[i % len(TOPICS)]}: item{i} value{i % 17} code{i % 29} series{i // 10}."


def _write_corpus(folder: Path, ids: range) -> Path:
    folder.mkdir(exist_ok=True)
    for i in ids:
        (folder / f"{i:04d}.txt").write_text(_text(i), encoding="utf-8")
    return folder


def _ingest(path: Path, embedder, paths: list[Path], params: IndexParams) -> None:
    collection, ingestor = make_ingestor(path, embedder, params=params, commit_chunks=64)
    with collection:
        ingestor.ingest(paths)


@pytest.fixture
def embedder():
    from core.embedding import HashEmbedder

    return HashEmbedder(DIM)


@pytest.fixture(params=list(KINDS))
def kind(request) -> str:
    return request.param


@pytest.fixture
def built(tmp_path, embedder, kind) -> Path:
    _ingest(tmp_path / "c", embedder, [_write_corpus(tmp_path / "docs", range(N_DOCS))], KINDS[kind])
    return tmp_path / "c"


def _self_match(c: Collection, chunk_id: int, allowed: np.ndarray | None = None) -> int:
    return c.dense(c.vectors_for(np.array([chunk_id])), 1, allowed)[0][0]


def test_each_kind_searches_filters_and_passes_check(built, kind, tmp_path):
    with Collection.open(built, params=KINDS[kind]) as c:
        assert c.index_kind == kind and c.manifest.index.kind == kind
        ids = np.sort(c.store.chunk_ids())
        assert len(ids) == N_DOCS
        assert all(_self_match(c, int(i)) == i for i in ids[::37])
        # A filter keeps the search inside the allowed chunks, however few they are.
        source = str((tmp_path / "docs" / "0007.txt").resolve())
        allowed = c.chunk_ids_matching({"source": source})
        assert len(allowed) == 1
        hits = c.dense(c.vectors_for(ids[:1]), 5, allowed)
        assert [i for i, _ in hits] == allowed.tolist()
        report = c.check()
        assert report.ok, report.problems
        assert report.stats["index_kind"] == kind and report.advice == []


def test_each_kind_deletes_everywhere(built, kind, tmp_path):
    source = str((tmp_path / "docs" / "0012.txt").resolve())
    with Collection.open(built, writable=True, params=KINDS[kind]) as c:
        gone = c.chunk_ids_matching({"source": source})
        query = c.vectors_for(gone)
        c.delete_source(source)
        # HNSW keeps a removed vector until the checkpoint rebuilds it; the hits never show it.
        assert gone[0] not in [h.chunk_id for h in c.hits(c.dense(query, 10))]
        c.checkpoint()
        assert gone[0] not in [i for i, _ in c.dense(query, 10)]
        assert c.index_kind == kind and c.vectors.ntotal == N_DOCS - 1
        assert c.check().ok
    with Collection.open(built, params=KINDS[kind]) as c:
        assert not c.repaired and gone[0] not in c.vectors.ids()


def test_each_kind_is_repaired_on_open_after_a_crash(built, kind, tmp_path, embedder):
    """A process killed between its commits and the checkpoint: the next reader and the next writer bring
    the index up to the store, whatever its kind."""
    params = KINDS[kind]
    collection, ingestor = make_ingestor(built, embedder, params=params, commit_chunks=64)
    new_docs = _write_corpus(tmp_path / "more", range(N_DOCS, N_DOCS + 20))
    with collection:
        collection.checkpoint = lambda: None  # the kill: commits are durable, the checkpoint never happens
        ingestor.ingest([new_docs])
        collection.delete_source(str((tmp_path / "docs" / "0003.txt").resolve()))
    for writable in (False, True):
        with Collection.open(built, writable=writable, params=params) as c:
            assert any("was behind the store" in line and "added 20 vectors, removed 1" in line for line in c.repaired), c.repaired
            assert c.index_kind == kind and c.vectors.ntotal == N_DOCS + 19
            newest = int(np.max(c.store.chunk_ids()))
            assert _self_match(c, newest) == newest
            report = c.check()
            assert report.ok, report.problems
    with Collection.open(built, params=params) as c:  # the writer saved the repair
        assert not c.repaired


def test_vectors_are_stored_as_float16_and_indexed_as_stored(built, kind):
    with Collection.open(built, params=KINDS[kind]) as c:
        widths = {r[0] for r in c.db.execute("SELECT DISTINCT length(vector) FROM chunks")}
        assert widths == {2 * DIM}
        # What the index was given live is what a rebuild from the store gives.
        ids = np.sort(c.store.chunk_ids())[:10]
        rebuilt = c.vectors.__class__.from_arrays(*c.store.all_vectors(DIM), DIM, KINDS[kind])
        assert np.array_equal(rebuilt.reconstruct(ids), c.vectors.reconstruct(ids))
    if kind == "flat":  # float16 codes: about 2 bytes a dimension in vectors.faiss too
        assert (built / VECTORS).stat().st_size < N_DOCS * (2 * DIM + 24)


def test_an_ivf_index_says_when_it_has_outgrown_its_training_and_reindex_trains_it_again(tmp_path, cli_env):
    env = {**cli_env, **LOW_THRESHOLDS, "ASSISTANT_INGEST__COMMIT_CHUNKS": "64"}
    out = run_cli(["ingest", str(_write_corpus(tmp_path / "a", range(250))), "-c", "grow", "--json"], env)
    assert out.returncode == 0, out.stderr
    manifest = json.loads((tmp_path / "indexes" / "grow" / "manifest.json").read_text())
    assert manifest["index"]["kind"] == "ivf" and manifest["index"]["trained_on"] == 250
    # Grown to more than twice what it was trained on: new vectors went to the old lists.
    out = run_cli(["ingest", str(_write_corpus(tmp_path / "b", range(250, 560))), "-c", "grow", "--json"], env)
    assert out.returncode == 0, out.stderr
    out = run_cli(["check", "-c", "grow"], env)
    assert out.returncode == 0, out.stderr  # advice, not a problem
    assert "advice: the IVF index was trained on a collection of 250 vectors and now holds 560 (2.2x)" in out.stdout
    assert "run `assistant reindex --collection grow`" in out.stdout
    out = run_cli(["collections"], env)
    assert "advice: the IVF index was trained on a collection of 250 vectors" in out.stdout
    out = run_cli(["reindex", "-c", "grow", "--json"], env)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["kind"] == "ivf" and result["was"] == "ivf" and result["vectors"] == 560 and result["trained_on"] == 560
    assert result["nlist"] == ivf.nlist_for(560, IndexParams()) and result["sample"] == 560 and result["seconds"] >= 0
    out = run_cli(["check", "-c", "grow", "--json"], env)
    report = json.loads(out.stdout)
    assert report["ok"] and report["advice"] == [] and report["index_kind"] == "ivf"
    out = run_cli(["reindex", "-c", "grow"], env)  # the words a person reads
    assert out.stdout.startswith("grow: 560 vectors in a ivf index (was ivf), trained on 560 of them in 14 lists, ")


def test_reindex_applies_the_current_settings_and_refuses_a_busy_collection(tmp_path, cli_env):
    env = {**cli_env, **LOW_THRESHOLDS, "ASSISTANT_INGEST__COMMIT_CHUNKS": "64"}
    out = run_cli(["ingest", str(_write_corpus(tmp_path / "a", range(250))), "-c", "x"], env)
    assert out.returncode == 0, out.stderr
    out = run_cli(["reindex", "-c", "x", "--json"], cli_env)  # default thresholds: 250 chunks are a flat index
    assert json.loads(out.stdout)["kind"] == "flat" and json.loads(out.stdout)["was"] == "ivf"
    with Collection.open(tmp_path / "indexes" / "x", writable=True):
        out = run_cli(["reindex", "-c", "x"], env)
    assert out.returncode == 2 and "being written by another process" in out.stderr
    out = run_cli(["reindex", "-c", "missing"], env)
    assert out.returncode == 2 and "no collection" in out.stderr


def test_a_reader_maps_the_ivf_lists_and_refuses_to_write_through_them(tmp_path, embedder):
    params = KINDS["ivf"]
    _ingest(tmp_path / "c", embedder, [_write_corpus(tmp_path / "docs", range(N_DOCS))], params)
    with Collection.open(tmp_path / "c", params=params) as reader, Collection.open(tmp_path / "c", writable=True, params=params) as writer:
        assert reader.vectors.mapped and not writer.vectors.mapped
        first = int(np.min(reader.store.chunk_ids()))
        assert _self_match(reader, first) == first
        assert reader.check().ok
        with pytest.raises(RuntimeError, match="memory-mapped index is read-only"):
            reader.vectors.remove(np.array([first]))
        # The writer replaces the file (temp file + rename): the reader's mapping still reads the old one.
        writer.delete_source(writer.sources()[-1])
        writer.checkpoint()
        assert _self_match(reader, first) == first


def test_an_ivf_search_widens_to_more_lists_as_a_filter_narrows():
    params = IndexParams(ivf_nprobe=4)
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(8), 8, 64)
    index.ntotal = 10_000  # only counts matter here
    assert ivf.nprobe_for(index, params, None) == 4
    assert ivf.nprobe_for(index, params, 5_000) == 8
    assert ivf.nprobe_for(index, params, 10) == 64  # every list
    assert ivf.nlist_for(1_000_000, IndexParams()) == 2048 and ivf.nlist_for(5_000_000, IndexParams()) == 4096
    assert ivf.nlist_for(300, IndexParams()) == 7  # at least 39 training vectors a list
    assert ivf.nlist_for(1_000_000, IndexParams(ivf_nlist=1000)) == 1000


# ---------------------------------------------------------------------------- float32 collections


@pytest.fixture
def float32_collection(tmp_path) -> Path:
    """A collection written before float16 storage: float32 blobs and an IndexFlatIP (tests/fixtures)."""
    fixture = Path(__file__).resolve().parent / "fixtures" / "collection-format-1"
    shutil.copytree(fixture, tmp_path / "old")
    return tmp_path / "old"


def test_a_float32_collection_takes_float16_rows_and_rebuilds_from_both(float32_collection, tmp_path):
    path = float32_collection
    with Collection.open(path) as c:
        dim = c.dim
        assert {r[0] for r in c.db.execute("SELECT DISTINCT length(vector) FROM chunks")} == {4 * dim}
        assert isinstance(faiss.downcast_index(c.index.index), faiss.IndexFlatIP)
        old_ids = np.sort(c.store.chunk_ids())
        assert _self_match(c, int(old_ids[0])) == old_ids[0]
    from core.embedding import HashEmbedder

    embedder = HashEmbedder(dim)
    with Collection.open(path) as c:
        chunking = c.manifest.chunking
    collection, ingestor = make_ingestor(path, embedder, chunk_tokens=chunking.chunk_tokens, overlap=chunking.overlap_tokens)
    with collection:
        ingestor.ingest([_write_corpus(tmp_path / "new", range(3))])
    with Collection.open(path) as c:
        widths = dict(c.db.execute("SELECT length(vector), COUNT(*) FROM chunks GROUP BY 1").fetchall())
        assert widths == {4 * dim: len(old_ids), 2 * dim: 3}
        assert isinstance(faiss.downcast_index(c.index.index), faiss.IndexFlatIP)  # the old index, kept
        newest = int(np.max(c.store.chunk_ids()))
        assert _self_match(c, newest) == newest and _self_match(c, int(old_ids[0])) == old_ids[0]
        assert c.check().ok
    (path / VECTORS).unlink()  # rebuilt from both widths into today's float16 index
    with Collection.open(path, writable=True) as c:
        assert c.repaired
        assert isinstance(faiss.downcast_index(c.index.index), faiss.IndexScalarQuantizer)
        report = c.check()
        assert report.ok, report.problems
        assert _self_match(c, int(old_ids[0])) == old_ids[0]


def test_a_vector_of_neither_width_is_reported(float32_collection):
    db = sqlite3.connect(float32_collection / DATABASE)
    db.execute("UPDATE chunks SET vector = zeroblob(10) WHERE id = (SELECT MIN(id) FROM chunks)")
    db.commit()
    db.close()
    with Collection.open(float32_collection) as c:
        report = c.check()
        assert not report.ok and "1 stored vectors do not have dimension" in " ".join(report.problems)
        with pytest.raises(CorruptCollection, match="a stored vector has 10 bytes, expected"):
            c.vectors_for(np.sort(c.store.chunk_ids())[:1])


def test_the_codec_reads_both_widths_and_writes_float16():
    vector = np.random.default_rng(0).standard_normal(DIM).astype(np.float32)
    vector /= np.linalg.norm(vector)
    assert len(codec.encode(vector)) == 2 * DIM
    assert np.array_equal(codec.decode(codec.encode(vector), DIM), codec.as_stored(vector))
    assert np.array_equal(codec.decode(vector.tobytes(), DIM), vector)
    assert float(np.max(np.abs(codec.as_stored(vector) - vector))) < 2.0**-11
    mixed = codec.decode_many([codec.encode(vector), vector.tobytes()], DIM)
    assert mixed.shape == (2, DIM) and np.allclose(mixed[0], mixed[1], atol=2.0**-11)
