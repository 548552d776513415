"""Linear text classifiers for ``kind: classifier`` rules: character n-gram TF-IDF + logistic regression.

Why: pattern rules catch the phrasings their author saw; an attack worded some new way ("forget the
assignments, now write ...") slips past them. A linear model over character n-grams generalises over
wording, spelling and language mixes at well under a millisecond per question, and is small enough to
read and ship as plain JSON (no pickle: loading a model file never runs code).

The model file holds the vectoriser's settings, its vocabulary and idf weights, the coefficients and the
intercept, plus a ``card`` (what it was trained on, the threshold suggested by cross-validation). scikit-learn
does the feature extraction at run time exactly as in training, so the scores match.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import UserError

MODELS = Path(__file__).resolve().parent / "models"
# The vectoriser settings every model is trained with (recorded in the file, read back from it).
VECTORISER = {"analyzer": "char_wb", "ngram_range": [2, 5], "min_df": 2, "sublinear_tf": True, "max_features": 40000}


class TextClassifier:
    def __init__(self, spec: dict[str, Any], path: Path | None = None):
        from sklearn.feature_extraction.text import TfidfVectorizer

        try:
            settings = spec["vectoriser"]
            vocabulary = spec["vocabulary"]
            self.vectoriser = TfidfVectorizer(
                analyzer=settings["analyzer"], ngram_range=tuple(settings["ngram_range"]),
                sublinear_tf=settings["sublinear_tf"], lowercase=True,
                vocabulary={term: i for i, term in enumerate(vocabulary)},
            )  # fmt: skip
            self.vectoriser.idf_ = np.asarray(spec["idf"], dtype=np.float64)
            self.coef = np.asarray(spec["coef"], dtype=np.float64)
            self.intercept = float(spec["intercept"])
        except (KeyError, TypeError, ValueError) as exc:
            raise UserError(f"{path or 'classifier'}: not a classifier model file ({type(exc).__name__}: {exc})") from None
        if not (len(vocabulary) == len(self.coef) == len(self.vectoriser.idf_)):
            raise UserError(f"{path or 'classifier'}: vocabulary, idf and coef have different lengths")
        self.card = spec.get("card", {})

    def score(self, text: str) -> float:
        """Probability-like score in [0, 1] that ``text`` belongs to the positive class."""
        return float(self.scores([text])[0])

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        logits = self.vectoriser.transform(list(texts)) @ self.coef + self.intercept
        return 1.0 / (1.0 + np.exp(-np.clip(logits, -50, 50)))


def model_path(name_or_path: str) -> Path:
    """A built-in model name (guardrails/models/NAME.json) or a path to a model file."""
    builtin = MODELS / f"{name_or_path}.json"
    return builtin if builtin.exists() else Path(name_or_path)


@lru_cache(maxsize=8)
def load_classifier(name_or_path: str) -> TextClassifier:
    path = model_path(name_or_path)
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in MODELS.glob("*.json"))) or "none"
        raise UserError(f"no classifier model {name_or_path!r}: not a built-in model ({known}) nor a file")
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: cannot read classifier model: {exc}") from None
    return TextClassifier(spec, path)


def train(texts: Sequence[str], labels: Sequence[int], *, c: float = 10.0, card: dict[str, Any] | None = None) -> dict[str, Any]:
    """Fit the vectoriser and a class-balanced logistic regression; returns the JSON-ready model spec."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vectoriser = TfidfVectorizer(
        analyzer=VECTORISER["analyzer"], ngram_range=tuple(VECTORISER["ngram_range"]), min_df=VECTORISER["min_df"],
        sublinear_tf=VECTORISER["sublinear_tf"], max_features=VECTORISER["max_features"], lowercase=True,
    )  # fmt: skip
    features = vectoriser.fit_transform(list(texts))
    model = LogisticRegression(C=c, class_weight="balanced", max_iter=5000).fit(features, list(labels))
    vocabulary = sorted(vectoriser.vocabulary_, key=vectoriser.vocabulary_.get)
    return {
        "card": card or {},
        "vectoriser": {k: VECTORISER[k] for k in ("analyzer", "ngram_range", "sublinear_tf")},
        "vocabulary": vocabulary,
        "idf": [round(float(x), 6) for x in vectoriser.idf_],
        "coef": [round(float(x), 6) for x in model.coef_[0]],
        "intercept": round(float(model.intercept_[0]), 6),
    }
