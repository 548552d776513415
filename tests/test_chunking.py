"""Chunking keeps offsets exact and respects the token budget; cleaning normalises what PDFs and HTML leave."""

from __future__ import annotations

import pytest

from core.embedding import HashEmbedder
from core.types import Document
from ingest.chunking import Chunker, embedding_input
from ingest.cleaning import clean_text, clean_title

count = HashEmbedder(16).count_tokens


def _doc(text: str) -> Document:
    return Document.create("/x.txt", "T", text)


@pytest.mark.parametrize("chunk_tokens,overlap", [(20, 0), (20, 5), (50, 10), (7, 3)])
def test_chunks_point_back_into_the_document_and_fit_the_budget(chunk_tokens, overlap):
    text = "\n\n".join(
        f"Section {i}. The patient received {i * 5} mg of drug-{i}; symptoms improved. Follow-up after {i} weeks!" for i in range(30)
    )
    doc = _doc(text)
    chunks = Chunker(count, chunk_tokens, overlap).split(doc)
    assert len(chunks) > 1
    for i, chunk in enumerate(chunks):
        assert chunk.ordinal == i
        assert doc.text[chunk.start : chunk.end] == chunk.text
        assert chunk.n_tokens == count(chunk.text) <= chunk_tokens
    starts = [c.start for c in chunks]
    assert starts == sorted(starts)
    # Together the chunks cover every word of the document.
    covered = set()
    for c in chunks:
        covered.update(range(c.start, c.end))
    assert all(i in covered for i, ch in enumerate(text) if not ch.isspace())


def test_overlap_repeats_text_between_neighbours():
    text = " ".join(f"word{i}" for i in range(200))
    chunks = Chunker(count, 30, 10).split(_doc(text))
    assert all(a.end > b.start for a, b in zip(chunks, chunks[1:]))


def test_short_document_is_one_chunk_and_empty_is_none():
    assert [(c.start, c.end) for c in Chunker(count, 50, 5).split(_doc("Short text."))] == [(0, 11)]
    assert Chunker(count, 50, 5).split(_doc("")) == []


def test_repeated_passages_get_their_own_offsets():
    text = "\n\n".join(["The same sentence repeats here in full."] * 6)
    chunks = Chunker(count, 9, 0).split(_doc(text))
    assert len({c.start for c in chunks}) == len(chunks) == 6


def test_overlap_must_be_smaller_than_chunk():
    with pytest.raises(ValueError, match="overlap_tokens"):
        Chunker(count, 10, 10)


def test_embedding_input_prefixes_the_title_once():
    assert embedding_input("Asthma", "Inhalers help.", True) == "Asthma\nInhalers help."
    assert embedding_input("Asthma", "Asthma is a disease.", True) == "Asthma is a disease."
    assert embedding_input("Asthma", "Inhalers help.", False) == "Inhalers help."


def test_clean_text_normalises_whitespace_controls_and_hyphenation():
    raw = "  Treat-\nment of\u00a0 asthma\r\n\r\n\r\n\r\nzero\u200bwidth\x07 bell\t\ttabs  \n"
    assert clean_text(raw) == "Treatment of asthma\n\nzerowidth bell tabs"
    assert clean_text("e\u0301") == "\u00e9"  # NFC
    assert clean_title("  What is\n (are) Asthma ? ") == "What is (are) Asthma ?"
