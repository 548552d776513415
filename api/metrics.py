"""Prometheus metrics of one app (its own registry, so several apps in one process do not collide)."""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,  # noqa: F401  (re-exported for the /metrics route)
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "assistant_requests", "HTTP requests by route template and status.", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "assistant_request_seconds",
            "Time to the response's last byte, by route template.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.first_token = Histogram(
            "assistant_time_to_first_token_seconds",
            "Time from request to the first generated token.",
            ["collection"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.tokens = Counter("assistant_generated_tokens", "Tokens generated.", ["collection"], registry=self.registry)
        self.answers = Counter("assistant_answers", "Answers by finish reason.", ["collection", "finish_reason"], registry=self.registry)
        self.guard_blocks = Counter(
            "assistant_guard_blocks", "Questions refused by a guardrail, by rule.", ["collection", "rule"], registry=self.registry
        )
        self.rate_limited = Counter("assistant_rate_limited", "Requests refused with 429.", registry=self.registry)
        self.busy = Counter(
            "assistant_generation_busy", "Requests refused with 503 because the generation queue was full.", registry=self.registry
        )
        self.queue_depth = Gauge("assistant_generation_queue_depth", "Requests waiting for a generation slot.", registry=self.registry)
        self.generating = Gauge("assistant_generation_active", "Generations running.", registry=self.registry)
        self.embed_batch = Histogram(
            "assistant_query_embedding_batch_size",
            "Questions embedded per model call.",
            buckets=(1, 2, 4, 8, 16, 32, 64),
            registry=self.registry,
        )

    def observe_answer(self, answer) -> None:
        self.tokens.labels(answer.collection).inc(answer.tokens)
        self.answers.labels(answer.collection, answer.finish_reason).inc()
        for event in answer.guard_events:
            if event["action"] == "block":
                self.guard_blocks.labels(answer.collection, event["rule_id"]).inc()
        if "first_token" in answer.timings_ms:
            self.first_token.labels(answer.collection).observe(answer.timings_ms["first_token"] / 1000)

    def render(self) -> bytes:
        return generate_latest(self.registry)
