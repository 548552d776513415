"""Grounded question-answering examples for fine-tuning and for measuring the adapter, built from the
licence-clean shared data sets (../shared/data; see data/README.md):

- MedQuAD: the question with its gold answer passage shuffled among distractors retrieved by the project's
  own BM25 over the other answers -> the answer's opening sentences, each citing the gold passage. One in
  eight questions gets distractors only and must answer "The passages do not contain the answer."
- PubMedQA (PQA-L): the abstract's sections as passages -> the long answer, each sentence citing the
  section it overlaps most. The 500 official test PMIDs are never used for training.
- TAT-QA dev: a report's table and paragraphs -> the answer (with the derivation for arithmetic), citing
  the table and/or the paragraphs it comes from. With ``tatqa_refusals`` (``assistant finetune
  --tatqa-refusals``; the shipped adapter was trained without), one in eight questions gets instead the table
  and paragraphs of the most similar *other* report that lacks a word or year the question turns on (another
  company's statement with the same headings, say) and must answer "The passages do not contain the answer."

Splits, fixed so training can never see a held-out item: MedQuAD files that ship as the sample collection
(data/samples/medical) are held out; PubMedQA test PMIDs are held out; TAT-QA reports in the first 80 % of
dev train, the last 20 % (where the finance sample comes from) are held out.
"""

from __future__ import annotations

import json
import random
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from core.citations import NO_ANSWER
from core.config import Settings
from core.errors import UserError
from generator.base import Message
from generator.prompt import SYSTEM_PROMPT, Passage, render_passage, user_message

Split = Literal["train", "heldout"]
REPO = Path(__file__).resolve().parent.parent
SAMPLE_MEDQUAD = REPO / "data" / "samples" / "medical" / "medquad"
TATQA_TRAIN_SHARE = 0.8
PASSAGE_WORDS = 90  # passages are cut at a sentence boundary near this length: short examples train faster
ANSWER_WORDS = 50
UNANSWERABLE_EVERY = 8
# Answers that only point elsewhere (GARD's symptom tables, which MedQuAD leaves out; GHR's link lists):
# nothing to learn from.
BOILERPLATE = ("Human Phenotype Ontology", "These resources address the diagnosis or management")


@dataclass(frozen=True)
class Example:
    id: str  # "medquad:<folder>/<qid>", "pubmedqa:<pmid>", "tatqa:<question uid>"
    source: str  # medquad | pubmedqa | tatqa
    domain: str  # medical | finance
    question: str
    passages: tuple[Passage, ...]
    answer: str  # the target, with [n] citations
    reference: str  # the answer without citations, for token F1
    gold: tuple[int, ...]  # 1-based numbers of the passages holding the answer; () when none does

    def messages(self) -> list[Message]:
        rendered = [render_passage(n, p) for n, p in enumerate(self.passages, start=1)]
        return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user_message(self.question, rendered)}]


# --- text helpers ---------------------------------------------------------------------------------------

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\"'])")


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(" ".join(text.split())) if s.strip()]


def clip(text: str, words: int) -> str:
    """Whole sentences up to about ``words`` words (at least one sentence, itself cut if very long)."""
    out: list[str] = []
    for sentence in sentences(text):
        if out and len(" ".join(out + [sentence]).split()) > words:
            break
        out.append(sentence)
    clipped = " ".join(out)
    tokens = clipped.split()
    return clipped if len(tokens) <= words * 1.5 else " ".join(tokens[: int(words * 1.5)])


def cite(sentence: str, numbers: list[int]) -> str:
    """``sentence`` with its citation markers placed before the closing punctuation."""
    marks = "".join(f"[{n}]" for n in numbers)
    match = re.search(r"[.!?]+$", sentence)
    return f"{sentence[: match.start()]} {marks}{match.group(0)}" if match else f"{sentence} {marks}"


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


# --- MedQuAD ----------------------------------------------------------------------------------------------


def _medquad_files(root: Path, split: Split) -> list[Path]:
    held_out = {p.relative_to(SAMPLE_MEDQUAD) for p in SAMPLE_MEDQUAD.rglob("*.xml")} if SAMPLE_MEDQUAD.exists() else set()
    files = sorted(p for p in root.rglob("*.xml"))
    return [p for p in files if (p.relative_to(root) in held_out) == (split == "heldout")]


