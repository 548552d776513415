"""Arithmetic in code: the language and its evaluator, the planner's programs for common question shapes,
tables kept as cells from ingest, and answers that show their work."""

from __future__ import annotations

import pytest

from compute.computation import SourceTable, compute
from compute.planner import operation, plan
from compute.program import ComputeError, Operand, Ref, evaluate, parse
from core.tables import Cell, Table, parse_number, stated_scale
from ingest.loaders.grid import read_grid

ROWS = [
    ["(In millions)", "2019", "2018", "2017"],
    ["Revenue", "$ 1,496", "$ 1,334", "$ 1,200"],
    ["Cost of revenue", "(620)", "(580)", "(500)"],
    ["Gross margin", "41.2%", "40.6%", "39.0%"],
    ["Research and development", "0", "—", "12"],
]
TEXT, TABLE = read_grid(ROWS)


def cells(table: Table):
    return {(c.row, c.column): c for r in table.rows for c in r.cells}


def resolver(table: Table):
    by_ref = {(c.row, c.column): c for c in cells(table).values()}

    def resolve(ref: Ref) -> Operand:
        cell = by_ref.get((ref.row, ref.column))
        if cell is None or cell.value is None:
            raise ComputeError(f"no cell {ref}")
        return Operand(ref, cell.text, cell.value, cell.unit, 1)

    return resolve


@pytest.mark.parametrize(
    ("text", "value", "unit"),
    [("$ 1,496", 1496, "$"), ("(620)", -620, ""), ("(5.2)%", -5.2, "%"), ("-0.81", -0.81, ""), ("€12", 12, "€"), ("12.5 %", 12.5, "%")],
)
def test_cells_parse_sign_unit_and_thousands(text, value, unit):
    number = parse_number(text)
    assert number is not None and number.value == value and number.unit == unit


@pytest.mark.parametrize("text", ["—", "n/a", "2019 and 2018", "(620", "Revenue", ""])
def test_text_cells_hold_no_number(text):
    assert parse_number(text) is None


def test_tatqa_tables_keep_cells_with_labels_headers_and_scale():
    assert TABLE is not None and TABLE.scale == "million"
    by = cells(TABLE)
    assert by[("Revenue", "2019")].value == 1496 and by[("Revenue", "2019")].unit == "$"
    assert by[("Cost of revenue", "2018")].value == -580
    assert by[("Gross margin", "2017")].unit == "%"
    # every row's line is a line of the text retrieval reads, so a passage holding it can be cited
    assert all(row.line in TEXT.splitlines() for row in TABLE.rows)
    assert Table.from_dict(TABLE.to_dict()) == TABLE


def test_stated_scale():
    assert stated_scale(["(In thousands, except per share data)"]) == "thousand"
    assert stated_scale(["$'000"]) == "thousand"
    assert stated_scale(["Fiscal 2019 (in millions)"]) == "million"
    assert stated_scale(["2019", "2018"]) == ""


def test_the_language_parses_and_evaluates_with_its_work():
    result = evaluate("pct_change({Revenue | 2018}, {Revenue | 2019})", resolver(TABLE))
    assert result.value == pytest.approx((1496 - 1334) / 1334 * 100)
    assert result.percent
    assert result.work == "($ 1,496 - $ 1,334) / $ 1,334 * 100"
    assert [o.text for o in result.operands] == ["$ 1,334", "$ 1,496"]
    assert evaluate("average({Revenue | 2019}, {Revenue | 2018})", resolver(TABLE)).value == 1415
    assert evaluate("(2 + 3) * 4 - -1", resolver(TABLE)).value == 21
    assert evaluate("count({Revenue | 2019} > 1300, {Revenue | 2017} > 1300)", resolver(TABLE)).value == 1
    assert evaluate("share({Revenue | 2018}, {Revenue | 2019})", resolver(TABLE)).percent


@pytest.mark.parametrize(
    ("program", "message"),
    [
        ("ratio({Revenue | 2019}, {Research and development | 2019})", "division by zero: 0 is 0"),
        ("{Revenue | 2020}", "no cell {Revenue | 2020}"),
        ("{Research and development | 2018}", "no cell {Research and development | 2018}"),
        ("__import__('os')", "cannot read the program"),
        ("open(1)", "unknown function 'open'"),
        ("change({Revenue | 2019})", "change takes 2 values, got 1"),
        ("(1 + 2", "the program ends too early"),
        ("1 +" * 400 + "1", "longer than 1000 characters"),
        ("sum(" + ", ".join(["1"] * 120) + ")", "more than 100 parts"),
        ("{Revenue}", "a cell is written {row | column}"),
    ],
)
def test_bad_programs_are_errors_in_words(program, message):
    with pytest.raises(ComputeError, match=None) as err:
        evaluate(program, resolver(TABLE))
    assert message in str(err.value)


