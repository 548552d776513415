"""The FastAPI application: ``create_app(settings)``; ``assistant serve`` runs it with uvicorn.

Model work never runs on the event loop: answers run on a worker thread each (api/service.py), searches
and uploads in the thread pool. Generation passes a bounded queue (503 + Retry-After when full); question
embeddings of concurrent requests are batched. Errors are JSON ``{"detail": "..."}`` with a 4xx (or 503
when busy / 502 when an upstream model server fails); a 500 is a bug. Every response carries an
``X-Request-ID`` (``RequestContext``), which the request's log lines, audit entries and spans carry too.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.deps import require_admin
from api.errors import error_status
from api.metrics import CONTENT_TYPE_LATEST
from api.openai_routes import router as openai_router
from api.routes import router
from api.service import Service
from core import telemetry
from core.config import Settings
from core.embedding import Embedder
from core.errors import AssistantError
from core.logs import ACCESS_LOGGER
from generator.base import Generator
from generator.bounded import GeneratorBusy

log = logging.getLogger("assistant.api")
access_log = logging.getLogger(ACCESS_LOGGER)
REQUEST_ID_HEADER = "X-Request-ID"
OPENAI_PATHS = ("/v1/chat/completions", "/v1/models")


def create_app(
    settings: Settings | None = None,
    *,
    generator: Generator | None = None,
    embedders: dict[str, Embedder] | None = None,
    warm_up: bool = True,
) -> FastAPI:
    """The app. ``generator`` / ``embedders`` replace the configured models (tests); ``warm_up`` loads the
    collections and models in a background thread at startup (``/readyz`` says when it is done)."""
    settings = settings or Settings()
    # Tracing on only with an endpoint (a test may have turned it on with its own exporter: left as it is).
    traced = telemetry.configure_tracing(settings.tracing.otlp_endpoint, service_name=settings.tracing.service_name)
    service = Service(settings, generator=generator, embedders=embedders)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if warm_up:
            threading.Thread(target=service.warm_up, daemon=True, name="warm-up").start()
        else:
            service.readiness.ready = True
        yield
        service.close()
        if traced:
            telemetry.shutdown_tracing()

    app = FastAPI(
        title="Domain assistant API",
        version="1",
        description="Grounded answers with citations from your medical and finance collections.",
        lifespan=lifespan,
    )
    app.state.service = service
    if settings.api.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.api.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type", REQUEST_ID_HEADER],
            expose_headers=[REQUEST_ID_HEADER],
        )
    app.add_middleware(
        BodyLimit,
        json_limit=settings.api.max_request_kb * 1024,
        upload_limit=int(settings.api.max_upload_mb * settings.api.max_upload_files * 2**20) + 2**20,
    )
    app.add_middleware(Instrument, service=service)
    app.add_middleware(RequestContext)  # outermost: the id is set before, and its header added to, every response
    _errors(app)

    app.include_router(router)
    app.include_router(openai_router)

    @app.get("/healthz", tags=["health"], summary="The process is up")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["health"],
        summary="Models loaded and collections open",
        responses={503: {"description": "Still loading, or loading failed"}},
    )
    def readyz() -> JSONResponse:
        r = service.readiness
        body = {"ready": r.ready, "error": r.error, **r.loaded}
        return JSONResponse(body, status_code=200 if r.ready else 503)

    @app.get("/metrics", tags=["health"], summary="Prometheus metrics", dependencies=[Depends(require_admin)], response_class=Response)
    def metrics() -> Response:
        service.refresh_gauges()
        return Response(service.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return app


# ---------------------------------------------------------------------- errors


def error_response(request: Request, status: int, message: str, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"detail": message, **extra}
    if request.url.path in OPENAI_PATHS:  # what OpenAI clients parse
        kind = {
            400: "invalid_request_error",
            401: "authentication_error",
            403: "permission_error",
            404: "not_found_error",
            422: "invalid_request_error",
            429: "rate_limit_error",
        }.get(status, "server_error")
        body["error"] = {"message": message, "type": kind, "param": None, "code": None}
    rid = telemetry.request_id()
    if rid is not None:  # a 500 is sent by Starlette's outermost middleware, around RequestContext: say it here
        headers = {**(headers or {}), REQUEST_ID_HEADER: rid}
    return JSONResponse(body, status_code=status, headers=headers)


def _readable(errors: list[dict]) -> str:
    parts = []
    for e in errors:
        where = ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {e.get('msg', 'invalid')}")
    return "; ".join(parts)


def _errors(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in exc.errors()]
        return error_response(request, 422, _readable(errors), errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(request, exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(AssistantError)
    async def assistant_error(request: Request, exc: AssistantError) -> JSONResponse:
        status, message, headers = error_status(exc)
        if isinstance(exc, GeneratorBusy):
            request.app.state.service.metrics.busy.inc()
        elif status >= 500:  # a full disk, a failed ingest, a damaged collection: the operator needs the cause
            log.error("%s on %s %s: %s", type(exc).__name__, request.method, request.url.path, exc, exc_info=exc)
        return error_response(request, status, message, headers)

    @app.exception_handler(OSError)
    async def os_error(request: Request, exc: OSError) -> JSONResponse:
        # Handled here rather than by the catch-all below, which answers from the outermost middleware and then
        # re-raises (the connection was reset before the client read the answer): a full disk is a 507.
        status, message, headers = error_status(exc)
        log.error("%s on %s %s", type(exc).__name__, request.method, request.url.path, exc_info=exc)
        return error_response(request, status, message, headers)

    @app.exception_handler(Exception)
    async def everything(request: Request, exc: Exception) -> JSONResponse:
        status, message, headers = error_status(exc)
        if status >= 500:
            log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(request, status, message, headers)


# ---------------------------------------------------------------------- middleware (pure ASGI: streaming-safe)


class BodyLimit:
    """413 for a body over the limit: by Content-Length before reading, or while reading a chunked body (the
    413 is sent at once, the app sees a disconnect, and whatever it answers after that is dropped)."""

    def __init__(self, app, *, json_limit: int, upload_limit: int):
        self.app, self.json_limit, self.upload_limit = app, json_limit, upload_limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.upload_limit if scope["path"] == "/v1/documents" else self.json_limit
        too_large = f"request body too large (limit {limit // 1024} KB)"
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            return await _send_json(send, 413, too_large)
        seen = 0
        state = {"started": False, "refused": False}

        async def counted():
            nonlocal seen
            if state["refused"]:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    state["refused"] = True
                    if not state["started"]:
                        state["started"] = True
                        await _send_json(send, 413, too_large)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message):
            if state["refused"]:
                return  # the 413 has been sent
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        await self.app(scope, counted, guarded_send)


async def _send_json(send, status: int, detail: str) -> None:
    import json

    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


class RequestContext:
    """The request id (the client's ``X-Request-ID`` when acceptable, else a new one) in the context of the
    request (log lines, audit entries and spans read it: core/telemetry.py) and in the ``X-Request-ID`` header of
    every response; with tracing on, the request's server span (the parent of its retrieval, rail and generation
    spans); with the JSON log format, the access log line."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        headers = scope.get("headers") or []
        sent = next((v for k, v in headers if k == b"x-request-id"), None)
        rid = telemetry.accepted_request_id(sent.decode("latin-1") if sent is not None else None)
        # Set for the rest of this request's task (uvicorn runs each request in a task of its own). Not reset
        # on an error: Starlette's outermost middleware answers the 500 after this returns, and says the id.
        token = telemetry.REQUEST_ID.set(rid)
        header = (b"x-request-id", rid.encode("latin-1"))
        status = 500

        async def with_id(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                out = list(message.get("headers") or [])
                if not any(k.lower() == b"x-request-id" for k, _ in out):
                    out.append(header)
                message = {**message, "headers": out}
            await send(message)

        method, path = scope["method"], scope["path"]
        carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in headers} if telemetry.tracing() else None
        with telemetry.span(f"{method} {path}", server=True, carrier=carrier, **{"http.request.method": method, "url.path": path}) as span:
            try:
                await self.app(scope, receive, with_id)
            except asyncio.CancelledError:
                status = 499  # the client went away
                raise
            finally:
                route = getattr(scope.get("route"), "path", None)
                if route is not None:  # the template, as in the metrics: ids do not make every name unique
                    span.update_name(f"{method} {route}")
                    span.set_attribute("http.route", route)
                span.set_attribute("http.response.status_code", status)
                if access_log.isEnabledFor(logging.INFO):
                    ms = round((time.perf_counter() - started) * 1000, 2)
                    client = scope.get("client")
                    access_log.info(
                        "%s %s %d %.2f ms",
                        method,
                        path,
                        status,
                        ms,
                        extra={
                            "method": method,
                            "path": path,
                            "status": status,
                            "duration_ms": ms,
                            "client": client[0] if client else None,
                        },
                    )
        telemetry.REQUEST_ID.reset(token)


class Instrument:
    """Request count and latency by route template (not raw path: ids would explode the label set)."""

    def __init__(self, app, *, service: Service):
        self.app, self.service = app, service

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = 500

        async def recording_send(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        except asyncio.CancelledError:
            status = 499  # the client went away
            raise
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            metrics = self.service.metrics
            metrics.requests.labels(scope["method"], template, str(status)).inc()
            metrics.latency.labels(template).observe(time.perf_counter() - started)


__all__ = ["create_app", "error_status", "error_response"]
