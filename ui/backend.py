"""Where the chat gets its answers: the assistant in this process (the default) or a running API server.

Both speak the same shapes: ``stream()`` yields text pieces and then one dict shaped like the API's answer
(``assistant.views.answer_view``) with the ``conversation_id`` it was kept in; ``upload()`` returns the API's
upload report; the conversations are the API's shapes too (``Conversation.to_dict``, ``TurnRecord.to_dict``).
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from assistant import compose
from assistant.conversations import ConversationStore, Exchange, open_conversations
from assistant.pipeline import Answer, Assistant
from assistant.uploads import store_uploads, upload_report
from assistant.views import answer_view
from core.collection import list_collections
from core.config import Settings
from core.errors import UserError


@dataclass(frozen=True)
class Options:
    k: int = 5
    dense_weight: float | None = None  # hybrid weight of the dense list (None: the setting)
    temperature: float | None = None
    max_tokens: int | None = None
    adapter: bool = True  # the LoRA adapter on or off (in-process only)


class Backend(Protocol):
    name: str
    supports_adapter_switch: bool

    def collections(self) -> list[str]: ...

    def stream(
        self, question: str, collection: str, options: Options, conversation_id: str | None = None
    ) -> Iterator[str | dict[str, Any]]: ...

    def conversations(self) -> list[dict[str, Any]]: ...

    def conversation(self, conversation_id: str) -> dict[str, Any]: ...

    def rename(self, conversation_id: str, title: str) -> None: ...

    def delete(self, conversation_id: str) -> None: ...

    def upload(self, collection: str, files: list[tuple[str, bytes]], progress: Callable[[float, str], None]) -> dict[str, Any]: ...


class InProcessBackend:
    """The assistant in this process; a second Assistant without the adapter is loaded on first use."""

    name = "in-process"
    supports_adapter_switch = True
    owner = ""  # the local user: the conversations of `assistant ui` and `assistant ask --conversation`

    def __init__(self, settings: Settings, *, generator=None, embedders=None):
        self.settings = settings
        self._embedders = embedders if embedders is not None else {}
        self._generator = generator
        self._assistants: dict[bool, Assistant] = {}
        self._store: ConversationStore | None = None
        self._lock = threading.Lock()

    @property
    def store(self) -> ConversationStore:
        with self._lock:
            if self._store is None:
                self._store = open_conversations(self.settings)
            return self._store

    def assistant(self, adapter: bool = True) -> Assistant:
        with self._lock:
            if adapter not in self._assistants:
                settings = self.settings
                if not adapter:
                    settings = settings.model_copy(update={"generator": settings.generator.model_copy(update={"adapter": "none"})})
                # A generator passed in (tests) serves both; the embedders are shared either way.
                self._assistants[adapter] = Assistant(settings, generator=self._generator, embedders=self._embedders)
            return self._assistants[adapter]

    def collections(self) -> list[str]:
        return [m.name for m in list_collections(self.settings.index_dir)]

    def stream(
        self, question: str, collection: str, options: Options, conversation_id: str | None = None
    ) -> Iterator[str | dict[str, Any]]:
        """The answer read with the conversation's earlier turns and kept as its next turn (a new conversation
        when ``conversation_id`` is None)."""
        generation = compose.generation_options(self.settings, max_new_tokens=options.max_tokens, temperature=options.temperature)
        assistant = self.assistant(options.adapter)
        exchange = Exchange(self.store, self.owner, conversation_id, history_turns=self.settings.conversation.history_turns)

        def answer(history):
            return assistant.stream(
                question, collection, k=options.k, options=generation, dense_weight=options.dense_weight, history=history
            )

        for item in exchange.run(answer):
            yield {**answer_view(item), "conversation_id": exchange.conversation_id} if isinstance(item, Answer) else item

    def conversations(self) -> list[dict[str, Any]]:
        return [c.to_dict() for c in self.store.list(self.owner)]

    def conversation(self, conversation_id: str) -> dict[str, Any]:
        return self.store.detail(conversation_id, self.owner)

    def rename(self, conversation_id: str, title: str) -> None:
        self.store.rename(conversation_id, self.owner, title)

    def delete(self, conversation_id: str) -> None:
        self.store.delete(conversation_id, self.owner)

    def upload(self, collection: str, files: list[tuple[str, bytes]], progress: Callable[[float, str], None]) -> dict[str, Any]:
        """Store and ingest the files as the API does (assistant.uploads), one by one so the progress bar
        moves; unsupported, empty, oversized and unreadable files are reported as skipped."""
        stored, skipped = store_uploads(self.settings, collection, [(name, io.BytesIO(data)) for name, data in files])
        embedder = self.assistant(True).collection_embedder(collection) if stored else None
        report = upload_report(
            self.settings,
            collection,
            embedder,
            stored,
            skipped,
            on_file=lambda i, name: progress(i / len(stored), f"Ingesting {name} ({i + 1} of {len(stored)})"),
        )
        progress(1.0, "Done")
        return report


class ApiBackend:
    """A running `assistant serve`: /v1/ask/stream for answers, /v1/documents for uploads."""

    name = "api"
    supports_adapter_switch = False

    def __init__(self, url: str, key: str | None = None, *, timeout: float = 300.0):
        import httpx

        headers = {"X-API-Key": key} if key else {}
        self._client = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout)

    def _check(self, response) -> None:
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            raise UserError(f"the API answered {response.status_code}: {detail}")

    def collections(self) -> list[str]:
        """The collections the key may see: the server lists no others (ASSISTANT_API_KEYS `collections=`)."""
        response = self._client.get("/v1/collections")
        self._check(response)
        return [c["name"] for c in response.json()]

    def stream(
        self, question: str, collection: str, options: Options, conversation_id: str | None = None
    ) -> Iterator[str | dict[str, Any]]:
        body = {
            "question": question,
            "collection": collection,
            "conversation_id": conversation_id,
            "k": options.k,
            "dense_weight": options.dense_weight,
            "temperature": options.temperature,
            "max_tokens": options.max_tokens,
        }
        with self._client.stream("POST", "/v1/ask/stream", json={k: v for k, v in body.items() if v is not None}) as response:
            if response.status_code >= 400:
                response.read()
                self._check(response)
            event = None
            for line in response.iter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    data = json.loads(line[6:])
                    if event == "token":
                        yield data["text"]
                    elif event == "done":
                        yield data
                    elif event == "error":
                        raise UserError(f"the API failed mid-answer ({data.get('status')}): {data.get('detail')}")

    def conversations(self) -> list[dict[str, Any]]:
        response = self._client.get("/v1/conversations")
        self._check(response)
        return response.json()

    def conversation(self, conversation_id: str) -> dict[str, Any]:
        response = self._client.get(f"/v1/conversations/{conversation_id}")
        self._check(response)
        return response.json()

    def rename(self, conversation_id: str, title: str) -> None:
        self._check(self._client.patch(f"/v1/conversations/{conversation_id}", json={"title": title}))

    def delete(self, conversation_id: str) -> None:
        self._check(self._client.delete(f"/v1/conversations/{conversation_id}"))

    def upload(self, collection: str, files: list[tuple[str, bytes]], progress: Callable[[float, str], None]) -> dict[str, Any]:
        progress(0.0, f"Uploading {len(files)} file(s)")
        response = self._client.post(
            "/v1/documents", data={"collection": collection}, files=[("files", (name, data)) for name, data in files]
        )
        self._check(response)
        progress(1.0, "Done")
        return response.json()


def make_backend(settings: Settings) -> Backend:
    if settings.ui.api_url:
        key = settings.ui.api_key.get_secret_value() if settings.ui.api_key else None
        return ApiBackend(settings.ui.api_url, key)
    return InProcessBackend(settings)


__all__ = ["Backend", "InProcessBackend", "ApiBackend", "Options", "make_backend"]
