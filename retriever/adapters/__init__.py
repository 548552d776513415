"""Our retriever inside other frameworks.

Each module wraps :class:`retriever.hybrid.Retriever` in one framework's retriever interface and needs
that framework, installed with its extra:

* ``retriever.adapters.langchain``: ``AssistantRetriever``, a LangChain ``BaseRetriever``
  (``pip install 'domain-assistant[langchain]'``);
* ``retriever.adapters.llamaindex``: ``AssistantLlamaRetriever``, a LlamaIndex ``BaseRetriever``
  (``pip install 'domain-assistant[llamaindex]'``).

Importing this package needs neither; importing a module (or one of its names from here) without its
extra raises an ImportError that says which extra to install. Both adapters only query an open
collection: nothing is downloaded and no model is loaded beyond the embedder you pass in.
"""

from __future__ import annotations

from typing import Any

from core.types import Hit

__all__ = ["AssistantLlamaRetriever", "AssistantRetriever", "hit_metadata"]

_LAZY = {"AssistantRetriever": "langchain", "AssistantLlamaRetriever": "llamaindex"}


def hit_metadata(hit: Hit) -> dict[str, Any]:
    """A hit's fields as a flat metadata dict: the document's own metadata, then our fields (which win)."""
    return {
        **hit.metadata,
        "chunk_id": hit.chunk_id,
        "document_id": hit.document_id,
        "title": hit.title,
        "source": hit.source,
        "start": hit.start,
        "end": hit.end,
        "score": hit.score,
        "scores": dict(hit.scores),
    }


def __getattr__(name: str) -> Any:
    # `from retriever.adapters import AssistantRetriever` imports the framework only when asked for.
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
