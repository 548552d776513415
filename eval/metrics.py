"""Answer, retrieval, refusal and guardrail metrics shared by the fine-tuning bench and the evaluation suite.

Token F1 follows the SQuAD convention (lower case, punctuation and articles dropped, bag-of-tokens
overlap). Citation markers are removed before any text comparison.

Conventions: a value that is undefined for an item (citation precision with nothing cited, recall with no
gold) is None, never a silent 0 or 1, so averages can skip it and say how many items they cover; aggregates
over an empty input return None values and a count of 0. IR metrics come from ranx and ROUGE from
rouge-score, not hand-rolled formulas.

Public functions:
- text: ``token_f1``, ``rouge_l``, ``answer_words``, ``supported_share`` (faithfulness), ``has_valid_citation``
- numbers: ``numeric_match`` (scale-aware, TAT-QA), ``numbers_in_text``
- citations: ``citation_precision_recall``; gold passages: ``matches_gold``, ``gold_key``, ``gold_numbers``,
  ``gold_qrels``, ``gold_run`` (the ``gold`` entries of data/eval/*.jsonl)
- refusals: ``is_refusal``, ``refusal_messages``, ``refusal_accuracy``
- retrieval: ``retrieval_metrics`` (Recall@k, MRR@10, nDCG@10); guardrails: ``guardrail_metrics``
- statistics: ``percentiles`` (p50 / p95), ``bootstrap_ci`` (mean or paired difference)
"""

from __future__ import annotations

import functools
import re
import string
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np

from core.citations import MARKER, NO_ANSWER, cited_numbers
from guardrails.output_checks import is_refusal as _is_no_answer
from guardrails.output_checks import sentence_spans, unsupported_sentences

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans({c: " " for c in string.punctuation})


def normalise_tokens(text: str) -> list[str]:
    text = MARKER.sub(" ", text.lower()).translate(_PUNCT)
    return _ARTICLES.sub(" ", text).split()


def token_f1(prediction: str, reference: str) -> float:
    pred, ref = normalise_tokens(prediction), normalise_tokens(reference)
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def has_valid_citation(answer: str, n_passages: int) -> bool:
    return bool(cited_numbers(answer, n_passages))


def supported_share(answer: str, passages: Sequence[str], computed: str = "") -> float:
    """Share of the answer's sentences that cite at least one given passage and whose content words are
    mostly found in the passages they cite (the guardrails' lexical grounding check), or that are the text of
    a computation the code ran over cited cells (``computed``). An answer with no sentences scores 0."""
    sentences = sentence_spans(answer)
    if not sentences:
        return 0.0
    return 1 - len(unsupported_sentences(answer, {"passages": list(passages), "computed": computed})) / len(sentences)