def medquad_examples(root: Path, split: Split, n: int, seed: int) -> list[Example]:
    """``n`` examples from MedQuAD under ``root``; distractors come from BM25 over a pool of answers."""
    from assistant import compose

    rng = random.Random(seed)
    files = _medquad_files(root, split)
    if not files:
        raise UserError(f"no MedQuAD XML files for the {split} split under {root}")
    pool = files if split == "heldout" else rng.sample(files, min(len(files), max(60, n)))
    settings = Settings(
        embedder={"model": "hash:256"},  # BM25 only: the hash vectors are never queried
        chunking={"chunk_tokens": PASSAGE_WORDS, "overlap_tokens": 0, "embed_title": False},
        retrieval={"mode": "bm25", "min_relevance": -1},
    )
    with tempfile.TemporaryDirectory(prefix="trainset-") as tmp:
        hashed = compose.embedder(settings)
        ingestor = compose.ingestor(settings, Path(tmp) / "pool", hashed, progress=False)
        with ingestor.collection as store:
            ingestor.ingest(pool)
            docs = store.db.execute("SELECT d.id, d.title, d.metadata, d.source FROM documents d").fetchall()
            first_chunk = dict(
                store.db.execute("SELECT d.id, c.text FROM chunks c JOIN documents d ON d.pk = c.doc_pk WHERE c.ordinal = 0").fetchall()
            )
            retriever = compose.retriever(settings, store, hashed)
            rng.shuffle(docs)
            examples: list[Example] = []
            for doc_id, title, metadata, source in docs:
                if len(examples) >= n:
                    break
                gold_text = first_chunk.get(doc_id, "")
                # An answer that restates the question opens with it; the restatement answers nothing.
                answer_sentences = [s for s in sentences(clip(gold_text, ANSWER_WORDS)) if not s.endswith("?")]
                if (
                    not title.endswith("?")
                    or not answer_sentences
                    or len(gold_text.split()) < 12
                    or any(b in gold_text for b in BOILERPLATE)
                ):
                    continue
                hits = retriever.search(title, 12).hits
                # Not the gold answer, nor another copy of it (MedQuAD repeats some questions across sources).
                distractors = [h for h in hits if h.document_id != doc_id and h.title.lower() != title.lower()]
                distractors = list({h.document_id: h for h in distractors}.values())[:2]
                if len(distractors) < 2:
                    continue
                # MedQuAD numbers its pairs per source folder, so the folder makes the id unique.
                qid = f"{Path(source).parent.name}/{json.loads(metadata or '{}').get('qid') or doc_id}"
                passages = [Passage(h.title, clip(h.text, PASSAGE_WORDS)) for h in distractors]
                if len(examples) % UNANSWERABLE_EVERY == UNANSWERABLE_EVERY - 1:
                    examples.append(Example(f"medquad:{qid}", "medquad", "medical", title, tuple(passages), NO_ANSWER, NO_ANSWER, ()))
                    continue
                slot = rng.randrange(3)
                passages.insert(slot, Passage(title, clip(gold_text, PASSAGE_WORDS)))
                answer = " ".join(cite(s, [slot + 1]) for s in answer_sentences)
                examples.append(
                    Example(f"medquad:{qid}", "medquad", "medical", title, tuple(passages), answer, " ".join(answer_sentences), (slot + 1,))
                )
    return examples


# --- PubMedQA ---------------------------------------------------------------------------------------------


def pubmedqa_examples(root: Path, split: Split, n: int, seed: int) -> list[Example]:
    data = json.loads((root / "ori_pqal.json").read_text())
    test = set(json.loads((root / "test_ground_truth.json").read_text()))
    pmids = sorted(p for p in data if (p in test) == (split == "heldout"))
    random.Random(seed).shuffle(pmids)
    examples = []
    for pmid in pmids:
        if len(examples) >= n:
            break
        item = data[pmid]
        contexts = [clip(c, PASSAGE_WORDS) for c in item["CONTEXTS"][:3]]
        labels = [str(label).title() for label in item.get("LABELS", [])][:3]
        passages = tuple(Passage(f"{labels[i] if i < len(labels) else 'Abstract'} (PMID {pmid})", c) for i, c in enumerate(contexts))
        reference = " ".join(sentences(item["LONG_ANSWER"])[:2])
        if not passages or not reference:
            continue
        cited = []
        for sentence in sentences(reference):
            overlap = [len(_words(sentence) & _words(p.text)) for p in passages]
            cited.append(cite(sentence, [overlap.index(max(overlap)) + 1]))
        gold = tuple(sorted({int(m) for m in re.findall(r"\[(\d+)\]", " ".join(cited))}))
        examples.append(Example(f"pubmedqa:{pmid}", "pubmedqa", "medical", item["QUESTION"], passages, " ".join(cited), reference, gold))
    return examples


# --- TAT-QA -----------------------------------------------------------------------------------------------

_SCALE = {"thousand": " thousand", "million": " million", "billion": " billion", "percent": "%", "": ""}


def _tatqa_answer(question: dict) -> str:
    answer = question["answer"]
    value = ", ".join(str(a) for a in answer) if isinstance(answer, list) else str(answer)
    value += _SCALE.get(question.get("scale") or "", "")
    if question.get("answer_type") == "arithmetic" and question.get("derivation"):
        return f"{question['derivation']} = {value}"
    return value


def _turning_words(question: str, report_text: str) -> set[str]:
    """The words of the question's key terms (the answerability check's: years included) its own report
    holds: what an answer turns on."""
    from retriever.answerability import key_terms

    words = {w for term in key_terms(question) for w in re.findall(r"[a-z0-9]+", term.key)}
    return words & _words(report_text)


