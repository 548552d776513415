"""``Assistant``: question -> retrieval -> grounded prompt -> streamed answer with citations.

The one way in for the CLI, the API, the UI and the evaluation suite. Built from Settings; tests pass
a fake generator and embedder instead.

With guardrails on (the default), the question passes the input rails first (a blocked question gets the
rail's fixed reply and nothing else runs; personal data is redacted before retrieval, generation and
logging), a question the retriever finds nothing relevant for is answered "not covered" without
generating, and the generated answer passes the output rails (invalid citations and unsupported sentences
removed, numbers checked, disclaimers appended) before it becomes ``Answer.text``. Tokens are streamed as
generated; the checked text arrives with the final ``Answer``, which callers show in place of the stream.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from assistant import compose
from compute.computation import Computation, SourceTable, compute
from core import telemetry
from core.citations import COULD_NOT_ANSWER, NO_ANSWER, cited_numbers, invalid_numbers
from core.collection import MANIFEST, collection_path, read_manifest
from core.config import Settings
from core.embedding import Embedder
from core.errors import UserError
from core.types import Hit
from generator.base import GenerationOptions, Generator
from generator.degenerate import LoopDetector, is_degenerate
from generator.prompt import Passage, build_prompt
from guardrails.output_checks import is_refusal, quote_fallback
from retriever.answerability import Answerability, AnswerabilityModel
from retriever.followup import anchor, contextualize, fuse
from retriever.hybrid import Retriever

if TYPE_CHECKING:
    from assistant.conversations import Turn


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
    flags: tuple[str, ...] = ()  # ingest-rail rules that flagged the passage (it addresses the model)
    ingested_at: str = ""  # when the version of its document cited here was ingested (documents keep versions)
    page: int | None = None  # the page the passage starts on, for paged documents (PDF, scans)


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
    # stop, length, timeout, cancelled; no_passages (nothing retrieved), blocked (an input rail refused),
    # not_covered (the answerability check found the documents do not cover the question), degenerate (the
    # generation looped and was stopped), computed (answered by a computation over table cells)
    finish_reason: str
    tokens: int  # generated
    generator: str
    collection_version: int  # the collection's generation counter when the question was answered
    timings_ms: dict[str, float] = field(default_factory=dict)
    guard_events: list[dict[str, Any]] = field(default_factory=list)  # input, then output rail decisions
    blocked: bool = False  # an input rail refused the question; ``text`` is its fixed reply
    raw_text: str = ""  # the text as generated, before the output rails (what was streamed)
    prompt_tokens: int = 0  # the prompt the model read, chat template included
    # Do the documents answer the question? The answerability check before generation (retriever/
    # answerability.py), turned to False after it when the model said the passages do not hold the answer or
    # nothing it wrote was supported; ``reason`` says why in words, and is part of ``text``.
    answerable: bool = True
    answerability: float = 1.0  # the check's P(answerable)
    reason: str | None = None
    # A question of an arithmetic shape answered in code from table cells (compute/): the program, its
    # operands with the passages citing them, the result and the work; ``text`` states them, nothing generated.
    computation: Computation | None = None
    # In a conversation: the question searched (the message made standalone: "How is glaucoma treated?" for
    # "How is it treated?"; the message itself when it stood alone), whether it was rewritten, and how many of
    # the earlier turns were left out of the prompt for the history's token limit (oldest first).
    standalone: str = ""
    rewritten: bool = False
    history_cut: int = 0

    @property
    def citations(self) -> list[Source]:
        by_number = {s.number: s for s in self.sources}
        return [by_number[n] for n in self.cited]


class Assistant:
    def __init__(
        self,
        settings: Settings,
        *,
        generator: Generator | None = None,
        embedders: dict[str, Embedder] | None = None,
        wrap_generator: Callable[[Generator], Generator] | None = None,
        wrap_embedder: Callable[[Embedder], Embedder] | None = None,
    ):
        """``wrap_generator`` / ``wrap_embedder`` decorate the models when they are first loaded (the API
        puts a bounded queue in front of the generator and batches concurrent question embeddings)."""
        self.settings = settings
        self._wrap_generator = wrap_generator
        self._wrap_embedder = wrap_embedder
        self._generator = wrap_generator(generator) if generator is not None and wrap_generator else generator
        self._owns_generator = generator is None  # loaded here, so closed here (a given one is the caller's)
        self._embedders = embedders if embedders is not None else {}
        self._stores: dict[tuple[str, int | None], Any] = {}  # (collection name, as_of) -> Collection, opened once
        self._retrievers: dict[tuple, Any] = {}  # (collection, overrides) -> Retriever
        self._guards: dict[str, Any] = {}
        self._models: dict[str, AnswerabilityModel] = {}  # collection name -> its answerability model
        self._deciders: dict[tuple[str, int | None], Answerability] = {}
        self._audit = None
        self._lock = threading.Lock()

    @property
    def generator(self) -> Generator:
        with self._lock:
            if self._generator is None:
                loaded = compose.generator(self.settings)
                self._generator = self._wrap_generator(loaded) if self._wrap_generator else loaded
            return self._generator

    def retriever(self, collection: str, as_of: int | None = None, **overrides: Any) -> Retriever:
        """The retriever over the named collection (compose.retriever with these overrides), opened read-only
        once and kept per set of overrides: a Retriever caches BM25 term statistics, which rebuilding it for
        every question would throw away. Every front end searches through here. ``as_of``: the collection
        as it was at that version (history.py; an earlier version never changes, so it is never stale)."""
        overrides = {k: v for k, v in overrides.items() if v is not None}
        name = (collection, as_of)
        key = (name, tuple(sorted(overrides.items())))
        with self._lock:
            store = self._stores.get(name)
            if store is not None and store.stale:
                # Documents were added or removed since it was opened: reopen. The old handle is not closed
                # here (a search on another thread may still be using it); it closes when dropped.
                del self._stores[name]
                self._retrievers = {k: r for k, r in self._retrievers.items() if k[0] != name}
            if key not in self._retrievers:
                if name not in self._stores:
                    self._stores[name] = compose.open_collection(self.settings, collection, as_of=as_of)
                    if as_of is not None:
                        self._drop_pruned_copies(collection)
                store = self._stores[name]
                # Questions are embedded by the model the collection was built with, whatever the current
                # embedder setting.
                embedder = self._embedder(store.manifest.embedder.name)
                self._retrievers[key] = compose.retriever(self.settings, store, embedder, **overrides)
            return self._retrievers[key]

    def _drop_pruned_copies(self, collection: str) -> None:
        """Forget the handles on copies of ``collection`` as of versions whose folders opening another copy
        pruned: each holds an index in memory, and a server reading many versions would keep them all."""
        pruned = [name for name, store in self._stores.items() if name[0] == collection and name[1] is not None and store.stale]
        for name in pruned:
            del self._stores[name]  # not closed: a search on another thread may still be using it
        self._retrievers = {k: r for k, r in self._retrievers.items() if k[0] not in pruned}
        self._deciders = {k: d for k, d in self._deciders.items() if k not in pruned}

    def answerability_model(self, collection: str) -> AnswerabilityModel:
        """The collection's answerability model (compose.answerability_model), loaded once."""
        with self._lock:
            if collection not in self._models:
                self._models[collection] = compose.answerability_model(self.settings, collection)
            return self._models[collection]

    def answerability(self, collection: str, as_of: int | None = None) -> Answerability:
        """The answerability decider of the collection's open handle (a new one when it was reopened)."""
        store = self.retriever(collection, as_of).collection
        model = self.answerability_model(collection)
        with self._lock:
            decider = self._deciders.get((collection, as_of))
            if decider is None or decider.collection is not store:
                decider = self._deciders[(collection, as_of)] = Answerability(store, model)
            return decider

    def embedder(self, model: str) -> Embedder:
        """The named embedding model, loaded once (and wrapped) for questions and uploads alike."""
        with self._lock:
            return self._embedder(model)

    def collection_embedder(self, collection: str) -> Embedder:
        """The model a collection was built with (the configured one for a collection not created yet)."""
        path = collection_path(self.settings.index_dir, collection)
        model = read_manifest(path).embedder.name if (path / MANIFEST).exists() else self.settings.embedder.model
        return self.embedder(model)

    def _embedder(self, model: str) -> Embedder:
        if model not in self._embedders:
            loaded = compose.embedder(self.settings, model)
            self._embedders[model] = self._wrap_embedder(loaded) if self._wrap_embedder else loaded
        return self._embedders[model]

    def guard(self, collection: str):
        """The collection's guard (its rule packs), or None with guardrails disabled."""
        with self._lock:
            if collection not in self._guards:
                if self._audit is None:
                    self._audit = compose.audit_log(self.settings)
                self._guards[collection] = compose.guard(self.settings, collection, self._audit)
            return self._guards[collection]

    def close(self) -> None:
        with self._lock:
            generator, self._generator = (self._generator, None) if self._owns_generator else (None, self._generator)
        if generator is not None and callable(getattr(generator, "close", None)):
            generator.close()  # a local model leaves the model thread and frees its memory
        for store in self._stores.values():
            store.close()
        self._stores.clear()
        self._retrievers.clear()
        if self._audit is not None:
            self._audit.close()

    def __enter__(self) -> Assistant:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def ask(self, question: str, collection: str, **kwargs: Any) -> Answer:
        for item in self.stream(question, collection, **kwargs):
            if isinstance(item, Answer):
                return item
        raise RuntimeError("stream ended without an answer")  # pragma: no cover - stream always ends with one

    def stream(
        self,
        question: str,
        collection: str,
        *,
        k: int = 5,
        filters: dict[str, Any] | None = None,
        options: GenerationOptions | None = None,
        cancel: threading.Event | None = None,
        history: Sequence[Turn] = (),
        **retrieval: Any,
    ) -> Iterator[str | Answer]:
        """Text pieces as they are generated, then the finished ``Answer`` as the last item.

        ``cancel``, set from any thread (an API client went away), stops the generation at the next token;
        the answer then finishes with what was generated and ``finish_reason`` "cancelled". ``history``: the
        conversation's earlier turns, oldest first (the last ``conversation.history_turns`` are used): the
        question is made standalone from them before retrieval (retriever/followup.py) and the prompt shows them.

        With tracing on (core/telemetry.py), an ``answer`` span holds the ``retrieval``, ``rail.input``,
        ``rail.output`` and ``generation`` spans of the question."""
        items = self._stream(question, collection, k=k, filters=filters, options=options, cancel=cancel, history=history, **retrieval)
        return items if not telemetry.tracing() else _traced(items, collection, k)

    def _stream(
        self,
        question: str,
        collection: str,
        *,
        k: int,
        filters: dict[str, Any] | None,
        options: GenerationOptions | None,
        cancel: threading.Event | None,
        history: Sequence[Turn],
        **retrieval: Any,
    ) -> Iterator[str | Answer]:
        question = " ".join(question.split())
        if not question:
            raise UserError("the question is empty")
        if not 1 <= k <= 50:
            raise UserError(f"k must be between 1 and 50, got {k}")
        options = options or compose.generation_options(self.settings)
        started = time.perf_counter()
        retriever = self.retriever(collection, **retrieval)
        guard = self.guard(collection)
        answer = Answer(
            question=question,
            collection=collection,
            text="",
            sources=[],
            cited=[],
            invalid_citations=[],
            relevant=False,
            relevance=0.0,
            finish_reason="",
            tokens=0,
            generator="",
            collection_version=retriever.collection.version,
            timings_ms={},
        )
        context = {"collection": collection}
        notes: list[str] = []
        if guard is not None:
            checked = _check(guard, question, "input", context)
            answer.guard_events += [e.to_dict() for e in checked.events]
            if checked.blocked:
                yield from self._finish(answer, checked.reply, "blocked", started, blocked=True)
                return
            question = checked.text  # personal data redacted from here on
            answer.question = question
            notes = list(dict.fromkeys(e.message for e in checked.events if e.action == "annotate"))

        turns = list(history)[-self.settings.conversation.history_turns :] if self.settings.conversation.history_turns else []
        if guard is not None:
            # Earlier messages a client sends (OpenAI chat history) have not been through the rails: personal data
            # in them is redacted like the new message's before they are searched with or shown to the model.
            turns = [_redacted(t, lambda text: _check(guard, text, "input", context).text) for t in turns]
        answer.standalone = question
        if turns and guard is not None:
            # An instruction override split over several messages is still one: the recent messages together.
            joined = _check(guard, " ".join([*(t.message for t in turns[-2:]), question]), "input", context)
            if joined.blocked:
                answer.guard_events += [e.to_dict() for e in joined.events]
                yield from self._finish(answer, joined.reply, "blocked", started, blocked=True)
                return
        strategy = self.settings.conversation.standalone
        previous = turns[-1].standalone if turns else None
        if turns and strategy != "off":
            made = contextualize(
                question, [t.standalone for t in turns], rewrite=self._rewriter() if strategy == "generator" else None, strategy=strategy
            )
            answer.timings_ms["standalone"] = made.ms
            if made.rewritten:
                standalone = made.question
                if guard is not None:  # the rails see the question searched too, not only the message
                    checked = _check(guard, standalone, "input", context)
                    if checked.blocked:
                        answer.guard_events += [e.to_dict() for e in checked.events]
                        yield from self._finish(answer, checked.reply, "blocked", started, blocked=True)
                        return
                    standalone = checked.text
                question, answer.standalone, answer.rewritten = standalone, standalone, True

        with telemetry.span("retrieval", collection=collection, k=k, mode=retriever.config.mode) as span:
            result = retriever.search(question, k, filters)
            if strategy == "fusion" and previous:
                result = replace(result, hits=fuse(result.hits, retriever.search(previous, k, filters).hits, k))
            elif turns and strategy != "off" and self.settings.conversation.anchor and not answer.rewritten:
                earlier = [t.standalone or t.message for t in turns]
                result = replace(result, hits=anchor(retriever, result.hits, question, k, earlier, filters))
            span.set_attributes({"hits": len(result.hits), "relevance": float(result.relevance), "relevant": bool(result.relevant)})
        answer.timings_ms["retrieve"] = (time.perf_counter() - started) * 1000
        answer.relevant, answer.relevance = result.relevant, result.relevance
        decision = self.answerability(collection, retrieval.get("as_of")).decide(question, result.hits, result.relevance)
        answer.timings_ms["answerability"] = decision.ms
        answer.answerable, answer.answerability = decision.answerable, decision.score
        answer.reason = None if decision.answerable else decision.reason
        if not result.hits:
            answer.answerable = False
            answer.reason = "No passage matches the filters." if filters else "The collection holds no passages."
            yield from self._finish(answer, _with_reason(NO_ANSWER, answer.reason), "no_passages", started)
            return
        if guard is not None:
            signals = {"answerable": float(decision.answerable), "relevant": float(result.relevant), "relevance": result.relevance}
            covered = _check(guard, question, "input", {**context, **signals}, kinds={"threshold"})
            answer.guard_events += [e.to_dict() for e in covered.events]
            if covered.blocked:
                yield from self._finish(answer, _with_reason(covered.reply or NO_ANSWER, decision.reason), "not_covered", started)
                return

        generator = self.generator
        answer.generator = generator.name
        budget = min(self.settings.generator.context_tokens, generator.context_window) - options.max_new_tokens
        too_small = f"raise ASSISTANT_GENERATOR__CONTEXT_TOKENS ({self.settings.generator.context_tokens}) or lower max_new_tokens ({options.max_new_tokens})"
        try:
            prompt = build_prompt(
                question,
                [Passage(h.title, h.text, flagged=bool(h.flags)) for h in result.hits],
                count_tokens=generator.prompt_tokens,
                budget=budget,
                history=[(t.standalone or t.message, t.answer) for t in turns],
                history_tokens=self.settings.conversation.history_tokens,
            )
        except ValueError as exc:
            raise UserError(f"{exc}; {too_small}") from None
        answer.history_cut = prompt.history_dropped + len(history) - len(turns)
        if answer.history_cut:
            notes.append(HISTORY_CUT.format(n=answer.history_cut))
        answer.sources = [_source(n, result.hits[i]) for n, i in enumerate(prompt.included, start=1)]
        answer.prompt_tokens = prompt.tokens
        if not answer.sources:
            raise UserError(f"no passage fits the prompt budget of {budget} tokens; {too_small}")
        passages = [s.text for s in answer.sources]
        context["passages"] = passages
        computation = self._compute(question, retriever, answer.sources)
        if computation is not None:
            yield from self._computed(answer, computation, guard, context, notes, started)
            return
        generating = time.perf_counter()
        # Not made current (it spans yields, and nothing nests in it): ended by the finally.
        span = telemetry.start(
            "generation", collection=collection, generator=generator.name, prompt_tokens=prompt.tokens, max_tokens=options.max_new_tokens
        )
        try:
            stream = generator.stream(prompt.messages, options)
            if cancel is not None:
                stream.cancel_event = cancel  # the backends read the event from the stream at every step
                if cancel.is_set():
                    stream.cancel()
            pieces = []
            loop = LoopDetector()
            for piece in stream:
                if not pieces:
                    answer.timings_ms["first_token"] = (time.perf_counter() - started) * 1000
                pieces.append(piece)
                yield piece
                if loop.feed(piece):
                    stream.cancel()  # a loop never ends by itself: stop it instead of running to the token limit
                    break
            answer.raw_text = "".join(pieces).strip()
            answer.tokens = stream.tokens
            answer.timings_ms["generate"] = (time.perf_counter() - generating) * 1000
            cancelled = cancel is not None and cancel.is_set()
            ended = "degenerate" if loop.looping else "cancelled" if cancelled else stream.finish_reason or "stop"
            span.set_attributes({"completion_tokens": stream.tokens, "finish_reason": ended})
        except Exception as exc:
            telemetry.failed(span, exc)
            raise
        finally:
            span.end()
        position = {s.chunk_id: s.number for s in answer.sources}
        evidence = [position[result.hits[i].chunk_id] for i in decision.evidence if result.hits[i].chunk_id in position]
        text, lead = answer.raw_text, ""
        # Nothing usable was written (a loop, no sentence), or the model found no answer in passages the check
        # accepted: the passages' sentences that bear on the question are shown as evidence, under a lead that
        # says so (added after the rails, which would drop it as a sentence citing nothing); with none, the
        # refusal. The reader judges the evidence; a flat refusal would hide it.
        if loop.looping or is_degenerate(text) or (decision.answerable and is_refusal(text)):
            quotes = quote_fallback(question, passages, evidence=evidence, terms=decision.terms)
            text, lead = (quotes, COULD_NOT_ANSWER) if quotes else (NO_ANSWER, "")
        if guard is not None:
            checked = _check(
                guard,
                text,
                "output",
                {
                    **context,
                    "question": question,
                    "passages": passages,
                    "evidence": evidence,
                    "terms": decision.terms,
                    "support": self._support(retriever.embedder),
                },
            )
            answer.guard_events += [e.to_dict() for e in checked.events]
            text = checked.text
        if lead:
            text = f"{lead}\n{text}"
        if is_refusal(text.split("\n\n")[0]):
            # The model (or the grounding check) found no answer in the passages: not answerable, with a reason.
            answer.answerable, answer.reason = False, decision.reason
            text = _with_reason(text, answer.reason)
        if notes:
            text = text.rstrip() + "\n\n" + "\n".join(notes)
        answer.cited = cited_numbers(text, len(answer.sources))
        answer.invalid_citations = invalid_numbers(answer.raw_text, len(answer.sources))
        if loop.looping:  # checked first: stopping a loop cancels the stream, and so sets a shared cancel event
            reason = "degenerate"
        elif cancel is not None and cancel.is_set():
            reason = "cancelled"
        else:
            reason = stream.finish_reason or "stop"
        yield from self._finish(answer, text, reason, started, streamed=True)

    def _rewriter(self) -> Callable[[list[Any]], str]:
        """The answering model asked for a follow-up's standalone form (the `generator` strategy): greedy, short."""
        generator, options = self.generator, GenerationOptions(max_new_tokens=REWRITE_TOKENS, temperature=0.0)
        return lambda messages: generator.generate(messages, options)

    @staticmethod
    def _compute(question: str, retriever: Retriever, sources: list[Source]) -> Computation | None:
        """The question answered by arithmetic over the cells of the tables behind the passages, when it has a
        shape the planner knows and every operand is in a passage given (compute/computation.py)."""
        tables = retriever.collection.tables(s.document_id for s in sources)
        if not tables:
            return None
        found = [
            SourceTable(table, tuple((s.number, s.text) for s in sources if s.document_id == doc_id))
            for doc_id, doc_tables in tables.items()
            for table in doc_tables
        ]
        return compute(question, found)

    def _computed(
        self, answer: Answer, computation: Computation, guard: Any, context: dict[str, Any], notes: list[str], started: float
    ) -> Iterator[str | Answer]:
        """The computation's text as the answer: streamed whole, through the output rails (which accept the
        numbers and sentences the code computed: they are the cited cells and the arithmetic over them)."""
        answer.computation = computation
        answer.generator = "compute"
        answer.timings_ms["compute"] = computation.ms
        text = computation.text
        if computation.error is not None:
            answer.answerable, answer.reason = False, f"The computation failed: {computation.error}."
        if guard is not None:
            checked = _check(guard, text, "output", {**context, "question": answer.question, "computed": computation.text})
            answer.guard_events += [e.to_dict() for e in checked.events]
            text = checked.text
        if notes:
            text = text.rstrip() + "\n\n" + "\n".join(notes)
        answer.cited = cited_numbers(text, len(answer.sources))
        yield from self._finish(answer, text, "computed", started)

    @staticmethod
    def _support(embedder: Embedder):
        """Embedding support for the grounding rail: the best cosine between a sentence and the passages.
        Only sentences the lexical check rejects get here; each passage is embedded once per answer."""
        passage_vectors: dict[str, Any] = {}

        def support(sentence: str, passages: list[str]) -> float:
            missing = [p for p in dict.fromkeys(passages) if p not in passage_vectors]
            if missing:
                passage_vectors.update(zip(missing, embedder.embed_passages(missing)))
            query = embedder.embed_query(sentence)
            return float(max(passage_vectors[p] @ query for p in passages))

        return support

    @staticmethod
    def _finish(
        answer: Answer, text: str, reason: str, started: float, *, blocked: bool = False, streamed: bool = False
    ) -> Iterator[str | Answer]:
        answer.text, answer.finish_reason, answer.blocked = text, reason, blocked
        if not streamed:  # a fixed reply is streamed too, so a caller showing the stream shows it
            answer.raw_text = text
            yield text
        answer.timings_ms["total"] = (time.perf_counter() - started) * 1000
        yield answer