# --- ROUGE-L ------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _rouge():
    from rouge_score import rouge_scorer, tokenizers

    # Porter stemming, as ROUGE is usually reported; the library's tokenizer lower-cases and keeps [a-z0-9]
    # runs only (so non-English letters drop out).
    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True), tokenizers.DefaultTokenizer(use_stemmer=True)


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F-measure (longest common subsequence of tokens; rouge-score with Porter stemming), citation
    markers removed first. Like ``token_f1``: both texts empty (no tokens) -> 1.0, one empty -> 0.0."""
    scorer, tokenizer = _rouge()
    prediction, reference = MARKER.sub(" ", prediction or ""), MARKER.sub(" ", reference or "")
    pred_tokens, ref_tokens = tokenizer.tokenize(prediction), tokenizer.tokenize(reference)
    if not pred_tokens or not ref_tokens:
        return float(not pred_tokens and not ref_tokens)
    return float(scorer.score(reference, prediction)["rougeL"].fmeasure)


def answer_words(text: str) -> int:
    """Answer length in words: whitespace-separated pieces holding a letter or digit (citation markers and
    stray punctuation not counted)."""
    return sum(any(c.isalnum() for c in piece) for piece in MARKER.sub(" ", text or "").split())


# --- numeric match ------------------------------------------------------------------------------------

SCALE_FACTORS = {"": 1.0, "thousand": 1e3, "million": 1e6, "billion": 1e9, "percent": 1.0}
NUMERIC_RELATIVE_TOLERANCE = 1e-2
_UNIT_FACTORS = {
    "thousand": 1e3,
    "thousands": 1e3,
    "k": 1e3,
    "million": 1e6,
    "millions": 1e6,
    "mn": 1e6,
    "mm": 1e6,
    "m": 1e6,
    "billion": 1e9,
    "billions": 1e9,
    "bn": 1e9,
    "b": 1e9,
    "trillion": 1e12,
    "trillions": 1e12,
    "tn": 1e12,
}
_NUMBER_IN_TEXT = re.compile(
    r"""(?<![\w.,])
        (?P<sign>[-−–]\s*)?
        (?P<open>\(\s*)?
        (?:[$€£¥]\s*)?
        (?P<digits>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)
        (?P<pct1>\s*%)?
        (?P<close>\s*\))?
        (?P<pct2>\s*%)?
        (?:\s*(?P<unit>percent\b|per\s+cent\b|pct\b|
                    thousands?\b|millions?\b|billions?\b|trillions?\b|(?<=\d)k\b|(?<=\d)(?:mn|mm|m|bn|b|tn)\b|
                    (?:mn|bn|tn)\b))?
    """,
    re.X | re.I,
)
_DECREASE = re.compile(
    r"\b(decreas\w*|declin\w*|dropp?\w*|fell|fall\w*|lower\w*|reduc\w*|down|less|loss\w*|negative|shrank|shrunk)\b", re.I
)


def _decimals(value: float) -> int:
    try:
        exponent = Decimal(repr(float(value))).normalize().as_tuple().exponent
    except InvalidOperation:
        return 0
    return max(0, -int(exponent)) if isinstance(exponent, int) else 0


def _close(candidate: float, reference: float) -> bool:
    """Within 1 % of the reference, or equal to it once rounded to the reference's decimal places."""
    if abs(candidate - reference) <= NUMERIC_RELATIVE_TOLERANCE * abs(reference):
        return True
    places = _decimals(reference)
    return abs(round(candidate, places) - reference) <= 1e-9 * max(1.0, abs(reference))


def numbers_in_text(text: str) -> list[tuple[float, str, bool, bool]]:
    """Every number in ``text`` (citation markers ignored) as (value, unit, signed, parenthesised): unit is
    "%" for percentages, a scale word's canonical name ("thousand", "million", "billion", "trillion"), or ""."""
    out = []
    for match in _NUMBER_IN_TEXT.finditer(MARKER.sub(" ", text or "")):
        value = float(match.group("digits").replace(",", ""))
        unit = (match.group("unit") or "").lower()
        if match.group("pct1") or match.group("pct2") or unit in ("percent", "pct") or unit.startswith("per"):
            unit = "%"
        elif unit:
            unit = {1e3: "thousand", 1e6: "million", 1e9: "billion", 1e12: "trillion"}[_UNIT_FACTORS[unit]]
        signed = bool(match.group("sign"))
        parenthesised = bool(match.group("open") and match.group("close"))
        out.append((-value if signed else value, unit, signed, parenthesised))
    return out


