"""Shared fixtures: a tiny five-document corpus, a hash embedder, a temporary index folder."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from core.collection import Collection, IndexParams
from core.embedding import HashEmbedder
from ingest.chunking import Chunker
from ingest.pipeline import Ingestor, chunking_info, open_for_ingest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

FIVE_DOCS = {
    "metformin.md": "# Metformin\n\nMetformin is a first-line medicine for type 2 diabetes. It lowers glucose "
    "production in the liver.\n\nCommon side effects are nausea and diarrhoea; take it with meals.",
    "hypertension.txt": "High blood pressure (hypertension) raises the risk of stroke and heart attack. "
    "Lifestyle changes such as less salt and regular exercise lower it.",
    "asthma.txt": "Asthma is a chronic disease of the airways. Inhalers with corticosteroids reduce inflammation; "
    "rescue inhalers open the airways quickly during an attack.",
    "revenue.md": "# Revenue recognition\n\nRevenue is recognised when control of goods passes to the customer. "
    "Deferred revenue is a liability until the obligation is met.",
    "dividends.txt": "A dividend is a distribution of profits to shareholders. The payout ratio is dividends divided by net income.",
}


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "corpus"
    folder.mkdir()
    for name, text in FIVE_DOCS.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


@pytest.fixture
def embedder() -> HashEmbedder:
    return HashEmbedder(64)


def make_ingestor(path: Path, embedder, *, chunk_tokens=40, overlap=8, commit_chunks=4, params=IndexParams(), max_bytes=2**20):
    """Open (or create) a collection at path and return (collection, ingestor) using small chunks."""
    collection = open_for_ingest(path, embedder, chunking_info(chunk_tokens, overlap, True), params)
    ingestor = Ingestor(
        collection,
        embedder,
        chunker=Chunker(embedder.count_tokens, chunk_tokens, overlap),
        commit_chunks=commit_chunks,
        max_bytes=max_bytes,
        progress=False,
    )
    return collection, ingestor


def ingest_once(path: Path, embedder, paths, **kwargs):
    collection, ingestor = make_ingestor(path, embedder, **kwargs)
    with collection:
        return ingestor.ingest(paths), collection.counts()


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTANT_")}
    env.update(
        ASSISTANT_INDEX_DIR=str(tmp_path / "indexes"),
        ASSISTANT_EMBEDDER__MODEL="hash:64",
        ASSISTANT_CHUNKING__CHUNK_TOKENS="40",
        ASSISTANT_CHUNKING__OVERLAP_TOKENS="8",
        ASSISTANT_INGEST__COMMIT_CHUNKS="4",
        ASSISTANT_GUARDRAILS__AUDIT_LOG=str(tmp_path / "guard-audit.jsonl"),
        # The shipped answerability models were fitted on all-MiniLM-L6-v2's cosines, not the hash embedder's.
        ASSISTANT_ANSWERABILITY__THRESHOLD="0.01",
    )
    return env


def run_cli(args: list[str], env: dict[str, str], **kwargs) -> subprocess.CompletedProcess:
    """Run the real console entry point in a subprocess (exit codes and stderr as a user sees them)."""
    return subprocess.run([sys.executable, "-m", "cli", *args], env=env, capture_output=True, text=True, timeout=300, **kwargs)


def open_collection(path: Path, **kwargs) -> Collection:
    return Collection.open(path, **kwargs)


def committed_generation(db: Path) -> int:
    """The generation another process's commits have reached in ``db`` (read-only, without waiting on its
    lock), or -1 while it cannot be read (not yet created, locked)."""
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.1)
        try:
            return int(con.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0])
        finally:
            con.close()
    except (sqlite3.Error, TypeError):
        return -1
