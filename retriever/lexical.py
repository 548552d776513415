"""BM25 over the collection's FTS5 table (Porter stemming), with queries that cannot break FTS5 syntax."""

from __future__ import annotations

import re

from assistant.collection import Collection
from assistant.types import Hit

# Lucene's English stop words (the list bm25s and Elasticsearch use): they match nearly every chunk,
# add nothing to the ranking and make OR queries slow.
STOPWORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then there these "
    "they this to was will with".split()
)
_WORD = re.compile(r"\w+", re.UNICODE)
MAX_TERMS = 64


def fts5_query(text: str) -> str | None:
    """An FTS5 MATCH expression that ORs the query's words, each quoted so that FTS5 operators in user
    text ("NEAR", "AND", "*", quotes, parentheses, column filters) are plain words. None if no words."""
    words = [w.lower() for w in _WORD.findall(text)]
    content = [w for w in words if w not in STOPWORDS] or words  # a query of only stop words keeps them
    unique = list(dict.fromkeys(content))[:MAX_TERMS]
    if not unique:
        return None
    return " OR ".join('"' + w.replace('"', '""') + '"' for w in unique)


class BM25Retriever:
    def __init__(self, collection: Collection, *, title_weight: float = 1.0):
        self.collection = collection
        self.title_weight = title_weight

    def scored(self, query: str, k: int, filters: dict | None = None) -> list[tuple[int, float]]:
        match = fts5_query(query)
        return self.collection.bm25(match, k, filters, self.title_weight) if match else []

    def retrieve(self, query: str, k: int = 5, filters: dict | None = None) -> list[Hit]:
        return self.collection.hits(self.scored(query, k, filters))
