"""A real SIGKILL in the middle of an ingest leaves a collection that opens, searches and passes `check`;
running the ingest again completes it with exactly the counts of an uninterrupted run."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import committed_generation, run_cli

N_FILES = 1200


def _text(i: int) -> str:
    # Unique text per document, several chunks each at 40 tokens.
    return "\n\n".join(f"Report {i} section {j}: revenue grew {i * 7 + j} percent in region {j}." for j in range(6))


def _many_files(folder: Path) -> Path:
    folder.mkdir()
    for i in range(N_FILES):
        (folder / f"{i:05d}.txt").write_text(_text(i), encoding="utf-8")
    return folder


def _one_big_file(folder: Path) -> Path:
    """A BEIR-style corpus.jsonl: one file whose documents span many commits."""
    folder.mkdir()
    lines = (json.dumps({"_id": f"D{i}", "title": f"Report {i}", "text": _text(i)}) for i in range(N_FILES))
    (folder / "corpus.jsonl").write_text("\n".join(lines), encoding="utf-8")
    return folder


def _kill_after_commits(args: list[str], env: dict, db: Path, commits: int) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "cli", *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    start = committed_generation(db) if db.exists() else 0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if committed_generation(db) >= start + commits:
            break
        time.sleep(0.002)
    assert proc.poll() is None, f"ingest finished before it could be killed: {proc.stderr.read().decode()[-500:]}"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def _snapshot(index_dir: Path, name: str) -> set[tuple]:
    con = sqlite3.connect(index_dir / name / "docs.sqlite")
    rows = con.execute(
        "SELECT d.source, d.id, c.ordinal, c.start_char, c.end_char, c.embed_hash FROM chunks c JOIN documents d ON d.pk = c.doc_pk"
    ).fetchall()
    con.close()
    return set(rows)


@pytest.mark.parametrize("make_corpus", [_many_files, _one_big_file], ids=["many-files", "one-big-file"])
def test_sigkill_mid_ingest_then_check_then_resume(tmp_path, cli_env, make_corpus):
    corpus = make_corpus(tmp_path / "corpus")
    env = {**cli_env, "ASSISTANT_INGEST__COMMIT_CHUNKS": "16"}
    index_dir = Path(env["ASSISTANT_INDEX_DIR"])
    db = index_dir / "killed" / "docs.sqlite"
    args = ["ingest", str(corpus), "-c", "killed", "-q"]

    # Kill twice at different depths, checking the collection after each kill.
    for commits in (3, 40):
        _kill_after_commits(args, env, db, commits)
        out = run_cli(["check", "-c", "killed", "--json"], env)
        assert out.returncode == 0, out.stdout + out.stderr
        report = json.loads(out.stdout)
        assert report["ok"] and report["problems"] == []
        assert 0 < report["documents"] < N_FILES  # really killed mid-way
        assert report["indexed_vectors"] == report["chunks"]
        search = run_cli(["search", "revenue region", "-c", "killed", "--json"], env)
        assert search.returncode == 0 and json.loads(search.stdout)["hits"]

    resumed = run_cli([*args, "--json"], env)
    assert resumed.returncode == 0, resumed.stderr
    reference = run_cli(["ingest", str(corpus), "-c", "reference", "-q", "--json"], env)
    assert reference.returncode == 0, reference.stderr
    killed_totals = json.loads(resumed.stdout)["totals"]
    assert killed_totals == json.loads(reference.stdout)["totals"]
    assert killed_totals["documents"] == N_FILES
    assert _snapshot(index_dir, "killed") == _snapshot(index_dir, "reference")
    final = json.loads(run_cli(["check", "-c", "killed", "--json"], env).stdout)
    assert final["ok"] and final["repaired"] == []
