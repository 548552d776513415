"""bench/retrieval.py: its data parsing helpers (fast) and a BEIR run end to end on a tiny corpus (slow)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "bench" / "retrieval.py"


def _load_bench():
    spec = importlib.util.spec_from_file_location("bench_retrieval", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


bench = _load_bench()


# ------------------------------------------------------------------------------------------ fast: helpers


def test_read_qrels_skips_the_header_and_keeps_grades(tmp_path: Path):
    path = tmp_path / "dev.tsv"
    path.write_text("query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td2\t1\n\nq2\td3\t1\n", encoding="utf-8")
    assert bench.read_qrels(path) == {"q1": {"d1": 2, "d2": 1}, "q2": {"d3": 1}}


def test_read_qrels_without_header_and_bad_lines(tmp_path: Path):
    path = tmp_path / "train.tsv"
    path.write_text("q1\td1\t1\n", encoding="utf-8")
    assert bench.read_qrels(path) == {"q1": {"d1": 1}}
    path.write_text("q1\td1\t1\nq2\td2\tx\n", encoding="utf-8")
    with pytest.raises(bench.Mistake, match=":2:"):
        bench.read_qrels(path)
    path.write_text("q1\td1\n", encoding="utf-8")
    with pytest.raises(bench.Mistake, match="3 fields"):
        bench.read_qrels(path)


def test_read_queries_keeps_only_wanted_ids(tmp_path: Path):
    path = tmp_path / "queries.jsonl"
    lines = [{"_id": "q1", "text": "first"}, {"_id": "q2", "text": "second"}, {"_id": "q3", "text": " "}, {"_id": 4, "text": "int id"}]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    assert bench.read_queries(path, {"q2", "q3", "4", "missing"}) == {"q2": "second", "4": "int id"}


def test_evenly_spaced():
    items = list(range(10))
    assert bench.evenly_spaced(items, 5) == [0, 2, 4, 6, 8]
    assert bench.evenly_spaced(items, 0) == items
    assert bench.evenly_spaced(items, 50) == items
    assert len(set(bench.evenly_spaced(list(range(7000)), 1000))) == 1000


def test_read_finqa_makes_one_document_per_distinct_context(tmp_path: Path):
    path = tmp_path / "qa.csv"
    path.write_text(
        "question,answer,context,ticker,filing\n"
        'Q1?,A1,"Context one, with a comma.",AAA,2023_10K\n'
        "Q2?,A2,Context two.,BBB,2023_10K\n"
        'Q3?,A3,"Context one, with a comma.",AAA,2023_10K\n'
        ",A4,Context three.,CCC,2023_10K\n",  # empty question: skipped
        encoding="utf-8",
    )
    records, questions = bench.read_finqa(path)
    assert records == [
        {"_id": "ctx-00000", "title": "AAA 2023_10K", "text": "Context one, with a comma."},
        {"_id": "ctx-00001", "title": "BBB 2023_10K", "text": "Context two."},
    ]
    assert questions == [("q-00000", "Q1?", "ctx-00000"), ("q-00001", "Q2?", "ctx-00001"), ("q-00002", "Q3?", "ctx-00000")]


def test_tatqa_relevance_matches_loader_metadata(tmp_path: Path):
    report = {
        "table": {"uid": "r1", "table": [["", "2019"], ["Revenue", "5"]]},
        "paragraphs": [{"uid": "p1", "order": 1, "text": "One."}, {"uid": "p2", "order": 2, "text": "Two."}],
        "questions": [
            {"uid": "qa", "question": "What is two?", "rel_paragraphs": ["2"]},
            {"uid": "qb", "question": "Table only?", "rel_paragraphs": []},
        ],
    }
    path = tmp_path / "tatqa.json"
    path.write_text(json.dumps([report]), encoding="utf-8")
    queries, qrels = bench.read_tatqa(path)
    assert queries == {"qa": "What is two?"}
    # The loader stores order as an int; rel_paragraphs holds strings: both must give the same id.
    loader_metadata = {"report_uid": "r1", "kind": "paragraph", "paragraph_uid": "p2", "order": 2}
    assert qrels == {"qa": {bench.tatqa_doc_key(loader_metadata): 1}}
    assert bench.tatqa_doc_key({"report_uid": "r1", "kind": "table"}) == "r1/table"
    assert bench.tatqa_doc_key({"beir_id": "x"}) is None


def test_aggregate_scores_a_document_by_its_best_chunk():
    hits = [
        SimpleNamespace(score=0.9, metadata={"beir_id": "a"}),
        SimpleNamespace(score=0.8, metadata={"beir_id": "b"}),
        SimpleNamespace(score=0.95, metadata={"beir_id": "b"}),
        SimpleNamespace(score=0.7, metadata={}),
        SimpleNamespace(score=0.1, metadata={"beir_id": "c"}),
    ]
    assert bench.aggregate(hits, bench.beir_doc_key, 2) == {"b": 0.95, "a": 0.9}


def test_target_is_judged_on_dev_only():
    results = {"bm25": {"ndcg@10": 0.29}, "dense": {"ndcg@10": 0.31}, "hybrid": {"ndcg@10": 0.335}}
    assert "NOT MET" not in bench.target_line(results, "dev") and "MET" in bench.target_line(results, "dev")
    assert "NOT MET" in bench.target_line({**results, "hybrid": {"ndcg@10": 0.3292}}, "dev")
    assert "NOT MET" in bench.target_line({**results, "dense": {"ndcg@10": 0.34}}, "dev")  # must beat both modes
    assert "not judged" in bench.target_line(results, "train")


def test_missing_data_is_skipped_with_exit_0(tmp_path: Path, capsys):
    assert bench.main(["--beir", str(tmp_path / "absent"), "--json"]) == 0
    assert bench.main(["--finance", str(tmp_path / "absent")]) == 0
    assert bench.main(["--latency", str(tmp_path / "absent"), "--collection", "x"]) == 0
    err = capsys.readouterr().err
    assert err.count("skipped:") == 3


def test_unknown_split_is_a_mistake(tmp_path: Path, capsys):
    (tmp_path / "qrels").mkdir()
    (tmp_path / "qrels" / "dev.tsv").write_text("q\td\t1\n", encoding="utf-8")
    (tmp_path / "corpus.jsonl").write_text('{"_id": "d", "text": "x"}\n', encoding="utf-8")
    (tmp_path / "queries.jsonl").write_text('{"_id": "q", "text": "x"}\n', encoding="utf-8")
    assert bench.main(["--beir", str(tmp_path), "--split", "test"]) == 2
    assert "splits there: dev" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ slow: end to end

TOPICS = {
    "diabetes": "insulin glucose blood sugar pancreas diabetes metformin",
    "asthma": "asthma airways inhaler wheezing bronchial lungs",
    "dividends": "dividend shareholders payout ratio profits distribution",
    "volcano": "volcano lava eruption magma crater ash",
    "football": "football goalkeeper penalty striker league match",
    "baking": "bread dough yeast oven flour baking",
}


def _tiny_beir(folder: Path) -> None:
    (folder / "qrels").mkdir(parents=True)
    corpus, qrels = [], ["query-id\tcorpus-id\tscore"]
    for t, (topic, words) in enumerate(TOPICS.items()):
        vocabulary = words.split()
        for i in range(5):
            doc_id = f"{topic}-{i}"
            text = f"This article is about {topic}. " + " ".join(vocabulary[(i + j) % len(vocabulary)] for j in range(12)) + "."
            corpus.append({"_id": doc_id, "title": f"{topic.title()} note {i}", "text": text})
            qrels.append(f"Q{t}\t{doc_id}\t{2 if i < 2 else 1}")
    queries = [
        {"_id": f"Q{t}", "text": f"questions about {topic}: {' '.join(words.split()[:3])}"}
        for t, (topic, words) in enumerate(TOPICS.items())
    ]
    queries.append({"_id": "unjudged", "text": "this query has no qrels and must be ignored"})
    (folder / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in corpus), encoding="utf-8")
    (folder / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries), encoding="utf-8")
    (folder / "qrels" / "dev.tsv").write_text("\n".join(qrels) + "\n", encoding="utf-8")


@pytest.mark.slow
def test_beir_mode_end_to_end_json(tmp_path: Path):
    data = tmp_path / "tiny"
    _tiny_beir(data)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTANT_")}
    command = [sys.executable, str(SCRIPT), "--beir", str(data), "--split", "dev", "--json", "--index-dir", str(tmp_path / "idx")]
    out = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    results = json.loads(out.stdout)
    assert list(results) == ["bm25", "dense", "hybrid"]
    for values in results.values():
        assert set(values) == {"ndcg@10", "recall@100", "mrr@10"}
        assert all(0.0 <= v <= 1.0 for v in values.values())
    assert results["hybrid"]["ndcg@10"] > 0.5
    # The collection is cached: a second run embeds nothing and gives the same numbers.
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads(again.stdout) == results
