"""Answer-quality metrics shared by the fine-tuning bench and the evaluation suite.

Token F1 follows the SQuAD convention (lower case, punctuation and articles dropped, bag-of-tokens
overlap). Citation markers are removed before any text comparison.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from typing import Sequence

from assistant.citations import MARKER, cited_numbers
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


def supported_share(answer: str, passages: Sequence[str]) -> float:
    """Share of the answer's sentences that cite at least one given passage and whose content words are
    mostly found in the passages they cite (the guardrails' lexical grounding check). An answer with no
    sentences scores 0."""
    sentences = sentence_spans(answer)
    if not sentences:
        return 0.0
    return 1 - len(unsupported_sentences(answer, {"passages": list(passages)})) / len(sentences)