def test_parse_builds_no_python():
    node = parse("pct_change({A | 2018}, {A | 2019}) > 5")
    assert type(node).__name__ == "Op" and node.op == ">"


@pytest.mark.parametrize(
    ("question", "op"),
    [
        ("What was the change in revenue from 2018 to 2019?", "change"),
        ("What is the percentage change in revenue between 2018 and 2019?", "pct_change"),
        ("What is the average revenue for 2018 and 2019?", "average"),
        ("What is cost of revenue as a percentage of revenue in 2019?", "share"),
        ("What is the ratio of cost of revenue to revenue in 2019?", "ratio"),
        ("How many years did revenue exceed $1,300 million?", "count"),
        ("What was the weighted-average share count in 2019?", None),
        ("What was the revenue in 2019?", None),
    ],
)
def test_operation_from_the_question(question, op):
    assert operation(question) == op


@pytest.mark.parametrize(
    ("question", "program"),
    [
        ("What was the change in revenue from 2018 to 2019?", "change({Revenue | 2018}, {Revenue | 2019})"),
        ("What is the percentage change in revenue between 2019 and 2018?", "pct_change({Revenue | 2018}, {Revenue | 2019})"),
        ("What was the average revenue from 2017 to 2019?", "average({Revenue | 2017}, {Revenue | 2018}, {Revenue | 2019})"),
        ("What was the average revenue in 2017 and 2019?", "average({Revenue | 2017}, {Revenue | 2019})"),
        ("What is cost of revenue as a percentage of revenue in 2019?", "share({Cost of revenue | 2019}, {Revenue | 2019})"),
        (
            "How many years did revenue exceed $1,300 million?",
            "count({Revenue | 2017} > 1300, {Revenue | 2018} > 1300, {Revenue | 2019} > 1300)",
        ),
    ],
)
def test_the_planner_writes_programs_for_common_shapes(question, program):
    chosen = plan(question, [TABLE])
    assert chosen is not None and chosen.program == program


@pytest.mark.parametrize(
    "question",
    [
        "Why did revenue increase in 2019?",
        "What was the reason for the change in gross margin?",
        "In which year was the average revenue higher?",
        "What are the respective changes in revenue and cost of revenue?",
        "What was the change in headcount from 2018 to 2019?",  # no such row
        "What was the change in revenue from 2015 to 2016?",  # no such years
    ],
)
def test_the_planner_declines_what_it_cannot_compute(question):
    assert plan(question, [TABLE]) is None


def test_a_computed_answer_shows_its_work_and_cites_each_operand():
    source = SourceTable(TABLE, ((1, "Net income | 2019: 5"), (2, TEXT)))
    done = compute("What was the percentage change in revenue from 2018 to 2019?", [source])
    assert done is not None and done.error is None
    assert done.shown == "12.14%"
    assert done.cited == [2]
    assert done.text.startswith("The percentage change in Revenue from 2018 to 2019 is 12.14% [2].")
    assert "($ 1,496 - $ 1,334) / $ 1,334 * 100 = 12.14%" in done.text
    assert "Revenue, 2019: $ 1,496 [2]" in done.text
    change = compute("What was the change in revenue from 2018 to 2019?", [source])
    assert change is not None and change.shown == "$162 million"
    assert change.to_dict()["operands"][0] == {
        "row": "Revenue",
        "column": "2018",
        "text": "$ 1,334",
        "value": 1334.0,
        "unit": "$",
        "passage": 2,
    }


def test_a_figure_for_a_year_is_read_from_its_cell_and_cited():
    source = SourceTable(TABLE, ((1, TEXT),))
    done = compute("What was the revenue in 2019?", [source])
    assert done is not None and done.operation == "lookup" and done.program == "{Revenue | 2019}"
    assert done.text == "Revenue in 2019: $ 1,496 million [1]."
    margin = compute("What was the gross margin in 2018?", [source])
    assert margin is not None and margin.text == "Gross margin in 2018: 40.6% [1]."  # a percentage takes no scale
    assert compute("What was the revenue?", [source]) is None  # no year: which cell is not for the code to guess


def test_no_computation_when_the_cells_are_in_no_passage_found():
    source = SourceTable(TABLE, ((1, "Revenue was up."),))
    assert compute("What was the change in revenue from 2018 to 2019?", [source]) is None


