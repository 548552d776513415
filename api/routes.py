"""The assistant's own endpoints: ask (whole and streamed), conversations, search, collections, documents."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, HTTPException, Path, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import StringConstraints

from api import schemas
from api.auth import Principal
from api.deps import Authed, SomeAdmin, check_admin_on, check_collection, service_of
from api.errors import error_status
from api.schemas import BUSY, CONVERSATION_BUSY, ERRORS
from api.service import END, finished, first_item, start_answer
from assistant.pipeline import Answer
from assistant.uploads import store_uploads
from assistant.views import answer_view, collection_view, search_view
from core.collection import list_collections, parse_filters

router = APIRouter()
log = logging.getLogger("assistant.api")
FilterPair = Annotated[str, StringConstraints(pattern=r"^[^=]*\S[^=]*=", max_length=1000)]


# ---------------------------------------------------------------------- ask


ASK_FIELDS = {"question", "collection", "conversation_id"}  # the rest are options of the answer


@router.post(
    "/v1/ask",
    response_model=schemas.AskInConversation,
    tags=["answers"],
    responses={**ERRORS, **BUSY, **CONVERSATION_BUSY},
    summary="Answer a question from a collection, with citations, as a turn of a conversation",
)
async def ask(body: schemas.AskRequest, request: Request, principal: Authed) -> dict[str, Any]:
    service = service_of(request)
    await in_scope(request, principal, body)
    exchange = service.exchange(principal.id, body.conversation_id)
    stream = start_answer(service, body.question, body.collection, exchange=exchange, **body.model_dump(exclude=ASK_FIELDS))
    return {**answer_view(await finished(stream)), "conversation_id": exchange.conversation_id}


async def in_scope(request: Request, principal: Principal, body: schemas.AskRequest) -> None:
    """The collection, and a continued conversation's, must be ones the key may see (api/deps.py)."""
    check_collection(request, principal, body.collection)
    if body.conversation_id is not None and principal.restricted:
        await run_in_threadpool(service_of(request).check_conversation, principal, body.conversation_id)


