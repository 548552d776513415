"""The local backend: a transformers causal LM, quantized with bitsandbytes, with an optional peft LoRA
adapter, streamed token by token from a background thread."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Literal

from assistant.errors import UserError
from generator.base import GenerationOptions, Message, TextStream, stop_filtered
from generator.model_files import resolve_model

log = logging.getLogger(__name__)

Quantization = Literal["4bit", "8bit", "none"]
SHIPPED_ADAPTER = Path(__file__).resolve().parent / "adapters" / "smollm2-grounded"


def quantization_config(quantization: Quantization):
    import torch
    from transformers import BitsAndBytesConfig

    if quantization == "4bit":
        # NF4 weights, float32 compute: the CPU has no fast bfloat16 path, and 4-bit is about memory here.
        compute = torch.bfloat16 if torch.cuda.is_available() else torch.float32
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=compute)
    if quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return None


def load_model(model: str, quantization: Quantization, cache_dir: Path, device: str | None = None):
    """(model, tokenizer, display name) for a causal LM, quantized as asked."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path, name = resolve_model(model, cache_dir)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        lm = AutoModelForCausalLM.from_pretrained(
            path,
            quantization_config=quantization_config(quantization),
            dtype=torch.float32 if device == "cpu" else "auto",
            device_map=device,
        )
    except OSError as exc:  # not a folder, not reachable on the hub, missing files
        raise UserError(f"cannot load generator model {model!r}: {exc}") from exc
    lm.eval()
    return lm, tokenizer, name if quantization == "none" else f"{name} {quantization}"


def attach_adapter(lm, adapter: Path | str):
    from peft import PeftModel

    path = Path(adapter)
    if not (path / "adapter_config.json").exists():
        raise UserError(f"no LoRA adapter at {path} (expected adapter_config.json there); set ASSISTANT_GENERATOR__ADAPTER=none to run without one")
    return PeftModel.from_pretrained(lm, str(path)).eval()


class _Cancelled:
    """A transformers StoppingCriteria: stop when the stream is cancelled or its deadline passes."""

    def __init__(self, stream: TextStream, deadline: float):
        self.stream, self.deadline = stream, deadline

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        if time.monotonic() > self.deadline:
            self.stream.finish_reason = self.stream.finish_reason or "timeout"
            return torch.ones(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        return torch.full((input_ids.shape[0],), self.stream.cancel_event.is_set(), dtype=torch.bool, device=input_ids.device)


class LocalGenerator:
    """Loads once, then serves one generation at a time (a CPU has no spare cores for a second one)."""

    def __init__(self, model: str = "embedded", *, quantization: Quantization = "4bit", adapter: str | Path | None = None,
                 cache_dir: Path = Path.home() / ".cache" / "domain-assistant" / "models", device: str | None = None):
        self.model, self.tokenizer, self.name = load_model(model, quantization, cache_dir, device)
        self.adapter = None
        if adapter is not None:
            self.model = attach_adapter(self.model, adapter)
            self.adapter = str(adapter)
            self.name += " + LoRA"
        self.context_window = int(getattr(self.model.config, "max_position_embeddings", 2048))
        self._lock = threading.Lock()
        eos = self.model.generation_config.eos_token_id
        self._eos_ids = {self.tokenizer.eos_token_id, *(eos if isinstance(eos, list) else [eos])}

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def encode(self, messages: list[Message]):
        return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)

    def prompt_tokens(self, messages: list[Message]) -> int:
        return int(self.encode(messages)["input_ids"].shape[1])

    def memory_bytes(self) -> int:
        return int(self.model.get_memory_footprint())

    def stream(self, messages: list[Message], options: GenerationOptions = GenerationOptions()) -> TextStream:
        from transformers import StoppingCriteriaList, TextIteratorStreamer

        inputs = self.encode(messages).to(self.model.device)
        n_prompt = inputs["input_ids"].shape[1]
        if n_prompt + options.max_new_tokens > self.context_window:
            raise UserError(f"the prompt ({n_prompt} tokens) plus max_new_tokens ({options.max_new_tokens}) exceeds the model's context window ({self.context_window})")
        stream = TextStream(iter(()))
        deadline = time.monotonic() + options.timeout_s
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=options.timeout_s + 30)
        sampling = {"do_sample": True, "temperature": options.temperature, "top_p": options.top_p} if options.temperature > 0 else {"do_sample": False}
        result: dict = {}

        def run() -> None:
            with self._lock:
                try:
                    out = self.model.generate(
                        **inputs, **sampling, max_new_tokens=options.max_new_tokens, streamer=streamer,
                        stopping_criteria=StoppingCriteriaList([_Cancelled(stream, deadline)]),
                        pad_token_id=self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id,
                    )
                    result["tokens"] = int(out.shape[1] - n_prompt)
                    result["last"] = int(out[0, -1])
                except BaseException as exc:  # surfaced in the consumer's thread
                    result["error"] = exc
                    streamer.end()

        def pieces():
            thread = threading.Thread(target=run, name="generate", daemon=True)
            thread.start()
            try:
                yield from stop_filtered(iter(streamer), options.stop, stream)
            finally:
                if thread.is_alive():
                    stream.cancel_event.set()  # a stop string ended the text early, or the consumer left
                thread.join()
            if "error" in result:
                raise result["error"]
            stream.tokens = result.get("tokens", 0)
            if stream.finish_reason is None:
                hit_limit = stream.tokens >= options.max_new_tokens and result.get("last") not in self._eos_ids
                stream.finish_reason = "length" if hit_limit else "stop"

        stream.pieces = pieces()
        return stream

    def generate(self, messages: list[Message], options: GenerationOptions = GenerationOptions()) -> str:
        return self.stream(messages, options).text()
