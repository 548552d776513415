"""Follow-ups made standalone before retrieval (retriever/followup.py): the rules, the generator strategy and
the fused search, on their own (the pipeline's use of them is in tests/test_pipeline.py)."""

from __future__ import annotations

import pytest

from core.types import Hit
from retriever.followup import ConversationSources, anchor, contextualize, focus, fuse, rules, source_group


@pytest.mark.parametrize(
    ("question", "subject"),
    [
        ("What is (are) Glaucoma ?", "Glaucoma"),
        ("What are the treatments for Ehlers-Danlos syndrome ?", "Ehlers-Danlos syndrome"),
        ("What was the change in operating income from 2018 to 2019?", "operating income"),
        ("What was the revenue of the cloud segment in 2019?", "cloud segment"),
        ("What are the symptoms?", ""),
    ],
)
def test_focus_is_the_subject_without_aspects_or_years(question, subject):
    assert focus(question) == subject


@pytest.mark.parametrize(
    ("previous", "message", "standalone"),
    [
        ("What is (are) Glaucoma ?", "How is it treated?", "How is Glaucoma treated?"),
        ("What is glaucoma?", "Is it hereditary?", "Is glaucoma hereditary?"),
        ("What are the treatments for Ehlers-Danlos syndrome ?", "What are its symptoms?", "What are Ehlers-Danlos syndrome's symptoms?"),
        ("What is glaucoma?", "How common is this condition?", "How common is glaucoma?"),
        # elliptical turns: the other year, the other subject, another aspect of the subject
        ("What was the revenue of the cloud segment in 2019?", "And in 2018?", "What was the revenue of the cloud segment in 2018?"),
        ("What are the symptoms of glaucoma?", "What about cataracts?", "What are the symptoms of cataracts?"),
        ("What is glaucoma?", "And the symptoms?", "What about the symptoms of glaucoma?"),
        # no subject of its own: the previous one is carried along
        ("What is metformin?", "What is the usual dose?", "What is the usual dose (metformin)?"),
    ],
)
def test_follow_ups_are_rewritten_with_the_previous_subject(previous, message, standalone):
    assert rules(message, [previous]) == standalone


@pytest.mark.parametrize(
    ("previous", "message"),
    [
        ("What is glaucoma?", "What is diabetes?"),
        ("What is glaucoma?", "What are the treatments for diabetes?"),
        ("What is glaucoma?", "Is Tesla profitable?"),
        ("What is glaucoma?", "How is glaucoma diagnosed?"),  # it names the subject itself
    ],
)
def test_a_turn_naming_its_own_subject_is_searched_as_written(previous, message):
    assert rules(message, [previous]) is None
    made = contextualize(message, [previous])
    assert (made.question, made.rewritten, made.strategy) == (message, False, "none")


def test_without_history_or_with_the_strategy_off_nothing_is_rewritten():
    assert contextualize("How is it treated?", []).rewritten is False
    made = contextualize("How is it treated?", ["What is glaucoma?"], strategy="off")
    assert made.question == "How is it treated?" and not made.rewritten
    with pytest.raises(ValueError, match="unknown standalone strategy 'llm'"):
        contextualize("How is it treated?", ["What is glaucoma?"], strategy="llm")


def test_the_rules_use_the_latest_standalone_question():
    made = contextualize("How is it treated?", ["What is asthma?", "What is glaucoma?"])
    assert made.question == "How is glaucoma treated?" and made.rewritten and made.strategy == "rules"
    assert made.ms >= 0


class Rewriter:
    def __init__(self, reply: str):
        self.reply, self.calls = reply, []

    def __call__(self, messages):
        self.calls.append(messages)
        return self.reply


def test_the_generator_strategy_asks_the_model_and_checks_its_rewrite():
    model = Rewriter("Rewritten question: How is glaucoma treated?\nIt is treated with drops.")
    made = contextualize("How is it treated?", ["What is glaucoma?"], rewrite=model, strategy="generator")
    assert (made.question, made.rewritten, made.strategy) == ("How is glaucoma treated?", True, "generator")
    last = model.calls[0][-1]["content"]
    assert "User: What is glaucoma?" in last and last.endswith("Last question: How is it treated?")
    # A turn with its own subject costs no generation; an unusable reply leaves the turn as written.
    assert contextualize("What is diabetes?", ["What is glaucoma?"], rewrite=model, strategy="generator").rewritten is False
    assert len(model.calls) == 1
    rambling = Rewriter("x" * 500)
    assert contextualize("How is it treated?", ["What is glaucoma?"], rewrite=rambling, strategy="generator").rewritten is False
    with pytest.raises(ValueError, match="needs a model to rewrite with"):
        contextualize("How is it treated?", ["What is glaucoma?"], strategy="generator")


