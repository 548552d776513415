"""Answer-quality metrics shared by the fine-tuning bench and the evaluation suite.

Token F1 follows the SQuAD convention (lower case, punctuation and articles dropped, bag-of-tokens
overlap). Citation markers are removed before any text comparison.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from typing import Sequence

from generator.citations import MARKER, find_markers, sentences_with_citations

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans({c: " " for c in string.punctuation})
# Words that carry no claim: a sentence is judged by its content words only.
STOPWORDS = frozenset(
    "a an the and or but if of to in on at by for with from as is are was were be been being it its this that these "
    "those which who whom what when where why how there their they them he she his her we our you your i can may might "
    "will would should could do does did not no so than then also such into about over under more most other some any "
    "each all both has have had".split()
)


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
    return any(m.valid for m in find_markers(answer, n_passages))


def lexical_support(sentence: str, passages: Sequence[str]) -> float:
    """Share of the sentence's content words found in the passages (1.0 for a sentence with none)."""
    words = [w for w in normalise_tokens(sentence) if w not in STOPWORDS]
    if not words:
        return 1.0
    vocabulary = set(normalise_tokens(" ".join(passages)))
    return sum(w in vocabulary for w in words) / len(words)


def supported_share(answer: str, passages: Sequence[str], threshold: float = 0.6) -> float:
    """Share of the answer's sentences that cite at least one given passage and whose content words are
    mostly (``threshold``) found in the passages they cite. An answer with no sentences scores 0."""
    sentences = sentences_with_citations(answer, len(passages))
    if not sentences:
        return 0.0
    supported = sum(bool(cited) and lexical_support(text, [passages[n - 1] for n in cited]) >= threshold for text, cited in sentences)
    return supported / len(sentences)
