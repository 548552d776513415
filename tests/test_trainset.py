"""The fine-tuning data: text helpers, the fixed train / held-out split, and the shipped adapter's
training data never touching a held-out item (which the fine-tuning bench and the eval sets rely on)."""

from __future__ import annotations

import json
import re

import pytest

from generator.local import SHIPPED_ADAPTER
from tests.conftest import REPO, SHARED_DATA
from training.trainset import SAMPLE_MEDQUAD, TATQA_TRAIN_SHARE, build_examples, cite, clip, sentences

needs_shared = pytest.mark.skipif(not SHARED_DATA.exists(), reason=f"{SHARED_DATA} not found")


def test_sentences_clip_and_cite():
    text = "Metformin lowers glucose. It costs 1.5 dollars! Is it safe? Yes."
    assert sentences(text) == ["Metformin lowers glucose.", "It costs 1.5 dollars!", "Is it safe?", "Yes."]
    assert clip(text, 7) == "Metformin lowers glucose. It costs 1.5 dollars!"
    assert clip("one " * 100, 10).split() == ["one"] * 15  # one endless sentence is cut at 1.5x
    assert cite("Metformin lowers glucose.", [2]) == "Metformin lowers glucose [2]."
    assert cite("365,607 thousand", [1, 3]) == "365,607 thousand [1][3]"


def heldout_ids_in_repo() -> set[str]:
    """Ids of every item the split holds out that the repository itself can list: the MedQuAD pairs of the
    sample collection and the TAT-QA questions of the finance sample (both from the held-out parts)."""
    ids = set()
    for path in SAMPLE_MEDQUAD.rglob("*.xml"):
        ids |= {f"medquad:{path.parent.name}/{qid}" for qid in re.findall(r'<Question qid="([^"]+)"', path.read_text())}
    for report in json.loads((REPO / "data/samples/finance/tatqa_sample.json").read_text()):
        ids |= {f"tatqa:{q['uid']}" for q in report["questions"]}
    return ids


def shipped_training_ids() -> set[str]:
    return set(json.loads((SHIPPED_ADAPTER / "training.json").read_text())["example_ids"])


def test_shipped_adapter_lists_its_training_data_and_none_is_held_out():
    trained = shipped_training_ids()
    assert len(trained) > 300
    assert {i.split(":")[0] for i in trained} == {"medquad", "pubmedqa", "tatqa"}
    assert not trained & heldout_ids_in_repo()


@needs_shared
def test_shipped_adapter_never_saw_a_pubmedqa_test_pmid_or_a_late_tatqa_report():
    trained = shipped_training_ids()
    test_pmids = set(json.loads((SHARED_DATA / "pubmedqa/test_ground_truth.json").read_text()))
    assert not {f"pubmedqa:{p}" for p in test_pmids} & trained
    reports = json.loads((SHARED_DATA / "tatqa/tatqa_dataset_dev.json").read_text())
    late = reports[int(len(reports) * TATQA_TRAIN_SHARE) :]
    assert not {f"tatqa:{q['uid']}" for r in late for q in r["questions"]} & trained


@needs_shared
def test_split_rules_hold_for_freshly_built_examples():
    train = build_examples(SHARED_DATA, "train", medquad=16, pubmedqa=8, tatqa=8, seed=3)
    heldout = build_examples(SHARED_DATA, "heldout", medquad=16, pubmedqa=8, tatqa=8, seed=3)
    assert not {e.id for e in train} & {e.id for e in heldout}
    in_repo = heldout_ids_in_repo()
    assert all(e.id in in_repo for e in heldout if e.source == "medquad")
    assert not any(e.id in in_repo for e in train)
    reports = json.loads((SHARED_DATA / "tatqa/tatqa_dataset_dev.json").read_text())
    late = {f"tatqa:{q['uid']}" for r in reports[int(len(reports) * TATQA_TRAIN_SHARE) :] for q in r["questions"]}
    assert all((e.id in late) == (e in heldout) for e in train + heldout if e.source == "tatqa")
    test_pmids = set(json.loads((SHARED_DATA / "pubmedqa/test_ground_truth.json").read_text()))
    assert all((e.id.split(":")[1] in test_pmids) == (e in heldout) for e in train + heldout if e.source == "pubmedqa")
    for e in train + heldout:
        numbers = {int(n) for n in re.findall(r"\[(\d+)\]", e.answer)}
        assert numbers == set(e.gold) and all(1 <= n <= len(e.passages) for n in numbers)
        assert e.messages()[1]["content"].endswith(f"Question: {e.question}")
    assert any(not e.gold and e.answer == "The passages do not contain the answer." for e in train)


@needs_shared
def test_tatqa_refusals_show_a_neighbouring_report_that_lacks_what_the_question_turns_on():
    """Opt-in (``--tatqa-refusals``): in-domain distractors, the same kind of table from another company."""
    from training.trainset import _report_text, _turning_words, _words, tatqa_examples

    path = SHARED_DATA / "tatqa/tatqa_dataset_dev.json"
    assert all(e.gold for e in tatqa_examples(path, "train", 40, seed=1))  # the shipped recipe: no refusals
    examples = tatqa_examples(path, "train", 40, seed=1, refusals=True)
    refusals = [e for e in examples if not e.gold]
    assert 3 <= len(refusals) <= 6 and all(e.answer == "The passages do not contain the answer." for e in refusals)
    reports = json.loads(path.read_text())
    own = {q["uid"]: r for r in reports for q in r["questions"]}
    for e in refusals:
        report = own[e.id.split(":")[1]]
        shown = _words(" ".join(p.text for p in e.passages))
        assert not any(p.title.startswith(f"Report {str(report['table']['uid'])[:8]}") for p in e.passages)  # another report
        assert any(p.title.endswith("table") for p in e.passages)  # with its table: the same kind of evidence
        assert not _turning_words(e.question, _report_text(report)) <= shown  # a word or year it turns on is missing


@needs_shared
def test_the_task_adapters_rewrites_never_come_from_what_the_conversation_benchmark_scores():
    from training.chains import medquad_chains, medquad_files, read_medquad
    from training.tasks import BENCH_MEDQUAD_FILES, TRAIN_MTRAG_DOMAINS, rewrite_examples

    examples = rewrite_examples(SHARED_DATA, 40, seed=0)
    medquad = {e.id.removeprefix("rewrite:medquad:") for e in examples if e.id.startswith("rewrite:medquad:")}
    mtrag = {e.id.removeprefix("rewrite:mtrag:") for e in examples if e.id.startswith("rewrite:mtrag:")}
    assert 0 < len(medquad) <= 40 and mtrag  # at most two follow-ups from each of 40 files
    benched = medquad_chains(read_medquad(medquad_files(SHARED_DATA / "medquad", BENCH_MEDQUAD_FILES))[1], 6)
    assert not medquad & {t.id for c in benched for t in c.turns}
    trained_domains = "".join((SHARED_DATA / "mtrag" / "retrieval" / f"{d}_questions.jsonl").read_text() for d in TRAIN_MTRAG_DOMAINS)
    assert all(f'"{turn_id}"' in trained_domains for turn_id in mtrag)
    for example in examples:  # the prompt the pipeline sends the task adapter: no few-shot examples
        assert [m["role"] for m in example.messages] == ["system", "user"]
        assert example.messages[1]["content"].splitlines()[-1].startswith("Last question: ")
