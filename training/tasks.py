"""Examples for the task adapter (``assistant finetune --tasks``): the small jobs the pipeline can hand the
embedded model besides answering, each with the exact prompt the pipeline sends.

- Programs (compute/writer.py): a TAT-QA question and its report's table -> the program over the table's cells
  that TAT-QA's derivation computes (checked: it must give TAT-QA's answer), or NONE for a question that asks
  for no computation (span answers). First 80 % of reports only, as for the answer adapter.
- Standalone rewrites (retriever/followup.py): the conversation so far (standalone questions) and a follow-up
  -> its standalone form. From MedQuAD chains (training/chains.py) over training-split files
  the conversation benchmark does not use, and the human rewrites of MTRAG's ``TRAIN_MTRAG_DOMAINS`` (the
  benchmark's other domains stay unseen: compare on those).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from core.errors import UserError
from training.finetune import TrainingExample
from training.trainset import TATQA_TRAIN_SHARE, _medquad_files

TRAIN_MTRAG_DOMAINS = ("clapnq",)
BENCH_MEDQUAD_FILES = 400  # bench/conversations.py --medical-files default: its files are never trained on


def tatqa_reference(question: dict):
    """A TAT-QA question's answer: its one value when the answer is a list of one."""
    answer = question["answer"]
    return answer[0] if isinstance(answer, list) and len(answer) == 1 else answer


def _same_number(value: float, reference) -> bool:
    """Whether a program's result is TAT-QA's answer (in the table's units, percentages in percent): equal
    within 1 %, or once rounded to the answer's decimal places."""
    text = str(reference).replace(",", "").replace("$", "").replace("%", "").strip()
    try:
        wanted = float(text)
    except ValueError:
        return False
    places = len(text.split(".")[1]) if "." in text else 0
    return abs(value - wanted) <= 0.01 * abs(wanted) or round(value, places) == round(wanted, places)


def program_examples(tatqa_file: Path, programs: int, nones: int, seed: int) -> list[TrainingExample]:
    """Up to ``programs`` arithmetic questions with their program and ``nones`` span questions answered NONE."""
    from compute.writer import NONE, program_from_derivation, program_messages
    from ingest.loaders.grid import read_grid

    reports = json.loads(tatqa_file.read_text(encoding="utf-8"))
    reports = reports[: int(len(reports) * TATQA_TRAIN_SHARE)]
    written, spans = [], []
    for report in reports:
        _, table = read_grid(report["table"]["table"])
        if table is None:
            continue
        for question in report["questions"]:
            text = " ".join(str(question["question"]).split())
            example_id = f"program:{question['uid']}"
            if question["answer_type"] in ("span", "multi-span"):
                spans.append(TrainingExample(example_id, program_messages(text, table), NONE))
                continue
            if question["answer_type"] != "arithmetic" or not question.get("derivation"):
                continue  # counts: the planner's (and few)
            reference = tatqa_reference(question)

            def matches(value: float, percent: bool, reference=reference) -> bool:  # percentages are in percent either way
                return _same_number(value, reference)

            program = program_from_derivation(str(question["derivation"]), text, table, matches)
            if program is not None:
                written.append(TrainingExample(example_id, program_messages(text, table), program))
    rng = random.Random(seed)
    rng.shuffle(written)
    rng.shuffle(spans)
    return written[:programs] + spans[:nones]


def rewrite_examples(data_dir: Path, medquad: int, seed: int) -> list[TrainingExample]:
    """``medquad`` MedQuAD follow-ups (at most two per chain) and every MTRAG follow-up of the training domains."""
    from retriever.followup import rewrite_messages
    from training.chains import medquad_chains, medquad_files, mtrag_conversations, read_jsonl, read_medquad, user_text

    rng = random.Random(seed)
    examples: list[TrainingExample] = []
    root = data_dir / "medquad"
    if medquad:
        if not root.is_dir():
            raise UserError(f"{root} not found: point --data at the shared data folder")
        benched = set(medquad_files(root, BENCH_MEDQUAD_FILES))
        files = [p for p in _medquad_files(root, "train") if p not in benched]
        _, records = read_medquad(rng.sample(files, min(len(files), medquad)))
        medquad_turns = []
        for chain in medquad_chains(records, 6):
            history = [chain.turns[0].message]
            for turn in chain.turns[1:3]:
                medquad_turns.append(
                    TrainingExample(f"rewrite:medquad:{turn.id}", rewrite_messages(turn.message, history, shots=False), turn.gold_question)
                )
                history.append(turn.gold_question)
        rng.shuffle(medquad_turns)
        examples += medquad_turns[:medquad]
    for domain in TRAIN_MTRAG_DOMAINS:
        base = data_dir / "mtrag" / "retrieval" / domain
        if not Path(f"{base}_rewrite.jsonl").is_file():
            continue
        rewrites = {str(row["_id"]): user_text(row["text"]) for row in read_jsonl(Path(f"{base}_rewrite.jsonl"))}
        for conversation, messages in mtrag_conversations(read_jsonl(Path(f"{base}_questions.jsonl"))).items():
            history: list[str] = []
            for number, message in enumerate(messages, 1):
                standalone = rewrites.get(f"{conversation}<::>{number}")
                if number > 1 and standalone and history:
                    examples.append(
                        TrainingExample(
                            f"rewrite:mtrag:{conversation}<::>{number}", rewrite_messages(message, history, shots=False), standalone
                        )
                    )
                history.append(standalone or message)
    return examples
