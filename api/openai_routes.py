"""OpenAI-compatible chat completions: the model name selects the collection.

The last user message is the question; the user / assistant pairs before it are its history (the last
``conversation.history_turns``, each user message taken as the question it searched), so a follow-up is
answered in context. Nothing is stored: the client holds the conversation. Client system prompts are not
used: the assistant answers from the documents under its own rules. Non-streaming responses carry the
checked answer; a stream carries the tokens as generated, and its last chunk the checked answer (``answer``),
``citations`` and ``guard_events`` as extra fields, with any text the rails appended as a final delta.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from api import schemas
from api.auth import Principal
from api.deps import Authed, service_of
from api.errors import error_status
from api.schemas import BUSY, ERRORS
from api.service import END, finished, first_item, start_answer
from assistant.conversations import Turn
from assistant.pipeline import Answer
from assistant.views import answer_view
from core.collection import list_collections

router = APIRouter(tags=["openai"])


def _text(message: schemas.ChatMessage) -> str:
    if isinstance(message.content, str):
        return message.content
    # content parts: keep the text ones
    return " ".join(str(p.get("text", "")) for p in message.content or [] if p.get("type") == "text")


def _question(messages: Sequence[schemas.ChatMessage]) -> tuple[str, int]:
    """The last user message with text, and its position."""
    for position in range(len(messages) - 1, -1, -1):
        if messages[position].role == "user" and _text(messages[position]).strip():
            return _text(messages[position]), position
    raise HTTPException(400, "no user message with text content: the last user message is the question")


def _history(messages: Sequence[schemas.ChatMessage], collection: str, turns: int) -> list[Turn]:
    """The last ``turns`` user messages each answered by the assistant message after it, oldest first. A user
    message without a reply (or a reply without text) is no turn; system and tool messages are not history."""
    history = []
    for asked, said in zip(messages, messages[1:]):
        if asked.role == "user" and said.role == "assistant" and _text(asked).strip() and _text(said).strip():
            history.append(Turn(message=_text(asked), standalone=_text(asked), answer=_text(said), collection=collection))
    return history[-turns:] if turns else []


def _finish_reason(answer: Answer) -> str:
    return "length" if answer.finish_reason == "length" else "stop"


def _collection(request: Request, principal: Principal, model: str) -> str:
    """The collection a model names; one the key may not see is reported as unknown, the list naming only
    those it may (api/deps.py)."""
    names = set(principal.visible(m.name for m in list_collections(service_of(request).settings.index_dir)))
    if model not in names:
        raise HTTPException(404, f"model {model!r} not found: the models are the collections ({', '.join(sorted(names)) or 'none yet'})")
    return model


@router.get("/v1/models", response_model=schemas.ModelList, responses=ERRORS, summary="The collections the key may see, as models")
async def models(request: Request, principal: Authed) -> dict[str, Any]:
    found = await run_in_threadpool(list_collections, service_of(request).settings.index_dir)
    return {
        "object": "list",
        "data": [
            {"id": m.name, "object": "model", "created": _epoch(m.created_at), "owned_by": "domain-assistant"}
            for m in found
            if principal.sees(m.name)
        ],
    }


def _epoch(iso: str) -> int:
    from datetime import datetime

    try:
        return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return 0


@router.post(
    "/v1/chat/completions",
    response_model=schemas.ChatResponse,
    responses={
        **ERRORS,
        **BUSY,
        200: {"content": {"text/event-stream": {}}, "description": "A chat.completion, or with stream=true chat.completion.chunk events"},
    },
    summary="OpenAI-compatible chat completions (model = collection)",
)
async def chat_completions(body: schemas.ChatRequest, request: Request, principal: Authed):
    service = service_of(request)
    collection = await run_in_threadpool(_collection, request, principal, body.model)
    question, position = _question(body.messages)
    stream = start_answer(
        service,
        question,
        collection,
        history=_history(body.messages[:position], collection, service.settings.conversation.history_turns),
        max_tokens=body.max_completion_tokens or body.max_tokens,
        temperature=body.temperature,
        top_p=body.top_p,
    )
    completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
    created = int(time.time())
    if not body.stream:
        answer = await finished(stream)
        out = answer_view(answer)
        prompt_tokens = answer.prompt_tokens
        return {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": collection,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer.text}, "finish_reason": _finish_reason(answer)}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": answer.tokens, "total_tokens": prompt_tokens + answer.tokens},
            "citations": out["citations"],
            "guard_events": out["guard_events"],
            "computation": out["computation"],
        }

    first = await first_item(stream)

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
        data = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": collection,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            **extra,
        }
        return f"data: {json.dumps(data, ensure_ascii=False)}\n\n".encode()

    async def events() -> AsyncIterator[bytes]:
        item = first
        streamed = ""
        try:
            yield chunk({"role": "assistant", "content": ""})
            while item is not END:
                if isinstance(item, Answer):
                    out = answer_view(item)
                    tail = item.text[len(streamed.rstrip()) :] if item.text.startswith(streamed.rstrip()) else ""
                    if tail:
                        yield chunk({"content": tail})
                    yield chunk(
                        {},
                        _finish_reason(item),
                        answer=item.text,
                        citations=out["citations"],
                        guard_events=out["guard_events"],
                        computation=out["computation"],
                    )
                else:
                    streamed += item
                    yield chunk({"content": item})
                item = await stream.next()
            yield b"data: [DONE]\n\n"
        except Exception as exc:
            status, message, _ = error_status(exc)
            yield f"data: {json.dumps({'error': {'message': message, 'type': 'server_error', 'code': status}})}\n\n".encode()
        finally:
            stream.cancel.set()

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
