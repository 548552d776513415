"""The openai backend: any OpenAI-compatible chat server (vLLM, TGI, llama.cpp server), streamed over
server-sent events with httpx."""

from __future__ import annotations

import json
import math
import queue
import socket
import threading
import time

import httpx

from core.errors import AssistantError, UserError
from generator.base import GenerationOptions, Message, TextStream, stop_filtered

URL_SETTING = "ASSISTANT_GENERATOR__OPENAI_BASE_URL"
KEY_SETTING = "ASSISTANT_GENERATOR__OPENAI_API_KEY"
MODEL_SETTING = "ASSISTANT_GENERATOR__OPENAI_MODEL"


class BackendError(AssistantError):
    """The server failed or answered with an error the user cannot fix by changing a setting."""


class OpenAIGenerator:
    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        context_window: int = 8192,
        tokenizer: str | None = None,
        connect_timeout: float = 5.0,
    ):
        self.base_url = base_url.rstrip("/")
        self.model, self.context_window, self.connect_timeout = model, context_window, connect_timeout
        self.name = f"{model} @ {self.base_url}"
        self._api_key, self._tokenizer_name, self._tokenizer = api_key, tokenizer, None
        self._client = httpx.Client(headers={"Authorization": f"Bearer {api_key}"} if api_key else {})

    def close(self) -> None:
        self._client.close()

    def _tok(self):
        if self._tokenizer is None:  # loaded on first use: most callers never need exact counts
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(self._tokenizer_name)
        return self._tokenizer

    def count_tokens(self, text: str) -> int:
        """Exact with a tokenizer; otherwise an ESTIMATE (about 4 characters per token for English text)."""
        if self._tokenizer_name:
            return len(self._tok()(text, add_special_tokens=False)["input_ids"])
        return math.ceil(len(text) / 4)

    def prompt_tokens(self, messages: list[Message]) -> int:
        if self._tokenizer_name:
            return len(self._tok().apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"])
        return sum(self.count_tokens(m["content"]) + 4 for m in messages)  # + 4: the template's role markers

    def _scrub(self, text: str) -> str:
        # A server may echo the Authorization header back in an error; never show the key.
        return text.replace(self._api_key, "***") if self._api_key else text

    def _check(self, response: httpx.Response) -> None:
        if response.status_code < 400:
            return
        response.read()
        try:
            error = response.json()
            message = error.get("error", error.get("detail", error)) if isinstance(error, dict) else error
            message = message.get("message", message) if isinstance(message, dict) else message
        except ValueError:
            message = response.text
        message = self._scrub(str(message))[:300]
        status, url = response.status_code, self.base_url
        if status in (401, 403):
            raise UserError(f"the server at {url} refused the API key (HTTP {status}: {message}); set {KEY_SETTING} to a key it accepts")
        if status == 404:
            raise UserError(
                f"the server at {url} answered 404 for model {self.model!r} ({message}); set {MODEL_SETTING} "
                f"to a model it serves, and check that {URL_SETTING} ends with /v1"
            )
        raise BackendError(f"the server at {url} answered HTTP {status}: {message}")

    def stream(self, messages: list[Message], options: GenerationOptions = GenerationOptions()) -> TextStream:
        """Sends the request and waits for the response headers here, so a bad setting raises at once; the
        body is read by a background thread so that the deadline and cancellation hold even while the
        server is silent between tokens."""
        deadline = time.monotonic() + options.timeout_s
        body = {
            "model": self.model,
            "messages": messages,
            "max_tokens": options.max_new_tokens,
            "temperature": options.temperature,
            "top_p": options.top_p,
            "stream": True,
        }
        if options.stop:
            body["stop"] = list(options.stop)
        stream = TextStream(iter(()))
        request = self._client.build_request(
            "POST", f"{self.base_url}/chat/completions", json=body, timeout=httpx.Timeout(options.timeout_s, connect=self.connect_timeout)
        )
        try:
            response = self._client.send(request, stream=True)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise UserError(
                f"cannot reach the generator server at {self.base_url} ({exc}); start it, or set {URL_SETTING} to its address (ending with /v1)"
            ) from None
        except httpx.TimeoutException:  # no headers before the deadline: nothing generated
            stream.finish_reason = "timeout"
            return stream
        except httpx.HTTPError as exc:
            raise BackendError(f"the request to {self.base_url} failed: {self._scrub(str(exc))}") from None
        try:
            self._check(response)
        except BaseException:
            response.close()
            raise

        lines: queue.Queue = queue.Queue()
        leaving = threading.Event()

        def pump() -> None:  # background thread: raw SSE lines into the queue, then None
            try:
                for line in response.iter_lines():
                    if leaving.is_set():
                        break
                    lines.put(line)
            except Exception as exc:  # surfaced in the consumer's thread (ignored if it already left)
                lines.put(exc)
            finally:
                response.close()  # closes the connection mid-body: the server stops generating
                lines.put(None)

        def pieces():
            counted, usage, complete = 0, None, False
            try:
                while not stream.cancel_event.is_set():
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        stream.finish_reason = "timeout"
                        return
                    try:  # short waits so a cancel from another thread is seen promptly
                        line = lines.get(timeout=min(remaining, 0.05))
                    except queue.Empty:
                        continue
                    if isinstance(line, Exception):
                        raise BackendError(f"the stream from {self.base_url} broke: {self._scrub(str(line))}")
                    if line is None or line.strip() == "data: [DONE]":
                        complete = True
                        break
                    if not line.startswith("data:"):
                        continue  # blank separators, ": keep-alive" comments, event: lines
                    try:
                        chunk = json.loads(line[5:])
                    except ValueError:
                        raise BackendError(
                            f"the server at {self.base_url} sent a line that is not JSON: {self._scrub(line)[:300]}"
                        ) from None
                    if "error" in chunk:
                        raise BackendError(f"the server at {self.base_url} failed mid-stream: {self._scrub(str(chunk['error']))[:300]}")
                    if chunk.get("usage"):  # the server's own count beats counting pieces
                        usage = stream.tokens = chunk["usage"].get("completion_tokens", counted)
                    for choice in chunk.get("choices", [])[:1]:
                        if content := (choice.get("delta") or {}).get("content"):
                            counted += 1
                            stream.tokens = usage if usage is not None else counted
                            yield content
                        if reason := choice.get("finish_reason"):
                            stream.finish_reason = "length" if reason == "length" else "stop"
                if stream.finish_reason is None and complete:
                    stream.finish_reason = "stop"  # the server ended the stream without saying why
            finally:
                if not complete:  # a finished body is left to the reader, so the connection can be reused
                    leaving.set()
                    _abort(response)

        threading.Thread(target=pump, name="openai-stream", daemon=True).start()

        def finished():
            body = pieces()
            try:
                yield from stop_filtered(body, options.stop, stream)
            finally:
                body.close()  # a local stop string (or the consumer leaving) ends the request now

        stream.pieces = finished()
        return stream

    def generate(self, messages: list[Message], options: GenerationOptions = GenerationOptions()) -> str:
        return self.stream(messages, options).text()


def _abort(response: httpx.Response) -> None:
    """Wake the reader thread if it is blocked on a silent server (closing a socket from another thread
    does not interrupt a blocked recv on Linux; shutting it down does), so the server sees us leave now.
    Only for a body not read to the end: a finished connection goes back to the pool intact."""
    network = response.extensions.get("network_stream")
    sock = network.get_extra_info("socket") if network is not None else None
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