def _report_text(report: dict) -> str:
    cells = " ".join(str(c) for row in report["table"]["table"] for c in row)
    return cells + " " + " ".join(p["text"] for p in report["paragraphs"])


def _unanswering_report(question: str, own: dict, reports: list[dict], texts: dict[str, set[str]]) -> dict | None:
    """The report most like the question (most of its words) that lacks one it turns on, or None."""
    turning = _turning_words(question, _report_text(own))
    best, best_overlap = None, 0
    for report in reports:
        uid = report["table"]["uid"]
        if uid == own["table"]["uid"] or turning <= texts[uid]:
            continue
        overlap = len(turning & texts[uid])
        if overlap > best_overlap:
            best, best_overlap = report, overlap
    return best


def _report_passages(report: dict, paragraph_orders: list[str], rng: random.Random) -> list[tuple[str, Passage]]:
    from ingest.loaders.grid import read_grid

    short = str(report["table"]["uid"])[:8]
    paragraphs = {str(p["order"]): p["text"] for p in report["paragraphs"]}
    items = [("table", Passage(f"Report {short} table", read_grid(report["table"]["table"])[0]))]
    items += [(o, Passage(f"Report {short} paragraph {o}", paragraphs[o])) for o in paragraph_orders if o in paragraphs]
    rng.shuffle(items)
    return items


def tatqa_examples(path: Path, split: Split, n: int, seed: int, refusals: bool = False) -> list[Example]:
    """``n`` examples from the TAT-QA reports of ``split``; with ``refusals``, one in eight is a refusal
    shown a neighbouring report's passages (see the module's docstring)."""
    reports = json.loads(path.read_text())
    cut = int(len(reports) * TATQA_TRAIN_SHARE)
    reports = reports[:cut] if split == "train" else reports[cut:]
    texts = {r["table"]["uid"]: _words(_report_text(r)) for r in reports}
    rng = random.Random(seed)
    candidates = [(r, q) for r in reports for q in r["questions"]]
    rng.shuffle(candidates)
    examples: list[Example] = []
    for report, question in candidates:
        if len(examples) >= n:
            break
        # One in eight, where a neighbouring report lacks what it turns on: that report's passages, a refusal.
        # In-domain and realistic: the same kind of table from another company, not a random passage.
        refusal_turn = refusals and len(examples) % UNANSWERABLE_EVERY == UNANSWERABLE_EVERY - 1
        other = _unanswering_report(question["question"], report, reports, texts) if refusal_turn else None
        if other is not None:
            asked = _words(question["question"])
            closest = sorted(other["paragraphs"], key=lambda p: -len(asked & _words(p["text"])))[:2]
            items = _report_passages(other, [str(p["order"]) for p in closest], rng)
            answer, reference, gold = NO_ANSWER, NO_ANSWER, []
        else:
            paragraphs = {str(p["order"]): p["text"] for p in report["paragraphs"]}
            related = [o for o in question.get("rel_paragraphs", []) if o in paragraphs][:2]
            others = [o for o in paragraphs if o not in related]
            items = _report_passages(report, related + rng.sample(others, min(1, len(others))), rng)
            number = {key: i for i, (key, _) in enumerate(items, start=1)}
            source = question.get("answer_from")
            gold = ([number["table"]] if source in ("table", "table-text") else []) + (
                [number[o] for o in related] if source in ("text", "table-text") else []
            )
            if not gold:
                continue
            reference = _tatqa_answer(question)
            answer = cite(reference, sorted(gold))
        passages = tuple(p for _, p in items)
        examples.append(
            Example(f"tatqa:{question['uid']}", "tatqa", "finance", question["question"], passages, answer, reference, tuple(sorted(gold)))
        )
    return examples


def build_examples(
    data_dir: Path, split: Split, *, medquad: int, pubmedqa: int, tatqa: int, seed: int = 0, tatqa_refusals: bool = False
) -> list[Example]:
    """Examples from ``data_dir`` (the shared data folder), in a seeded random order."""
    paths = {"medquad": data_dir / "medquad", "pubmedqa": data_dir / "pubmedqa", "tatqa": data_dir / "tatqa" / "tatqa_dataset_dev.json"}
    for name, count in (("medquad", medquad), ("pubmedqa", pubmedqa), ("tatqa", tatqa)):
        if count and not paths[name].exists():
            raise UserError(f"{paths[name]} not found: point --data at the shared data folder (it holds medquad/, pubmedqa/, tatqa/)")
    examples = []
    if medquad:
        examples += medquad_examples(paths["medquad"], split, medquad, seed)
    if pubmedqa:
        examples += pubmedqa_examples(paths["pubmedqa"], split, pubmedqa, seed)
    if tatqa:
        examples += tatqa_examples(paths["tatqa"], split, tatqa, seed, refusals=tatqa_refusals)
    random.Random(seed).shuffle(examples)
    return examples