def numeric_match(prediction: str, reference_value: float | int | str, scale: str = "") -> bool:
    """Whether any number in ``prediction`` states ``reference_value`` (a TAT-QA answer in units of ``scale``).

    Rules:
    - scale: ``reference_value`` is in units of ``scale`` ("", thousand, million, billion, percent). A
      prediction number with a scale word ("$1.2 million", "1.2m", "3 bn", "12k") is converted to units and
      then to the reference's scale; a bare number may be written in the reference's scale ("1,200" for 1,200
      thousand) or in full units ("1,200,000"). So "$1.2 million" matches 1200 with scale thousand and
      1,200,000 with no scale.
    - percent: "12.5%", "12.5 %", "12.5 percent", "12.5 per cent", "12.5 pct" and a bare "12.5" match 12.5
      with scale percent (or no scale); a fraction (0.125) does not. A percentage never matches an amount
      with scale thousand / million / billion.
    - tolerance: equal within a relative 1e-2 (1 %) of the reference, or equal once rounded to as many
      decimal places as the reference has (reference 0.5 accepts 0.52; reference 12.53 accepts 12.5327).
    - sign: "-5.2", "−5.2" and the accounting "(5.2)" are negative; a number written without a sign also
      matches a negative reference by magnitude when the prediction says the value went down ("decreased
      by 5.2%", "a decline of 594"). A parenthesised number is read both ways ("(5.2%)" may be an aside).
    - any number in the prediction may match (the answer is judged on whether it states the value, not on
      what else it says); citation markers ([1]) are not numbers.
    """
    if reference_value is None:
        raise ValueError("reference_value is None: the item has no numeric answer")
    if isinstance(reference_value, str):
        parsed = numbers_in_text(reference_value)
        if not parsed:
            raise ValueError(f"reference_value {reference_value!r} is not a number")
        reference_value = parsed[0][0]
    scale = (scale or "").lower()
    if scale not in SCALE_FACTORS:
        raise ValueError(f"unknown scale {scale!r}; expected one of {sorted(SCALE_FACTORS)}")
    reference = float(reference_value)
    factor = SCALE_FACTORS[scale]
    goes_down = bool(_DECREASE.search(prediction or ""))
    for value, unit, signed, parenthesised in numbers_in_text(prediction):
        readings = {value}
        if parenthesised:
            readings |= {abs(value), -abs(value)}
        if reference < 0 and not signed and not parenthesised and goes_down:
            readings.add(-abs(value))
        for reading in readings:
            if unit == "%":
                candidates = [reading] if scale in ("percent", "") else []
            elif unit:
                candidates = [reading * _UNIT_FACTORS[unit] / factor]
            else:
                candidates = [reading, reading / factor] if factor != 1 else [reading]
            if any(_close(c, reference) for c in candidates):
                return True
    return False


# --- citations ----------------------------------------------------------------------------------------


def citation_precision_recall(cited_numbers: Iterable[int], gold_numbers: Iterable[int]) -> tuple[float | None, float | None]:
    """Precision and recall of the passages an answer cites against the gold passages it was given (both
    as passage numbers; repeats count once).

    precision = |cited & gold| / |cited|, None when nothing is cited (undefined: a refusal or an uncited
    answer; recall shows the miss). recall = |cited & gold| / |gold|, None when no gold passage was given
    (nothing to find). Both None when both are empty."""
    cited, gold = set(cited_numbers), set(gold_numbers)
    hits = len(cited & gold)
    return (hits / len(cited) if cited else None), (hits / len(gold) if gold else None)


# --- refusals -----------------------------------------------------------------------------------------

# A model's own ways of saying the passages do not answer (the prompt asks for NO_ANSWER word for word;
# small models paraphrase it).
_DECLINE = re.compile(
    r"\b(?:passages?|documents?|sources?|context|texts?|information provided)\b[^.!?\n]{0,40}?"
    r"\b(?:do|does|did)\s*(?:not|n't)\s+(?:contain|include|cover|mention|provide|say|state|address|answer)\b"
    r"|\b(?:can ?not|can't|unable to)\s+(?:answer|find|determine)\b",
    re.I,
)


@functools.lru_cache(maxsize=1)
def refusal_messages() -> tuple[str, ...]:
    """The fixed replies that mean "not answered": the generator's NO_ANSWER sentence and the message of
    every blocking input rule in the built-in rule packs (not covered, injection, harmful, ...)."""
    from guardrails.packs import BUILTIN, load_pack

    messages = {NO_ANSWER}
    for path in sorted(BUILTIN.glob("*.yaml")):
        for rule in load_pack(path.stem).rules:
            if rule.stage == "input" and rule.action == "block" and rule.message.strip():
                messages.add(rule.message.strip())
    return tuple(sorted(messages))


