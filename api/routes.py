"""The assistant's own endpoints: ask (whole and streamed), search, collections, documents."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, AsyncIterator, Literal, Optional

from fastapi import APIRouter, Depends, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import StringConstraints

from assistant import compose
from assistant.collection import collection_path, list_collections
from assistant.errors import CollectionNotFound, UserError
from assistant.storage import safe_filename
from assistant.uploads import REPORT_COUNTS, store_upload, upload_dir
from assistant.pipeline import Answer, answer_view as answer_body
from api import schemas
from api.auth import Principal, retry_after_header
from api.errors import error_status
from api.service import END, AnswerStream, Service

router = APIRouter()
FilterPair = Annotated[str, StringConstraints(pattern=r"^[^=]*\S[^=]*=", max_length=1000)]
_bearer = HTTPBearer(auto_error=False, description="An API key from ASSISTANT_API_KEYS")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key from ASSISTANT_API_KEYS")
ERRORS = {400: {"model": schemas.Error}, 401: {"model": schemas.Error}, 404: {"model": schemas.Error},
          422: {"model": schemas.Error}, 429: {"model": schemas.Error}}
BUSY = {503: {"model": schemas.Error, "description": "Generation queue full; retry after Retry-After seconds"}}


def service_of(request: Request) -> Service:
    return request.app.state.service


# async, though nothing here awaits: FastAPI runs a plain `def` dependency on the thread pool, a hand-off per
# request that was ~10 % of a search's GIL time under load. Hashing a key and the rate limiter take microseconds.
async def authenticate(request: Request, bearer: Annotated[Optional[HTTPAuthorizationCredentials], Depends(_bearer)],
                       key: Annotated[Optional[str], Depends(_header)]) -> Principal:
    service = service_of(request)
    if service.keys.enabled:
        presented = (bearer.credentials if bearer else None) or key
        if not presented:
            raise HTTPException(401, "an API key is required: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'",
                                headers={"WWW-Authenticate": "Bearer"})
        principal = service.keys.verify(presented)
        if principal is None:
            raise HTTPException(401, "invalid API key", headers={"WWW-Authenticate": "Bearer"})
    else:  # no keys configured: `assistant serve` then binds to loopback only
        principal = Principal(f"anonymous:{request.client.host if request.client else 'unknown'}", admin=True)
    wait = service.limiter.take(principal.id)
    if wait > 0:
        service.metrics.rate_limited.inc()
        raise HTTPException(429, f"rate limit of {service.settings.api.rate_limit_per_minute} requests a minute exceeded",
                            headers={"Retry-After": retry_after_header(wait)})
    return principal


async def require_admin(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
    if not principal.admin:
        raise HTTPException(403, "this key lacks the admin scope (add ':admin' to it in ASSISTANT_API_KEYS)")
    return principal


Authed = Annotated[Principal, Depends(authenticate)]
Admin = Annotated[Principal, Depends(require_admin)]


# ---------------------------------------------------------------------- ask


def start_answer(service: Service, question: str, collection: str, *, k: int = 5, filters: dict | None = None,
                 max_tokens: int | None = None, temperature: float | None = None, top_p: float | None = None,
                 **retrieval: Any) -> AnswerStream:
    if service.bounded is not None:
        service.bounded.check_room()  # a full queue is refused before any retrieval is spent on the question
    options = compose.generation_options(service.settings, max_new_tokens=max_tokens, temperature=temperature, top_p=top_p)
    retrieval = {k: v for k, v in retrieval.items() if v is not None}
    return AnswerStream(lambda cancel: service.assistant.stream(question, collection, k=k, filters=filters,
                                                                 options=options, cancel=cancel, **retrieval),
                        on_answer=service.metrics.observe_answer)


def _ask_args(body: schemas.AskRequest) -> dict[str, Any]:
    return body.model_dump(exclude={"question", "collection"})


async def finished(stream: AnswerStream) -> Answer:
    try:
        return await stream.answer()
    except BaseException:
        stream.cancel.set()
        raise


@router.post("/v1/ask", response_model=schemas.AskResponse, tags=["answers"], responses={**ERRORS, **BUSY},
             summary="Answer a question from a collection, with citations")
async def ask(body: schemas.AskRequest, request: Request, _: Authed) -> dict[str, Any]:
    service = service_of(request)
    stream = start_answer(service, body.question, body.collection, **_ask_args(body))
    return answer_body(await finished(stream))


def sse(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode("utf-8")


@router.post("/v1/ask/stream", tags=["answers"], responses={**ERRORS, **BUSY, 200: {"content": {"text/event-stream": {}},
             "description": "Server-sent events: `token` ({text}) as generated, then `citations`, `guard` and `done` "
                            "(the whole AskResponse, whose `answer` is the checked text to show in place of the tokens); "
                            "`error` ({detail, status}) if it fails midway."}},
             summary="The same answer as server-sent events")
async def ask_stream(body: schemas.AskRequest, request: Request, _: Authed) -> StreamingResponse:
    service = service_of(request)
    stream = start_answer(service, body.question, body.collection, **_ask_args(body))
    first = await _first(stream)  # errors before the first token still get their own status code

    async def events() -> AsyncIterator[bytes]:
        item = first
        try:
            while item is not END:
                if isinstance(item, Answer):
                    out = answer_body(item)
                    yield sse("citations", {"citations": out["citations"]})
                    yield sse("guard", {"guard_events": out["guard_events"], "blocked": out["blocked"]})
                    yield sse("done", out)
                else:
                    yield sse("token", {"text": item})
                item = await stream.next()
        except Exception as exc:  # headers are sent: report in-band
            status, message, _ = error_status(exc)
            yield sse("error", {"detail": message, "status": status})
        finally:
            stream.cancel.set()  # no-op when finished; stops generation when the client left

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def _first(stream: AnswerStream):
    try:
        return await stream.next()
    except BaseException:
        stream.cancel.set()
        raise


# ---------------------------------------------------------------------- search and collections


def _filters(pairs: list[str]) -> dict[str, Any] | None:
    out: dict[str, list[str]] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UserError(f"filter {pair!r} is not KEY=VALUE")
        out.setdefault(key.strip(), []).append(value)
    return {k: v[0] if len(v) == 1 else v for k, v in out.items()} or None


@router.get("/v1/search", response_model=schemas.SearchResponse, tags=["retrieval"], responses=ERRORS,
            summary="The best passages for a query, without generating")
async def search(request: Request, _: Authed,
                 q: Annotated[str, Query(min_length=1, max_length=4000, pattern=r"\S", description="The query")],
                 collection: Annotated[str, Query(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")],
                 k: Annotated[int, Query(ge=1, le=100)] = 10,
                 mode: Optional[Literal["dense", "bm25", "hybrid"]] = None,
                 filter: Annotated[list[FilterPair], Query(description="KEY=VALUE; repeat a key for any-of")] = []) -> dict[str, Any]:  # noqa: B006
    service = service_of(request)
    result, version = await service.searches.search(collection, q, k, mode, _filters(filter))
    hits = [{"chunk_id": h.chunk_id, "document_id": h.document_id, "title": h.title, "source": h.source,
             "snippet": h.text, "start": h.start, "end": h.end, "score": h.score, "scores": h.scores,
             "flags": list(h.flags), "metadata": h.metadata} for h in result.hits]
    return {"query": " ".join(q.split()), "collection": collection, "hits": hits, "relevant": result.relevant,
            "relevance": result.relevance, "collection_version": version,
            "timings_ms": {k: round(v, 2) for k, v in result.timings_ms.items()}}


@router.get("/v1/collections", response_model=list[schemas.CollectionInfo], tags=["collections"], responses=ERRORS,
            summary="The collections under ASSISTANT_INDEX_DIR")
async def collections(request: Request, _: Authed) -> list[dict[str, Any]]:
    found = await run_in_threadpool(list_collections, service_of(request).settings.index_dir)
    return [{"name": m.name, "documents": m.documents, "chunks": m.index.chunks, "files": m.files,
             "embedder": m.embedder.name, "dim": m.embedder.dim, "index_kind": m.index.kind,
             "version": m.index.generation, "updated_at": m.updated_at} for m in found]


# ---------------------------------------------------------------------- documents


@router.post("/v1/documents", response_model=schemas.UploadResponse, tags=["documents"],
             responses={**ERRORS, 403: {"model": schemas.Error}, 409: {"model": schemas.Error}, 413: {"model": schemas.Error}},
             summary="Upload files and ingest them into a collection (created if absent); admin scope")
async def upload(request: Request, _: Admin,
                 collection: Annotated[str, Form(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")],
                 files: Annotated[list[UploadFile], File(min_length=1, description="Files to ingest (PDF, DOCX, HTML, TXT, MD, CSV, JSON, XML, ...)")]) -> dict[str, Any]:
    service = service_of(request)
    api = service.settings.api
    if len(files) > api.max_upload_files:
        raise UserError(f"{len(files)} files in one upload; the limit is {api.max_upload_files}")
    folder = upload_dir(service.settings, collection)
    max_bytes = int(api.max_upload_mb * 2**20)
    stored: list[tuple[str, Path, int]] = []
    skipped: list[dict[str, str]] = []
    for upload_file in files:
        shown = upload_file.filename or "(unnamed)"
        try:
            if any(path.name == safe_filename(upload_file.filename) for _, path, _ in stored):
                raise UserError("the same file name appears twice in this upload")
            path, size = await run_in_threadpool(store_upload, upload_file.file, folder, upload_file.filename, max_bytes)
            stored.append((shown, path, size))
        except UserError as exc:
            skipped.append({"file": shown, "reason": str(exc)})
        finally:
            await upload_file.close()
    if stored:
        report = await run_in_threadpool(service.ingest_files, collection, stored)
    else:
        report = {"collection": collection, "files": [], "skipped": [], **dict.fromkeys(REPORT_COUNTS, 0),
                  "totals": {}, "collection_version": 0}
        try:
            with compose.open_collection(service.settings, collection) as store:
                report["totals"], report["collection_version"] = store.counts(), store.generation
        except CollectionNotFound:
            pass
    report["skipped"] = skipped + report["skipped"]
    return report


@router.delete("/v1/documents/{document_id}", response_model=schemas.DeleteResponse, tags=["documents"],
               responses={**ERRORS, 403: {"model": schemas.Error}, 409: {"model": schemas.Error}},
               summary="Remove one document (its chunks, vectors and BM25 rows); admin scope")
async def delete_document(request: Request, _: Admin, document_id: str,
                          collection: Annotated[str, Query(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]) -> dict[str, Any]:
    service = service_of(request)
    collection_path(service.settings.index_dir, collection)
    documents, chunks, version = await run_in_threadpool(service.delete_document, collection, document_id)
    if not documents:
        raise HTTPException(404, f"no document {document_id!r} in collection {collection!r}")
    return {"collection": collection, "document_id": document_id, "documents_removed": documents,
            "chunks_removed": chunks, "collection_version": version}


__all__ = ["router", "authenticate", "require_admin", "start_answer", "answer_body", "finished"]
