"""Dense retrieval: embed the query with the collection's embedder, search its FAISS index."""

from __future__ import annotations

from assistant.collection import Collection
from assistant.embedding import Embedder
from assistant.errors import UserError
from assistant.types import Hit

MAX_QUERY_CHARS = 10_000


class DenseRetriever:
    def __init__(self, collection: Collection, embedder: Embedder):
        if embedder.name != collection.manifest.embedder.name or embedder.dim != collection.dim:
            raise UserError(
                f"collection {collection.manifest.name!r} was embedded with {collection.manifest.embedder.name} "
                f"({collection.dim}-d); queries must use the same model, not {embedder.name}"
            )
        self.collection = collection
        self.embedder = embedder

    def retrieve(self, query: str, k: int = 5) -> list[Hit]:
        query = " ".join(query.split())
        if not query:
            raise UserError("the query is empty")
        if k < 1:
            raise UserError(f"k must be at least 1, got {k}")
        # The model reads at most a few hundred tokens anyway; cap the work spent on absurd inputs.
        return self.collection.search(self.embedder.embed_query(query[:MAX_QUERY_CHARS]), k)