def is_refusal(text: str) -> bool:
    """Whether an answer declines to answer: it holds the NO_ANSWER sentence (guardrails.output_checks.
    is_refusal), one of the rails' fixed refusals (``refusal_messages``), or a paraphrase such as "The
    passages do not contain information about X" or "I cannot answer". An empty answer is not a refusal
    (it is a failure to answer, scored as wrong either way by ``refusal_accuracy``)."""
    text = " ".join((text or "").split())
    if not text:
        return False
    if _is_no_answer(text):
        return True
    lowered = text.lower()
    if any(" ".join(m.split()).lower().rstrip(".") in lowered for m in refusal_messages()):
        return True
    return bool(_DECLINE.search(text))


_NAMED_ABSENT = re.compile(r"The documents do not mention (.+?)\.(?:\s|$)")


def reason_names(reason: str | None) -> list[str]:
    """The terms a reason claims no document mentions ("The documents do not mention Tesla or NVIDIA." ->
    ["Tesla", "NVIDIA"]); [] for a reason that claims no such thing."""
    match = _NAMED_ABSENT.search(reason or "")
    if not match:
        return []
    return [t.strip() for t in re.split(r",\s*|\s+or\s+", match.group(1)) if t.strip()]


def reason_is_true(reason: str | None, absent_terms: Sequence[str]) -> bool | None:
    """Whether every term the reason says no document mentions is one the collection truly lacks (an eval
    item's ``absent_terms``, checked against the collection's text when the set was built); None when the
    reason names no term."""
    named = reason_names(reason)
    if not named:
        return None
    absent = {w.lower() for w in absent_terms}
    return all(set(re.findall(r"[a-z0-9]+", term.lower())) <= absent for term in named)