def test_the_task_adapter_is_asked_without_the_prompts_examples():
    model = Rewriter("How is glaucoma treated?")
    made = contextualize("How is it treated?", ["What is glaucoma?"], rewrite=model, strategy="generator", shots=False)
    assert made.question == "How is glaucoma treated?"
    (messages,) = model.calls
    assert [m["role"] for m in messages] == ["system", "user"]  # as training/tasks.py trained it
    assert messages[1]["content"] == "User: What is glaucoma?\nLast question: How is it treated?"
    few_shot = Rewriter("How is glaucoma treated?")
    contextualize("How is it treated?", ["What is glaucoma?"], rewrite=few_shot, strategy="generator")
    assert len(few_shot.calls[0]) == 6


def _hit(chunk: int, score: float) -> Hit:
    return Hit(chunk_id=chunk, document_id=f"d{chunk}", title="", text="", source="", start=0, end=0, score=score)


def test_fusion_lets_the_turn_lead_and_the_previous_question_break_ties():
    current = [_hit(1, 0.9), _hit(2, 0.8), _hit(3, 0.7)]
    before = [_hit(3, 0.9), _hit(4, 0.8)]
    fused = [h.chunk_id for h in fuse(current, before, 3)]
    assert fused == [3, 1, 2]  # 3 is in both lists; 4 (only the previous question's) does not outrank the turn's
    assert [h.chunk_id for h in fuse(current, [], 2)] == [1, 2]


def _report_hit(chunk: int, report: str | None, source: str = "/data/reports.json") -> Hit:
    metadata = {"report_uid": report} if report else {}
    return Hit(
        chunk_id=chunk, document_id=f"d{chunk}", title="", text="", source=source, start=0, end=0, score=1.0 / chunk, metadata=metadata
    )


class ReportRetriever:
    """Hits of reports A, B and C; a question's hits are the ones listed for it (the follow-up's by default);
    a filter keeps the hits of its report and source, as the collection's filters do."""

    def __init__(self):
        self.hits = [
            _report_hit(1, "B"),
            _report_hit(2, "A"),
            _report_hit(3, "C"),
            _report_hit(4, "A"),
            _report_hit(5, "A"),
            _report_hit(6, "B"),
        ]
        self.asked = {"revenue": [_report_hit(4, "A"), _report_hit(6, "B")], "costs": [_report_hit(5, "A"), _report_hit(3, "C")]}
        self.calls = []

    def search(self, question, k, filters=None):
        self.calls.append((question, filters))
        hits = self.asked.get(question, self.hits)
        if filters:
            hits = [h for h in self.hits if h.metadata.get("report_uid") == filters["report_uid"] and h.source == filters["source"]]
        return type("Result", (), {"hits": hits[:k]})()


def test_a_passage_belongs_to_its_file_and_its_report():
    assert source_group(_report_hit(1, "A")) == (("source", "/data/reports.json"), ("report_uid", "A"))
    assert source_group(_report_hit(1, None, "/docs/leaflet.pdf")) == (("source", "/docs/leaflet.pdf"),)
    assert source_group(_report_hit(1, None, "")) == ()  # nowhere to anchor to


def test_passages_without_a_source_are_not_anchored():
    retriever = ReportRetriever()
    retriever.asked["revenue"] = [_report_hit(7, None, "")]
    hits = retriever.search("What was the change?", 3).hits
    assert anchor(retriever, hits, "What was the change?", 3, ["revenue"]) == hits
    assert retriever.calls[-1] == ("revenue", None)  # no search within a part: there is none


def test_the_report_the_questions_agree_on_leads_not_any_one_questions_top_hit():
    sources = ConversationSources(depth=2)
    assert sources.leading() is None
    sources.add([_report_hit(1, "B"), _report_hit(2, "A")])  # B 1, A 1/2
    sources.add([_report_hit(4, "A"), _report_hit(3, "C")])  # A 1.5, C 1/2
    sources.add([_report_hit(5, "C"), _report_hit(6, "A"), _report_hit(7, "B")])  # depth 2: B gets nothing here
    assert sources.leading() == {"source": "/data/reports.json", "report_uid": "A"}  # A 2.0, C 1.5, B 1.0


def test_anchor_fuses_the_follow_ups_hits_with_its_hits_within_the_report_the_earlier_questions_found():
    retriever = ReportRetriever()
    hits = retriever.search("What was the change?", 3).hits  # 1 (B), 2 (A), 3 (C)
    assert anchor(retriever, hits, "What was the change?", 3, []) == hits  # no earlier question: as found
    retriever.calls.clear()
    anchored = [h.chunk_id for h in anchor(retriever, hits, "What was the change?", 3, ["revenue", "costs"])]
    scope = {"source": "/data/reports.json", "report_uid": "A"}  # revenue: A 1, B 1/2; costs: A 1, C 1/2
    assert retriever.calls == [("revenue", None), ("costs", None), ("What was the change?", scope)]
    assert anchored == [2, 1, 4]  # report A's best passage is in both rankings and leads; A's next joins the top 3
