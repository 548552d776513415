"""Schemathesis against the live API's own /openapi.json: generated requests (valid and invalid) must never
get a 5xx, and every response must match the documented status codes, content types and schemas.
Bounded (a few dozen examples per operation) so it stays a fast test."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from api.app import create_app
from core.config import Settings
from core.embedding import HashEmbedder
from generator.fake import QueuedGenerator
from tests.conftest import FIVE_DOCS, ingest_once
from tests.live_server import live

ADMIN = "schema-admin-key-0123456789"


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory):
    root = tmp_path_factory.mktemp("schema")
    corpus = root / "corpus"
    corpus.mkdir()
    for name, text in FIVE_DOCS.items():
        (corpus / name).write_text(text, encoding="utf-8")
    ingest_once(root / "indexes" / "docs", HashEmbedder(64), [corpus])
    config = Settings(
        index_dir=root / "indexes",
        embedder={"model": "hash:64"},
        chunking={"chunk_tokens": 40, "overlap_tokens": 8},
        guardrails={"audit_log": root / "audit.jsonl"},
        api={"rate_limit_per_minute": 1_000_000},
        api_keys=f"{ADMIN}:admin",
    )
    app = create_app(
        config, generator=QueuedGenerator(["Metformin treats type 2 diabetes [1]."]), embedders={"hash:64": HashEmbedder(64)}, warm_up=False
    )
    with live(app) as server:
        yield schemathesis.openapi.from_url(server.url + "/openapi.json")


def test_no_server_errors_and_responses_match_the_schema(api_schema):
    # Each operation as its own Hypothesis run (schemathesis' pytest fixture plugin does not load on this pytest).
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 11
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)
        def check(case):
            case.call_and_validate(headers={"Authorization": f"Bearer {ADMIN}"})

        check()
