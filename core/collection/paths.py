"""Where collections live: one folder per collection under the index folder; names, listing, swapping a
rebuilt collection into place."""

from __future__ import annotations

import shutil
from pathlib import Path

from core.collection.manifest import MANIFEST, Manifest, read_manifest
from core.errors import UserError


def collection_path(index_dir: Path, name: str) -> Path:
    """The folder of collection ``name``; UserError for a name that could escape the index folder."""
    if not name or name.startswith(".") or "/" in name or "\\" in name or name in {"..", "."}:
        raise UserError(f"invalid collection name {name!r}: use letters, digits, '-' and '_'")
    if not all(ch.isalnum() or ch in "-_" for ch in name):
        raise UserError(f"invalid collection name {name!r}: use letters, digits, '-' and '_'")
    return Path(index_dir) / name


def list_collections(index_dir: Path) -> list[Manifest]:
    index_dir = Path(index_dir)
    if not index_dir.is_dir():
        return []
    out = []
    for child in sorted(index_dir.iterdir()):
        if (child / MANIFEST).exists() and not child.name.startswith("."):
            try:
                out.append(read_manifest(child))
            except UserError:
                continue
    return out


def replace_collection(staging: Path, target: Path) -> None:
    """Swap a freshly built collection into place. A crash leaves either the old or the new one at ``target``."""
    old = target.parent / f".{target.name}.old"
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    staging.rename(target)
    shutil.rmtree(old, ignore_errors=True)
