"""The `assistant` command as a user runs it: real subprocesses, real exit codes, --json output."""

from __future__ import annotations

import json

from conftest import run_cli


def test_ingest_search_check_delete_roundtrip(tmp_path, corpus, cli_env):
    out = run_cli(["ingest", str(corpus), "--collection", "demo", "--json"], cli_env)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["documents_added"] == 5 and summary["chunks_added"] >= 5
    assert summary["skipped"] == [] and summary["seconds"] > 0
    assert summary["totals"]["documents"] == 5

    out = run_cli(["search", "shareholders dividend payout", "--collection", "demo", "-k", "2", "--json"], cli_env)
    assert out.returncode == 0, out.stderr
    hits = json.loads(out.stdout)["hits"]
    assert [h["rank"] for h in hits] == [1, 2]
    assert hits[0]["source"].endswith("dividends.txt") and hits[0]["title"] == "dividends"
    assert {"score", "snippet", "start", "end", "document_id", "chunk_id"} <= hits[0].keys()

    out = run_cli(["check", "--collection", "demo", "--json"], cli_env)
    assert out.returncode == 0 and json.loads(out.stdout)["ok"] is True

    out = run_cli(["delete", "--collection", "demo", "--source", str(corpus / "dividends.txt"), "--json"], cli_env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["documents_removed"] == 1

    out = run_cli(["collections", "--json"], cli_env)
    (manifest,) = json.loads(out.stdout)
    assert manifest["name"] == "demo" and manifest["documents"] == 4 and (manifest["embedder"], manifest["dim"]) == ("hash:64", 64)
    assert manifest["chunking"]["chunk_tokens"] == 40 and manifest["index_kind"] == "flat"

    human = run_cli(["search", "asthma inhaler", "--collection", "demo"], cli_env)
    assert human.returncode == 0 and "1. [" in human.stdout and "asthma.txt" in human.stdout


def test_second_ingest_reports_everything_unchanged(tmp_path, corpus, cli_env):
    run_cli(["ingest", str(corpus), "-c", "demo", "--json"], cli_env)
    summary = json.loads(run_cli(["ingest", str(corpus), "-c", "demo", "--json"], cli_env).stdout)
    assert summary["documents_added"] == 0 and summary["files_unchanged"] == 5


def test_user_mistakes_exit_2_with_one_line_and_no_traceback(tmp_path, corpus, cli_env):
    cases = [
        (["search", "x", "--collection", "nope"], "no collection at"),
        (["search", "   ", "--collection", "demo"], "the query is empty"),
        (["ingest", str(corpus), "--collection", "../evil"], "invalid collection name"),
        (["delete", "--collection", "demo", "--source", str(tmp_path / "other.txt")], "no documents from"),
        (["search", "x"], "Missing option '--collection'"),
    ]
    run_cli(["ingest", str(corpus), "-c", "demo", "-q"], cli_env)
    for args, message in cases:
        out = run_cli(args, cli_env)
        assert out.returncode == 2, (args, out.stderr)
        assert message in out.stderr, (args, out.stderr)
        assert "Traceback" not in out.stderr


def test_missing_path_is_reported_the_rest_ingested_and_exit_is_2(tmp_path, corpus, cli_env):
    out = run_cli(["ingest", str(corpus), str(tmp_path / "typo"), "-c", "demo", "--json"], cli_env)
    assert out.returncode == 2
    summary = json.loads(out.stdout)
    assert summary["documents_added"] == 5
    assert {"path": str(tmp_path / "typo"), "reason": "no such file or directory"} in summary["skipped"]
    assert out.stderr.strip() == f"error: 1 path(s) do not exist: {tmp_path / 'typo'}"


def test_settings_mismatch_then_rebuild(tmp_path, corpus, cli_env):
    run_cli(["ingest", str(corpus), "-c", "demo", "-q"], cli_env)
    env = {**cli_env, "ASSISTANT_CHUNKING__CHUNK_TOKENS": "60"}
    out = run_cli(["ingest", str(corpus), "-c", "demo"], env)
    assert out.returncode == 2 and "--rebuild" in out.stderr and "chunking 40/8" in out.stderr
    out = run_cli(["ingest", str(corpus), "-c", "demo", "--rebuild", "--json"], env)
    assert out.returncode == 0, out.stderr
    manifest = json.loads(run_cli(["collections", "--json"], env).stdout)[0]
    assert manifest["chunking"]["chunk_tokens"] == 60 and manifest["documents"] == 5 and manifest["name"] == "demo"
    assert not list((tmp_path / "indexes").glob(".demo*"))  # no staging folders left behind


def test_invalid_setting_is_a_user_error(cli_env):
    out = run_cli(["collections"], {**cli_env, "ASSISTANT_CHUNKING__CHUNK_TOKENS": "lots"})
    assert out.returncode == 2 and "invalid settings" in out.stderr and "Traceback" not in out.stderr


def test_unwritable_index_folder_is_one_line_not_a_traceback(tmp_path, corpus, cli_env):
    blocked = tmp_path / "file-not-folder"
    blocked.write_text("x")
    out = run_cli(["ingest", str(corpus), "-c", "demo"], {**cli_env, "ASSISTANT_INDEX_DIR": str(blocked)})
    assert out.returncode == 1 and out.stderr.startswith("error: ") and "Traceback" not in out.stderr


def test_interactive_shell_searches_switches_and_quits(tmp_path, corpus, cli_env):
    run_cli(["ingest", str(corpus), "-c", "demo", "-q"], cli_env)
    run_cli(["ingest", str(corpus / "dividends.txt"), "-c", "other", "-q"], cli_env)
    script = "asthma inhalers airways\n:k 1\n:c nope\n:c other\nshareholders\n:q\n"
    out = run_cli(["shell", "--collection", "demo"], cli_env, input=script)
    assert out.returncode == 0, out.stderr
    assert "collections: demo, other" in out.stdout
    first, rest = out.stdout.split("unknown collection 'nope'")
    assert "1. [" in first and "asthma.txt" in first and "2. [" in first
    assert "other> " in rest and "dividends.txt" in rest and "2. [" not in rest  # k = 1 now


def test_shell_without_collections_says_how_to_make_one(cli_env):
    out = run_cli(["shell"], cli_env, input="")
    assert out.returncode == 2 and "run `assistant ingest PATH --collection NAME` first" in out.stderr


def test_search_modes_filters_and_relevance_flag(tmp_path, corpus, cli_env):
    run_cli(["ingest", str(corpus), "-c", "demo", "-q"], cli_env)
    for mode in ("dense", "bm25", "hybrid"):
        out = run_cli(["search", "asthma inhalers", "-c", "demo", "--mode", mode, "-k", "2", "--json"], cli_env)
        result = json.loads(out.stdout)
        assert out.returncode == 0 and result["hits"][0]["source"].endswith("asthma.txt"), (mode, out.stderr)
        assert {"relevant", "relevance", "timings_ms"} <= result.keys()
    only = str(corpus / "dividends.txt")
    out = run_cli(["search", "asthma dividend", "-c", "demo", "--filter", f"source={only}", "--json"], cli_env)
    assert {h["source"] for h in json.loads(out.stdout)["hits"]} == {only}
    out = run_cli(["search", "asthma", "-c", "demo", "--filter", "nokeyvalue"], cli_env)
    assert out.returncode == 2 and "expected KEY=VALUE" in out.stderr
    strict = {**cli_env, "ASSISTANT_RETRIEVAL__MIN_RELEVANCE": "0.99"}
    out = run_cli(["search", "volcano lava", "-c", "demo"], strict)
    assert out.returncode == 0 and "nothing relevant" in out.stdout
