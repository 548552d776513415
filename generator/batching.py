"""Continuous batching for a transformers causal LM: the generations running at once share one forward
pass per token.

Why: a decode step costs much the same for several sequences as for one. Measured on 2 CPU cores with the
embedded SmolLM2-135M (4-bit + LoRA, ~700-token prompts): a step took about 40 ms for one sequence,
60-120 ms for four and 110-130 ms for eight (the machine's speed drifts), so four answers decode in
about the time of two (bench/batching.py: 1.67x the tokens a second on 128-token answers).

How: one thread per process loads and runs every local model (``ModelThread``). A new request is
prefilled alone, so its first token does not wait for the batch to finish, and joins the running batch at the next step: its KV cache is left-padded to the
batch's length and stacked on (the attention mask hides the padding; position ids stay per row). Each
step decodes one token for every row; a row that ends (end of sequence, its token limit, its deadline,
or cancelled because its client left) leaves the batch at once, and padding no row needs is trimmed.
Greedy rows give the same tokens as ``model.generate`` on the prompt alone (tests/test_batching.py).

Only plain ``DynamicLayer`` caches can be stacked this way; a model with another cache layout (sliding
windows) is served one generation at a time by the same loop.

Why one thread, for every model: PyTorch's CPU thread team belongs to the thread that first used it, and
teams crowd each other out on a small machine. A model loaded on one thread and run on another decoded
1.7x slower (2 cores: 36 vs 63 ms a step), and a second model's idle engine thread slowed the first by
1.6x (38 vs 60 ms) until it was closed; the chat's adapter switch and ``assistant eval --compare`` hold
two models at once.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from generator.base import GenerationOptions

log = logging.getLogger(__name__)


class ModelThread:
    """The thread that loads and runs the local models of this process: ``call(fn)`` runs ``fn`` on it and
    returns what it returns; between calls it advances every engine with work by one step in turn.
    Started on first use; stopped at interpreter exit (a daemon thread still holding PyTorch's thread team
    while the process tore down aborted it, "terminate called without an active exception", exit status
    134, in 2 of 6 runs)."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.engines: list[BatchEngine] = []
        self._calls: deque[list] = deque()  # [fn, result box, done event], fn popped once taken
        self._thread: threading.Thread | None = None
        self._stopping = False

    @property
    def thread(self) -> threading.Thread | None:
        return self._thread

    def _ensure_started(self) -> None:  # under self.cond
        if self._thread is None or not self._thread.is_alive():
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name="local-models", daemon=True)
            self._thread.start()

    def call(self, fn: Callable[[], Any]) -> Any:
        if threading.current_thread() is self._thread:
            return fn()
        box: dict[str, Any] = {}
        done = threading.Event()
        with self.cond:
            self._ensure_started()
            self._calls.append([fn, box, done])
            self.cond.notify_all()
        del fn  # the queue entry gives it up once taken: nothing here may keep what it refers to
        done.wait()
        if "error" in box:
            raise box["error"]
        return box["value"]

    def add(self, engine: BatchEngine) -> None:
        with self.cond:
            self._ensure_started()
            self.engines.append(engine)

    def stop(self, timeout: float = 10.0) -> None:
        with self.cond:
            self._stopping = True
            self.cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self) -> None:
        import torch

        while True:
            with self.cond:
                while not self._stopping and not self._calls and not any(e.has_work() for e in self.engines):
                    self.cond.wait()
                if self._stopping:
                    engines, self.engines = self.engines, []
                    break
                call = self._calls.popleft() if self._calls else None
                busy = [e for e in self.engines if e.has_work()]
            if call is not None:
                fn = call.pop(0)
                box, done = call
                try:
                    box["value"] = fn()
                except BaseException as exc:  # raised in the caller's thread
                    box["error"] = exc
                finally:
                    del fn, call
                    done.set()
                continue
            with torch.inference_mode():
                for engine in busy:
                    engine.tick()
        for engine in engines:
            engine.fail_all(RuntimeError("the generator has been closed"))


MODEL_THREAD = ModelThread()
atexit.register(MODEL_THREAD.stop)


@dataclass(eq=False)
class BatchRequest:
    """One generation. ``emit(token_id)`` is called on the engine's thread for every generated token (the
    end-of-sequence token excluded), ``done()`` once at the end, after ``finish_reason``, ``tokens`` and
    ``error`` are set. Set ``cancel`` to stop it at the next step."""

    prompt: list[int]
    options: GenerationOptions
    emit: Callable[[int], None]
    done: Callable[[], None]
    cancel: threading.Event = field(default_factory=threading.Event)
    deadline: float = 0.0  # time.monotonic(); 0: options.timeout_s from submission
    tokens: int = 0
    finish_reason: str | None = None  # stop | length | timeout | cancelled | error
    error: BaseException | None = None


