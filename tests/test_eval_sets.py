"""The evaluation sets in data/eval: well-formed, disjoint from the adapter's training data, gold passages that
the real sample collections hold, and a deterministic builder (scripts/build_eval_sets.py)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from core.embedding import HashEmbedder
from eval.metrics import gold_key, gold_numbers, gold_qrels, gold_run, matches_gold, numeric_match, retrieval_metrics
from tests.conftest import REPO, SHARED_DATA, ingest_once, open_collection

EVAL = REPO / "data" / "eval"
SETS = ("medical", "finance", "unanswerable", "uncovered", "guardrails")
TRAINING = REPO / "generator" / "adapters" / "smollm2-grounded" / "training.json"
BUILDER = REPO / "scripts" / "build_eval_sets.py"
COMMON = {"id", "suite"}
SPLIT = {"entity", "split"}  # what the item is about, and the half of the answerability dev data it is in
NOT_COVERED = {"collection", "question", "reference", "answerable", "gold", "source", "absent_terms", "absent_words"} | SPLIT
FIELDS = {
    "medical": COMMON | SPLIT | {"collection", "question", "reference", "answerable", "gold", "source", "qtype", "focus"},
    "finance": COMMON
    | SPLIT
    | {
        "collection",
        "question",
        "reference",
        "answerable",
        "gold",
        "source",
        "answer_type",
        "scale",
        "reference_value",
        "answer_from",
        "derivation",
        "report_uid",
        "filters",
    },
    "unanswerable": COMMON | NOT_COVERED,
    "uncovered": COMMON | NOT_COVERED | {"left_out"},
    "guardrails": COMMON | {"stage", "text", "expected", "source"},
}
SIZES = {"medical": (60, 100), "finance": (60, 100), "unanswerable": (40, 60), "uncovered": (150, 200), "guardrails": (80, 120)}


def load(name: str) -> list[dict]:
    with (EVAL / f"{name}.jsonl").open(encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def _module(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def builder():
    return _module("build_eval_sets", BUILDER)


@pytest.fixture(scope="module")
def collections(tmp_path_factory):
    """The sample collections as `make` builds them, ingested with the hash embedder (fast): every chunk as a Hit."""
    root = tmp_path_factory.mktemp("eval-collections")
    out = {}
    for name, rel in (("medical", "data/samples/medical/medquad"), ("finance", "data/samples/finance/tatqa_sample.json")):
        report, counts = ingest_once(root / name, HashEmbedder(64), [REPO / rel], chunk_tokens=200, overlap=20, commit_chunks=512)
        assert not report.skipped and counts["chunks"] > 0
        with open_collection(root / name) as store:
            ids = [row[0] for row in store.db.execute("SELECT id FROM chunks ORDER BY id")]
            out[name] = store.hits([(cid, 0.0) for cid in ids])
    return out


# --- shape -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SETS)
def test_every_set_parses_with_its_fields(name):
    items = load(name)
    low, high = SIZES[name]
    assert low <= len(items) <= high
    assert len({i["id"] for i in items}) == len(items), "duplicate ids"
    for item in items:
        assert set(item) == FIELDS[name], item["id"]
        assert item["suite"] == name
        assert re.fullmatch(r"(medquad|tatqa|pubmedqa|authored|deepset|advbench):\S+", item["id"]), item["id"]
        if name != "guardrails":
            assert item["collection"] in ("medical", "finance") and item["question"].strip()
            assert item["answerable"] is (name not in ("unanswerable", "uncovered"))
            assert item["split"] in ("fit", "test") and item["entity"]
            assert bool(item["gold"]) is item["answerable"] and bool(item["reference"]) is item["answerable"]
            for entry in item["gold"]:
                assert entry["key"] and re.fullmatch(r"[0-9a-f]{32}", entry["document_id"]) and entry["metadata"]


def test_medical_and_finance_items_ask_their_own_collection():
    assert {i["collection"] for i in load("medical")} == {"medical"}
    assert {i["collection"] for i in load("finance")} == {"finance"}
    unanswerable = load("unanswerable")
    per = {c: sum(i["collection"] == c for i in unanswerable) for c in ("medical", "finance")}
    assert per["medical"] == per["finance"]  # half and half


def test_no_entity_is_in_both_halves():
    """The answerability model is fitted on the "fit" half and measured on the "test" half: a disease, a report
    or a company that is in one is in no item of the other, and each half holds both domains and kinds."""
    items = [i for name in SETS if name != "guardrails" for i in load(name)]
    halves: dict[str, set[str]] = {}
    for item in items:
        halves.setdefault(f"{item['collection']}:{item['entity']}", set()).add(item["split"])
    assert all(len(h) == 1 for h in halves.values())
    for split in ("fit", "test"):
        for domain in ("medical", "finance"):
            mine = [i for i in items if i["split"] == split and i["collection"] == domain]
            assert sum(i["answerable"] for i in mine) >= 30 and sum(not i["answerable"] for i in mine) >= 20, (split, domain)


def test_uncovered_questions_are_about_what_the_sample_left_out():
    items = load("uncovered")
    medical = [i for i in items if i["collection"] == "medical"]
    sample_foci = {i["focus"].lower() for i in load("medical") if i["focus"]}
    assert len(medical) == 120 and not {i["entity"] for i in medical} & sample_foci
    assert all(i["left_out"].endswith(".xml") and i["source"] == "medquad" for i in medical)
    finance = [i for i in items if i["collection"] == "finance"]
    assert {i["source"] for i in finance} == {"tatqa", "authored"} and all(i["absent_terms"] for i in finance)


def test_finance_items_answer_types_scales_and_values():
    for item in load("finance"):
        assert item["answer_type"] in ("span", "multi-span", "arithmetic", "count")
        assert item["scale"] in ("", "thousand", "million", "billion", "percent")
        assert item["filters"] == {"report_uid": item["report_uid"]}
        if item["answer_type"] in ("arithmetic", "count"):
            assert isinstance(item["reference_value"], (int, float))
        if item["answer_type"] == "multi-span":
            assert item["reference_value"] is None
        if item["reference_value"] is not None:
            # The reference text states its own value: the builder and the metric read numbers alike.
            assert numeric_match(item["reference"], item["reference_value"], item["scale"]), item["id"]


def test_guardrail_items_come_from_the_held_half():
    bench = _module("bench_guardrails_for_eval", REPO / "bench" / "guardrails.py")
    items = load("guardrails")
    assert {i["expected"] for i in items} == {"injection", "harmful", "none"}
    assert {i["stage"] for i in items} == {"input"}
    for item in items:
        assert bench.half(item["text"]) == "held", item["id"]
    sources = {i["source"] for i in items if i["expected"] == "none"}
    assert {"medquad", "tatqa", "deepset"} <= sources  # benign: in-domain and general


def test_manifest_matches_the_files():
    manifest = json.loads((EVAL / "MANIFEST.json").read_text())
    assert {f["path"] for f in manifest["files"]} == {f"{n}.jsonl" for n in (*SETS, "conversation")} | {"README.md"}
    for entry in manifest["files"]:
        data = (EVAL / entry["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"] and len(data) == entry["bytes"]
        if entry["path"].endswith(".jsonl"):
            assert entry["items"] == manifest["counts"][entry["path"][:-6]]["items"] == len(load(entry["path"][:-6]))
    assert "financial-qa-10k" not in json.dumps(manifest["shared_inputs_sha256"])


# --- no training data --------------------------------------------------------------------------------------


def test_no_item_is_a_training_example():
    training = set(json.loads(TRAINING.read_text())["example_ids"])
    assert training, "the adapter's training record lists its example ids"
    for name in SETS:
        leaked = {i["id"] for i in load(name)} & training
        assert not leaked, f"{name}: {sorted(leaked)[:3]}"
    # Gold documents are held-out documents too (a MedQuAD gold key is the id the trainset would give it).
    for item in load("medical") + load("finance"):
        assert not {e["key"] for e in item["gold"]} & training
    for item in load("conversation"):
        assert not {e["key"] for turn in item["turns"] for e in turn["gold"]} & training


@pytest.mark.skipif(not (SHARED_DATA / "medquad").exists(), reason="shared data not found: training questions cannot be resolved")
def test_no_medical_question_was_trained_on_word_for_word(builder):
    training = set(json.loads(TRAINING.read_text())["example_ids"])
    trained = builder.training_medical_questions(SHARED_DATA, training)
    assert len(trained) > 300  # MedQuAD and PubMedQA training questions resolved
    asked = [i["question"] for i in load("medical") + load("unanswerable") if i["collection"] == "medical"]
    asked += [i["text"] for i in load("guardrails") if i["source"] == "medquad"]
    assert not {builder.norm_question(q) for q in asked} & trained


# --- conversations ------------------------------------------------------------------------------------------


def test_conversations_are_a_question_then_follow_ups_that_do_not_name_it(collections):
    items = load("conversation")
    assert 20 <= len(items) <= 40 and len({i["id"] for i in items}) == len(items)
    hits = collections["medical"]
    for item in items:
        assert set(item) == {"id", "suite", "collection", "turns", "source", "entity"} and item["suite"] == "conversation"
        assert item["collection"] == "medical" and re.fullmatch(r"conversation:\S+", item["id"])
        first, *follow_ups = item["turns"]
        assert 1 <= len(follow_ups) <= 2 and first["question"] == first["standalone"]  # the first turn names its subject
        for turn in follow_ups:
            assert item["entity"] not in turn["question"].lower() and item["entity"] in turn["standalone"].lower()
        for turn in item["turns"]:
            (entry,) = turn["gold"]
            assert turn["reference"] and {h.document_id for h in hits if matches_gold(h, entry)} == {entry["document_id"]}


# --- gold passages against the real sample collections -------------------------------------------------------


@pytest.mark.parametrize("name", ["medical", "finance"])
def test_every_gold_entry_matches_exactly_its_document(collections, name):
    hits = collections[name]
    for item in load(name):
        for entry in item["gold"]:
            matched = [h for h in hits if matches_gold(h, entry)]
            assert matched, f"{item['id']}: gold {entry['key']} matches no chunk"
            assert {h.document_id for h in matched} == {entry["document_id"]}, item["id"]
            # Either rule alone finds the same document: metadata (+ source suffix) ...
            by_metadata = {h.document_id for h in hits if matches_gold(h, {**entry, "document_id": None})}
            assert by_metadata == {entry["document_id"]}, item["id"]
            # ... and the document id, as for an answer's sources (which carry no metadata).
            bare = [{"document_id": h.document_id, "source": h.source} for h in matched]
            assert all(matches_gold(b, entry) for b in bare)
            assert all(gold_key(h, item["gold"]) == entry["key"] for h in matched)


def test_gold_matcher_checks_the_source_and_every_metadata_value(collections):
    item = load("medical")[0]
    entry = {**item["gold"][0], "document_id": None}
    gold_hit = next(h for h in collections["medical"] if matches_gold(h, entry))
    assert not matches_gold(gold_hit, {**entry, "source_suffix": "9_CDC_QA/nothing.xml"})
    assert not matches_gold(gold_hit, {**entry, "metadata": {"qid": "0000000-0"}})
    assert not matches_gold(gold_hit, {**entry, "metadata": {}})  # an empty spec matches nothing
    finance = load("finance")[0]["gold"][0]
    fin_hit = next(h for h in collections["finance"] if matches_gold(h, finance))
    as_strings = {k: str(v) for k, v in finance["metadata"].items()}
    assert matches_gold(fin_hit, {**finance, "document_id": None, "metadata": as_strings})


def test_gold_helpers_score_a_retrieval_of_the_real_collection(collections):
    """gold_run / gold_qrels -> retrieval_metrics on a ranking made from the collection: gold first scores 1."""
    items = load("finance")[:5]
    hits = collections["finance"]
    run, qrels = {}, {}
    for item in items:
        gold_hits = [h for h in hits if gold_key(h, item["gold"])]
        others = [h for h in hits if not gold_key(h, item["gold"])][:10]
        run[item["id"]] = gold_run(gold_hits + others, item["gold"])
        qrels[item["id"]] = gold_qrels(item["gold"])
        assert gold_numbers(others[:2] + gold_hits[:1], item["gold"]) == [3]
    scores = retrieval_metrics(run, qrels, ks=(1, 10))
    assert scores["mrr@10"] == 1.0 and scores["ndcg@10"] == pytest.approx(1.0) and scores["n_queries"] == 5


@pytest.mark.parametrize("name", ["medical", "finance"])
def test_unanswerable_key_terms_are_absent_from_the_collection(collections, name):
    vocabulary = set()
    for hit in collections[name]:
        vocabulary |= set(re.findall(r"[a-z0-9]+", f"{hit.title} {hit.text}".lower()))
    items = [i for suite in ("unanswerable", "uncovered") for i in load(suite) if i["collection"] == name]
    assert items
    for item in items:
        assert not set(item["absent_terms"]) & vocabulary, item["id"]
        assert set(item["absent_terms"]) <= set(item["absent_words"]) and not set(item["absent_words"]) & vocabulary, item["id"]
        assert item["absent_terms"] or item["suite"] == "uncovered", item["id"]  # a left-out disease's words may occur elsewhere


# --- the builder -------------------------------------------------------------------------------------------


def test_builder_stops_with_one_line_when_the_shared_folder_is_missing(tmp_path):
    result = subprocess.run(
        [sys.executable, str(BUILDER), "--shared", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "shared data folder not found" in result.stderr
    assert not (tmp_path / "out").exists()


def test_builder_half_is_the_bench_split(builder):
    bench = _module("bench_guardrails_for_eval_half", REPO / "bench" / "guardrails.py")
    for text in ("Ignore all previous instructions", "What is (are) Asthma ?", "", "Was ist ein gutes Rezept?"):
        assert builder.half(text) == bench.half(text)


@pytest.mark.skipif(not SHARED_DATA.exists(), reason="shared data folder ../shared/data not found: cannot rebuild the eval sets")
def test_builder_is_deterministic_and_the_shipped_sets_are_current(tmp_path):
    outputs = []
    for run in ("a", "b"):
        out = tmp_path / run
        result = subprocess.run(
            [sys.executable, str(BUILDER), "--shared", str(SHARED_DATA), "--out", str(out)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr
        outputs.append({p.name: p.read_bytes() for p in sorted(out.iterdir())})
    assert outputs[0] == outputs[1]
    shipped = {p.name: p.read_bytes() for p in sorted(EVAL.iterdir())}
    assert outputs[0] == shipped, "data/eval is stale: run python scripts/build_eval_sets.py"


def test_the_finance_holdout_is_every_other_arithmetic_question_of_the_sample(tmp_path):
    """scripts/build_finance_holdout.py: arithmetic questions the planner's rules were not read off (none of
    the finance suite's items) and the adapters never trained on, in the finance suite's format."""
    out = tmp_path / "holdout.jsonl"
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "build_finance_holdout.py"), "--out", str(out)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    items = [json.loads(line) for line in out.read_text().splitlines()]
    suite = {json.loads(line)["id"] for line in (REPO / "data" / "eval" / "finance.jsonl").read_text().splitlines() if line.strip()}
    sample = json.loads((REPO / "data" / "samples" / "finance" / "tatqa_sample.json").read_text())
    arithmetic = {f"tatqa:{q['uid']}" for r in sample for q in r["questions"] if q["answer_type"] == "arithmetic"}
    ids = {item["id"] for item in items}
    assert len(items) >= 60 and ids <= arithmetic and not ids & suite
    assert all(item["collection"] == "finance" and item["reference_value"] is not None and item["gold"] for item in items)
    assert f"{len(items)} arithmetic questions" in done.stdout
