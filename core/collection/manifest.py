"""``manifest.json``: what a collection was built with (embedder, chunking), which FAISS checkpoint it holds
and its counts. Written atomically at every checkpoint; read first by every open."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ValidationError

from core.errors import CollectionMismatch, CollectionNotFound, CorruptCollection
from core.storage import atomic_write_json

FORMAT_VERSION = 1
MANIFEST = "manifest.json"


class EmbedderInfo(BaseModel):
    name: str
    dim: int


class ChunkingInfo(BaseModel):
    splitter: str
    chunk_tokens: int
    overlap_tokens: int
    embed_title: bool


class IndexInfo(BaseModel):
    kind: str  # "flat" (exact inner product), "hnsw" or "ivf" (vectors.py)
    generation: int  # SQLite generation the FAISS file reflects
    chunks: int
    # An IVF's: how many vectors the collection held when its centroids were trained (to tell when it has
    # outgrown them). Null for the other kinds; absent from manifests written before IVF.
    trained_on: int | None = None


class Manifest(BaseModel):
    format_version: int
    name: str
    embedder: EmbedderInfo
    chunking: ChunkingInfo
    index: IndexInfo
    documents: int
    files: int
    created_at: str
    updated_at: str


def missing_collection(path: Path) -> CollectionNotFound:
    """The error for a collection that is not at ``path``; the API also answers it for one the key may not see."""
    return CollectionNotFound(f"no collection at {path} (missing {MANIFEST}); create it with `assistant ingest PATH --collection NAME`")


def read_manifest(path: Path) -> Manifest:
    file = Path(path) / MANIFEST
    if not file.exists():
        raise missing_collection(path)
    try:
        manifest = Manifest.model_validate_json(file.read_text(encoding="utf-8"))
    except (ValidationError, ValueError) as exc:
        raise CorruptCollection(f"{file} is not a valid manifest: {exc}") from exc
    if manifest.format_version != FORMAT_VERSION:
        raise CollectionMismatch(
            f"collection {path} has format version {manifest.format_version}, this version reads {FORMAT_VERSION}; "
            "rebuild it with `assistant ingest PATH... --collection NAME --rebuild`"
        )
    return manifest


def write_manifest(path: Path, manifest: Manifest) -> None:
    atomic_write_json(Path(path) / MANIFEST, manifest.model_dump())


def ensure_compatible(manifest: Manifest, embedder: EmbedderInfo, chunking: ChunkingInfo) -> None:
    """Refuse to mix vectors or chunks made with different settings in one collection."""
    differences = []
    if manifest.embedder != embedder:
        differences.append(f"embedder {manifest.embedder.name} ({manifest.embedder.dim}-d) on disk, {embedder.name} ({embedder.dim}-d) now")
    if manifest.chunking != chunking:
        was, now = manifest.chunking, chunking
        differences.append(
            f"chunking {was.chunk_tokens}/{was.overlap_tokens} tokens (title embedded: {was.embed_title}, {was.splitter}) on disk, "
            f"{now.chunk_tokens}/{now.overlap_tokens} (title embedded: {now.embed_title}, {now.splitter}) now"
        )
    if differences:
        raise CollectionMismatch(
            f"collection {manifest.name!r} was built with other settings: {'; '.join(differences)}. "
            f"Either restore the settings it was built with, or rebuild it: "
            f"`assistant ingest PATH... --collection {manifest.name} --rebuild`"
        )