def test_a_failed_computation_is_said_in_words():
    table = Table(
        (
            *read_grid([["", "2019", "2018"], ["Bad debt", "5", "0"]])[1].rows,  # type: ignore[union-attr]
        )
    )
    source = SourceTable(table, ((1, table.rows[0].line),))
    done = compute("What was the percentage change in bad debt from 2018 to 2019?", [source])
    assert done is not None and done.value is None
    assert done.text == "The computation could not be done: division by zero: 0 is 0."


def test_cells_are_frozen_values():
    cell = Cell.of("Revenue", "2019", "(1,234)")
    assert (cell.value, cell.unit) == (-1234.0, "")


# --- end to end: ingest keeps the cells, the assistant computes instead of generating -------------------

REPORT = [
    {
        "table": {"uid": "r1", "table": ROWS},
        "paragraphs": [{"uid": "p1", "order": 1, "text": "Revenue rose in 2019 on strong demand for services."}],
        "questions": [],
    }
]


@pytest.fixture
def finance_settings(tmp_path, embedder):
    import json

    from core.config import Settings
    from tests.conftest import ingest_once

    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "report.json").write_text(json.dumps(REPORT), encoding="utf-8")
    ingest_once(tmp_path / "indexes" / "fin", embedder, [tmp_path / "reports"], chunk_tokens=200)
    return Settings(
        index_dir=tmp_path / "indexes",
        embedder={"model": "hash:64"},
        retrieval={"min_relevance": 0.0},
        answerability={"threshold": 0.01},
        guardrails={"audit_log": tmp_path / "audit.jsonl", "packs": {"fin": ["common", "finance"]}},
    )


def test_ingest_stores_tables_as_cells_and_deleting_the_document_drops_them(tmp_path, finance_settings):
    from core.collection import Collection

    with Collection.open(tmp_path / "indexes" / "fin", writable=True) as collection:
        ids = [r[0] for r in collection.db.execute("SELECT id FROM documents ORDER BY pk")]
        tables = collection.tables(ids)
        assert list(tables) == [ids[0]]  # the table document, not the paragraph
        assert tables[ids[0]] == [TABLE]
        collection.delete_document(ids[0])
        assert collection.tables(ids) == {}
        assert collection.db.execute("SELECT COUNT(*) FROM document_tables").fetchone()[0] == 0


def test_an_arithmetic_question_is_computed_in_code_not_generated(finance_settings):
    from assistant.pipeline import Assistant
    from assistant.views import answer_view
    from core.embedding import HashEmbedder
    from generator.fake import QueuedGenerator

    gen = QueuedGenerator(["Revenue rose by about 11% [1]."])
    assistant = Assistant(finance_settings, generator=gen, embedders={"hash:64": HashEmbedder(64)})
    answer = assistant.ask("What was the percentage change in revenue from 2018 to 2019?", "fin", k=2)
    assert answer.finish_reason == "computed" and answer.generator == "compute"
    assert gen.calls == []  # the model was not asked
    assert answer.text.startswith("The percentage change in Revenue from 2018 to 2019 is 12.14% [")
    assert "($ 1,496 - $ 1,334) / $ 1,334 * 100 = 12.14%" in answer.text
    assert not [e for e in answer.guard_events if e["category"] in ("numbers", "grounding")]
    view = answer_view(answer)
    assert view["computation"]["program"] == "pct_change({Revenue | 2018}, {Revenue | 2019})"
    assert view["computation"]["result"] == "12.14%"
    assert {o["passage"] for o in view["computation"]["operands"]} == set(answer.cited)
    assert "compute" in answer.timings_ms


def test_a_question_of_no_arithmetic_shape_is_generated_and_mental_arithmetic_is_removed(finance_settings):
    from assistant.pipeline import Assistant
    from core.embedding import HashEmbedder
    from generator.fake import QueuedGenerator

    gen = QueuedGenerator(["Revenue was $ 1,496 million in 2019 [1][2]. That is about 13 percent more than 1,334 [1][2]."])
    assistant = Assistant(finance_settings, generator=gen, embedders={"hash:64": HashEmbedder(64)})
    answer = assistant.ask("What does the report say about revenue?", "fin", k=2)
    assert answer.finish_reason == "stop" and answer.computation is None and len(gen.calls) == 1
    assert answer.text.startswith("Revenue was $ 1,496 million in 2019 [1][2].")
    assert "13 percent" not in answer.text
    assert any(e["rule_id"] == "finance.numbers_unshown" for e in answer.guard_events)
