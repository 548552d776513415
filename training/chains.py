"""Conversation chains built from the shared data sets: MedQuAD foci asked about turn after turn, with the
follow-ups written the way people write them ("How is it treated?", "And the symptoms?"), and MTRAG's user
turns. One builder for the three users: the conversation benchmark (bench/conversations.py), the eval's
conversation suite (scripts/build_eval_sets.py) and the task adapter's rewrite examples (training/tasks.py).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def evenly_spaced(items: Sequence[T], n: int) -> list[T]:
    """n items spread evenly over the sequence (all of them when n <= 0 or n >= len)."""
    if n <= 0 or n >= len(items):
        return list(items)
    return [items[i * len(items) // n] for i in range(n)]


@dataclass(frozen=True)
class Turn:
    id: str  # unique within the set: the query id of the run
    message: str  # what the user wrote
    gold_question: str = ""  # the gold row's search ("" on turns that are not scored)
    gold_filters: Mapping[str, Any] | None = None  # the gold row's filters (TAT-QA: its own report)
    relevant: Mapping[str, int] = field(default_factory=dict)  # document keys -> relevance
    kind: str = ""  # a label for breakdowns: the MedQuAD follow-up style, the MTRAG domain

    @property
    def scored(self) -> bool:
        return bool(self.relevant)


@dataclass(frozen=True)
class Chain:
    id: str
    turns: tuple[Turn, ...]

    def scored_turns(self) -> list[Turn]:
        return [t for t in self.turns[1:] if t.scored]


def _stable(text: str) -> int:
    return int(hashlib.md5(text.encode("utf-8")).hexdigest()[:8], 16)


# --- MedQuAD

# Singular foci that end in "s": "-sis", "-itis", "-ss", "-us", and diseases named in a plural form.
_SINGULAR_S = re.compile(
    r"(?:ss|is|us)$|^(?:measles|mumps|rickets|shingles|herpes|diabetes|rabies|scabies|aids|news|series|species)$", re.I
)
STYLES = ("pronoun", "noun", "ellipsis")
# The elliptical follow-up for each MedQuAD question type (qtype): no subject at all.
ELLIPSIS = {
    "information": "And what is that?",
    "symptoms": "And the symptoms?",
    "treatment": "What about the treatments?",
    "exams and tests": "What about diagnosis?",
    "outlook": "And the outlook?",
    "susceptibility": "Who is at risk?",
    "stages": "What about the stages?",
    "genetic changes": "And the genetic changes?",
    "research": "What about research and clinical trials?",
    "prevention": "And prevention?",
    "causes": "What about the causes?",
    "inheritance": "And is that inherited?",
    "frequency": "And how many people are affected?",
    "considerations": "And what to do about that?",
    "complications": "What about complications?",
    "support groups": "Where to find support?",
}


def is_plural(focus: str) -> bool:
    """Whether people would write "they" for the focus: its last word is a plural ("Kidney Stones",
    "Food Allergies"), not a singular ending in s ("Diabetes", "Arthritis", "Measles") or an acronym."""
    words = re.findall(r"[A-Za-z]+", focus)
    if not words:
        return False
    last = words[-1]
    if len(last) <= 2 or last.isupper() or not last.lower().endswith("s"):
        return False
    return not _SINGULAR_S.search(last)


def follow_up(question: str, focus: str, qtype: str | None, style: str) -> str | None:
    """The question as a follow-up that does not name its focus (None when the focus is not written in it)."""
    if style == "ellipsis" and qtype in ELLIPSIS:
        return ELLIPSIS[qtype]
    plural = is_plural(focus)
    if style == "noun":
        reference = "these conditions" if plural else "this condition"
    else:
        reference = "they" if plural else "it"
    pattern = re.compile(r"(?<![A-Za-z0-9])" + re.escape(focus.strip()) + r"(?![A-Za-z0-9])", re.I)
    if not focus.strip() or not pattern.search(question):
        return None
    text = pattern.sub(reference, question, count=1)
    text = re.sub(r"\s*\?(?:\s*\?)*\s*$", "?", " ".join(text.split()))  # "X? ?" and "X ?" -> "X?"
    text = re.sub(r"^What is \(are\) ", "What are " if plural else "What is ", text)
    if plural:
        text = re.sub(r"^Is (they|these conditions)\b", r"Are \1", text)
    return text[:1].upper() + text[1:]


def _question_key(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9 ]", " ", text.lower()).split())


def medquad_chains(records: Sequence[Mapping[str, Any]], max_turns: int) -> list[Chain]:
    """Chains from MedQuAD QA records ({file, source, focus, qid, qtype, question}, in file order; one chain per file).

    Relevant for a turn: every record asking the same question (same words, case and punctuation aside)."""
    by_question: dict[str, set[str]] = {}
    by_file: dict[str, list[Mapping[str, Any]]] = {}
    for record in records:
        if not record.get("qid"):
            continue
        by_question.setdefault(_question_key(record["question"]), set()).add(medquad_key(record.get("source"), record["qid"]))
        by_file.setdefault(record["file"], []).append(record)
    chains = []
    for file, pairs in by_file.items():
        focus = (pairs[0].get("focus") or "").strip()
        if not focus:
            continue
        first = next((p for p in pairs if p.get("qtype") == "information"), pairs[0])
        if not re.search(re.escape(focus), first["question"], re.I):
            continue
        turns = [Turn(id=medquad_key(first.get("source"), first["qid"]), message=first["question"])]
        for pair in pairs:
            if pair is first or len(turns) >= max_turns:
                continue
            style = STYLES[_stable(pair["qid"]) % len(STYLES)]
            message = follow_up(pair["question"], focus, pair.get("qtype"), style)
            if message is None:
                continue
            relevant = {key: 1 for key in sorted(by_question[_question_key(pair["question"])])}
            turn_id = medquad_key(pair.get("source"), pair["qid"])
            turns.append(Turn(id=turn_id, message=message, gold_question=pair["question"], relevant=relevant, kind=style))
        if len(turns) > 1:
            chains.append(Chain(id=file, turns=tuple(turns)))
    return chains


def medquad_key(source: str | None, qid: str) -> str:
    """A QA pair's id: its site and question id (the folders number their documents independently, so the
    same qid occurs in GARD and GHR)."""
    return f"{source or '?'}:{qid}"


def medquad_doc_key(metadata: Mapping[str, Any]) -> str | None:
    qid = metadata.get("qid")
    return medquad_key(metadata.get("source_name"), str(qid)) if qid else None


def medquad_files(folder: Path, n: int) -> list[Path]:
    return evenly_spaced(sorted(folder.glob("*/*.xml")), n)


def read_medquad(files: Sequence[Path]) -> tuple[list[Path], list[dict[str, Any]]]:
    """The files the ingest loader accepts (some MedQuAD files have no answered pair) and their QA records."""
    from core.errors import LoadError
    from ingest.loaders import load_file

    kept, records = [], []
    for path in files:
        try:
            docs = load_file(path)
        except LoadError:
            continue
        kept.append(path)
        for doc in docs:
            meta = doc.metadata
            records.append(
                {
                    "file": str(path),
                    "source": meta.get("source_name"),
                    "focus": meta.get("focus"),
                    "qid": meta.get("qid"),
                    "qtype": meta.get("qtype"),
                    "question": doc.title,
                }
            )
    return kept, records


# --- MTRAG


def user_text(text: str) -> str:
    return re.sub(r"^\|user\|:\s?", "", text.strip()).strip()


def split_user_turns(conversation: str) -> list[str]:
    """The user messages of MTRAG's ``|user|: ...`` lines (a message may span lines)."""
    parts = re.split(r"(?:^|\n)\|user\|:[ \t]?", conversation)
    return [p.strip() for p in parts[1:]]


def mtrag_conversations(questions: Iterable[Mapping[str, str]]) -> dict[str, list[str]]:
    """{conversation id: its user messages in order} from MTRAG's questions.jsonl rows ({_id:
    "<conv><::><turn>", text: the conversation up to that turn}): each conversation's longest row."""
    longest: dict[str, tuple[int, str]] = {}
    for row in questions:
        conversation, _, turn = str(row["_id"]).rpartition("<::>")
        if conversation not in longest or int(turn) > longest[conversation][0]:
            longest[conversation] = (int(turn), row["text"])
    return {conversation: split_user_turns(text) for conversation, (_, text) in longest.items()}


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