def sse(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


@router.post(
    "/v1/ask/stream",
    tags=["answers"],
    responses={
        **ERRORS,
        **BUSY,
        **CONVERSATION_BUSY,
        200: {
            "content": {"text/event-stream": {}},
            "description": "Server-sent events: `token` ({text}) as generated, then `citations`, `guard` and `done` "
            "(the whole AskInConversation, whose `answer` is the checked text to show in place of the tokens and "
            "`conversation_id` the conversation to continue); `error` ({detail, status}) if it fails midway.",
        },
    },
    summary="The same answer as server-sent events",
)
async def ask_stream(body: schemas.AskRequest, request: Request, principal: Authed) -> StreamingResponse:
    service = service_of(request)
    await in_scope(request, principal, body)
    exchange = service.exchange(principal.id, body.conversation_id)
    stream = start_answer(service, body.question, body.collection, exchange=exchange, **body.model_dump(exclude=ASK_FIELDS))
    first = await first_item(stream)  # errors before the first token still get their own status code

    async def events() -> AsyncIterator[bytes]:
        item = first
        try:
            while item is not END:
                if isinstance(item, Answer):
                    out = {**answer_view(item), "conversation_id": exchange.conversation_id}
                    yield sse("citations", {"citations": out["citations"]})
                    yield sse("guard", {"guard_events": out["guard_events"], "blocked": out["blocked"]})
                    yield sse("done", out)
                else:
                    yield sse("token", {"text": item})
                item = await stream.next()
        except Exception as exc:  # headers are sent: report in-band
            status, message, _ = error_status(exc)
            if status >= 500:  # the message points at the log: say it there
                log.error("stream failed on %s: %s", request.url.path, exc, exc_info=exc)
            yield sse("error", {"detail": message, "status": status})
        finally:
            stream.cancel.set()  # no-op when finished; stops generation when the client left

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


# ---------------------------------------------------------------------- conversations (each key sees its own)

CollectionName = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$", description="A collection's name.")]
ConversationId = Annotated[str, Path(description="A conversation id from /v1/ask or /v1/conversations.")]


@router.get(
    "/v1/conversations",
    response_model=list[schemas.Conversation],
    tags=["conversations"],
    responses=ERRORS,
    summary="Your conversations, the most recently used first",
)
async def conversations(request: Request, principal: Authed) -> list[dict[str, Any]]:
    found = await run_in_threadpool(service_of(request).conversations_of, principal)
    return [c.to_dict() for c in found]


@router.get(
    "/v1/conversations/{conversation_id}",
    response_model=schemas.ConversationDetail,
    tags=["conversations"],
    responses=ERRORS,
    summary="One of your conversations, with its turns",
)
async def conversation(request: Request, principal: Authed, conversation_id: ConversationId) -> dict[str, Any]:
    service = service_of(request)
    if principal.restricted:
        await run_in_threadpool(service.check_conversation, principal, conversation_id)
    return await run_in_threadpool(service.conversations.detail, conversation_id, principal.id)


@router.patch(
    "/v1/conversations/{conversation_id}",
    response_model=schemas.Conversation,
    tags=["conversations"],
    responses=ERRORS,
    summary="Rename one of your conversations",
)
async def rename_conversation(
    body: schemas.RenameConversation, request: Request, principal: Authed, conversation_id: ConversationId
) -> dict[str, Any]:
    service = service_of(request)
    if principal.restricted:
        await run_in_threadpool(service.check_conversation, principal, conversation_id)
    return (await run_in_threadpool(service.conversations.rename, conversation_id, principal.id, body.title)).to_dict()


@router.delete(
    "/v1/conversations/{conversation_id}",
    response_model=schemas.ConversationDeleted,
    tags=["conversations"],
    responses=ERRORS,
    summary="Delete one of your conversations and its turns",
)
async def delete_conversation(request: Request, principal: Authed, conversation_id: ConversationId) -> dict[str, Any]:
    removed = await run_in_threadpool(service_of(request).conversations.delete, conversation_id, principal.id)
    return {"id": conversation_id, "turns_removed": removed}


# ---------------------------------------------------------------------- search and collections


@router.get(
    "/v1/search",
    response_model=schemas.SearchResponse,
    tags=["retrieval"],
    responses=ERRORS,
    summary="The best passages for a query, without generating",
)
async def search(
    request: Request,
    principal: Authed,
    q: Annotated[str, Query(min_length=1, max_length=4000, pattern=r"\S", description="The query")],
    collection: Annotated[str, Query(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")],
    k: Annotated[int, Query(ge=1, le=100)] = 10,
    mode: Literal["dense", "bm25", "hybrid"] | None = None,
    filter: Annotated[list[FilterPair], Query(description="KEY=VALUE; repeat a key for any-of")] = [],  # noqa: B006
    as_of: Annotated[
        int | None, Query(ge=0, description="Search the collection as it was at this version (a `collection_version` seen before)")
    ] = None,
) -> dict[str, Any]:
    check_collection(request, principal, collection)
    service = service_of(request)
    result, version = await service.searches.search(collection, q, k, mode, parse_filters(filter), as_of)
    return search_view(q, collection, result, version)


@router.get(
    "/v1/collections",
    response_model=list[schemas.CollectionInfo],
    tags=["collections"],
    responses=ERRORS,
    summary="The collections under ASSISTANT_INDEX_DIR that the key may see",
)
async def collections(request: Request, principal: Authed) -> list[dict[str, Any]]:
    found = await run_in_threadpool(list_collections, service_of(request).settings.index_dir)
    return [collection_view(m) for m in found if principal.sees(m.name)]


@router.get(
    "/v1/collections/{name}/versions",
    response_model=schemas.VersionHistory,
    tags=["collections"],
    responses=ERRORS,
    summary="A collection's kept versions, newest first (answer or search `as_of` one of them)",
)
async def versions(request: Request, principal: Authed, name: CollectionName) -> dict[str, Any]:
    check_collection(request, principal, name)
    return await run_in_threadpool(service_of(request).history, name)


@router.post(
    "/v1/collections/{name}/rollback",
    response_model=schemas.RollbackResponse,
    tags=["collections"],
    responses={**ERRORS, 403: {"model": schemas.Error}, 409: {"model": schemas.Error}},
    summary="Make a collection what it was at an earlier version (recorded as a new version); admin scope",
)
async def rollback(body: schemas.RollbackRequest, request: Request, principal: SomeAdmin, name: CollectionName) -> dict[str, Any]:
    check_admin_on(request, principal, name)
    return await run_in_threadpool(service_of(request).rollback, name, body.to)


# ---------------------------------------------------------------------- documents


@router.post(
    "/v1/documents",
    response_model=schemas.UploadResponse,
    tags=["documents"],
    responses={**ERRORS, 403: {"model": schemas.Error}, 409: {"model": schemas.Error}, 413: {"model": schemas.Error}},
    summary="Upload files and ingest them into a collection (created if absent); admin scope",
)
async def upload(
    request: Request,
    principal: SomeAdmin,
    collection: Annotated[str, Form(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")],
    files: Annotated[
        list[UploadFile], File(min_length=1, description="Files to ingest (PDF, DOCX, HTML, TXT, MD, CSV, JSON, XML, PNG, JPEG, TIFF, ...)")
    ],
) -> dict[str, Any]:
    service = service_of(request)
    try:
        check_admin_on(request, principal, collection)  # in the try: the spooled files are closed either way
        stored, skipped = await run_in_threadpool(store_uploads, service.settings, collection, [(f.filename, f.file) for f in files])
    finally:
        for upload_file in files:
            await upload_file.close()
    return await run_in_threadpool(service.ingest_uploads, collection, stored, skipped)


@router.delete(
    "/v1/documents/{document_id}",
    response_model=schemas.DeleteResponse,
    tags=["documents"],
    responses={**ERRORS, 403: {"model": schemas.Error}, 409: {"model": schemas.Error}},
    summary="Remove one document (its chunks, vectors and BM25 rows); admin scope",
)
async def delete_document(
    request: Request,
    principal: SomeAdmin,
    document_id: str,
    collection: Annotated[str, Query(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")],
) -> dict[str, Any]:
    check_admin_on(request, principal, collection)
    service = service_of(request)
    documents, chunks, version = await run_in_threadpool(service.delete_document, collection, document_id)
    if not documents:
        raise HTTPException(404, f"no document {document_id!r} in collection {collection!r}")
    return {
        "collection": collection,
        "document_id": document_id,
        "documents_removed": documents,
        "chunks_removed": chunks,
        "collection_version": version,
    }
