"""BM25 over the collection's FTS5 table (Porter stemming), with queries that cannot break FTS5 syntax."""

from __future__ import annotations

import re

from core.collection import Collection

# Lucene's English stop words (the list bm25s and Elasticsearch use): they match nearly every chunk,
# add nothing to the ranking and make OR queries slow.
STOPWORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then there these "
    "they this to was will with".split()
)
_WORD = re.compile(r"\w+", re.UNICODE)
MAX_TERMS = 64


def query_terms(text: str) -> list[str]:
    """The query's distinct words, lower-cased, stop words removed (kept if nothing else is left)."""
    words = [w.lower() for w in _WORD.findall(text)]
    content = [w for w in words if w not in STOPWORDS] or words
    return list(dict.fromkeys(content))[:MAX_TERMS]


def _quote(word: str) -> str:
    # Quoted, FTS5 operators in user text ("NEAR", "AND", "*", parentheses, "col:") are plain words.
    return '"' + word.replace('"', '""') + '"'


class BM25Retriever:
    def __init__(self, collection: Collection, *, title_weight: float = 1.0):
        self.collection = collection
        self.title_weight = title_weight
        self._df: dict[str, int] = {}
        self._df_generation = -1

    def _common(self, terms: list[str]) -> set[str]:
        """Terms in at least half of the chunks. FTS5's BM25 clamps their IDF to 1e-6, so they do not change
        the ranking of chunks that match any other term, yet scanning their postings dominates query time
        (question words such as "what" appear in most MedQuAD titles). Counts are cached per generation."""
        generation = self.collection.version
        if generation != self._df_generation:
            self._df, self._df_generation = {}, generation
        for term in terms:
            if term not in self._df:
                if len(self._df) > 50_000:
                    self._df.clear()
                self._df[term] = self.collection.chunks_matching(_quote(term))
        n_rows = self.collection.vectors.ntotal or 1
        return {t for t in terms if self._df[t] >= n_rows / 2}

    def scored(self, query: str, k: int, filters: dict | None = None) -> list[tuple[int, float]]:
        terms = query_terms(query)
        if not terms:
            return []
        common = self._common(terms)
        kept = [t for t in terms if t not in common] or terms
        return self.collection.bm25(" OR ".join(map(_quote, kept)), k, filters, self.title_weight)
