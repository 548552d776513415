"""The fast local engine: llama.cpp in process (llama-cpp-python), serving the GGUF the adapter is merged into.

Why: on a CPU the transformers path decodes the embedded model at a fifth of llama.cpp's speed on the same
weights (bitsandbytes' 4-bit kernels are not built for CPUs, and the unmerged LoRA adds 1.8x). Here the
adapter is merged into the 4-bit GGUF once (generator/export.py) and llama.cpp's CPU kernels run it.

Prompts are built with the chat template stored in the GGUF, rendered as transformers renders it (llama-cpp-
python's Jinja2ChatFormatter), and tokenized by llama.cpp: the same token ids the transformers engine feeds
its model (tested), without importing transformers or torch (454 MB of a process's memory before any model).
One worker thread owns the llama.cpp context and serves requests in arrival order (its thread team stays on
one thread, as generator/batching.py explains for PyTorch); a request's deadline runs from its submission, a
request whose client left is dropped before or during its generation, and the context's KV cache keeps the
longest prefix a new prompt shares with the last one (the system prompt), so that part is not re-read.
"""

from __future__ import annotations

import os
import queue
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import UserError
from generator.base import GenerationOptions, Message, TextStream, check_fits, relayed
from generator.export import merged_gguf
from generator.model_files import display_name, model_gguf

_END = object()  # the worker's last item on a request's queue


def available() -> bool:
    """Whether llama-cpp-python is installed (the engine is optional: the transformers path always works)."""
    import importlib.util

    return importlib.util.find_spec("llama_cpp") is not None


@dataclass
class _Request:
    prompt: list[int]
    options: GenerationOptions
    cancel: threading.Event
    submitted: float = field(default_factory=time.monotonic)
    out: queue.Queue = field(default_factory=queue.Queue)
    tokens: int = 0
    finish_reason: str | None = None
    error: BaseException | None = None


