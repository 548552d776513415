"""Retrieval over a collection: dense (FAISS), BM25 (FTS5) and hybrid fusion, filters, MMR and a relevance
signal (hybrid.py); adapters/ put the same retriever inside LangChain and LlamaIndex."""
