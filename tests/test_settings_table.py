"""The README's settings table is generated from core/config.py: it lists every setting, and it fails here
when someone changes a setting without regenerating it."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

from core.config import Settings

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "settings_table.py"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=REPO)


def test_the_readme_table_matches_the_settings():
    out = run("--check")
    assert out.returncode == 0, out.stderr


def test_every_setting_is_in_the_table_with_its_default():
    printed = run().stdout
    assert "| `ASSISTANT_RETRIEVAL__MIN_RELEVANCE` | `0.337` |" in printed
    assert "| `ASSISTANT_API__SEARCH_THREADS` | cores, at most 4 |" in printed
    assert "| `ASSISTANT_EMBEDDER__CACHE_DIR` | `~/.cache/domain-assistant/models` |" in printed
    sections = [name for name, field in Settings.model_fields.items() if hasattr(field.annotation, "model_fields")]
    expected = len(Settings.model_fields) - len(sections) + sum(len(Settings.model_fields[s].annotation.model_fields) for s in sections)
    assert printed.count("\n| `ASSISTANT_") == expected


def test_a_drifted_table_is_reported(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("settings_table", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{module.START}\n| stale |\n{module.END}\nafter\n")
    monkeypatch.setattr(module, "README", readme)
    assert module.main(["--check"]) == 1
    assert module.main(["--write"]) == 0 and module.main(["--check"]) == 0
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("after\n") and "| stale |" not in text
