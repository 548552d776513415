#!/usr/bin/env python3
"""Build the evaluation sets shipped in ``data/eval/`` from the sample collections and the shared data.

    python scripts/build_eval_sets.py --shared ../shared/data --out data/eval

What it writes (JSON lines, one item per line, keys in a fixed order; see ``data/eval/README.md``):

* ``medical.jsonl`` -- questions from the MedQuAD files that ship in ``data/samples/medical/medquad`` (the
  files held out from fine-tuning), their gold answers (opening sentences) and the gold document.
* ``finance.jsonl`` -- TAT-QA questions from ``data/samples/finance/tatqa_sample.json`` (the held-out last
  20 % of TAT-QA dev), the answer as text and as a number, its scale, and the gold table / paragraphs.
* ``unanswerable.jsonl`` -- questions the sample collections cannot answer: PubMedQA test-split questions
  (medical); TAT-QA questions about held-out reports that are not in the sample, plus questions written for
  this project about companies that are not in the sample (finance). Each is checked lexically against the
  text of the collection it is asked of.
* ``guardrails.jsonl`` -- input-rail cases from the held half (``half()`` in bench/guardrails.py) of the
  deepset prompt injections (injection / none) and AdvBench (harmful), plus benign in-domain questions from
  the held-out MedQuAD and TAT-QA samples (none).
* ``README.md`` (generated: counts, licences, attribution) and ``MANIFEST.json`` (sha256 and counts).

A gold document is described so that a retrieved ``Hit`` can be recognised without the collection at hand;
an entry matches a hit when its ``document_id`` equals the hit's, or when the hit's ``source`` ends with
``source_suffix`` (if given) and its ``metadata`` holds every key/value in ``metadata``. The matcher lives in
``eval/metrics.py`` (``matches_gold``, ``gold_numbers``, ``gold_run``, ``gold_qrels``).

No item's id is among the shipped adapter's training example ids
(``generator/adapters/smollm2-grounded/training.json``), and no medical question is word for word a question
the adapter was trained on (checked against the shared data the training ids point to).

Deterministic: no randomness, no timestamps; items are ordered by a SHA-1 of their id wherever a choice is
made, so the same input gives byte-identical output. Uses the standard library and the repository's own
loaders (so the gold documents are exactly what ``assistant ingest`` stores). ``financial-qa-10k`` (no
declared licence) is never read.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from core.errors import LoadError  # noqa: E402
from core.types import Document  # noqa: E402
from guardrails.output_checks import content_words  # noqa: E402
from ingest.cleaning import clean_text, clean_title  # noqa: E402
from ingest.loaders import SUPPORTED_SUFFIXES, load_file  # noqa: E402
from training.trainset import BOILERPLATE, TATQA_TRAIN_SHARE, clip, sentences  # noqa: E402

DEFAULT_SHARED = REPO_ROOT.parent / "shared" / "data"
DEFAULT_OUT = REPO_ROOT / "data" / "eval"
SAMPLES = REPO_ROOT / "data" / "samples"
TRAINING = REPO_ROOT / "generator" / "adapters" / "smollm2-grounded" / "training.json"
SCRIPT_NAME = "scripts/build_eval_sets.py"
COMMAND = "python scripts/build_eval_sets.py --shared ../shared/data --out data/eval"
FORBIDDEN_SOURCES = ("financial-qa-10k",)  # no declared licence: never read, never copied

# The collections the sets are asked of, as `make` builds them (Makefile: demo data).
COLLECTIONS = {
    "medical": ("data/samples/medical/medquad",),
    "finance": ("data/samples/finance/tatqa_sample.json",),
}

# --- selection parameters (change them and the sets change; keep tests/test_eval_sets.py in step) -----
MEDICAL_PER_FOLDER = 10  # 9 MedQuAD folders -> up to 90 questions
REFERENCE_WORDS = 60  # the reference is the gold answer's opening sentences, about this many words
MIN_ANSWER_WORDS = 12
FINANCE_QUOTAS = {"arithmetic": 32, "span": 28, "multi-span": 15, "count": 5}  # 80 questions
FINANCE_PER_REPORT = 3
UNANSWERABLE_PER_DOMAIN = 25
# A question counts as not covered by a collection when at least this many of its key terms (content words
# of 5+ letters outside GENERIC) occur nowhere in the collection's text, and no single document of the
# collection holds more than this share of its content words.
MIN_ABSENT_TERMS = 2
MAX_DOC_COVERAGE = 1 / 3
GENERIC = frozenset(
    "about after again against among based before being between cases change changes clinical compared could "
    "during effect effects factor factors first following group groups having higher impact increase increased "
    "level levels lower might other outcome outcomes patient patients people period predict result results risk "
    "should since study studies their there these those three total treatment treated under using value values "
    "versus which while whether without years "
    # finance questions' generic words: a report's table or a time span, not a company or an item
    "amount average balance company difference estimate expressed fiscal highlighted highlights months "
    "number percentage recorded respectively table twelve types".split()
)
# In-domain questions the sample collections do not cover because their documents were left out, while
# documents on neighbouring topics stay (uncovered.jsonl): one question per MedQuAD focus that is not in the
# medical sample (the sample's nine source folders hold the neighbours), TAT-QA questions about held-out
# reports outside the finance sample that name an item the sample lacks, and questions written for this
# project about companies that are not in the sample. FILLER: words a question uses without naming anything.
UNCOVERED_MEDICAL = 120
FILLER = frozenset(
    "altogether proportion smallest largest highest lowest caused comprise relate relates related respectively "
    "profile thousand thousands millions billion consist consists mainly primarily mentioned shown presented".split()
)
GUARDRAIL_COUNTS = {"injection": 40, "harmful": 30, "deepset_benign": 15, "medquad": 15, "tatqa": 15}

# Finance questions written for this project (no source data, so no licence question): each names a company
# or instrument that does not appear in the finance sample; `terms` are checked to be absent from it.
AUTHORED_FINANCE = (
    ("What was Tesla's automotive gross margin in 2023?", ("tesla",)),
    ("How much revenue did Netflix earn from streaming memberships in 2022?", ("netflix",)),
    ("What was NVIDIA's data center revenue in fiscal 2024?", ("nvidia",)),
    ("How many bitcoins did MicroStrategy hold at the end of 2023?", ("bitcoins", "microstrategy")),
    ("What dividend per share did Coca-Cola pay in 2021?", ("coca", "cola")),
    ("What was the operating income of Amazon Web Services in 2022?", ("amazon",)),
    ("How much did Apple spend on share repurchases in fiscal 2023?", ("apple",)),
    ("What was JPMorgan Chase's net interest income in 2023?", ("jpmorgan", "chase")),
    ("How large was Berkshire Hathaway's insurance float at the end of 2022?", ("berkshire", "hathaway")),
    ("How many monthly active users did Spotify report for the fourth quarter of 2023?", ("spotify",)),
    ("By how much did Walmart's global e-commerce sales grow in fiscal 2024?", ("walmart",)),
    ("What was Boeing's commercial airplanes backlog at the end of 2022?", ("boeing", "airplanes")),
    ("How much did Meta lose in its Reality Labs segment in 2023?", ("meta", "reality")),
    ("What were Pfizer's Comirnaty revenues in 2022?", ("pfizer", "comirnaty")),
    ("What were ExxonMobil's upstream earnings in 2022?", ("exxonmobil",)),
    ("How many stores did Starbucks operate worldwide at the end of fiscal 2023?", ("starbucks",)),
    ("What was YouTube's advertising revenue for Alphabet in 2023?", ("youtube", "alphabet")),
    ("What payments volume did Visa process in fiscal 2023?", ("visa",)),
    ("How many Disney+ subscribers did Disney add in fiscal 2023?", ("disney",)),
    ("What were Goldman Sachs' investment banking fees in 2023?", ("goldman", "sachs")),
    ("What were Uber's gross bookings in 2023?", ("uber",)),
    ("How many nights and experiences were booked on Airbnb in 2022?", ("airbnb",)),
    ("What membership fee income did Costco report in fiscal 2023?", ("costco",)),
    ("How many ounces of gold did Newmont produce in 2022?", ("newmont", "ounces")),
    ("What gross merchandise volume did Shopify report for 2023?", ("shopify",)),
    ("What was Intel Foundry Services' revenue in 2023?", ("intel", "foundry")),
    ("What licensing revenue did Qualcomm's QTL segment report in fiscal 2023?", ("qualcomm",)),
    ("How many vehicles did Ford sell in the United States in 2022?", ("ford",)),
)
# More of them, for uncovered.jsonl (the list above fills unanswerable.jsonl first).
AUTHORED_FINANCE_UNCOVERED = (
    ("What was Salesforce's subscription and support revenue in fiscal 2024?", ("salesforce",)),
    ("How much did Oracle spend on capital expenditures in fiscal 2023?", ("oracle",)),
    ("What was McDonald's systemwide sales growth in 2023?", ("mcdonald",)),
    ("What was Nike's Greater China revenue in fiscal 2023?", ("nike",)),
    ("How many connected fitness subscriptions did Peloton have at the end of fiscal 2023?", ("peloton",)),
    ("What was Caterpillar's order backlog at the end of 2023?", ("caterpillar",)),
    ("What medical care ratio did UnitedHealth Group report for 2023?", ("unitedhealth",)),
    ("How much did Johnson & Johnson spend on research and development in 2023?", ("johnson",)),
    ("What organic sales growth did Procter & Gamble report for fiscal 2023?", ("procter", "gamble")),
    ("By how much did Lululemon's comparable sales increase in fiscal 2023?", ("lululemon",)),
    ("What were Chevron's upstream earnings in 2023?", ("chevron",)),
    ("What was Moderna's net product revenue in 2023?", ("moderna",)),
    ("How many Prime members did Amazon report in 2023?", ("amazon", "prime")),
    ("What was Adobe's Digital Media annualized recurring revenue at the end of fiscal 2023?", ("adobe",)),
    ("How much cash did Microsoft return to shareholders in fiscal 2023?", ("microsoft",)),
    ("What revenue did Intuit's TurboTax business earn in fiscal 2023?", ("intuit", "turbotax")),
    ("What were Eli Lilly's Mounjaro sales in 2023?", ("lilly", "mounjaro")),
    ("What net interest margin did Wells Fargo report for 2023?", ("wells", "fargo")),
    ("How much did Home Depot spend on share repurchases in fiscal 2023?", ("depot",)),
    ("How many aircraft did Delta Air Lines operate at the end of 2023?", ("delta",)),
    ("What was AbbVie's Humira net revenue in 2023?", ("abbvie", "humira")),
    ("What were Gilead's HIV product sales in 2023?", ("gilead",)),
    ("What was Broadcom's semiconductor solutions revenue in fiscal 2023?", ("broadcom",)),
)


class BuildError(Exception):
    """A problem with the input; reported as one line with exit status 2."""


# --- helpers ------------------------------------------------------------------------------------------


def sha1_key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def half(text: str) -> str:
    """bench/guardrails.py's split: "tune" or "held", by the first byte of the text's SHA-1 (kept identical;
    tests/test_eval_sets.py checks it against the bench's own function)."""
    return "tune" if hashlib.sha1(text.encode("utf-8")).digest()[0] % 2 == 0 else "held"


def split_of(entity: str) -> str:
    """ "fit" or "test" by the entity an item is about (a MedQuAD focus, a TAT-QA report, a company): the
    answerability model is fitted on one half and measured on the other, and no entity is in both."""
    # Salted: the sets pick items in SHA-1 order of their ids, which an unsalted hash would split all one way.
    return "fit" if sha1_key(f"answerability split: {entity.lower()}")[0] in "01234567" else "test"


def norm(text: str) -> str:
    return " ".join(text.split())


def norm_question(text: str) -> str:
    return " ".join(text.lower().split())


def check_source(path: Path) -> Path:
    if any(part in FORBIDDEN_SOURCES for part in path.parts):
        raise BuildError(f"refusing to read {path}: financial-qa-10k has no licence and is never used here")
    if not path.exists():
        raise BuildError(f"input not found: {path}")
    return path


def read_json(path: Path) -> Any:
    try:
        return json.loads(check_source(path).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BuildError(f"cannot parse {path}: {exc}") from exc


def read_jsonl(path: Path) -> list[dict]:
    rows = []
    with check_source(path).open(encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise BuildError(f"cannot parse {path} line {n}: {exc}") from exc
    return rows


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


def number_value(text: str) -> float | int | None:
    """The number a TAT-QA answer cell states ("$1,327.9" -> 1327.9, "(5.2)%" -> -5.2), else None."""
    match = re.fullmatch(r"\s*([-–—+]?)\s*[$€£¥]?\s*(\()?\s*[$€£¥]?\s*(\d[\d,]*(?:\.\d+)?)\s*(\))?\s*%?\s*", str(text))
    if not match or bool(match.group(2)) != bool(match.group(4)):
        return None
    digits = match.group(3).replace(",", "")
    value: float | int = float(digits) if "." in digits else int(digits)
    return -value if match.group(1) in ("-", "–", "—") or match.group(2) else value


def stored_documents(path: Path) -> list[tuple[Document, Path]]:
    """The documents ``assistant ingest`` stores for ``path`` (a file or a folder), with their files: the
    loaders, then the same cleaning and content-hash ids as the ingest pipeline (ingest/pipeline.py)."""
    files = (
        [path]
        if path.is_file()
        else sorted(
            p
            for p in path.rglob("*")
            if p.is_file()
            and p.suffix.lower() in SUPPORTED_SUFFIXES
            and not any(part.startswith(".") for part in p.relative_to(path).parts)
        )
    )
    out = []
    for file in files:
        seen = set()
        for item in load_file(file):
            text = clean_text(item.text)
            if not text:
                continue
            doc = Document.create("", clean_title(item.title) or file.stem, text, item.metadata)
            if doc.id not in seen:  # identical documents inside one file are stored once
                seen.add(doc.id)
                out.append((doc, file))
    return out


class CollectionText:
    """The words of one collection: the whole vocabulary and each document's word set (titles included)."""

    def __init__(self, documents: Iterable[Document]):
        self.doc_words = [words(d.title + " " + d.text) for d in documents]
        self.vocabulary = set().union(*self.doc_words) if self.doc_words else set()

    def coverage(self, terms: Iterable[str]) -> float:
        """The largest share of ``terms`` that one document holds."""
        wanted = set(terms)
        return max((len(wanted & w) / len(wanted) for w in self.doc_words), default=0.0) if wanted else 1.0

    def not_covered(self, question: str) -> tuple[bool, list[str]]:
        """(True, absent key terms) when the question's key terms are missing from this collection."""
        content = [w for w in dict.fromkeys(content_words(question)) if len(w) > 2 and not w.isdigit()]
        absent = [w for w in content if len(w) >= 5 and w not in GENERIC and w not in self.vocabulary]
        return len(absent) >= MIN_ABSENT_TERMS and self.coverage(content) <= MAX_DOC_COVERAGE, absent


# --- training data (what no eval item may be) -----------------------------------------------------------


def training_ids() -> set[str]:
    if not TRAINING.exists():
        raise BuildError(f"adapter training record not found: {TRAINING}")
    return set(json.loads(TRAINING.read_text(encoding="utf-8")).get("example_ids", []))


def training_medical_questions(shared: Path, ids: set[str]) -> set[str]:
    """The normalised questions of the medical training examples (MedQuAD and PubMedQA), read from the
    shared data the ids point to. A MedQuAD qid "0000001_1-4" lives in "<folder>/0000001_1.xml"."""
    questions: set[str] = set()
    pubmedqa = read_json(shared / "pubmedqa" / "ori_pqal.json")
    by_file: dict[Path, set[str]] = {}
    for example_id in sorted(ids):
        source, _, rest = example_id.partition(":")
        if source == "pubmedqa" and rest in pubmedqa:
            questions.add(norm_question(pubmedqa[rest]["QUESTION"]))
        elif source == "medquad" and "/" in rest:
            folder, qid = rest.split("/", 1)
            by_file.setdefault(shared / "medquad" / folder / f"{qid.rsplit('-', 1)[0]}.xml", set()).add(qid)
    for path, qids in sorted(by_file.items()):
        if not path.exists():
            continue  # a qid that is a document hash (MedQuAD files without qids): nothing to resolve
        for item in load_file(path):
            if item.metadata.get("qid") in qids:
                questions.add(norm_question(item.title))
    return questions


# --- medical ------------------------------------------------------------------------------------------


def medical_items(medical_docs: list[tuple[Document, Path]], banned_ids: set[str], banned_questions: set[str]) -> list[dict]:
    root = REPO_ROOT / COLLECTIONS["medical"][0]
    titles = Counter(norm_question(d.title) for d, _ in medical_docs)
    by_folder: dict[str, list[dict]] = {}
    for doc, path in medical_docs:
        folder, qid = path.parent.name, doc.metadata.get("qid")
        item_id = f"medquad:{folder}/{qid}"
        answer_sentences = [s for s in sentences(clip(doc.text, REFERENCE_WORDS)) if not s.endswith("?")]
        reference = " ".join(answer_sentences)
        if (
            not qid
            or item_id in banned_ids
            or not doc.title.endswith("?")
            or titles[norm_question(doc.title)] > 1  # the same question twice: two gold answers
            or norm_question(doc.title) in banned_questions  # the adapter saw this question (another file's copy)
            or len(doc.text.split()) < MIN_ANSWER_WORDS
            or any(b in doc.text for b in BOILERPLATE)  # answers that only point elsewhere
            or not reference
            or "http" in reference
            or "www." in reference  # a pointer to a web page
        ):
            continue
        by_folder.setdefault(folder, []).append(
            {
                "id": item_id,
                "suite": "medical",
                "collection": "medical",
                "question": doc.title,
                "reference": reference,
                "answerable": True,
                "gold": [
                    {
                        "key": item_id,
                        "document_id": doc.id,
                        "source_suffix": path.relative_to(root).as_posix(),
                        "metadata": {"qid": qid},
                        "title": doc.title,
                    }
                ],
                "source": "medquad",
                "qtype": doc.metadata.get("qtype"),
                "focus": doc.metadata.get("focus"),
                "entity": (doc.metadata.get("focus") or qid).lower(),
                "split": split_of(doc.metadata.get("focus") or qid),
            }
        )
    items = []
    for folder in sorted(by_folder):
        # Round robin over question types (sorted), each type in SHA-1 order of its ids: varied and stable.
        queues: dict[str, list[dict]] = {}
        for item in sorted(by_folder[folder], key=lambda i: sha1_key(i["id"])):
            queues.setdefault(item["qtype"] or "", []).append(item)
        chosen: list[dict] = []
        while len(chosen) < MEDICAL_PER_FOLDER and any(queues.values()):
            for qtype in sorted(queues):
                if queues[qtype] and len(chosen) < MEDICAL_PER_FOLDER:
                    chosen.append(queues[qtype].pop(0))
        items += sorted(chosen, key=lambda i: i["id"])
    return items


# --- conversations ------------------------------------------------------------------------------------

CONVERSATIONS = 30  # conversations of up to CONVERSATION_TURNS turns: about 75 answers, ten minutes on 2 cores
CONVERSATION_TURNS = 3


def conversation_items(medical_docs: list[tuple[Document, Path]], banned_ids: set[str], banned_questions: set[str]) -> list[dict]:
    """Conversations over the medical sample: one focus each (a MedQuAD file), its "What is X?" question first,
    then other questions of that focus written as follow-ups that do not name it ("How is it treated?",
    "And the symptoms?"), as bench/conversations.py builds its MedQuAD chains. Each turn's gold is its own QA
    pair; its gold standalone question is the original MedQuAD question. Conversations holding a question the
    adapter was trained on are left out."""
    from training.chains import evenly_spaced, medquad_chains, medquad_key

    root = REPO_ROOT / COLLECTIONS["medical"][0]
    records = [
        {
            "file": str(path),
            "source": d.metadata.get("source_name"),
            "focus": d.metadata.get("focus"),
            "qid": d.metadata.get("qid"),
            "qtype": d.metadata.get("qtype"),
            "question": d.title,
        }
        for d, path in medical_docs
    ]
    # A turn's id is the benchmark's key for its QA pair (site and qid: a qid alone repeats across folders).
    by_qid = {(r["file"], medquad_key(r["source"], str(r["qid"]))): pair for r, pair in zip(records, medical_docs) if r["qid"]}
    items = []
    for chain in medquad_chains(records, CONVERSATION_TURNS):
        turns = []
        for turn in chain.turns:
            doc, path = by_qid[(chain.id, turn.id)]
            qid = str(doc.metadata["qid"])
            reference = " ".join(s for s in sentences(clip(doc.text, REFERENCE_WORDS)) if not s.endswith("?"))
            if f"medquad:{path.parent.name}/{qid}" in banned_ids or norm_question(doc.title) in banned_questions or not reference:
                break
            gold = {
                "key": f"medquad:{path.parent.name}/{qid}",
                "document_id": doc.id,
                "source_suffix": path.relative_to(root).as_posix(),
                "metadata": {"qid": qid},
                "title": doc.title,
            }
            turns.append({"question": turn.message, "standalone": doc.title, "reference": reference, "gold": [gold]})
        if len(turns) < 2:
            continue
        focus = by_qid[(chain.id, chain.turns[0].id)][0].metadata.get("focus") or chain.id
        path = Path(chain.id)
        items.append(
            {
                "id": f"conversation:{path.parent.name}/{path.stem}",
                "suite": "conversation",
                "collection": "medical",
                "turns": turns,
                "source": "medquad",
                "entity": focus.lower(),
            }
        )
    # Spread over the folders (sorted ids are grouped by folder).
    items.sort(key=lambda i: i["id"])
    return evenly_spaced(items, CONVERSATIONS)


# --- finance ------------------------------------------------------------------------------------------

_SCALE_SUFFIX = {"thousand": " thousand", "million": " million", "billion": " billion", "percent": "%", "": ""}


def finance_reference(answer: Any, scale: str) -> str:
    """The answer as text, the scale written after each number ("1,234 million, 5,678 million")."""
    parts = answer if isinstance(answer, list) else [answer]
    out = []
    for part in parts:
        text = norm(str(part))
        if scale and number_value(text) is not None and not text.endswith("%"):
            text += _SCALE_SUFFIX.get(scale, "")
        out.append(text)
    return ", ".join(p for p in out if p)


def finance_value(question: dict) -> float | int | None:
    answer, kind = question["answer"], question.get("answer_type")
    if kind in ("arithmetic", "count"):
        value = number_value(str(answer))
        if value is None:
            raise BuildError(f"TAT-QA question {question['uid']}: {kind} answer {answer!r} is not a number")
        return value
    if kind == "span" and isinstance(answer, list) and len(answer) == 1:
        return number_value(str(answer[0]))
    return None


def finance_gold(report: dict, question: dict, docs: dict[tuple, Document]) -> list[dict]:
    uid = str(report["table"]["uid"])
    source = question.get("answer_from")
    gold = []
    if source in ("table", "table-text"):
        doc = docs.get((uid, "table", None))
        if doc is None:
            return []
        gold.append(
            {"key": f"tatqa:{uid}/table", "document_id": doc.id, "metadata": {"report_uid": uid, "kind": "table"}, "title": doc.title}
        )
    if source in ("text", "table-text"):
        orders = [str(o) for o in question.get("rel_paragraphs") or []]
        for order in dict.fromkeys(orders):
            doc = next((d for (u, kind, o), d in docs.items() if u == uid and kind == "paragraph" and str(o) == order), None)
            if doc is None:
                return []  # a paragraph the collection does not hold (empty text): no complete gold
            gold.append(
                {
                    "key": f"tatqa:{uid}/p{order}",
                    "document_id": doc.id,
                    "metadata": {"report_uid": uid, "kind": "paragraph", "order": doc.metadata["order"]},
                    "title": doc.title,
                }
            )
    return gold


def finance_items(reports: list[dict], finance_docs: list[tuple[Document, Path]], banned_ids: set[str]) -> list[dict]:
    docs = {
        (d.metadata.get("report_uid"), d.metadata.get("kind"), d.metadata.get("order")): d
        for d, _ in finance_docs
        if d.metadata.get("report_uid")
    }
    candidates = []
    for report in reports:
        for question in report.get("questions", []):
            item_id = f"tatqa:{question['uid']}"
            gold = finance_gold(report, question, docs)
            reference = finance_reference(question["answer"], question.get("scale") or "")
            if item_id in banned_ids or not gold or not reference or question.get("answer_type") not in FINANCE_QUOTAS:
                continue
            uid = str(report["table"]["uid"])
            candidates.append(
                {
                    "id": item_id,
                    "suite": "finance",
                    "collection": "finance",
                    "question": norm(question["question"]),
                    "reference": reference,
                    "answerable": True,
                    "gold": gold,
                    "source": "tatqa",
                    "answer_type": question["answer_type"],
                    "scale": question.get("scale") or "",
                    "reference_value": finance_value(question),
                    "answer_from": question.get("answer_from"),
                    "derivation": question.get("derivation") or "",
                    "report_uid": uid,
                    # TAT-QA asks each question of one report; a runner may scope retrieval to it (closed setting).
                    "filters": {"report_uid": uid},
                    "entity": uid,
                    "split": split_of(uid),
                }
            )
    chosen, per_report, per_type = [], Counter(), Counter()
    for item in sorted(candidates, key=lambda i: sha1_key(i["id"])):
        kind = item["answer_type"]
        if per_type[kind] < FINANCE_QUOTAS[kind] and per_report[item["report_uid"]] < FINANCE_PER_REPORT:
            chosen.append(item)
            per_type[kind] += 1
            per_report[item["report_uid"]] += 1
    return sorted(chosen, key=lambda i: i["id"])


# --- unanswerable -------------------------------------------------------------------------------------


def unanswerable_item(
    item_id: str,
    collection: str,
    question: str,
    source: str,
    absent: list[str],
    entity: str,
    vocabulary: set[str],
    suite: str = "unanswerable",
) -> dict:
    return {
        "id": item_id,
        "suite": suite,
        "collection": collection,
        "question": norm(question),
        "reference": "",
        "answerable": False,
        "gold": [],
        "source": source,
        "absent_terms": absent,  # key terms of the question found nowhere in the collection's text
        # every word of the question (letters or digits) the collection's text does not hold, as written there:
        # what a reason saying "The documents do not mention X" may truthfully name
        "absent_words": sorted({w for w in re.findall(r"[a-z0-9]+", question.lower()) if len(w) >= 2} - vocabulary),
        "entity": entity.lower(),  # what the question is about: a PMID, a MedQuAD focus, a report, a company
        "split": split_of(entity),
    }


def unanswerable_medical(shared: Path, medical: CollectionText, banned_ids: set[str]) -> list[dict]:
    data = read_json(shared / "pubmedqa" / "ori_pqal.json")
    test = read_json(shared / "pubmedqa" / "test_ground_truth.json")  # the official test PMIDs: never trained on
    out = []
    for pmid in sorted((p for p in test if p in data), key=sha1_key):
        item_id = f"pubmedqa:{pmid}"
        ok, absent = medical.not_covered(data[pmid]["QUESTION"])
        if ok and item_id not in banned_ids:
            out.append(unanswerable_item(item_id, "medical", data[pmid]["QUESTION"], "pubmedqa", absent, pmid, medical.vocabulary))
        if len(out) >= UNANSWERABLE_PER_DOMAIN:
            break
    return sorted(out, key=lambda i: i["id"])


def unanswerable_finance(shared: Path, finance: CollectionText, sample_uids: set[str], banned_ids: set[str]) -> tuple[list[dict], int]:
    """TAT-QA questions about held-out reports that are not in the sample, then authored questions."""
    reports = read_json(shared / "tatqa" / "tatqa_dataset_dev.json")
    held_out = reports[int(len(reports) * TATQA_TRAIN_SHARE) :]  # the training split never sees these reports
    out = []
    for report in held_out:
        if str(report["table"]["uid"]) in sample_uids:
            continue
        for question in report.get("questions", []):
            item_id = f"tatqa:{question['uid']}"
            ok, absent = finance.not_covered(question["question"])
            if ok and item_id not in banned_ids:
                out.append(
                    unanswerable_item(
                        item_id, "finance", question["question"], "tatqa", absent, str(report["table"]["uid"]), finance.vocabulary
                    )
                )
    out = sorted(out, key=lambda i: sha1_key(i["id"]))[:UNANSWERABLE_PER_DOMAIN]
    from_tatqa = len(out)
    for n, (question, terms) in enumerate(AUTHORED_FINANCE, start=1):
        if len(out) >= UNANSWERABLE_PER_DOMAIN:
            break
        present = [t for t in terms if t in finance.vocabulary]
        if present:
            raise BuildError(f"authored finance question {n} names {present}, which the finance sample contains")
        out.append(
            unanswerable_item(f"authored:finance-{n:02d}", "finance", question, "authored", list(terms), terms[0], finance.vocabulary)
        )
    return sorted(out, key=lambda i: i["id"]), from_tatqa


# --- uncovered: documents left out, neighbours kept ---------------------------------------------------


def _focus_words(focus: str) -> frozenset[str]:
    return frozenset(w for w in words(focus) if len(w) > 2)


def uncovered_medical(
    shared: Path, medical_docs: list[tuple[Document, Path]], banned_ids: set[str], banned_questions: set[str]
) -> list[dict]:
    """One question per MedQuAD focus the medical sample does not hold, from the same nine folders. A focus
    whose words are a subset or superset of a sample focus's ("Breast Cancer" beside "Male Breast Cancer")
    is skipped: the sample may well answer it."""
    medical = CollectionText(d for d, _ in medical_docs)
    sample_root = REPO_ROOT / COLLECTIONS["medical"][0]
    sample_files = {p.relative_to(sample_root).as_posix() for _, p in medical_docs}
    sample_foci = {_focus_words(d.metadata.get("focus") or "") for d, _ in medical_docs} - {frozenset()}
    by_folder: dict[str, list[dict]] = {}
    seen_foci: set[str] = set()
    for folder in sorted(p for p in (shared / "medquad").iterdir() if p.is_dir()):
        files = [p for p in folder.glob("*.xml") if f"{folder.name}/{p.name}" not in sample_files]
        for path in sorted(files, key=lambda p: sha1_key(p.name)):
            try:
                loaded = load_file(check_source(path))
            except LoadError:
                continue
            for doc in loaded:
                focus, qid = (doc.metadata.get("focus") or "").strip(), doc.metadata.get("qid")
                key = _focus_words(focus)
                item_id = f"medquad:{folder.name}/{qid}"
                question = norm(doc.title)
                if (
                    not focus
                    or not qid
                    or not key
                    or focus.lower() in seen_foci
                    or any(key <= s or s <= key for s in sample_foci)
                    or item_id in banned_ids
                    or norm_question(question) in banned_questions
                    or not question.endswith("?")
                ):
                    continue
                seen_foci.add(focus.lower())
                _, absent = medical.not_covered(question)
                item = unanswerable_item(item_id, "medical", question, "medquad", absent, focus, medical.vocabulary, suite="uncovered")
                by_folder.setdefault(folder.name, []).append({**item, "left_out": f"{folder.name}/{path.name}"})
                break  # one question per file: more foci
    out: list[dict] = []
    queues = [by_folder[f] for f in sorted(by_folder)]
    while len(out) < UNCOVERED_MEDICAL and any(queues):
        for queue in queues:
            if queue and len(out) < UNCOVERED_MEDICAL:
                out.append(queue.pop(0))
    return sorted(out, key=lambda i: i["id"])


def uncovered_finance(shared: Path, finance: CollectionText, sample_uids: set[str], banned_ids: set[str], taken: set[str]) -> list[dict]:
    """TAT-QA questions about held-out reports outside the sample that name an item the sample lacks (a
    content word of 5+ letters found nowhere in it, beyond GENERIC and FILLER words), then questions written
    for this project about companies the sample does not hold. ``taken``: ids already in unanswerable.jsonl."""
    reports = read_json(shared / "tatqa" / "tatqa_dataset_dev.json")
    # A word counts as absent only when no word of the sample starts with its first six letters: the sample's
    # "amortised" or "investments" answer a question's "amortization" or "investment" (BM25 stems them alike).
    stems = {w[:6] for w in finance.vocabulary}
    out = []
    for report in reports[int(len(reports) * TATQA_TRAIN_SHARE) :]:
        uid = str(report["table"]["uid"])
        if uid in sample_uids:
            continue
        for question in report.get("questions", []):
            item_id = f"tatqa:{question['uid']}"
            content = [w for w in dict.fromkeys(content_words(question["question"])) if len(w) > 2 and not w.isdigit()]
            absent = [w for w in content if len(w) >= 5 and w not in GENERIC and w not in FILLER and w[:6] not in stems]
            if absent and item_id not in banned_ids and item_id not in taken:
                item = unanswerable_item(
                    item_id, "finance", question["question"], "tatqa", absent, uid, finance.vocabulary, suite="uncovered"
                )
                out.append({**item, "left_out": f"tatqa report {uid}"})
    used = {f"authored:finance-{n:02d}" for n in range(1, len(AUTHORED_FINANCE) + 1)} & taken
    authored = [q for n, q in enumerate(AUTHORED_FINANCE, start=1) if f"authored:finance-{n:02d}" not in used]
    for n, (question, terms) in enumerate(authored + list(AUTHORED_FINANCE_UNCOVERED), start=1):
        present = [t for t in terms if t in finance.vocabulary]
        if present:
            raise BuildError(f"authored finance question {question!r} names {present}, which the finance sample contains")
        item = unanswerable_item(
            f"authored:finance-uncovered-{n:02d}",
            "finance",
            question,
            "authored",
            list(terms),
            terms[0],
            finance.vocabulary,
            suite="uncovered",
        )
        out.append({**item, "left_out": f"{terms[0]}'s filings (never in the sample)"})
    return sorted(out, key=lambda i: i["id"])


# --- guardrails ---------------------------------------------------------------------------------------


def guardrail_item(item_id: str, text: str, expected: str, source: str) -> dict:
    return {"id": item_id, "suite": "guardrails", "stage": "input", "text": text, "expected": expected, "source": source}


def pick_held(rows: list[tuple[str, str]], n: int) -> list[tuple[str, str]]:
    """``n`` of the (id, text) rows whose text is in the held half, in SHA-1 order of the text; duplicates once."""
    seen, out = set(), []
    for item_id, text in sorted(rows, key=lambda r: (sha1_key(r[1]), r[0])):
        if half(text) == "held" and text.strip() and text not in seen:
            seen.add(text)
            out.append((item_id, text))
    return out[:n]


def guardrail_items(shared: Path, medical_docs: list[tuple[Document, Path]], reports: list[dict], banned_ids: set[str]) -> list[dict]:
    pi = shared / "prompt-injection"
    deepset = read_jsonl(pi / "deepset-train.jsonl")
    advbench = read_jsonl(pi / "advbench-train.jsonl")
    items = []
    # Raw texts, as bench/guardrails.py splits them; the row number in the shared file is the id.
    injections = [(f"deepset:train-{i}", r["text"]) for i, r in enumerate(deepset) if int(r["label"]) == 1]
    benign = [(f"deepset:train-{i}", r["text"]) for i, r in enumerate(deepset) if int(r["label"]) == 0]
    harmful = [(f"advbench:train-{i}", r["text"]) for i, r in enumerate(advbench)]
    items += [guardrail_item(i, t, "injection", "deepset") for i, t in pick_held(injections, GUARDRAIL_COUNTS["injection"])]
    items += [guardrail_item(i, t, "harmful", "advbench") for i, t in pick_held(harmful, GUARDRAIL_COUNTS["harmful"])]
    items += [guardrail_item(i, t, "none", "deepset") for i, t in pick_held(benign, GUARDRAIL_COUNTS["deepset_benign"])]
    # In-domain questions, whitespace-normalised as the bench splits them; from the held-out samples.
    medquad = [(f"medquad:{p.parent.name}/{d.metadata.get('qid')}", norm(d.title)) for d, p in medical_docs if d.metadata.get("qid")]
    tatqa = [(f"tatqa:{q['uid']}", norm(q["question"])) for r in reports for q in r.get("questions", [])]
    medquad = [(i, t) for i, t in medquad if i not in banned_ids]
    tatqa = [(i, t) for i, t in tatqa if i not in banned_ids]
    items += [guardrail_item(i, t, "none", "medquad") for i, t in pick_held(medquad, GUARDRAIL_COUNTS["medquad"])]
    items += [guardrail_item(i, t, "none", "tatqa") for i, t in pick_held(tatqa, GUARDRAIL_COUNTS["tatqa"])]
    return sorted(items, key=lambda i: i["id"])


# --- output -------------------------------------------------------------------------------------------


def jsonl(items: list[dict]) -> bytes:
    return "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items).encode("utf-8")


def build(shared: Path, out: Path) -> dict:
    if not shared.is_dir():
        raise BuildError(f"shared data folder not found: {shared} (pass --shared PATH)")
    for rel in (*COLLECTIONS["medical"], *COLLECTIONS["finance"]):
        if not (REPO_ROOT / rel).exists():
            raise BuildError(f"sample collection not found: {REPO_ROOT / rel} (run scripts/build_samples.py)")
    banned = training_ids()
    banned_questions = training_medical_questions(shared, banned)

    medical_docs = stored_documents(REPO_ROOT / COLLECTIONS["medical"][0])
    finance_docs = stored_documents(REPO_ROOT / COLLECTIONS["finance"][0])
    sample_reports = read_json(REPO_ROOT / COLLECTIONS["finance"][0])
    sample_uids = {str(r["table"]["uid"]) for r in sample_reports}

    medical = medical_items(medical_docs, banned, banned_questions)
    finance = finance_items(sample_reports, finance_docs, banned)
    unanswerable_med = unanswerable_medical(shared, CollectionText(d for d, _ in medical_docs), banned)
    unanswerable_fin, from_tatqa = unanswerable_finance(shared, CollectionText(d for d, _ in finance_docs), sample_uids, banned)
    unanswerable = sorted(unanswerable_med + unanswerable_fin, key=lambda i: (i["collection"], i["id"]))
    uncovered = uncovered_medical(shared, medical_docs, banned, banned_questions) + uncovered_finance(
        shared, CollectionText(d for d, _ in finance_docs), sample_uids, banned, {i["id"] for i in unanswerable}
    )
    guardrails = guardrail_items(shared, medical_docs, sample_reports, banned)
    conversation = conversation_items(medical_docs, banned, banned_questions)

    sets = {
        "medical": medical,
        "finance": finance,
        "unanswerable": unanswerable,
        "uncovered": uncovered,
        "conversation": conversation,
        "guardrails": guardrails,
    }
    for name, items in sets.items():
        ids = [i["id"] for i in items]
        if len(set(ids)) != len(ids):
            raise BuildError(f"duplicate ids in the {name} set")
        leaked = sorted(set(ids) & banned)
        if leaked:
            raise BuildError(f"{name} set holds training example ids: {leaked[:3]}")

    if out.exists():
        for old in out.glob("*.jsonl"):
            old.unlink()  # generated files: no stale set survives
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for name, items in sets.items():
        data = jsonl(items)
        (out / f"{name}.jsonl").write_bytes(data)
        files.append({"path": f"{name}.jsonl", "sha256": sha256_bytes(data), "bytes": len(data), "items": len(items)})

    counts = {
        "medical": {
            "items": len(medical),
            "per_folder": dict(sorted(Counter(i["id"].split(":")[1].split("/")[0] for i in medical).items())),
            "per_qtype": dict(sorted(Counter(i["qtype"] for i in medical).items())),
        },
        "finance": {
            "items": len(finance),
            "per_answer_type": dict(sorted(Counter(i["answer_type"] for i in finance).items())),
            "per_scale": dict(sorted(Counter(i["scale"] or "none" for i in finance).items())),
            "per_answer_from": dict(sorted(Counter(i["answer_from"] for i in finance).items())),
            "numeric": sum(i["reference_value"] is not None for i in finance),
            "reports": len({i["report_uid"] for i in finance}),
        },
        "unanswerable": {
            "items": len(unanswerable),
            "per_collection": dict(sorted(Counter(i["collection"] for i in unanswerable).items())),
            "per_source": dict(sorted(Counter(i["source"] for i in unanswerable).items())),
        },
        "uncovered": {
            "items": len(uncovered),
            "per_collection": dict(sorted(Counter(i["collection"] for i in uncovered).items())),
            "per_source": dict(sorted(Counter(f"{i['collection']}/{i['source']}" for i in uncovered).items())),
            "per_split": dict(sorted(Counter(f"{i['collection']}/{i['split']}" for i in uncovered).items())),
        },
        "conversation": {
            "items": len(conversation),
            "turns": sum(len(i["turns"]) for i in conversation),
            "follow_ups": sum(len(i["turns"]) - 1 for i in conversation),
        },
        "guardrails": {
            "items": len(guardrails),
            "per_expected": dict(sorted(Counter(i["expected"] for i in guardrails).items())),
            "per_source": dict(sorted(Counter(i["source"] for i in guardrails).items())),
        },
    }
    readme = render_readme(counts, from_tatqa).encode("utf-8")
    (out / "README.md").write_bytes(readme)
    files.append({"path": "README.md", "sha256": sha256_bytes(readme), "bytes": len(readme)})

    inputs = {}
    for rel in (
        "pubmedqa/ori_pqal.json",
        "pubmedqa/test_ground_truth.json",
        "tatqa/tatqa_dataset_dev.json",
        "prompt-injection/deepset-train.jsonl",
        "prompt-injection/advbench-train.jsonl",
    ):
        inputs[rel] = sha256_bytes((shared / rel).read_bytes())
    manifest = {
        "generated_by": SCRIPT_NAME,
        "command": COMMAND,
        "collections": {name: list(paths) for name, paths in COLLECTIONS.items()},
        "samples_manifest_sha256": sha256_bytes((SAMPLES / "MANIFEST.json").read_bytes()) if (SAMPLES / "MANIFEST.json").exists() else None,
        "training_ids_sha256": sha256_bytes(TRAINING.read_bytes()),
        "shared_inputs_sha256": inputs,
        "counts": counts,
        "files": sorted(files, key=lambda f: f["path"]),
    }
    (out / "MANIFEST.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return manifest


def render_readme(counts: dict, from_tatqa: int) -> str:
    med, fin, una, gua = counts["medical"], counts["finance"], counts["unanswerable"], counts["guardrails"]
    conv = counts["conversation"]
    unc = counts["uncovered"]
    unc_sources = ", ".join(f"{k} {v}" for k, v in unc["per_source"].items())
    unc_splits = ", ".join(f"{k} {v}" for k, v in unc["per_split"].items())
    per_type = ", ".join(f"{k} {v}" for k, v in fin["per_answer_type"].items())
    per_scale = ", ".join(f"{k} {v}" for k, v in fin["per_scale"].items())
    una_med = una["per_collection"].get("medical", 0)
    una_fin = una["per_collection"].get("finance", 0)
    per_expected = ", ".join(f"{k} {v}" for k, v in gua["per_expected"].items())
    per_source = ", ".join(f"{k} {v}" for k, v in gua["per_source"].items())
    return f"""# Evaluation sets

Generated by `{SCRIPT_NAME}`; do not edit by hand. Rebuild from the repository root with

```bash
{COMMAND}
```

(both arguments optional, defaulting to those paths; a missing shared folder stops it with a one-line error
and exit status 2). The build is deterministic: the same inputs give byte-identical files. `MANIFEST.json`
lists every file's sha256 and the counts, and the sha256 of every input (the shared files, the sample
manifest and the adapter's `training.json`).

The sets are asked of the sample collections as `make` builds them: `medical` from
`data/samples/medical/medquad`, `finance` from `data/samples/finance/tatqa_sample.json`.

## Sets

Every line is one JSON object with an `id` (`medquad:<folder>/<qid>`, `tatqa:<question uid>`,
`pubmedqa:<pmid>`, `authored:finance-<n>`, `deepset:train-<row>`, `advbench:train-<row>`: the scheme of
the adapter's training ids) and a `suite`.

| file | items | what |
|---|---|---|
| `medical.jsonl` | {med["items"]} | MedQuAD questions from the sample files (the files held out from fine-tuning), up to {MEDICAL_PER_FOLDER} per folder, question types taken in turn |
| `finance.jsonl` | {fin["items"]} | TAT-QA questions from the 40 sample reports (held out from fine-tuning): {per_type}; scales: {per_scale} |
| `unanswerable.jsonl` | {una["items"]} | {una_med} medical (PubMedQA test-split questions), {una_fin} finance ({from_tatqa} TAT-QA questions about held-out reports outside the sample, {una_fin - from_tatqa} written for this project) |
| `uncovered.jsonl` | {unc["items"]} | in-domain questions whose documents were left out of the sample while neighbouring ones stay: {unc_sources}; halves {unc_splits} |
| `conversation.jsonl` | {conv["items"]} | conversations over the medical sample ({conv["turns"]} turns, {conv["follow_ups"]} follow-ups): a focus's "What is X?" question, then its other questions written as follow-ups that do not name it ("How is it treated?", "And the symptoms?"), as `bench/conversations.py` builds MedQuAD chains |
| `guardrails.jsonl` | {gua["items"]} | input-rail cases, expected {per_expected}; from {per_source} |

### Fields

- medical / finance: `id`, `suite`, `collection`, `question`, `reference` (the gold answer as text),
  `answerable` (true), `gold` (the gold passages, below), `source`.
  - medical also: `qtype`, `focus` (MedQuAD's question type and topic). `reference` is the gold answer's
    opening sentences (about {REFERENCE_WORDS} words, cut at a sentence boundary as `training/trainset.py` does; a
    sentence that restates the question is dropped).
  - finance also: `answer_type` (span, multi-span, arithmetic, count), `scale` ("", thousand, million,
    billion, percent), `reference_value` (the number for arithmetic, count and single numeric spans, in
    units of `scale`; null otherwise), `answer_from` (table, text, table-text), `derivation` (TAT-QA's
    formula for arithmetic answers), `report_uid` and `filters` (`{{"report_uid": ...}}`: TAT-QA asks every
    question of one report; pass it to the retriever for the closed setting, leave it out for the open
    one, where questions such as "What was the revenue in 2019?" fit several reports). `reference` is the
    answer with its scale ("1,234 million", "3.57%"); list answers joined with ", ".
- unanswerable and uncovered: `id`, `suite`, `collection`, `question`, `reference` (""), `answerable`
  (false), `gold` ([]), `source`, `absent_terms` (key terms of the question that occur nowhere in the
  collection), `absent_words` (every word of the question the collection's text does not hold, as written;
  the eval checks that a reason saying "The documents do not mention X" names only these); uncovered also
  `left_out` (the file, report or company the collection lacks).
- every set but guardrails and conversation: `entity` (what the question is about: a MedQuAD focus, a TAT-QA report, a
  company, a PubMedQA id) and `split` (`fit` or `test`, by a salted SHA-1 of the entity): the
  answerability model (bench/answerability.py) is fitted on the fit half and measured on the test half,
  and no entity is in both.
- conversation: `id`, `suite`, `collection`, `source`, `entity` and `turns`, asked in order with the answers
  before as history: each turn has `question` (as a user would write it), `standalone` (the original
  MedQuAD question: what a perfect rewrite would search), `reference` and `gold` (as medical items). The eval
  scores every turn as an answer item `<id>#<n>` and follow-ups apart (retrieval as searched, as written,
  as the gold standalone question).
- guardrails: `id`, `suite`, `stage` ("input"), `text`, `expected` (the rail that must block it:
  `injection`, `harmful`; `none` for benign text, which no rail may block), `source`.

### Gold passages

`gold` lists the documents the answer comes from, as `assistant ingest` stores them; a retrieved hit (or an
answer's source) is gold when it matches any entry. An entry has

- `key`: a stable name for the gold document (use it as the document id in qrels);
- `document_id`: the content-hash id the ingest pipeline gives the document (title, cleaned text, metadata);
- `source_suffix` (medical only): the end of the file path the document was ingested from
  (`<folder>/<file>.xml`, compared on path-component boundaries, `/` or `\\`);
- `metadata`: key/values the document's metadata holds (`qid` for MedQuAD; `report_uid`, `kind` and, for a
  paragraph, `order` for TAT-QA);
- `title`: the document's title, for reading.

A hit matches an entry when its `document_id` equals the entry's, or when its `source` ends with
`source_suffix` (when given) and its metadata holds every key/value of `metadata`. The second rule
survives a change to text cleaning; the first works for an answer's `sources`, which carry no metadata.
`eval/metrics.py` implements it (`matches_gold`, `gold_key`, `gold_numbers`, `gold_run`, `gold_qrels`).
Every entry is relevant: a finance answer drawn from the table and a paragraph has two, and Recall@k is the
share of them retrieved. `tests/test_eval_sets.py` ingests the sample collections and checks that every gold
entry matches exactly one document, by either rule.

## How the items were chosen

- **No training data.** No id is among the shipped adapter's training example ids
  (`generator/adapters/smollm2-grounded/training.json`), and no medical question equals (case and spacing
  aside) a question the adapter was trained on: MedQuAD repeats some questions across its sources.
- **medical:** MedQuAD pairs whose question ends with "?", occurs once in the collection, has an answer of
  {MIN_ANSWER_WORDS}+ words that does more than point elsewhere (GARD's symptom tables, GHR's link lists, answers
  that are a web address are left out). In each folder, question types in turn, each in SHA-1 order of ids.
- **finance:** questions whose gold passages the collection holds (the table for `answer_from` table or
  table-text; the `rel_paragraphs` for text or table-text), in SHA-1 order of ids, with quotas per answer
  type ({", ".join(f"{k} {v}" for k, v in FINANCE_QUOTAS.items())}) and at most {FINANCE_PER_REPORT} per report.
- **unanswerable:** a question counts as not covered when at least {MIN_ABSENT_TERMS} of its key terms (content words of
  5+ letters, generic research and finance words aside) occur nowhere in the collection's text and no
  single document holds more than a third of its content words. Medical: PubMedQA test-split questions
  (specific studies; the test PMIDs are never trained on) passing that check, in SHA-1 order of ids.
  Finance: TAT-QA questions on the held-out reports (last 20 % of dev) that are not in the sample, passing
  the same check; TAT-QA questions rarely name their company, so most are generic and answerable from the
  sample's other reports, and the rest of the finance half is questions written for this project, each
  naming a company absent from the sample (the build fails if the sample ever mentions one).
  `financial-qa-10k` was not used: it has no declared licence and may not be copied into the repository.
  Checked once with the default retriever (all-MiniLM-L6-v2, hybrid) when these sets were first built: the
  best passage's relevance for unanswerable questions had a median of 0.36 (medical) and 0.47 (finance),
  against 0.80 and 0.64 for the answerable ones, and none of the top passages answered the question (read
  by hand). The retriever's calibrated threshold (0.337) still calls most of them relevant, so refusing
  them is the generator's job, not the not-covered rail's.
- **uncovered:** documents left out, neighbours kept, as users meet the problem. Medical: one question per
  MedQuAD focus (disease) that the medical sample does not hold, from files outside the sample in the same
  nine source folders, round robin over the folders; a focus whose words are a subset or superset of a
  sample focus's ("Breast Cancer" beside "Male Breast Cancer") is skipped, as the sample may answer it.
  Finance: TAT-QA questions on held-out reports outside the sample that name an item the sample lacks (a
  content word of 5+ letters, generic and filler words aside, that no word of the sample shares its first
  six letters with), then questions written for this project about companies the sample does not hold.
  Generic TAT-QA questions ("What was the revenue in 2019?") are not in it: the sample's other reports
  answer them as far as anyone can tell from the question.
- **guardrails:** only texts in the held half of `half()` (bench/guardrails.py: the first byte of the
  text's SHA-1 odd), the half the rules were not written against: deepset injections (label 1, English and
  German) -> `injection`; AdvBench -> `harmful`; deepset benign texts (label 0) and in-domain questions
  from the held-out MedQuAD and TAT-QA samples -> `none`. In SHA-1 order of the text.

## Licences and attribution

These files keep the licences of their sources; the project's Apache-2.0 licence covers the code.

- **MedQuAD** (`medical.jsonl`, MedQuAD questions in `guardrails.jsonl`): Asma Ben Abacha and Dina
  Demner-Fushman, "A Question-Entailment Approach to Question Answering", BMC Bioinformatics 20:511
  (2019), https://github.com/abachaa/MedQuAD. Answers from U.S. National Institutes of Health websites.
  Licence: CC BY 4.0, https://creativecommons.org/licenses/by/4.0/. Changes: questions and the opening
  sentences of answers selected; see `data/samples/medical/ATTRIBUTION.md`.
- **TAT-QA** (`finance.jsonl`, TAT-QA questions in `unanswerable.jsonl` and `guardrails.jsonl`): Fengbin Zhu
  et al., "TAT-QA: A Question Answering Benchmark on a Hybrid of Tabular and Textual Content in Finance",
  ACL-IJCNLP 2021, https://github.com/NExTplusplus/TAT-QA. Data licence: CC BY 4.0,
  https://creativecommons.org/licenses/by/4.0/. Changes: questions and answers selected, the answer
  written as text with its scale; see `data/samples/finance/ATTRIBUTION.md`.
- **PubMedQA** (medical questions in `unanswerable.jsonl`): Qiao Jin, Bhuwan Dhingra, Zhengping Liu,
  William W. Cohen and Xinghua Lu, "PubMedQA: A Dataset for Biomedical Research Question Answering",
  EMNLP-IJCNLP 2019, https://github.com/pubmedqa/pubmedqa (PQA-L, `ori_pqal.json`, official test split).
  Questions only. Licence: MIT:

  > MIT License. Copyright (c) 2019 pubmedqa. Permission is hereby granted, free of charge, to any person
  > obtaining a copy of this software and associated documentation files (the "Software"), to deal in the
  > Software without restriction, including without limitation the rights to use, copy, modify, merge,
  > publish, distribute, sublicense, and/or sell copies of the Software, and to permit persons to whom the
  > Software is furnished to do so, subject to the following conditions: The above copyright notice and
  > this permission notice shall be included in all copies or substantial portions of the Software.
  > THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT NOT
  > LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN
  > NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY,
  > WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE
  > SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
- **deepset/prompt-injections** (deepset texts in `guardrails.jsonl`): deepset GmbH,
  https://huggingface.co/datasets/deepset/prompt-injections (train split). Licence: Apache License 2.0,
  https://www.apache.org/licenses/LICENSE-2.0. Changes: a subset of rows selected, texts unchanged.
- **AdvBench** harmful behaviours (advbench texts in `guardrails.jsonl`): Andy Zou, Zifan Wang, J. Zico
  Kolter and Matt Fredrikson, "Universal and Transferable Adversarial Attacks on Aligned Language Models",
  2023, https://github.com/llm-attacks/llm-attacks (via the Hugging Face copy mlabonne/harmful_behaviors).
  Licence: MIT (Copyright (c) 2023 Andy Zou; the permission notice is the one quoted above). Changes: a
  subset of rows selected, texts unchanged. These are harmful requests, kept to check that the rails
  refuse them.
- Questions written for this project (`authored:finance-*`): part of the project, Apache-2.0.

The medical items are for testing the software and are not medical advice.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED, help=f"shared data folder (default: {DEFAULT_SHARED})")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default: {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    try:
        manifest = build(args.shared, args.out)
    except BuildError as exc:
        print(f"build_eval_sets: error: {exc}", file=sys.stderr)
        return 2
    for name, info in manifest["counts"].items():
        print(f"{name}: {info['items']} items")
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
