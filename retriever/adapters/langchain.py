"""Our retriever as a LangChain retriever (needs ``pip install 'domain-assistant[langchain]'``).

from retriever.adapters.langchain import AssistantRetriever

lc_retriever = AssistantRetriever(retriever=Retriever(collection, embedder), k=4, filters={"source": path})
docs = lc_retriever.invoke("what lowers blood pressure?")  # list[langchain_core.documents.Document]
"""

from __future__ import annotations

from typing import Any

try:
    from langchain_core.callbacks import CallbackManagerForRetrieverRun
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever
    from pydantic import ConfigDict
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError("retriever.adapters.langchain needs LangChain: pip install 'domain-assistant[langchain]'") from exc

from retriever.adapters import hit_metadata

__all__ = ["AssistantRetriever"]


class AssistantRetriever(BaseRetriever):
    """LangChain ``BaseRetriever`` over a :class:`retriever.hybrid.Retriever`.

    Each ``Document`` carries the passage text, ``id`` = the chunk id, and metadata with ``chunk_id``,
    ``document_id``, ``title``, ``source``, ``start``/``end`` (character offsets into the document),
    ``score``, ``scores`` (component scores) and the document's own metadata keys. Errors such as an
    empty query surface as :class:`core.errors.UserError`.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    retriever: Any  # retriever.hybrid.Retriever
    k: int = 5
    filters: dict | None = None

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        hits = self.retriever.retrieve(query, k=self.k, filters=self.filters)
        return [Document(page_content=hit.text, metadata=hit_metadata(hit), id=str(hit.chunk_id)) for hit in hits]