def refusal_accuracy(items: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """How well refusals follow answerability. Each item: ``answerable`` (bool, default True) and either
    ``refused`` (bool, e.g. from the pipeline's finish_reason) or ``text`` (the answer, judged by
    ``is_refusal``). An empty answer to an unanswerable question counts as not refused.

    Returns accuracy (refused exactly when unanswerable, over all items), refusal_rate (share of unanswerable
    items refused: the recall of refusing), false_refusal_rate (share of answerable items refused), and the
    counts; a rate over no items is None."""
    n = n_unanswerable = refused_unanswerable = n_answerable = refused_answerable = 0
    for item in items:
        refused = bool(item["refused"]) if "refused" in item else is_refusal(str(item.get("text") or ""))
        answerable = bool(item.get("answerable", True))
        n += 1
        if answerable:
            n_answerable += 1
            refused_answerable += refused
        else:
            n_unanswerable += 1
            refused_unanswerable += refused
    correct = refused_unanswerable + (n_answerable - refused_answerable)
    return {
        "accuracy": correct / n if n else None,
        "refusal_rate": refused_unanswerable / n_unanswerable if n_unanswerable else None,
        "false_refusal_rate": refused_answerable / n_answerable if n_answerable else None,
        "n": n,
        "n_unanswerable": n_unanswerable,
        "n_answerable": n_answerable,
    }


# --- gold passages (the `gold` entries of data/eval/*.jsonl) ------------------------------------------


def _field(obj: Any, name: str, default: Any = None) -> Any:
    return obj.get(name, default) if isinstance(obj, Mapping) else getattr(obj, name, default)


def matches_gold(hit: Any, entry: Mapping[str, Any]) -> bool:
    """Whether a retrieved passage (a ``Hit``, a pipeline ``Source`` or a dict with the same fields) comes
    from the gold document ``entry`` describes: the same ``document_id``, or a ``source`` that ends with the
    entry's ``source_suffix`` (when it has one; on a path-component boundary, / or \\) and ``metadata`` that
    holds every key/value of the entry's ``metadata`` (values compared as given, then as strings)."""
    gold_id = entry.get("document_id")
    if gold_id and _field(hit, "document_id") == gold_id:
        return True
    wanted = entry.get("metadata") or {}
    metadata = _field(hit, "metadata") or {}
    if not wanted or not metadata:
        return False
    suffix = entry.get("source_suffix")
    if suffix:
        source = str(_field(hit, "source") or "").replace("\\", "/")
        suffix = suffix.replace("\\", "/").lstrip("/")
        if not (source == suffix or source.endswith("/" + suffix)):
            return False
    for key, value in wanted.items():
        have = metadata.get(key)
        if not (have == value or (have is not None and value is not None and str(have) == str(value))):
            return False
    return True


def gold_key(hit: Any, gold: Sequence[Mapping[str, Any]]) -> str | None:
    """The ``key`` of the first gold entry the hit matches, else None."""
    return next((entry["key"] for entry in gold if matches_gold(hit, entry)), None)


def gold_numbers(sources: Sequence[Any], gold: Sequence[Mapping[str, Any]]) -> list[int]:
    """The 1-based numbers of the passages given to the model that are gold (``Answer.sources``: each has a
    ``number``; without one, its position counts), for ``citation_precision_recall``."""
    out = []
    for position, source in enumerate(sources, start=1):
        if gold_key(source, gold) is not None:
            out.append(int(_field(source, "number", position) or position))
    return out


def gold_qrels(gold: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """One query's qrels for ``retrieval_metrics``: every gold entry's key, relevance 1."""
    return {entry["key"]: 1 for entry in gold}


def gold_run(hits: Sequence[Any], gold: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """One query's run for ``retrieval_metrics`` from hits in rank order: a hit from a gold document is named
    by the entry's key, any other by ``doc:<document_id>``; a document is ranked where its first chunk is
    (later chunks of it are dropped); scores fall with the rank (n, n-1, ...), so ties cannot reorder."""
    run: dict[str, float] = {}
    for hit in hits:
        key = gold_key(hit, gold) or f"doc:{_field(hit, 'document_id')}"
        if key not in run:
            run[key] = float(len(hits) - len(run))
    return run


# --- retrieval ----------------------------------------------------------------------------------------


def retrieval_metrics(
    run: Mapping[str, Mapping[str, float]],
    qrels: Mapping[str, Mapping[str, int]],
    ks: Sequence[int] = (1, 3, 5, 10),
    *,
    per_query: bool = False,
) -> dict[str, Any]:
    """Recall@k for each k in ``ks``, MRR@10 and nDCG@10 (ranx), averaged over the queries in ``qrels``
    that have at least one relevant document (relevance > 0); a query missing from ``run`` (or with an empty
    ranking) scores 0. ``run``: {query: {doc: score}}; ``qrels``: {query: {doc: relevance}} (``gold_run``
    and ``gold_qrels`` build one query's entries). Returns {"recall@k": ..., "mrr@10": ..., "ndcg@10": ...,
    "n_queries": n}, values None when no query has gold; with ``per_query``, also "per_query":
    {metric: {query: value}} for paired comparisons (``bootstrap_ci``)."""
    from ranx import Qrels, Run, evaluate

    metrics = [f"recall@{k}" for k in ks] + ["mrr@10", "ndcg@10"]
    judged = {q: {d: int(r) for d, r in docs.items() if r > 0} for q, docs in qrels.items()}
    judged = {q: docs for q, docs in judged.items() if docs}
    if not judged:
        out: dict[str, Any] = {m: None for m in metrics}
        out["n_queries"] = 0
        if per_query:
            out["per_query"] = {m: {} for m in metrics}
        return out
    ranked = {q: {str(d): float(s) for d, s in (run.get(q) or {}).items()} for q in judged}
    for docs in ranked.values():
        if not docs:  # ranx cannot hold an empty ranking; one document that is not judged scores the same (0)
            docs["\x00nothing retrieved"] = 0.0
    ranx_run = Run(ranked)
    means = evaluate(Qrels(judged), ranx_run, metrics)
    if not isinstance(means, dict):  # ranx returns a bare number for a single metric
        means = {metrics[0]: means}
    out = {m: float(means[m]) for m in metrics}
    out["n_queries"] = len(judged)
    if per_query:
        out["per_query"] = {m: {q: float(v) for q, v in ranx_run.scores[m].items()} for m in metrics}
    return out


# --- guardrails ---------------------------------------------------------------------------------------


def guardrail_metrics(
    results: Iterable[tuple[str, Iterable[str]]], rails: Sequence[str] = ("injection", "harmful")
) -> dict[str, dict[str, Any]]:
    """Per rail: precision, recall, F1 and false-positive rate. ``results``: (expected, fired) per text, where
    ``expected`` is the rail that must block it ("none" for benign text) and ``fired`` the rails (categories)
    that did. A text is a positive for a rail when it is expected there, a negative otherwise (benign text and
    the other rails' positives). precision with nothing fired and recall with no positives are None;
    fp_rate = fp / negatives (None without negatives)."""
    rows = [(expected, set(fired)) for expected, fired in results]
    out = {}
    for rail in rails:
        tp = sum(e == rail and rail in f for e, f in rows)
        fn = sum(e == rail and rail not in f for e, f in rows)
        fp = sum(e != rail and rail in f for e, f in rows)
        tn = sum(e != rail and rail not in f for e, f in rows)
        precision = tp / (tp + fp) if tp + fp else None
        recall = tp / (tp + fn) if tp + fn else None
        f1 = (
            (2 * precision * recall / (precision + recall) if precision + recall else 0.0)
            if precision is not None and recall is not None
            else None
        )
        out[rail] = {
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "fp_rate": fp / (fp + tn) if fp + tn else None,
            "tp": tp,
            "fp": fp,
            "fn": fn,
            "tn": tn,
        }
    return out


# --- statistics ---------------------------------------------------------------------------------------


def percentile(values: Iterable[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) of ``values`` (numpy's linear interpolation between order statistics);
    None when there are no values. The one percentile of the evaluation suite and every benchmark."""
    data = np.asarray([float(v) for v in values], dtype=float)
    return float(np.percentile(data, q)) if data.size else None


def percentiles(values: Iterable[float], qs: Sequence[float] = (50, 95)) -> dict[str, float | None]:
    """{"p50": ..., "p95": ...} of ``values`` (``percentile`` each); None for each when there are no values.
    Latency: pass the times in ms."""
    data = [float(v) for v in values]
    return {f"p{q:g}": percentile(data, q) for q in qs}


def bootstrap_ci(
    values_a: Sequence[float], values_b: Sequence[float] | None = None, n: int = 1000, seed: int = 0, alpha: float = 0.05
) -> dict[str, Any]:
    """Percentile-bootstrap confidence interval (1 - ``alpha``) for the mean of ``values_a``, or, with
    ``values_b``, for the mean paired difference a - b (item i of a and b measured on the same question:
    resampling the differences keeps the pairing). ``n`` resamples drawn with numpy's generator seeded by
    ``seed`` (the same input gives the same interval).

    Returns {"mean": observed mean (difference), "low", "high", "n": items, "resamples": n}; with no items,
    mean/low/high are None. A single item gives low == high == mean."""
    a = np.asarray([float(v) for v in values_a], dtype=float)
    if values_b is not None:
        b = np.asarray([float(v) for v in values_b], dtype=float)
        if a.shape != b.shape:
            raise ValueError(f"paired values differ in length: {a.size} and {b.size}")
        a = a - b
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if a.size == 0:
        return {"mean": None, "low": None, "high": None, "n": 0, "resamples": n}
    if np.isnan(a).any():
        raise ValueError("values contain NaN: drop undefined items (None) before the bootstrap")
    rng = np.random.default_rng(seed)
    means = np.empty(n)
    chunk = max(1, 2_000_000 // a.size)  # bounded memory: at most ~2M indices at a time
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        means[start:stop] = a[rng.integers(0, a.size, size=(stop - start, a.size))].mean(axis=1)
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return {"mean": float(a.mean()), "low": float(low), "high": float(high), "n": int(a.size), "resamples": n}