class BatchEngine:
    """Serves ``submit()``-ted requests for one model, up to ``max_batch`` decoding together, on the
    process's ``ModelThread``.

    ``load()`` returns (model, end-of-sequence token ids) and runs on that thread (see the module's
    docstring for why); the constructor waits for it and raises what it raised.

    ``on_step(rows)`` (optional) is called after each decode step with the number of rows in it (metrics,
    tests). ``close()`` takes the engine off the thread; requests still waiting or running end with an
    error."""

    def __init__(
        self,
        load: Callable[[], tuple[Any, set[int]]],
        *,
        max_batch: int = 4,
        on_step: Callable[[int], None] | None = None,
        thread: ModelThread | None = None,
    ):
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self.max_batch = max_batch
        self.on_step = on_step
        self._models = thread or MODEL_THREAD
        self._cond = self._models.cond
        self._waiting: deque[BatchRequest] = deque()
        self._closed = False
        self._stackable = True  # False once a cache turns out not to be plain DynamicLayers
        # The running batch: rows, their KV cache [rows, heads, length, dim] per layer, the attention mask
        # [rows, length] (0 = left padding), each row's last token and next position id.
        self._rows: list[BatchRequest] = []
        self._cache = None
        self._mask = None
        self._last = None
        self._positions = None
        model, eos_ids = self._models.call(load)
        del load
        self.model: Any = model
        self.eos_ids: set[int] = {int(e) for e in eos_ids if e is not None}
        self._models.add(self)

    @property
    def running(self) -> int:
        return len(self._rows)

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def submit(self, request: BatchRequest) -> BatchRequest:
        if not request.prompt:
            raise ValueError("the prompt is empty")
        if not request.deadline:
            request.deadline = time.monotonic() + request.options.timeout_s
        with self._cond:
            if self._closed:
                raise RuntimeError("the generator has been closed")
            self._waiting.append(request)
            self._cond.notify_all()
        return request

    def close(self) -> None:
        """Take the engine off the model thread, ending what it still holds (idempotent)."""

        def leave() -> None:
            with self._cond:
                self._closed = True
                if self in self._models.engines:
                    self._models.engines.remove(self)
            self.fail_all(RuntimeError("the generator has been closed"))
            self.model = None

        with self._cond:
            if self._closed:
                return
        thread = self._models.thread
        if thread is None or not thread.is_alive():
            leave()
        else:
            self._models.call(leave)  # between two ticks: never under a running step

    # ------------------------------------------------------------------ on the model thread

    def has_work(self) -> bool:  # under the model thread's lock
        return bool(self._waiting or self._rows)

    def tick(self) -> None:
        """Let waiting requests join (prefilling each), then decode one token for every row."""
        self._sweep_waiting()
        while self._room():
            with self._cond:
                request = self._waiting.popleft()
            self._join(request)
        if self._rows:
            self._step()

    def fail_all(self, error: BaseException) -> None:
        with self._cond:
            waiting, self._waiting = list(self._waiting), deque()
        for request in [*self._rows, *waiting]:
            self._finish(request, "error", error)
        self._drop(list(range(len(self._rows))))

    def _sweep_waiting(self) -> None:
        """End waiting requests that were cancelled or ran out of time, so their callers hear at once."""
        with self._cond:
            gone = [r for r in self._waiting if _expiry(r) is not None]
            for request in gone:
                self._waiting.remove(request)
        for request in gone:
            self._ended(request)

    def _room(self) -> bool:
        """Whether a waiting request can join the batch now."""
        if not self._waiting:
            return False
        return len(self._rows) < (self.max_batch if self._stackable else 1)

    def _join(self, request: BatchRequest) -> None:
        """Prefill the request alone; stack its cache onto the batch's unless it has already ended."""
        import torch

        if self._ended(request):
            return
        try:
            ids = torch.tensor([request.prompt], dtype=torch.long, device=self.model.device)
            out = self.model(input_ids=ids, use_cache=True, logits_to_keep=1)
            token = self._pick(out.logits[:, -1, :], [request])[0]
        except Exception as exc:  # the request fails; the batch goes on
            log.exception("prefill failed")
            self._finish(request, "error", exc)
            return
        if not self._accept(request, token):
            return
        cache = out.past_key_values
        if not all(type(layer).__name__ == "DynamicLayer" for layer in getattr(cache, "layers", [None])):
            if self._stackable:
                log.info("this model's KV cache cannot be stacked: generating one request at a time")
            self._stackable = False
        n = len(request.prompt)
        mask = torch.ones((1, n), dtype=torch.long, device=ids.device)
        last = torch.tensor([token], dtype=torch.long, device=ids.device)
        position = torch.tensor([n], dtype=torch.long, device=ids.device)
        if not self._rows:
            self._rows, self._cache, self._mask, self._last, self._positions = [request], cache, mask, last, position
            return
        length = max(self._mask.shape[1], n)
        for ours, theirs in zip(self._cache.layers, cache.layers):
            ours.keys = torch.cat([_pad_left(ours.keys, length), _pad_left(theirs.keys, length)])
            ours.values = torch.cat([_pad_left(ours.values, length), _pad_left(theirs.values, length)])
        self._mask = torch.cat([_pad_left(self._mask, length), _pad_left(mask, length)])
        self._last = torch.cat([self._last, last])
        self._positions = torch.cat([self._positions, position])
        self._rows.append(request)

    def _step(self) -> None:
        """One token for every row of the batch."""
        import torch

        self._drop([i for i, r in enumerate(self._rows) if self._ended(r)])
        if not self._rows:
            return
        rows = len(self._rows)
        self._mask = torch.cat([self._mask, self._mask.new_ones((rows, 1))], dim=1)
        try:
            out = self.model(
                input_ids=self._last[:, None],
                attention_mask=self._mask,
                position_ids=self._positions[:, None],
                past_key_values=self._cache,
                use_cache=True,
            )
            tokens = self._pick(out.logits[:, -1, :], self._rows)
        except Exception as exc:  # every row of the batch fails (their caches are in an unknown state)
            log.exception("decode step failed")
            for request in self._rows:
                self._finish(request, "error", exc)
            self._drop(list(range(rows)))
            return
        self._cache = out.past_key_values
        self._last = torch.tensor(tokens, dtype=torch.long, device=self._last.device)
        self._positions += 1
        if self.on_step is not None:
            self.on_step(rows)
        self._drop([i for i, (r, t) in enumerate(zip(self._rows, tokens)) if not self._accept(r, t)])

    def _pick(self, logits, requests: list[BatchRequest]) -> list[int]:
        """The next token of each row: greedy at temperature 0, else sampled with temperature and top-p."""
        import torch
        from transformers.generation.logits_process import TopPLogitsWarper

        picked = logits.argmax(dim=-1).tolist()
        for i, request in enumerate(requests):
            opts = request.options
            if opts.temperature > 0:
                scores = logits[i : i + 1].float() / opts.temperature
                if opts.top_p < 1.0:
                    scores = TopPLogitsWarper(opts.top_p)(None, scores)
                picked[i] = int(torch.multinomial(torch.softmax(scores, dim=-1), 1))
        return picked

    def _accept(self, request: BatchRequest, token: int) -> bool:
        """Hand ``token`` to the request; False when the request has ended with it."""
        if token in self.eos_ids:
            self._finish(request, "stop")
            return False
        request.tokens += 1
        try:
            request.emit(token)
        except Exception as exc:  # the consumer's side broke: end this request only
            self._finish(request, "error", exc)
            return False
        if request.tokens >= request.options.max_new_tokens:
            self._finish(request, "length")
            return False
        return True

    def _ended(self, request: BatchRequest) -> bool:
        """Ends a request whose client left or whose deadline passed; True when it has ended."""
        if request.finish_reason is None and (reason := _expiry(request)) is not None:
            self._finish(request, reason)
        return request.finish_reason is not None

    def _drop(self, gone: list[int]) -> None:
        """Remove rows from the batch, and the left padding that no remaining row needs."""
        if not gone:
            return
        gone_set = set(gone)
        keep = [i for i in range(len(self._rows)) if i not in gone_set]
        self._rows = [self._rows[i] for i in keep]
        if not self._rows:
            self._cache = self._mask = self._last = self._positions = None
            return
        import torch

        index = torch.tensor(keep, dtype=torch.long, device=self._mask.device)
        mask = self._mask.index_select(0, index)
        start = int((mask.sum(dim=0) > 0).nonzero()[0])  # first column some row attends to
        self._mask = mask[:, start:]
        for layer in self._cache.layers:
            layer.keys = layer.keys.index_select(0, index)[:, :, start:]
            layer.values = layer.values.index_select(0, index)[:, :, start:]
        self._last = self._last.index_select(0, index)
        self._positions = self._positions.index_select(0, index)

    @staticmethod
    def _finish(request: BatchRequest, reason: str, error: BaseException | None = None) -> None:
        if request.finish_reason is not None:
            return
        request.finish_reason, request.error = reason, error
        try:
            request.done()
        except Exception:  # pragma: no cover - a consumer's callback must not stop the engine
            log.exception("a request's done() callback failed")


def _expiry(request: BatchRequest) -> str | None:
    """ "cancelled" when the request's client left, "timeout" when its deadline passed, else None."""
    if request.cancel.is_set():
        return "cancelled"
    return "timeout" if time.monotonic() > request.deadline else None


def _pad_left(tensor, length: int):
    """``tensor`` with zeros added before its sequence axis (dim -2 of a KV tensor, dim 1 of a mask) up to
    ``length``."""
    import torch

    axis = 1 if tensor.dim() == 2 else -2
    missing = length - tensor.shape[axis]
    if missing <= 0:
        return tensor
    shape = list(tensor.shape)
    shape[axis] = missing
    return torch.cat([tensor.new_zeros(shape), tensor], dim=axis)
