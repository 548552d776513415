"""The Generator seam: chat messages in, text out (whole or streamed), with the same options everywhere.

Backends: ``local`` (transformers, 4-bit with bitsandbytes, optional LoRA adapter), ``openai`` (any
OpenAI-compatible server) and ``queued`` (a fake that replays queued replies, for tests).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from core.errors import UserError

Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": ...}


@dataclass(frozen=True)
class GenerationOptions:
    max_new_tokens: int = 256
    temperature: float = 0.0  # 0: greedy, reproducible
    top_p: float = 1.0
    stop: tuple[str, ...] = ()  # generation ends before any of these strings; they are not returned
    timeout_s: float = 120.0  # wall-clock limit; the text so far is returned with finish_reason "timeout"

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {self.max_new_tokens}")
        if not 0.0 <= self.temperature <= 2.0:
            raise ValueError(f"temperature must be between 0 and 2, got {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {self.timeout_s}")


@dataclass
class TextStream:
    """Text pieces as they are generated. Iterate it; afterwards ``finish_reason`` is one of
    ``stop`` (the model ended or a stop string was reached), ``length``, ``timeout`` or ``cancelled``, and
    ``tokens`` counts the generated tokens. ``cancel()`` (or closing the iterator) stops generation early,
    e.g. when an API client disconnects."""

    pieces: Iterator[str]
    cancel_event: threading.Event = field(default_factory=threading.Event)
    finish_reason: str | None = None
    tokens: int = 0

    def __iter__(self) -> Iterator[str]:
        try:
            yield from self.pieces
        finally:
            if self.finish_reason is None:
                self.cancel()

    def cancel(self) -> None:
        self.cancel_event.set()
        if self.finish_reason is None:
            self.finish_reason = "cancelled"

    def text(self) -> str:
        return "".join(self)


@runtime_checkable
class Generator(Protocol):
    name: str  # shown in answers and reports, e.g. "SmolLM2-135M-Instruct 4bit + adapter"
    context_window: int  # prompt + generated tokens the model can attend to

    def count_tokens(self, text: str) -> int: ...

    def prompt_tokens(self, messages: list[Message]) -> int:
        """Tokens the messages take once the chat template is applied (what the budget is spent on)."""
        ...

    def stream(self, messages: list[Message], options: GenerationOptions = GenerationOptions()) -> TextStream: ...

    def generate(self, messages: list[Message], options: GenerationOptions = GenerationOptions()) -> str: ...


def cut_at_stop(text: str, stop: tuple[str, ...]) -> tuple[str, bool]:
    """``text`` up to the first stop string, and whether one was found."""
    cut = min((i for s in stop if (i := text.find(s)) >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def held_back(text: str, stop: tuple[str, ...]) -> int:
    """How many trailing characters of ``text`` might be the start of a stop string, so a stream must hold
    them back until the next piece shows whether they are."""
    longest = 0
    for s in stop:
        for n in range(min(len(s) - 1, len(text)), 0, -1):
            if text.endswith(s[:n]):
                longest = max(longest, n)
                break
    return longest


def stop_filtered(pieces: Iterator[str], stop: tuple[str, ...], stream: TextStream) -> Iterator[str]:
    """Pieces with everything from the first stop string on removed (a stop string may span pieces).
    Sets ``stream.finish_reason = "stop"`` and stops pulling when one is reached."""
    if not stop:
        yield from pieces
        return
    pending = ""
    for piece in pieces:
        pending += piece
        text, found = cut_at_stop(pending, stop)
        if found:
            if text:
                yield text
            stream.finish_reason = "stop"
            return
        keep = held_back(pending, stop)
        if len(pending) > keep:
            yield pending[: len(pending) - keep]
            pending = pending[len(pending) - keep :]
    if pending:
        yield pending


def check_fits(prompt_tokens: int, options: GenerationOptions, context_window: int) -> None:
    """Refuse, before any work, a prompt that cannot fit the context with its answer."""
    if prompt_tokens + options.max_new_tokens > context_window:
        raise UserError(
            f"the prompt ({prompt_tokens} tokens) plus max_new_tokens ({options.max_new_tokens}) exceeds the model's context window ({context_window})"
        )


def relayed(stream: TextStream, request, submit: Callable[[], None], source: Iterator[str], stop: tuple[str, ...]) -> Iterator[str]:
    """The pieces of a generation that a model thread runs (``request``: its ``tokens``, ``finish_reason`` and
    ``error`` are set there), read from ``source`` after ``submit()``, with ``stop`` strings cut. No piece for
    longer than a whole generation may take (``queue.Empty``: the thread starved of CPU, or stuck) ends the
    answer with what came, as a timeout; a stop string or a consumer that leaves cancels the request."""
    submit()
    try:
        yield from stop_filtered(source, stop, stream)
    except queue.Empty:
        stream.finish_reason = "timeout"
    finally:
        if request.finish_reason is None:
            stream.cancel_event.set()  # a stop string ended the text early, or the consumer left
    stream.tokens = request.tokens
    if request.error is not None:
        raise request.error
    if stream.finish_reason is None:
        stream.finish_reason = request.finish_reason
