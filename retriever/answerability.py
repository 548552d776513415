"""Does the collection answer this question? A decision made before generation, from signals a reader would
recognise, combined by a small logistic regression fitted on dev data where documents were left out
(``python bench/answerability.py --fit``) and stored as plain JSON (``models/answerability.json``).

The signals, for the question's key terms (its words minus stop words and question words, each weighted by
its IDF in the collection):

- ``cosine``: the best question-passage cosine (the retriever's relevance signal);
- ``coverage``: the share of the key terms' weight found in the passages retrieved;
- ``best_passage``: the largest share one retrieved passage holds on its own;
- ``absent``: the share of the weight of terms found nowhere in the collection;
- ``name_missing``: 1 when a name the question gives (Tesla, NVIDIA, Comirnaty, QTL, FY2018: capitalised,
  an acronym, letters with digits) that is rare in the collection is in no retrieved passage;
- ``year_missing``: 1 when a year the question names is in no retrieved passage.

One cosine marked nearly every in-domain question "relevant"; a question about a company whose filings are
not in the collection still finds passages about revenue in 2023, but not the company's name. The reason
shown to the user comes from the same signals: "The documents do not mention Tesla." when a term is in no
document, "No passage covers 2023." when a year is in none of the passages found.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.collection import Collection
from core.errors import UserError
from core.types import Hit
from retriever.lexical import STOPWORDS

FEATURES = ("cosine", "coverage", "best_passage", "absent", "name_missing", "year_missing")
MODELS = Path(__file__).resolve().parent / "models"
DEFAULT_MODEL = MODELS / "answerability-general.json"
# Words that say what kind of question it is, not what it is about.
QUESTION_WORDS = frozenset(
    "what which who whom whose when where why how does do did is are was were can could should would will may might "
    "has have had been being there their about tell explain describe list give please much many".split()
)
# Words that join a question's parts (prepositions, quantifiers, framing): never what it is about, and in a
# short collection rare enough to outweigh the words that are ("... information regarding personnel expenses").
FUNCTION_WORDS = frozenset(
    "from over between among during within without against across after before above below under upon via per than "
    "also just each every both either any all some most more less other own so very too its regarding concerning "
    "following respectively information available".split()
)
# Everyday words a question uses without saying what it is about: never key terms (a small collection that
# happens not to contain "used" does not thereby fail to cover "What is metformin used for?").
EVERYDAY_WORDS = frozenset(
    "use used uses using mean means meaning cause causes type types kind kinds way ways work works make makes made take "
    "takes taken get gets got need needs help helps know known called call different important common usually often good "
    "best better new old long short main major others same several happen happens affect affects include includes "
    "including involve involves show shows find found give given thing things someone something anyone anything look "
    # people's own words around a question: pronouns, greetings, family
    "i me my mine myself we us our ours you your yours he him his she her hers they them it im ive id dont doesnt didnt "
    "cant isnt hi hello hey thanks thank please ok okay sorry dear mom mum dad mother father husband wife son daughter "
    "child children kid kids friend family wondering question questions quick worried "
    # how people frame a question: a role to take, a source to rely on (professional framing is not content)
    "suppose imagine pretend act acting role answer answering respond response using relying rely based mainly only "
    "perspective point view explain summarise summarize analyst analysts clinician clinicians pharmacist nurse "
    "auditor doctor doctors physician specialist expert manager investor investors".split()
)
# Capitalised in questions without naming anything: a document's parts and the calendar.
_NOT_NAMES = frozenset(
    "company companies group form item items note notes part section consolidated financial statement statements annual "
    "report reports fiscal year years quarter q1 q2 q3 q4 january february march april may june july august september "
    "october november december monday tuesday wednesday thursday friday saturday sunday i".split()
)
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9&'\-]*")
_YEAR = re.compile(r"(?:19|20)\d\d")
# A name is rare when at most this share of the chunks mention it: "revenue" is not a name, "Tesla" is.
NAME_MAX_SHARE = 0.05
_SUFFIXES = ("ations", "ation", "ings", "ing", "ies", "ied", "ness", "ment", "ments", "es", "ed", "ly", "s")


def stem(word: str) -> str:
    """A crude suffix stripper, the same for the question's words and the passages' words (FTS5's Porter
    stemmer stays inside SQLite): "margins" and "margin", "acquisitions" and "acquisition" meet."""
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            return word[: -len(suffix)]
    return word


@dataclass(frozen=True)
class Term:
    text: str  # as the question writes it ("Tesla")
    key: str  # lower case ("tesla")
    name: bool  # written like a name: capitalised mid-question, an acronym, letters with digits
    year: bool


def key_terms(question: str) -> list[Term]:
    """The words a passage must mention to answer the question, in order, without repeats."""
    out: dict[str, Term] = {}
    for position, match in enumerate(_TOKEN.finditer(question)):
        text = re.sub(r"'s$|'$", "", match.group(0)).strip("-'")
        key = text.lower()
        if (
            len(key) < 2
            or key in STOPWORDS
            or key in QUESTION_WORDS
            or key in EVERYDAY_WORDS
            or key in FUNCTION_WORDS
            or (key.isdigit() and not _YEAR.fullmatch(key))
        ):
            continue
        year = bool(_YEAR.fullmatch(key)) or bool(re.fullmatch(r"fy(?:19|20)\d\d", key))
        capitalised = text[0].isupper() and position > 0
        acronym = sum(c.isupper() for c in text) >= 2
        coded = bool(re.search(r"\d", text)) and bool(re.search(r"[A-Za-z]", text))
        name = not year and key not in _NOT_NAMES and (capitalised or acronym or coded)
        if key not in out:
            out[key] = Term(text, key, name, year)
    return list(out.values())


def _words(text: str) -> set[str]:
    return {stem(w) for w in re.findall(r"[a-z]+|\d+", text.lower())}


def _tokens(key: str) -> list[str]:
    """A term's words as the index splits them, letters apart from digits: "coca-cola" -> coca, cola;
    "IFRS9" -> ifrs, 9 (documents write "IFRS 9"); "FY2018" -> fy, 2018."""
    return re.findall(r"[a-z]+|\d+", key)


def _parts(term: Term) -> list[str]:
    """The stemmed words of a term: all must be in a passage for it to count as found there (a year only
    its four digits: "FY2018" is found where 2018 is)."""
    if term.year:
        return [re.sub(r"\D", "", term.key)[-4:]]
    return [stem(p) for p in _tokens(term.key)]


@dataclass(frozen=True)
class AnswerabilityModel:
    """A logistic regression over ``FEATURES``: P(answerable) = sigmoid(coef . signals + intercept); a
    question is answerable at or above ``threshold``. ``card`` says what it was fitted on and how well."""

    features: tuple[str, ...]
    coef: tuple[float, ...]
    intercept: float
    threshold: float
    card: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.features) != len(self.coef):
            raise UserError(f"answerability model: {len(self.features)} features but {len(self.coef)} coefficients")
        unknown = sorted(set(self.features) - set(FEATURES))
        if unknown:
            raise UserError(f"answerability model: unknown features {unknown}; known: {', '.join(FEATURES)}")
        if not 0.0 < self.threshold < 1.0:
            raise UserError(f"answerability model: threshold must be between 0 and 1, got {self.threshold}")

    def probability(self, signals: dict[str, float]) -> float:
        z = self.intercept + sum(c * signals[f] for f, c in zip(self.features, self.coef))
        return 1.0 / (1.0 + math.exp(-z))

    @classmethod
    def load(cls, path: Path | str = DEFAULT_MODEL) -> AnswerabilityModel:
        """A JSON file, or the name of one that ships: "general", "medical", "finance"."""
        path = Path(path)
        if path.suffix != ".json" and not path.exists():
            path = MODELS / f"answerability-{path}.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(
                tuple(data["features"]),
                tuple(float(c) for c in data["coef"]),
                float(data["intercept"]),
                float(data["threshold"]),
                dict(data.get("card", {})),
            )
        except FileNotFoundError:
            raise UserError(f"answerability model not found: {path} (fit one with `python bench/answerability.py --fit {path}`)") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise UserError(f"{path} is not an answerability model: {exc}") from exc

    def save(self, path: Path | str) -> None:
        data = {
            "features": list(self.features),
            "coef": list(self.coef),
            "intercept": self.intercept,
            "threshold": self.threshold,
            "card": self.card,
        }
        Path(path).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")

    def with_threshold(self, threshold: float | None) -> AnswerabilityModel:
        if threshold is None:
            return self
        return AnswerabilityModel(self.features, self.coef, self.intercept, threshold, self.card)


@dataclass(frozen=True)
class Decision:
    answerable: bool
    score: float  # P(answerable)
    # Why the documents may not answer it, in words: shown when the question is not answerable, or when the
    # model finds no answer in passages the check let through.
    reason: str
    absent_terms: tuple[str, ...] = ()  # key terms no document mentions, as the question writes them
    missing_terms: tuple[str, ...] = ()  # names and years in documents, but in none of the passages found
    evidence: tuple[int, ...] = ()  # positions of the hits that bear on the question (a quoted answer's sources)
    terms: tuple[str, ...] = ()  # the question's key terms, lower case: what a quoted sentence must mention
    signals: dict[str, float] = field(default_factory=dict)
    ms: float = 0.0


def _join(terms: Sequence[str]) -> str:
    return terms[0] if len(terms) == 1 else ", ".join(terms[:-1]) + " or " + terms[-1]


def reason_for(absent: Sequence[Term], missing: Sequence[Term]) -> str:
    """In words: a term no document mentions (names first), else a name or year no passage found covers."""
    if absent:
        # Names and years first; then the longest words, which are the most specific ("metformin" before "leaflet").
        named = [t.text for t in absent if t.name or t.year] or [t.text for t in sorted(absent, key=lambda t: -len(t.key))]
        return f"The documents do not mention {_join(named[:3])}."
    years = [t.text for t in missing if t.year]
    if years:
        return f"No passage covers {_join(years[:3])}."
    names = [t.text for t in missing if t.name]
    if names:
        return f"No passage found is about {_join(names[:3])}."
    return "The passages found do not answer this question."


class Answerability:
    """Decides for one collection; safe to share between threads. Document frequencies are cached per
    collection version (a term's count is one FTS5 query the first time it is asked)."""

    def __init__(self, collection: Collection, model: AnswerabilityModel):
        self.collection = collection
        self.model = model
        self._df: dict[str, int] = {}
        self._df_version = -1
        self._lock = threading.Lock()

    def _frequency(self, term: Term) -> int:
        """Chunks mentioning every part of the term (Porter-stemmed, as BM25 sees it)."""
        with self._lock:
            if self.collection.version != self._df_version:
                self._df, self._df_version = {}, self.collection.version
            if term.key not in self._df:
                if len(self._df) > 50_000:
                    self._df.clear()
                parts = _parts(term) if term.year else _tokens(term.key)
                match = " ".join('"' + p + '"' for p in parts)
                self._df[term.key] = self.collection.chunks_matching(match) if parts else 0
            return self._df[term.key]

    def decide(self, question: str, hits: Sequence[Hit], relevance: float) -> Decision:
        started = time.perf_counter()
        terms = key_terms(question)
        n_chunks = max(self.collection.vectors.ntotal, 1)
        frequency = {t.key: self._frequency(t) for t in terms}
        weight = {t.key: math.log((n_chunks + 1) / (frequency[t.key] + 0.5)) for t in terms}
        total = sum(weight.values())
        passages = [_words(f"{h.title} {h.text}") for h in hits]
        found_in = {t.key: [i for i, words in enumerate(passages) if all(p in words for p in _parts(t))] for t in terms}
        absent = [t for t in terms if frequency[t.key] == 0]
        rare_names = [t for t in terms if t.name and frequency[t.key] / n_chunks <= NAME_MAX_SHARE]
        missing = [t for t in terms if (t.year or t in rare_names) and frequency[t.key] > 0 and not found_in[t.key]]
        share = [sum(weight[t.key] for t in terms if i in found_in[t.key]) / total if total else 1.0 for i in range(len(hits))]
        signals = {
            "cosine": float(relevance),
            "coverage": sum(weight[t.key] for t in terms if found_in[t.key]) / total if total else 1.0,
            "best_passage": max(share, default=0.0),
            "absent": sum(weight[t.key] for t in absent) / total if total else 0.0,
            "name_missing": float(any(not found_in[t.key] for t in rare_names)),
            "year_missing": float(any(t.year and not found_in[t.key] for t in terms)),
        }
        score = self.model.probability(signals) if hits else 0.0
        answerable = bool(hits) and score >= self.model.threshold
        # Passages that could stand as evidence: every rare name of the question in them, and half the weight.
        evidence = tuple(i for i in range(len(hits)) if share[i] >= 0.5 and all(i in found_in[t.key] for t in rare_names))
        return Decision(
            answerable=answerable,
            score=score,
            reason=reason_for(absent, missing),
            absent_terms=tuple(t.text for t in absent),
            missing_terms=tuple(t.text for t in missing),
            evidence=evidence,
            terms=tuple(t.key for t in terms),
            signals=signals,
            ms=(time.perf_counter() - started) * 1000,
        )
