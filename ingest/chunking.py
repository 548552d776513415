"""Token-aware chunking with character offsets.

Splitting is LangChain's RecursiveCharacterTextSplitter (paragraphs, then lines, sentences, words),
measured with the embedder's own tokenizer so a chunk never exceeds what the model reads.
"""

from __future__ import annotations

from collections.abc import Callable

from langchain_text_splitters import RecursiveCharacterTextSplitter

from core.types import Chunk, Document

SPLITTER_NAME = "recursive-v1"  # recorded in the manifest: change it when the splitting rules change
_SEPARATORS = ["\n\n", "\n", ". ", "? ", "! ", "; ", ", ", " ", ""]


class Chunker:
    def __init__(self, count_tokens: Callable[[str], int], chunk_tokens: int, overlap_tokens: int):
        if overlap_tokens >= chunk_tokens:
            raise ValueError(f"overlap_tokens ({overlap_tokens}) must be smaller than chunk_tokens ({chunk_tokens})")
        self.count_tokens = count_tokens
        self.chunk_tokens = chunk_tokens
        self._splitter = RecursiveCharacterTextSplitter(
            chunk_size=chunk_tokens,
            chunk_overlap=overlap_tokens,
            length_function=count_tokens,
            separators=_SEPARATORS,
            keep_separator="end",  # a sentence keeps its full stop
            strip_whitespace=True,
        )

    def split(self, document: Document) -> list[Chunk]:
        text = document.text
        n_tokens = self.count_tokens(text)
        if n_tokens <= self.chunk_tokens:  # most documents: one chunk, no splitting work
            return [Chunk(document.id, 0, 0, len(text), text, n_tokens)] if text else []
        chunks: list[Chunk] = []
        cursor = 0
        for piece in self._splitter.split_text(text):
            # Pieces come in order and may overlap: search from just after the previous start.
            start = text.find(piece, cursor)
            if start < 0:  # cannot happen with strip_whitespace pieces, but never store a wrong offset
                raise AssertionError(f"chunk not found in document {document.id} after offset {cursor}")
            chunks.append(Chunk(document.id, len(chunks), start, start + len(piece), piece, self.count_tokens(piece)))
            cursor = start + 1
        return chunks


def embedding_input(title: str, chunk_text: str, embed_title: bool) -> str:
    """What is embedded for a chunk: the title first, so a passage deep in a document keeps its topic."""
    return f"{title}\n{chunk_text}" if embed_title and title and title not in chunk_text[: len(title) + 2] else chunk_text
