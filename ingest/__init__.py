"""Ingest: files -> documents -> cleaned text -> token-aware chunks -> vectors -> a collection on disk."""