REWRITE_TOKENS = 48  # a standalone question is one sentence
HISTORY_CUT = "The {n} oldest turn(s) of this conversation were left out of what the model read (the history limit)."


def _check(guard: Any, text: str, stage: str, context: dict[str, Any], **kwargs: Any) -> Any:
    """``guard.check``, in a ``rail.<stage>`` span when tracing is on."""
    if not telemetry.tracing():
        return guard.check(text, stage, context, **kwargs)
    with telemetry.span(f"rail.{stage}", collection=context.get("collection")) as span:
        checked = guard.check(text, stage, context, **kwargs)
        span.set_attributes({"blocked": checked.blocked, "rules": [e.rule_id for e in checked.events]})
        return checked


def _traced(items: Iterator[str | Answer], collection: str, k: int) -> Iterator[str | Answer]:
    """The answer's items inside an ``answer`` span, current while the pipeline runs (between the items handed
    out, too: an answer is consumed in one thread, the API's answer worker or the CLI's)."""
    span = telemetry.start("answer", collection=collection, k=k)
    token = telemetry.activate(span)
    try:
        for item in items:
            if isinstance(item, Answer):
                span.set_attributes(
                    {
                        "finish_reason": item.finish_reason,
                        "blocked": item.blocked,
                        "answerable": item.answerable,
                        "prompt_tokens": item.prompt_tokens,
                        "completion_tokens": item.tokens,
                        "collection_version": item.collection_version,
                    }
                )
            yield item
    except Exception as exc:  # not GeneratorExit: a consumer that stops reading is no failure
        telemetry.failed(span, exc)
        raise
    finally:
        telemetry.deactivate(token)
        span.end()


def _redacted(turn: Turn, redact: Callable[[str], str]) -> Turn:
    message = redact(turn.message)
    return replace(turn, message=message, standalone=message if turn.standalone == turn.message else redact(turn.standalone))


def _with_reason(text: str, reason: str | None) -> str:
    """The reply with the reason after its first paragraph (before any disclaimer the rails appended)."""
    if not reason or reason in text:
        return text
    head, sep, tail = text.partition("\n\n")
    return f"{head.rstrip()} {reason}{sep}{tail}"


def _source(number: int, hit: Hit) -> Source:
    return Source(
        number,
        hit.chunk_id,
        hit.document_id,
        hit.title,
        hit.source,
        hit.start,
        hit.end,
        hit.score,
        hit.text,
        hit.flags,
        hit.ingested_at,
        hit.page,
    )
