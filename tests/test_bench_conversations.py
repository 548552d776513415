"""bench/conversations.py: chain builders, follow-up templates, strategies and scoring on tiny inputs (fast), and
one end-to-end run on a tiny MedQuAD and MTRAG with the hash embedder (slow)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from training import chains as chain_builders

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "bench" / "conversations.py"


def _load_bench():
    spec = importlib.util.spec_from_file_location("bench_conversations", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


bench = _load_bench()


# ------------------------------------------------------------------------------------------ MedQuAD chains


@pytest.mark.parametrize(
    ("focus", "plural"),
    [
        ("Kidney Stones", True),
        ("Food Allergies", True),
        ("Gallstones", True),
        ("Glaucoma", False),
        ("Diabetes", False),
        ("Arthritis", False),
        ("Measles", False),
        ("AIDS", False),
        ("Diabetes Insipidus", False),
        ("Alzheimer's", False),
    ],
)
def test_is_plural(focus, plural):
    assert chain_builders.is_plural(focus) is plural


def test_follow_up_styles_drop_the_focus_and_keep_grammar():
    question = "What are the treatments for Glaucoma ?"
    assert chain_builders.follow_up(question, "Glaucoma", "treatment", "pronoun") == "What are the treatments for it?"
    assert chain_builders.follow_up(question, "glaucoma", "treatment", "noun") == "What are the treatments for this condition?"
    assert chain_builders.follow_up(question, "Glaucoma", "treatment", "ellipsis") == "What about the treatments?"
    assert chain_builders.follow_up("What is (are) Kidney Stones ?", "Kidney Stones", "information", "pronoun") == "What are they?"
    assert chain_builders.follow_up("Is Gallstones inherited ?", "Gallstones", "inheritance", "noun") == "Are these conditions inherited?"
    assert chain_builders.follow_up("Who is at risk for Glaucoma? ?", "Glaucoma", "susceptibility", "pronoun") == "Who is at risk for it?"
    # The focus must be a whole phrase of the question; otherwise there is nothing to refer to.
    assert chain_builders.follow_up("What causes botulism?", "Glaucoma", "causes", "pronoun") is None
    assert chain_builders.follow_up("What causes Glaucomatous damage?", "Glaucoma", "causes", "pronoun") is None


def _records():
    def pair(file, focus, number, qtype, question, source="GHR", qid=None):
        return {"file": file, "source": source, "focus": focus, "qid": qid or f"{file}-{number}", "qtype": qtype, "question": question}

    return [
        pair("g", "Glaucoma", 1, "symptoms", "What are the symptoms of Glaucoma ?"),
        pair("g", "Glaucoma", 2, "information", "What is (are) Glaucoma ?"),
        pair("g", "Glaucoma", 3, "treatment", "What are the treatments for Glaucoma ?"),
        pair("g", "Glaucoma", 4, "causes", "What causes Glaucoma ?"),
        pair("h", "glaucoma", 1, "treatment", "What are the treatments for glaucoma ?", source="MPlus"),  # another site, same question
        pair("i", "Gout", 1, "causes", "What causes gout ?", source="GARD", qid="g-4"),  # another folder, the same qid
        pair("x", "Lone", 1, "information", "What is (are) Lone ?"),  # a single pair: no follow-up
    ]


def test_medquad_chains_start_with_the_information_question_and_score_follow_ups():
    chains = chain_builders.medquad_chains(_records(), max_turns=3)
    assert [c.id for c in chains] == ["g"]  # "h", "i" and "x" have one pair each: no follow-up
    chain = chains[0]
    assert len(chain.turns) == 3  # max_turns
    first, *follow_ups = chain.turns
    assert first.message == "What is (are) Glaucoma ?" and not first.scored
    assert [t.gold_question for t in follow_ups] == ["What are the symptoms of Glaucoma ?", "What are the treatments for Glaucoma ?"]
    for turn in follow_ups:
        assert "glaucoma" not in turn.message.lower()
        assert turn.kind in chain_builders.STYLES
    # The same question asked by another site counts as relevant too.
    assert follow_ups[1].relevant == {"GHR:g-3": 1, "MPlus:h-1": 1}
    assert follow_ups[0].relevant == {"GHR:g-1": 1}
    assert chain.turns[0].id == "GHR:g-2"
    # The folders number their files independently: a question id is only unique with its site.
    (whole,) = chain_builders.medquad_chains(_records(), max_turns=5)
    assert whole.turns[-1].id == "GHR:g-4" and whole.turns[-1].relevant == {"GHR:g-4": 1}


def test_medquad_chains_are_deterministic():
    assert chain_builders.medquad_chains(_records(), 5) == chain_builders.medquad_chains(list(_records()), 5)


# ------------------------------------------------------------------------------------------ TAT-QA chains


def _report(uid, n):
    questions = [
        {"uid": f"{uid}-q{i}", "order": i, "question": f"What was the change {i}?", "answer_from": af, "rel_paragraphs": rel}
        for i, (af, rel) in enumerate([("text", ["2"]), ("table", []), ("table-text", ["1", "3"]), ("text", ["1"])][:n], start=1)
    ]
    return {"table": {"uid": uid, "table": [["a"]]}, "paragraphs": [], "questions": list(reversed(questions))}


def test_tatqa_chains_keep_the_order_and_the_report_as_gold_filter():
    (chain,) = bench.tatqa_chains([_report("r1", 4)], max_turns=3)
    assert [t.message for t in chain.turns] == ["What was the change 1?", "What was the change 2?", "What was the change 3?"]
    first, table, mixed = chain.turns
    assert not first.scored
    assert table.relevant == {"r1/table": 1}
    assert mixed.relevant == {"r1/paragraph/1": 1, "r1/paragraph/3": 1, "r1/table": 1}
    assert mixed.gold_question == mixed.message and mixed.gold_filters == {"report_uid": ["r1"]}
    assert bench.tatqa_chains([_report("r2", 1)], max_turns=3) == []  # one question: no follow-up


# ------------------------------------------------------------------------------------------ MTRAG chains


def test_split_user_turns_keeps_multi_line_messages():
    text = '|user|: "What is it?\n|user|: Second line one\nline two\n|user|: Third?'
    assert chain_builders.split_user_turns(text) == ['"What is it?', "Second line one\nline two", "Third?"]


def test_mtrag_chains_score_only_follow_ups_with_labels_in_the_passages():
    questions = [
        {"_id": "c1<::>1", "text": "|user|: What is a safe room?"},
        {"_id": "c1<::>3", "text": "|user|: What is a safe room?\n|user|: What items should I keep?\n|user|: And for earthquakes?"},
        {"_id": "c1<::>2", "text": "|user|: What is a safe room?\n|user|: What items should I keep?"},
    ]
    rewrites = {"c1<::>1": "What is a safe room?", "c1<::>2": "What items should I keep in a safe room?", "c1<::>3": "Earthquake kit?"}
    qrels = {"c1<::>1": {"p1": 1}, "c1<::>2": {"p2": 1, "missing": 1}, "c1<::>3": {"missing": 1}}
    (chain,), counts = bench.mtrag_chains("govt", questions, rewrites, qrels, {"p1", "p2"})
    assert [t.message for t in chain.turns] == ["What is a safe room?", "What items should I keep?", "And for earthquakes?"]
    assert [t.id for t in chain.scored_turns()] == ["c1<::>2"]
    assert chain.turns[1].relevant == {"p2": 1} and chain.turns[1].gold_question == rewrites["c1<::>2"]
    assert counts == {"labelled": 2, "scored": 1}


def test_select_chains_caps_scored_turns_with_whole_chains():
    def chain(i, n):
        turns = [chain_builders.Turn(f"{i}-0", "first")] + [
            chain_builders.Turn(f"{i}-{j}", "next", relevant={"d": 1}) for j in range(1, n + 1)
        ]
        return chain_builders.Chain(str(i), tuple(turns))

    chains = [chain(i, 2) for i in range(10)] + [chain_builders.Chain("none", (chain_builders.Turn("n-0", "alone"),))]
    chosen = bench.select_chains(chains, 7)
    assert sum(len(c.scored_turns()) for c in chosen) <= 7
    assert len(chosen) == 3 and all(c.id != "none" for c in chosen)
    assert bench.select_chains(chains, 7) == chosen
    assert len(bench.select_chains(chains, 0)) == 10


# ------------------------------------------------------------------------------------------ strategies and scoring


def _hit(doc, chunk):
    return SimpleNamespace(chunk_id=chunk, score=1.0, document_id=doc, metadata={"qid": doc, "source_name": "GHR"})


class FakeRetriever:
    """Finds the document named by the first word of the query that names one; records the searches."""

    def __init__(self, docs):
        self.docs, self.searches = docs, []

    def search(self, query, k=5, filters=None):
        self.searches.append((query, filters))
        words = query.lower().replace("?", "").split()
        found = [d for w in words for d in self.docs if d == w]
        rest = [d for d in self.docs if d not in found]
        return SimpleNamespace(hits=[_hit(d, i) for i, d in enumerate((found + rest)[:k])])


def _chat():
    turns = (
        chain_builders.Turn("t1", "what is glaucoma?"),
        chain_builders.Turn("t2", "how is it treated?", gold_question="how is glaucoma treated?", relevant={"GHR:glaucoma": 1}),
        chain_builders.Turn("t3", "and asthma?", gold_question="asthma", gold_filters={"k": ["v"]}, relevant={"GHR:asthma": 1}),
    )
    return [chain_builders.Chain("c", turns)]


def test_document_run_ranks_documents_by_their_first_chunk():
    hits = [_hit("a", 1), _hit("b", 2), _hit("a", 3), SimpleNamespace(chunk_id=4, score=0.1, document_id="z", metadata={})]
    assert bench.document_run(hits, chain_builders.medquad_doc_key) == {"GHR:a": 4.0, "GHR:b": 3.0, "doc:z": 2.0}


def test_last_turn_concatenated_and_gold_search_what_they_say():
    retriever = FakeRetriever(["asthma", "glaucoma", "cancer"])
    last = bench.run_strategy("last-turn", _chat(), retriever, chain_builders.medquad_doc_key, 10)
    assert [q for q, _ in retriever.searches] == ["how is it treated?", "and asthma?"]  # turn 1 is never searched
    assert set(last) == {"t2", "t3"} and last["t2"].standalone_ms == 0.0
    retriever.searches.clear()
    joined = bench.run_strategy("concatenated", _chat(), retriever, chain_builders.medquad_doc_key, 10)
    assert retriever.searches[-1][0] == "what is glaucoma? how is it treated? and asthma?"
    assert joined["t3"].rewritten
    retriever.searches.clear()
    gold = bench.run_strategy("gold", _chat(), retriever, chain_builders.medquad_doc_key, 10)
    assert retriever.searches == [("how is glaucoma treated?", None), ("asthma", {"k": ["v"]})]
    assert gold["t2"].standalone_ms is None

    scores = bench.summarise(last, _chat())
    assert scores["n"] == 2 and scores["recall@5"] == pytest.approx(1.0)  # every document fits in 5 here
    assert scores["by_kind"] == {"all": {"n": 2, "recall@5": pytest.approx(1.0)}}


def test_standalone_strategies_get_their_own_history_and_fusion_the_previous_question():
    calls = []

    def contextualize(message, history, *, rewrite=None, strategy="rules", shots=True):
        calls.append((message, tuple(history), strategy, shots))
        if strategy == "generator":
            assert rewrite is model  # only the generator strategy is handed the model
        else:
            assert rewrite is None
        rewritten = bool(history) and "it" in message.split()
        question = message.replace(" it ", " glaucoma ") if rewritten else message
        return SimpleNamespace(question=question, rewritten=rewritten, strategy="rules", ms=0.5)

    fused = []

    def fused_search(retriever, message, previous, k, filters=None):
        fused.append((message, previous))
        return retriever.search(message, k).hits

    def model(messages):
        return "unused"

    followup = SimpleNamespace(contextualize=contextualize, fused_search=fused_search)
    retriever = FakeRetriever(["asthma", "glaucoma", "cancer"])
    rules = bench.run_strategy("rules", _chat(), retriever, chain_builders.medquad_doc_key, 1, followup=followup)
    assert calls == [
        ("what is glaucoma?", (), "rules", True),
        ("how is it treated?", ("what is glaucoma?",), "rules", True),
        ("and asthma?", ("what is glaucoma?", "how is glaucoma treated?"), "rules", True),
    ]
    assert rules["t2"].question == "how is glaucoma treated?" and rules["t2"].rewritten and not rules["t3"].rewritten
    calls.clear()
    bench.run_strategy("fusion", _chat(), retriever, chain_builders.medquad_doc_key, 1, followup=followup)
    assert [c[2] for c in calls] == ["fusion"] * 3
    assert fused == [("how is glaucoma treated?", "what is glaucoma?"), ("and asthma?", "how is glaucoma treated?")]
    calls.clear()
    bench.run_strategy("generator", _chat(), retriever, chain_builders.medquad_doc_key, 1, followup=followup, rewrite=model)
    assert [c[2:] for c in calls] == [("generator", True)] * 3
    calls.clear()
    # The task adapter: the generator strategy, asked without the prompt's examples (as it was trained).
    bench.run_strategy("adapter", _chat(), retriever, chain_builders.medquad_doc_key, 1, followup=followup, rewrite=model)
    assert [c[2:] for c in calls] == [("generator", False)] * 3

    # k=1: only the top document counts; rules find glaucoma for t2, asthma for t3.
    scores = bench.summarise(rules, _chat())
    assert scores["recall@5"] == pytest.approx(1.0)
    assert scores["p50_ms"] == pytest.approx(0.5) and scores["rewritten"] == pytest.approx(0.5)
    assert scores["per_turn"]["t2"]["question"] == "how is glaucoma treated?"


def test_target_verdict_needs_the_ratio_the_baseline_and_the_latency():
    def row(recall, p50=0.1):
        return {"recall@5": recall, "p50_ms": p50}

    results = {"last-turn": row(0.5), "rules": row(0.8), "gold": row(0.85)}
    verdict = bench.target_verdict(results, "rules")
    assert verdict["met"] and verdict["ratio"] == pytest.approx(0.8 / 0.85)
    assert not bench.target_verdict({**results, "rules": row(0.7)}, "rules")["met"]  # 0.82 of gold
    assert not bench.target_verdict({**results, "last-turn": row(0.81)}, "rules")["met"]  # below last-turn
    assert not bench.target_verdict({**results, "rules": row(0.8, 400.0)}, "rules")["met"]  # too slow
    assert bench.target_verdict({"rules": row(0.8)}, "rules") is None


def test_results_table_has_a_row_per_strategy_and_the_ratio_to_gold():
    base = {"ndcg@10": 0.5, "n": 3, "rewritten": 0.5, "p50_ms": 0.2, "p95_ms": 0.4, "search_p50_ms": 12.0, "by_kind": {}}
    table = bench.results_table({"rules": {**base, "recall@5": 0.45}, "gold": {**base, "recall@5": 0.5, "p50_ms": None}})
    lines = table.splitlines()
    assert lines[0].startswith("| strategy | Recall@5 | nDCG@10 | n | vs gold |")
    assert lines[2].startswith("| rules | 0.4500 | 0.5000 | 3 | 0.900 | 50 % | 0.20 |")
    assert lines[3].startswith("| gold standalone | 0.5000 |") and "| - |" in lines[3]


def test_missing_data_skips_the_set(tmp_path: Path):
    args = bench.parse_args(["--data", str(tmp_path), "--sets", "mtrag"])
    with pytest.raises(bench.Skip, match="mtrag not found"):
        bench.mtrag_set(args, None, None)


# ------------------------------------------------------------------------------------------ slow: end to end

_XML = """<?xml version="1.0" encoding="UTF-8"?>
<Document id="{id}" source="Test" url="https://example.org/{id}"><Focus>{focus}</Focus><QAPairs>{pairs}</QAPairs></Document>"""
_PAIR = '<QAPair pid="{n}"><Question qid="{id}-{n}" qtype="{qtype}">{question}</Question><Answer>{answer}</Answer></QAPair>'
_TOPICS = {
    "Glaucoma": "optic nerve eye pressure vision loss",
    "Asthma": "airways wheezing inhaler bronchial lungs",
    "Gout": "uric acid joint toe crystals inflammation",
}
_TYPES = (
    ("information", "What is (are) {f} ?", "{f} is a disease of the {w}."),
    ("symptoms", "What are the symptoms of {f} ?", "Symptoms of {f} include pain and {w}."),
    ("treatment", "What are the treatments for {f} ?", "Treatments for {f} target the {w} with medicines."),
)


def _tiny_data(root: Path) -> None:
    folder = root / "medquad" / "1_CancerGov_QA"
    folder.mkdir(parents=True)
    for i, (focus, words) in enumerate(_TOPICS.items()):
        pairs = "".join(
            _PAIR.format(n=n, id=f"000{i}", qtype=qtype, question=q.format(f=focus), answer=a.format(f=focus, w=words))
            for n, (qtype, q, a) in enumerate(_TYPES, 1)
        )
        (folder / f"000{i}.xml").write_text(_XML.format(id=f"000{i}", focus=focus, pairs=pairs), encoding="utf-8")
    mtrag = root / "mtrag" / "retrieval"
    mtrag.mkdir(parents=True)
    passages = [{"_id": f"p-{f}", "title": "", "text": f"{f}: {w}."} for f, w in _TOPICS.items()]
    (root / "mtrag" / "passages.jsonl").write_text("".join(json.dumps(p) + "\n" for p in passages), encoding="utf-8")
    turns = ["|user|: Tell me about gout", "|user|: what crystals cause it?"]
    rows = [{"_id": f"c<::>{n}", "text": "\n".join(turns[:n])} for n in (1, 2)]
    (mtrag / "govt_questions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    rewrite = [{"_id": "c<::>1", "text": turns[0]}, {"_id": "c<::>2", "text": "|user|: what crystals cause gout?"}]
    (mtrag / "govt_rewrite.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rewrite), encoding="utf-8")
    (mtrag / "govt_qrels.tsv").write_text("query-id\tcorpus-id\tscore\nc<::>1\tp-Gout\t1\nc<::>2\tp-Gout\t1\n", encoding="utf-8")


@pytest.mark.slow
def test_end_to_end_on_tiny_data(tmp_path: Path):
    _tiny_data(tmp_path / "data")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTANT_")}
    env["ASSISTANT_EMBEDDER__MODEL"] = "hash:64"
    out_file = tmp_path / "out.json"
    command = [sys.executable, str(SCRIPT), "--data", str(tmp_path / "data"), "--index-dir", str(tmp_path / "idx"), "--json", str(out_file)]
    first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "## MedQuAD chains" in first.stdout and "## MTRAG" in first.stdout
    assert "TAT-QA follow-ups\n\nskipped: tatqa not found" in first.stdout
    results = json.loads(out_file.read_text(encoding="utf-8"))
    medquad = results["sets"]["medquad"]["results"]
    assert medquad["gold"]["n"] == 6 and medquad["gold"]["recall@5"] == pytest.approx(1.0)
    assert results["sets"]["mtrag"]["results"]["last-turn"]["n"] == 1
    # Deterministic, and the collections are reused.
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    repeat = json.loads(out_file.read_text(encoding="utf-8"))
    for name in ("medquad", "mtrag"):
        for strategy, values in repeat["sets"][name]["results"].items():
            assert values["recall@5"] == results["sets"][name]["results"][strategy]["recall@5"]
