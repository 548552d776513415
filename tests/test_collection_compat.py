"""Collections built before a change keep working after it: tests/fixtures/collection-format-1 was built by
an earlier layout of the code (tests/fixtures/build_format1_collection.py, commit d672639), with the search
and check results that code gave. Today's code must open it, find the same passages and pass its check,
and keep writing to it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from core.collection import FORMAT_VERSION, Collection
from tests.conftest import run_cli

FIXTURES = Path(__file__).resolve().parent / "fixtures"
EXPECTED = json.loads((FIXTURES / "collection-format-1.expected.json").read_text())


@pytest.fixture
def built(tmp_path, cli_env):
    shutil.copytree(FIXTURES / "collection-format-1", tmp_path / "indexes" / "format1")
    return tmp_path / "indexes" / "format1"


def _hit(hit: dict) -> tuple:
    text = hit.get("snippet", hit.get("text"))  # the passage text, under either name
    return hit["chunk_id"], hit["document_id"], hit["title"], hit["source"], hit["start"], hit["end"], text, round(hit["score"], 4)


def test_the_fixture_is_the_current_format():
    assert json.loads((FIXTURES / "collection-format-1" / "manifest.json").read_text())["format_version"] == FORMAT_VERSION


def test_an_old_collection_opens_and_searches_as_it_did(built, cli_env):
    with Collection.open(built) as store:
        assert store.counts() == {k: EXPECTED["check"][k] for k in ("files", "documents", "chunks")}
        assert store.version == EXPECTED["check"]["generation"] and not store.repaired
    for search in EXPECTED["searches"]:
        out = run_cli(["search", search["query"], "-c", "format1", "-k", "3", "--json", *search["args"]], cli_env)
        assert out.returncode == 0, out.stderr
        got = json.loads(out.stdout)
        assert [_hit(h) for h in got["hits"]] == [_hit(h) for h in search["result"]["hits"]], search["query"]
        assert got["relevant"] == search["result"]["relevant"]
        assert got["relevance"] == pytest.approx(search["result"]["relevance"], abs=1e-4)


def test_an_old_collection_passes_check_and_keeps_its_flags(built, cli_env):
    out = run_cli(["check", "-c", "format1", "--json"], cli_env)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report.pop("advice") == []  # a field added after the fixture was built: nothing to advise a flat index
    assert report == EXPECTED["check"]
    with Collection.open(built) as store:
        flagged = [h for h in store.hits([(cid, 0.0) for cid in range(1, EXPECTED["check"]["chunks"] + 1)]) if h.flags]
    assert [h.title for h in flagged] == ["notice"] and "ingest.instruction_override" in flagged[0].flags


def test_an_old_collection_takes_new_documents_and_deletions(built, cli_env, tmp_path):
    new = tmp_path / "new.txt"
    new.write_text("Warfarin is an anticoagulant; its dose is adjusted to the INR.", encoding="utf-8")
    out = run_cli(["ingest", str(new), "-c", "format1", "--json"], cli_env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["documents_added"] == 1
    out = run_cli(["delete", "-c", "format1", "--source", str(new), "--json"], cli_env)
    assert json.loads(out.stdout)["documents_removed"] == 1
    out = run_cli(["check", "-c", "format1", "--json"], cli_env)
    report = json.loads(out.stdout)
    assert report["ok"] and report["chunks"] == EXPECTED["check"]["chunks"] and report["generation"] == EXPECTED["check"]["generation"] + 2
