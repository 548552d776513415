"""Our retriever as a LlamaIndex retriever (needs ``pip install 'domain-assistant[llamaindex]'``).

    from retriever.adapters.llamaindex import AssistantLlamaRetriever

    li_retriever = AssistantLlamaRetriever(Retriever(collection, embedder), k=4)
    nodes = li_retriever.retrieve("what lowers blood pressure?")  # list[NodeWithScore]

Retrieval touches none of llama-index-core's lazily fetched data (NLTK stopwords/punkt, tiktoken
encodings, which it bundles anyway), nor ``Settings.llm``/``Settings.embed_model``: nothing is downloaded.
"""

from __future__ import annotations

from typing import Any

try:
    from llama_index.core.callbacks import CallbackManager
    from llama_index.core.retrievers import BaseRetriever
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError("retriever.adapters.llamaindex needs LlamaIndex: pip install 'domain-assistant[llamaindex]'") from exc

from retriever.adapters import hit_metadata

__all__ = ["AssistantLlamaRetriever"]

# Bookkeeping fields kept out of the text LlamaIndex builds for an LLM or an embedder from a node
# (title and source, and the document's own metadata, stay in).
_NOT_FOR_MODELS = ["chunk_id", "document_id", "start", "end", "score", "scores"]


class AssistantLlamaRetriever(BaseRetriever):
    """LlamaIndex ``BaseRetriever`` over a :class:`retriever.hybrid.Retriever`.

    Each result is a ``NodeWithScore`` (``score`` = the hit's score) around a ``TextNode`` whose
    ``id_`` is the chunk id, whose ``start_char_idx``/``end_char_idx`` are the offsets into the document,
    and whose metadata has the same keys as the LangChain adapter's. Errors such as an empty query
    surface as :class:`core.errors.UserError`.
    """

    def __init__(
        self,
        retriever: Any,  # retriever.hybrid.Retriever
        k: int = 5,
        filters: dict | None = None,
        *,
        callback_manager: CallbackManager | None = None,
        verbose: bool = False,
    ) -> None:
        super().__init__(callback_manager=callback_manager, verbose=verbose)
        self.retriever = retriever
        self.k = k
        self.filters = filters

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits = self.retriever.retrieve(query_bundle.query_str, k=self.k, filters=self.filters)
        return [
            NodeWithScore(
                node=TextNode(
                    id_=str(hit.chunk_id),
                    text=hit.text,
                    metadata=hit_metadata(hit),
                    start_char_idx=hit.start,
                    end_char_idx=hit.end,
                    excluded_llm_metadata_keys=list(_NOT_FOR_MODELS),
                    excluded_embed_metadata_keys=list(_NOT_FOR_MODELS),
                ),
                score=hit.score,
            )
            for hit in hits
        ]
