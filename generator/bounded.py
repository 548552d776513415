"""A bounded queue in front of a Generator: how many generations run at once, how many may wait.

A server must not pile up requests behind a model that serves a few at a time: beyond ``queue_size``
waiting callers, or after waiting ``queue_timeout_s``, a caller gets ``GeneratorBusy`` with a retry hint
(the API answers 503 + Retry-After). The slot is held until the stream is consumed, cancelled or closed.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from typing import Any

from core.errors import AssistantError
from generator.base import GenerationOptions, Generator, Message, TextStream


class GeneratorBusy(AssistantError):
    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


class BoundedGenerator:
    def __init__(self, inner: Generator, *, concurrency: int = 1, queue_size: int = 8, queue_timeout_s: float = 60.0):
        self.inner = inner
        self.concurrency, self.queue_size, self.queue_timeout_s = concurrency, queue_size, queue_timeout_s
        self.active = 0
        self.waiting = 0
        self._mean_s = 5.0  # running mean of a generation's duration, for the Retry-After hint
        self._cond = threading.Condition()

    def __getattr__(self, name: str) -> Any:  # name, context_window, count_tokens, prompt_tokens, generate
        return getattr(self.inner, name)

    def retry_after(self) -> int:
        """Seconds until a slot is likely free: the queue ahead, served `concurrency` at a time."""
        return max(1, math.ceil(self._mean_s * (self.waiting + 1) / self.concurrency))

    def check_room(self) -> None:
        """Raise GeneratorBusy now if a new request could not even queue: lets a server refuse before it
        spends a retrieval on a question it cannot answer (the slot itself is taken later, in ``stream``)."""
        with self._cond:
            if self.active >= self.concurrency and self.waiting >= self.queue_size:
                raise GeneratorBusy(
                    f"the generator is busy ({self.active} running, {self.waiting} waiting); retry later", self.retry_after()
                )

    def _acquire(self) -> None:
        with self._cond:
            if self.active >= self.concurrency and self.waiting >= self.queue_size:
                raise GeneratorBusy(
                    f"the generator is busy ({self.active} running, {self.waiting} waiting); retry later", self.retry_after()
                )
            self.waiting += 1
            try:
                free = self._cond.wait_for(lambda: self.active < self.concurrency, timeout=self.queue_timeout_s)
            finally:
                self.waiting -= 1
            if not free:
                raise GeneratorBusy(f"no generation slot freed within {self.queue_timeout_s:g} s; retry later", self.retry_after())
            self.active += 1

    def _release(self, started: float) -> None:
        with self._cond:
            self.active -= 1
            self._mean_s = 0.8 * self._mean_s + 0.2 * (time.perf_counter() - started)
            self._cond.notify()

    def stream(self, messages: list[Message], options: GenerationOptions = GenerationOptions()) -> TextStream:
        self._acquire()
        started = time.perf_counter()
        try:
            stream = self.inner.stream(messages, options)
        except BaseException:
            self._release(started)
            raise

        def released(pieces: Iterator[str]) -> Iterator[str]:
            try:
                yield from pieces
            finally:
                self._release(started)

        stream.pieces = released(stream.pieces)
        return stream
