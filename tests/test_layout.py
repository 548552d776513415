"""Project-wide rules: the dependency direction of docs/architecture.md, lint, format and types, and the
shipped samples intact."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def tool(name: str) -> str:
    """A command installed beside this Python (the project's virtual environment)."""
    return shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name) or name


def test_dependency_direction_holds():
    out = subprocess.run([tool("lint-imports"), "--no-cache"], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Contracts: 1 kept, 0 broken" in out.stdout


def test_ruff_finds_nothing_and_the_code_is_formatted():
    lint = subprocess.run([tool("ruff"), "check", "--no-cache", "."], cwd=REPO, capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    fmt = subprocess.run([tool("ruff"), "format", "--check", "--no-cache", "."], cwd=REPO, capture_output=True, text=True)
    assert fmt.returncode == 0, f"run `ruff format .`:\n{fmt.stdout}{fmt.stderr}"


def test_mypy_passes_on_core():
    out = subprocess.run([sys.executable, "-m", "mypy", "--no-incremental"], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "no issues found" in out.stdout


def test_shipped_samples_match_their_manifest_and_carry_attribution():
    samples = REPO / "data" / "samples"
    manifest = json.loads((samples / "MANIFEST.json").read_text())
    assert manifest["files"], "the sample manifest lists no files"
    for entry in manifest["files"]:
        data = (samples / entry["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], entry["path"]
    for domain in ("medical", "finance"):
        attribution = (samples / domain / "ATTRIBUTION.md").read_text()
        assert "CC BY 4.0" in attribution
    # financial-qa-10k has no licence: nothing of it may ship.
    assert not any("financial" in p.name.lower() for p in samples.rglob("*"))
