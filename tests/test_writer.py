"""Programs written by a model (compute/writer.py): the training targets made from TAT-QA derivations, reading
a model's reply, and compute() running a written program when the planner has none, shown and cited like the
planner's."""

from __future__ import annotations

import json

import pytest

from compute.computation import SourceTable, compute
from compute.program import parse
from compute.writer import NONE, PROGRAM_PROMPT, operation_of, program_from_derivation, program_messages, read_reply, unparse
from ingest.loaders.grid import read_grid
from training.tasks import _same_number, program_examples

ROWS = [
    ["(In millions)", "2019", "2018", "2017"],
    ["Revenue", "$ 1,496", "$ 1,334", "$ 1,200"],
    ["Cost of revenue", "(620)", "(580)", "(500)"],
    ["Gross margin", "41.2%", "40.6%", "39.0%"],
    ["Other income", "44", "44", "12"],
]
TEXT, TABLE = read_grid(ROWS)


def derived(derivation: str, question: str, answer: float) -> str | None:
    return program_from_derivation(derivation, question, TABLE, lambda value, percent: _same_number(value, answer))


@pytest.mark.parametrize(
    ("derivation", "question", "answer", "program"),
    [
        (
            "(1,496-1,334)/1,334",
            "What is the percentage change in revenue from 2018 to 2019?",
            12.14,
            "pct_change({Revenue | 2018}, {Revenue | 2019})",
        ),
        ("(1,496 + 1,334) / 2", "What is the average revenue for 2018 and 2019?", 1415, "average({Revenue | 2019}, {Revenue | 2018})"),
        ("1,496 - 1,334", "What is the change in revenue from 2018 to 2019?", 162, "{Revenue | 2019} - {Revenue | 2018}"),
        ("[(1,496+1,334)/2] - [(620+580)/2]", "Average revenue minus average cost of revenue?", 815, None),
        (
            "44/1,496*100",
            "What is other income as a percentage of revenue in 2019?",
            2.94,
            "share({Other income | 2019}, {Revenue | 2019})",
        ),
    ],
)
def test_derivations_become_programs_over_cells_that_give_the_answer(derivation, question, answer, program):
    # The fourth: the cost cells are negative (accounting parentheses), so the derivation's positive figures
    # give another result than the cells do: no example rather than a wrong one.
    assert derived(derivation, question, answer) == program


def test_a_derivation_is_refused_when_a_number_is_in_no_cell_or_the_cell_is_ambiguous():
    assert derived("1,496 - 999", "Revenue less the charge?", 497) is None  # 999 is in the text, not the table
    # "44" is in both years of Other income; the question names neither.
    assert derived("44 * 2", "What is twice the other income?", 88) is None
    assert derived("44 * 2", "What is twice the other income in 2019?", 88) == "{Other income | 2019} * 2"


def test_a_program_that_does_not_give_the_answer_is_no_example():
    assert derived("(1,496-1,334)/1,334", "What is the percentage change in revenue?", 99.0) is None


def test_unparse_round_trips_through_the_parser():
    for text in ("pct_change({Revenue | 2018}, {Revenue | 2019})", "({A | x} - {B | y}) / 2", "-{A | x} * (3 + {B | y})"):
        assert unparse(parse(unparse(parse(text)))) == unparse(parse(text))


@pytest.mark.parametrize(
    ("reply", "program"),
    [
        ("pct_change({Revenue | 2018}, {Revenue | 2019})", "pct_change({Revenue | 2018}, {Revenue | 2019})"),
        ("Program: {Revenue | 2019} - {Revenue | 2018}\nextra words", "{Revenue | 2019} - {Revenue | 2018}"),
        (NONE, None),
        ("NONE.", None),
        ("The revenue rose by 12%.", None),  # prose is not a program
        ("", None),
    ],
)
def test_read_reply(reply, program):
    assert read_reply(reply) == program


@pytest.mark.parametrize(
    ("program", "op"),
    [
        ("pct_change({a | 1}, {a | 2})", "pct_change"),
        ("{a | 1} - {a | 2}", "change"),
        ("{a | 1} / {b | 1}", "ratio"),
        ("{a | 1}", "lookup"),
    ],
)
def test_operation_of(program, op):
    assert operation_of(program) == op


def test_the_prompt_shows_the_table_rows_and_the_question():
    messages = program_messages("What is the  change in revenue?", TABLE)
    assert messages[0] == {"role": "system", "content": PROGRAM_PROMPT}
    assert "Revenue | 2019: $ 1,496 | 2018: $ 1,334" in messages[1]["content"]
    assert messages[1]["content"].endswith("Question: What is the change in revenue?")


def test_compute_runs_a_written_program_only_when_the_planner_has_none():
    asked = []

    def write(messages):
        asked.append(messages)
        return "ratio({Revenue | 2019}, {Other income | 2019})"

    sources = [SourceTable(TABLE, ((3, TEXT),))]
    # The planner knows this shape: the model is never asked.
    planned = compute("What is the percentage change in revenue from 2018 to 2019?", sources, write)
    assert planned.program == "pct_change({Revenue | 2018}, {Revenue | 2019})" and not asked
    written = compute("How many times other income does revenue come to in 2019?", sources, write)
    assert len(asked) == 1
    assert written.program == "ratio({Revenue | 2019}, {Other income | 2019})"
    assert written.operation == "ratio" and written.cited == [3]
    assert "34" in written.shown and "1,496 / 44" in written.work and "[3]" in written.text


def test_a_written_program_naming_a_cell_not_in_the_table_is_no_computation():
    sources = [SourceTable(TABLE, ((1, TEXT),))]
    assert compute("Something unusual?", sources, lambda m: "{Profit | 2019} - {Profit | 2018}") is None
    assert compute("Something unusual?", sources, lambda m: NONE) is None


def test_program_examples_hold_programs_and_nones_from_the_training_reports_only(tmp_path):
    def report(uid: str) -> dict:
        return {
            "table": {"uid": uid, "table": ROWS},
            "paragraphs": [],
            "questions": [
                {
                    "uid": f"{uid}-a",
                    "question": "What is the change in revenue from 2018 to 2019?",
                    "answer_type": "arithmetic",
                    "derivation": "1,496 - 1,334",
                    "answer": 162,
                    "scale": "million",
                },
                {"uid": f"{uid}-s", "question": "What was the gross margin in 2019?", "answer_type": "span", "answer": ["41.2%"]},
            ],
        }

    path = tmp_path / "tatqa.json"
    path.write_text(json.dumps([report(f"r{i}") for i in range(10)]))
    examples = program_examples(path, programs=100, nones=3, seed=0)
    ids = {e.id for e in examples}
    assert len([e for e in examples if e.answer == NONE]) == 3
    programs = [e for e in examples if e.answer != NONE]
    assert len(programs) == 8 and {e.answer for e in programs} == {"{Revenue | 2019} - {Revenue | 2018}"}
    assert not any(i.startswith(("program:r8", "program:r9")) for i in ids)  # the last 20 % are held out
    assert programs[0].messages == program_messages("What is the change in revenue from 2018 to 2019?", TABLE)
