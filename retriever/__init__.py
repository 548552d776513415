"""Retrieval over a collection. Dense (FAISS) today; BM25 and hybrid fusion build on the same collection."""
