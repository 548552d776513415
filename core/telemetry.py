"""Request ids, and OpenTelemetry spans when tracing is on.

``REQUEST_ID`` holds the id of the API request being served (set by api/app.py's ``RequestContext``). It is a
context variable, so it follows the request into threads started with its context copied (the answer worker,
the thread pool); log records (core/logs.py) and guardrails audit entries read it from there.

Tracing is off until ``configure_tracing`` is given an OTLP endpoint (or an exporter, in tests). Off, ``span``
and ``start`` return a shared no-op span after one global check, and nothing from opentelemetry is imported:
the ``otel`` extra (opentelemetry-sdk and the OTLP/HTTP exporter) is only needed to turn it on.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from contextlib import AbstractContextManager
from contextvars import ContextVar
from typing import Any

from core.errors import UserError

REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
# What a client may send as X-Request-ID and have kept: visible ASCII (no spaces, no control characters, so it
# cannot break a log line or a header), at most 128 characters. Anything else is replaced by a new id.
MAX_REQUEST_ID = 128
_VALID_ID = re.compile(rf"[\x21-\x7e]{{1,{MAX_REQUEST_ID}}}")
TRACER_NAME = "domain-assistant"


def request_id() -> str | None:
    """The id of the request being served in this context, or None outside one."""
    return REQUEST_ID.get()


def new_request_id() -> str:
    return uuid.uuid4().hex


def accepted_request_id(value: str | None) -> str:
    """``value`` when it is an acceptable id, else a new one."""
    return value if value is not None and _VALID_ID.fullmatch(value) else new_request_id()


# ---------------------------------------------------------------------- spans


class _NoSpan:
    """What ``span`` and ``start`` give with tracing off: every call does nothing."""

    __slots__ = ()

    def __enter__(self) -> _NoSpan:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def set_attribute(self, key: str, value: Any) -> None:
        pass

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        pass

    def update_name(self, name: str) -> None:
        pass

    def end(self) -> None:
        pass


NO_SPAN = _NoSpan()
_tracer: Any = None  # an opentelemetry Tracer while tracing is on
_provider: Any = None


def tracing() -> bool:
    return _tracer is not None


def attributes(values: Mapping[str, Any]) -> dict[str, Any]:
    """Span attributes: None values left out (OpenTelemetry refuses them), the request id added."""
    out = {k: v for k, v in values.items() if v is not None}
    rid = REQUEST_ID.get()
    if rid is not None:
        out.setdefault("request_id", rid)
    return out


def span(name: str, *, server: bool = False, carrier: Mapping[str, str] | None = None, **attrs: Any) -> AbstractContextManager[Any]:
    """A span that is the current one inside the ``with`` block (its children nest under it); for blocks that
    do not yield. ``server``: the span of an incoming request, continuing the caller's trace when ``carrier``
    (its headers) holds a W3C ``traceparent``."""
    if _tracer is None:
        return NO_SPAN
    from opentelemetry.trace import SpanKind

    context = None
    if carrier is not None:
        from opentelemetry.propagate import extract

        context = extract(carrier)
    kind = SpanKind.SERVER if server else SpanKind.INTERNAL
    return _tracer.start_as_current_span(name, context=context, kind=kind, attributes=attributes(attrs))


def start(name: str, **attrs: Any) -> Any:
    """A span the caller ends (``.end()``), not made current: for work that spans ``yield``s."""
    if _tracer is None:
        return NO_SPAN
    return _tracer.start_span(name, attributes=attributes(attrs))


def activate(span: Any) -> Any:
    """Make a span from ``start`` the current one (children nest under it) until ``deactivate``."""
    if span is NO_SPAN:
        return None
    from opentelemetry import context, trace

    return context.attach(trace.set_span_in_context(span))


def deactivate(token: Any) -> None:
    if token is not None:
        from opentelemetry import context

        context.detach(token)


def failed(span: Any, exc: BaseException) -> None:
    """Record an exception on a span from ``start`` (``span`` does it by itself)."""
    if span is NO_SPAN:
        return
    from opentelemetry.trace import Status, StatusCode

    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))


def otlp_traces_url(endpoint: str) -> str:
    """The collector's base URL (``http://host:4318``) with OTLP/HTTP's traces path, unless it is there already."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith("/v1/traces") else endpoint + "/v1/traces"


def configure_tracing(endpoint: str | None = None, *, service_name: str = TRACER_NAME, exporter: Any = None) -> bool:
    """Turn tracing on: spans exported to the OTLP/HTTP ``endpoint`` in batches, or to ``exporter`` one by one
    (tests: the SDK's InMemorySpanExporter). Neither: tracing stays off and False is returned."""
    global _tracer, _provider
    if not endpoint and exporter is None:
        return False
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

        if exporter is None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError as exc:
        raise UserError(
            f"tracing needs the otel extra ({exc.name} is missing): pip install 'domain-assistant[otel]', "
            "or unset ASSISTANT_TRACING__OTLP_ENDPOINT"
        ) from None
    if exporter is None:
        processor: Any = BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_traces_url(str(endpoint))))
    else:
        processor = SimpleSpanProcessor(exporter)
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(processor)
    shutdown_tracing()
    _provider, _tracer = provider, provider.get_tracer(TRACER_NAME)
    return True


def shutdown_tracing() -> None:
    """Export what is pending and turn tracing off."""
    global _tracer, _provider
    provider, _provider, _tracer = _provider, None, None
    if provider is not None:
        provider.shutdown()
