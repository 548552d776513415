"""Project-wide rules: the dependency direction of docs/architecture.md, and the shipped samples intact."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_dependency_direction_holds():
    lint = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    out = subprocess.run([lint, "--no-cache"], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Contracts: 3 kept, 0 broken" in out.stdout


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

