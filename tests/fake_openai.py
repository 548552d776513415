"""A small real OpenAI-compatible chat server (stdlib http.server in a thread) for the openai backend's
tests and for end-to-end tests that need a generator without loading a model."""

from __future__ import annotations

import json
import re
import select
import socket
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeOpenAI(ThreadingHTTPServer):
    """Replies to POST /v1/chat/completions from a queue of reply dicts (the last one repeats):
    text, finish_reason ("stop"), usage (completion_tokens or None), delay (seconds between chunks),
    status (200) and error (the error body for a status >= 400). Records every request and what it sent."""

    daemon_threads = True
    block_on_close = False

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.replies: deque[dict] = deque([{"text": "Hello there."}])
        self.requests: list[dict] = []  # {"path", "headers", "body"}
        self.sent: list[int] = []  # content chunks written, per request
        self.broken = threading.Event()  # set when the client went away mid-stream
        self.url = f"http://127.0.0.1:{self.server_address[1]}/v1"

    def reply(self, **reply) -> None:
        self.replies.append(reply)
        if len(self.replies) > 1 and self.replies[0] == {"text": "Hello there."}:
            self.replies.popleft()


class Handler(BaseHTTPRequestHandler):
    server: FakeOpenAI

    def log_message(self, *args):  # keep pytest output clean
        pass

    def pause(self, seconds: float) -> None:
        """Sleep, but notice at once when the client closes the connection (as real servers do, to stop
        generating): the socket turns readable with nothing to read."""
        if seconds and select.select([self.connection], [], [], seconds)[0]:
            if self.connection.recv(1, socket.MSG_PEEK) == b"":
                raise ConnectionResetError("client went away")

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
        replies = self.server.replies
        reply = replies.popleft() if len(replies) > 1 else replies[0]
        if reply.get("status", 200) >= 400:
            data = json.dumps(reply.get("error", {})).encode()
            self.send_response(reply["status"])
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()  # HTTP/1.0, no length: the body ends when the connection closes
        self.server.sent.append(0)

        def event(payload) -> None:
            self.wfile.write(f"data: {payload}\n\n".encode())
            self.wfile.flush()

        def chunk(delta: dict, finish=None, **extra) -> str:
            return json.dumps(
                {
                    "id": "c1",
                    "object": "chat.completion.chunk",
                    "model": body["model"],
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                    **extra,
                }
            )

        try:
            event(chunk({"role": "assistant"}))
            for word in re.findall(r"\S+\s*", reply["text"]):
                event(chunk({"content": word}))
                self.server.sent[-1] += 1
                self.pause(reply.get("delay", 0))
            usage = reply.get("usage")
            extra = {"usage": {"prompt_tokens": 9, "completion_tokens": usage, "total_tokens": 9 + usage}} if usage else {}
            event(chunk({}, reply.get("finish_reason", "stop"), **extra))
            event("[DONE]")
        except (BrokenPipeError, ConnectionResetError):
            self.server.broken.set()


@contextmanager
def running_server() -> Iterator[FakeOpenAI]:
    srv = FakeOpenAI()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