class LlamaCppGenerator:
    """The Generator protocol over llama.cpp: ``model`` is ``embedded`` or a ``.gguf`` file; ``adapter`` a
    peft LoRA folder, merged into the GGUF (cached in ``cache_dir``); ``context_tokens`` the context size."""

    def __init__(
        self,
        model: str = "embedded",
        *,
        adapter: str | Path | None = None,
        cache_dir: Path = Path.home() / ".cache" / "domain-assistant" / "models",
        context_tokens: int = 2048,
        threads: int | None = None,
    ):
        if not available():
            raise UserError(
                "the llama.cpp engine needs llama-cpp-python (`make install` builds it); or set ASSISTANT_GENERATOR__ENGINE=transformers"
            )
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        gguf = model_gguf(model)
        if gguf is None:
            raise UserError(
                f"the llama.cpp engine serves GGUF files (`embedded` or a .gguf path), not {model!r}; set ASSISTANT_GENERATOR__ENGINE=transformers"
            )
        self.adapter = str(adapter) if adapter is not None else None
        self.path = merged_gguf(gguf, Path(adapter) if adapter is not None else None, cache_dir)
        # No flash attention: it prefilled prompts of 500-800 tokens 12-25 % faster on 2 cores, but its half-
        # precision sums changed one of bench/generation.py's five greedy answers (to a refusal); without it the
        # answers are the transformers engine's (docs/generation.md). Prompts go in 256 tokens at a time: 15 MB
        # less memory for the buffers than 512, the same speed and the same greedy answers on the benchmark.
        self.llm = Llama(
            model_path=str(self.path),
            n_ctx=context_tokens,
            n_batch=256,
            n_threads=threads or os.cpu_count() or 1,
            flash_attn=False,
            verbose=False,
        )
        # Callers count and tokenize from their own threads while the worker decodes: tokenizing reads only the
        # model's vocabulary, never the context (llama.cpp's own server tokenizes in its HTTP threads so).
        template = self.llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise UserError(f"{gguf} has no chat template (tokenizer.chat_template): the assistant needs a chat (instruct) model")
        special = {"eos_token": self.llm.token_eos(), "bos_token": self.llm.token_bos()}
        self.template = Jinja2ChatFormatter(
            template=str(template),
            **{k: self.llm.detokenize([v], special=True).decode("utf-8", "replace") for k, v in special.items()},
            add_generation_prompt=True,
        )
        self.context_window = context_tokens
        # e.g. "SmolLM2-135M-Instruct + LoRA (llama.cpp, Q8_0)": the weights' type as served
        self.name = f"{display_name(model, gguf)}{' + LoRA' if adapter is not None else ''} (llama.cpp, {_file_type(self.llm)})"
        self.eos_ids = {self.llm.token_eos()}
        self._requests: queue.Queue = queue.Queue()
        self._worker = threading.Thread(target=self._serve, args=(self._requests, self.llm, self.eos_ids), daemon=True, name="llama.cpp")
        self._worker.start()
        # A dropped generator stops its worker (which holds the model), as generator/local.py does.
        weakref.finalize(self, self._requests.put, None)

    max_concurrency = 1  # one context, one generation at a time: a server's bounded queue admits one

    def close(self) -> None:
        self._requests.put(None)
        self._worker.join(timeout=30)

    def count_tokens(self, text: str) -> int:
        return len(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def encode(self, messages: list[Message]) -> list[int]:
        return self.llm.tokenize(self.template(messages=messages).prompt.encode("utf-8"), add_bos=False, special=True)

    def prompt_tokens(self, messages: list[Message]) -> int:
        return len(self.encode(messages))

    def memory_bytes(self) -> int:
        return self.path.stat().st_size

    def stream(self, messages: list[Message], options: GenerationOptions = GenerationOptions()) -> TextStream:
        prompt = self.encode(messages)
        check_fits(len(prompt), options, self.context_window)
        stream = TextStream(iter(()))
        request = _Request(prompt, options, stream.cancel_event)
        stream.pieces = relayed(stream, request, lambda: self._requests.put(request), _drain(request), options.stop)
        return stream

    def generate(self, messages: list[Message], options: GenerationOptions = GenerationOptions()) -> str:
        return self.stream(messages, options).text()

    @staticmethod
    def _serve(requests: queue.Queue, llm, eos_ids: set[int]) -> None:
        # A static method given what it needs: the thread must not hold the generator, or it is never dropped.
        while (request := requests.get()) is not None:
            try:
                _generate(llm, eos_ids, request)
            except Exception as exc:  # reported to the caller; the worker serves the next request
                request.error = exc
                request.finish_reason = request.finish_reason or "error"
            finally:
                request.out.put(_END)


def _generate(llm, eos_ids: set[int], request: _Request) -> None:
    options = request.options
    deadline = request.submitted + options.timeout_s
    if request.cancel.is_set():
        request.finish_reason = "cancelled"
        return
    if time.monotonic() > deadline:
        request.finish_reason = "timeout"
        return
    tokens: list[int] = []
    sent = ""
    reason = "length"
    sampling = {"temp": options.temperature, "top_p": options.top_p, "top_k": 0, "min_p": 0.0, "repeat_penalty": 1.0}
    for token in llm.generate(request.prompt, reset=True, **sampling):
        if token in eos_ids:
            reason = "stop"
            break
        tokens.append(token)
        request.tokens = len(tokens)
        # The whole answer decoded again each token (a few hundred at most): a character split over two
        # tokens shows as U+FFFD until its second half arrives, so only what is settled is sent.
        text = llm.detokenize(tokens).decode("utf-8", "replace")
        if not text.endswith("\ufffd") and len(text) > len(sent):
            request.out.put(text[len(sent) :])
            sent = text
        if request.cancel.is_set():
            reason = "cancelled"
            break
        if len(tokens) >= options.max_new_tokens:
            break
        if time.monotonic() > deadline:
            reason = "timeout"
            break
    request.finish_reason = reason


def _drain(request: _Request):
    wait = request.options.timeout_s + 30
    while (piece := request.out.get(timeout=wait)) is not _END:
        yield piece


def _file_type(llm) -> str:
    """The GGUF's weight type as llama.cpp names it ("Q4_1"), from the file's metadata."""
    import gguf

    try:
        return gguf.LlamaFileType(int(llm.metadata.get("general.file_type", -1))).name.removeprefix("MOSTLY_")
    except ValueError:
        return "GGUF"
