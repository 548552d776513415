"""``Assistant``: question -> retrieval -> grounded prompt -> streamed answer with citations.

The one way in for the CLI, the API, the UI and the evaluation suite. Built from Settings by
``Assistant.from_settings``; tests pass a fake generator and embedder instead.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator

from assistant import compose
from assistant.config import Settings
from assistant.embedding import Embedder
from assistant.errors import UserError
from assistant.types import Hit
from generator.base import GenerationOptions, Generator
from assistant.citations import cited_numbers, invalid_numbers
from generator.prompt import NO_ANSWER, Passage, build_prompt


@dataclass(frozen=True)
class Source:
    """A passage the model was given, numbered as in the prompt."""

    number: int
    chunk_id: int
    document_id: str
    title: str
    source: str
    start: int  # character span of the passage in its document
    end: int
    score: float
    text: str


@dataclass
class Answer:
    question: str
    collection: str
    text: str
    sources: list[Source]  # every passage given to the model, numbered [1], [2], ...
    cited: list[int]  # valid passage numbers cited in the text, in order of first citation
    invalid_citations: list[int]  # numbers cited that match no passage (reported, never silently kept)
    relevant: bool  # the retriever's "something relevant was found" signal
    relevance: float
    finish_reason: str  # stop, length, timeout, cancelled, or no_passages (nothing was retrieved)
    tokens: int
    generator: str
    collection_version: int  # the collection's generation counter when the question was answered
    timings_ms: dict[str, float] = field(default_factory=dict)
    guard_events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def citations(self) -> list[Source]:
        by_number = {s.number: s for s in self.sources}
        return [by_number[n] for n in self.cited]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["citations"] = [asdict(s) for s in self.citations]
        return out


class Assistant:
    def __init__(self, settings: Settings, *, generator: Generator | None = None, embedders: dict[str, Embedder] | None = None):
        self.settings = settings
        self._generator = generator
        self._embedders = embedders if embedders is not None else {}
        self._retrievers: dict[str, Any] = {}
        self._lock = threading.Lock()

    @property
    def generator(self) -> Generator:
        with self._lock:
            if self._generator is None:
                self._generator = compose.generator(self.settings)
            return self._generator

    def retriever(self, collection: str, **overrides: Any):
        """A retriever over the named collection (opened read-only once, then kept)."""
        with self._lock:
            if collection not in self._retrievers:
                self._retrievers[collection] = compose.open_collection(self.settings, collection)
            store = self._retrievers[collection]
            return compose.retriever_for(self.settings, store, self._embedders, **overrides)

    def close(self) -> None:
        for store in self._retrievers.values():
            store.close()
        self._retrievers.clear()

    def ask(self, question: str, collection: str, **kwargs: Any) -> Answer:
        for item in self.stream(question, collection, **kwargs):
            if isinstance(item, Answer):
                return item
        raise RuntimeError("stream ended without an answer")  # pragma: no cover - stream always ends with one

    def stream(self, question: str, collection: str, *, k: int = 5, filters: dict[str, Any] | None = None,
               options: GenerationOptions | None = None, **retrieval: Any) -> Iterator[str | Answer]:
        """Text pieces as they are generated, then the finished ``Answer`` as the last item."""
        question = " ".join(question.split())
        if not question:
            raise UserError("the question is empty")
        if not 1 <= k <= 50:
            raise UserError(f"k must be between 1 and 50, got {k}")
        options = options or compose.generation_options(self.settings)
        started = time.perf_counter()
        retriever = self.retriever(collection, **retrieval)
        result = retriever.search(question, k, filters)
        timings = {"retrieve": (time.perf_counter() - started) * 1000}
        answer = Answer(
            question=question, collection=collection, text="", sources=[], cited=[], invalid_citations=[],
            relevant=result.relevant, relevance=result.relevance, finish_reason="no_passages", tokens=0,
            generator="", collection_version=retriever.collection.generation, timings_ms=timings,
        )
        if not result.hits:
            answer.text = NO_ANSWER
            yield answer.text
            answer.timings_ms["total"] = (time.perf_counter() - started) * 1000
            yield answer
            return
        generator = self.generator
        answer.generator = generator.name
        budget = min(self.settings.generator.context_tokens, generator.context_window) - options.max_new_tokens
        too_small = f"raise ASSISTANT_GENERATOR__CONTEXT_TOKENS ({self.settings.generator.context_tokens}) or lower max_new_tokens ({options.max_new_tokens})"
        try:
            prompt = build_prompt(question, [Passage(h.title, h.text) for h in result.hits], count_tokens=generator.prompt_tokens, budget=budget)
        except ValueError as exc:
            raise UserError(f"{exc}; {too_small}") from None
        answer.sources = [_source(n, result.hits[i]) for n, i in enumerate(prompt.included, start=1)]
        if not answer.sources:
            raise UserError(f"no passage fits the prompt budget of {budget} tokens; {too_small}")
        generating = time.perf_counter()
        stream = generator.stream(prompt.messages, options)
        pieces = []
        for piece in stream:
            if not pieces:
                timings["first_token"] = (time.perf_counter() - started) * 1000
            pieces.append(piece)
            yield piece
        answer.text = "".join(pieces).strip()
        answer.finish_reason, answer.tokens = stream.finish_reason or "stop", stream.tokens
        answer.cited = cited_numbers(answer.text, len(answer.sources))
        answer.invalid_citations = invalid_numbers(answer.text, len(answer.sources))
        timings["generate"] = (time.perf_counter() - generating) * 1000
        timings["total"] = (time.perf_counter() - started) * 1000
        yield answer


def _source(number: int, hit: Hit) -> Source:
    return Source(number, hit.chunk_id, hit.document_id, hit.title, hit.source, hit.start, hit.end, hit.score, hit.text)
