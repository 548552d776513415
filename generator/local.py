"""The local backend: a transformers causal LM, quantized with bitsandbytes, with an optional peft LoRA
adapter, streamed token by token; concurrent generations are batched (generator/batching.py)."""

from __future__ import annotations

import logging
import weakref
from pathlib import Path
from typing import Literal

from core.errors import UserError
from generator.base import GenerationOptions, Message, TextStream, check_fits, relayed
from generator.batching import BatchEngine, BatchRequest
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
        raise UserError(
            f"no LoRA adapter at {path} (expected adapter_config.json there); set ASSISTANT_GENERATOR__ADAPTER=none to run without one"
        )
    return PeftModel.from_pretrained(lm, str(path)).eval()


class LocalGenerator:
    """Loads once, then serves its streams through a continuous-batching engine (generator/batching.py): up
    to ``max_batch`` generations decode together, one forward pass per token for all of them."""

    def __init__(
        self,
        model: str = "embedded",
        *,
        quantization: Quantization = "4bit",
        adapter: str | Path | None = None,
        cache_dir: Path = Path.home() / ".cache" / "domain-assistant" / "models",
        device: str | None = None,
        max_batch: int = 4,
    ):
        self.adapter = str(adapter) if adapter is not None else None
        parts: dict = {}  # not self: nothing the loader leaves behind (a logged traceback) may hold the generator

        def load():  # on the model thread, which runs the model (generator/batching.py says why)
            lm, tokenizer, name = load_model(model, quantization, cache_dir, device)
            if adapter is not None:
                lm = attach_adapter(lm, adapter)
                name += " + LoRA"
            parts.update(tokenizer=tokenizer, name=name)
            eos = lm.generation_config.eos_token_id
            return lm, {tokenizer.eos_token_id, *(eos if isinstance(eos, list) else [eos])}

        self.engine = BatchEngine(load, max_batch=max_batch)
        self.tokenizer, self.name = parts["tokenizer"], parts["name"]
        # A generator that is dropped takes its model off the model thread, which frees it.
        weakref.finalize(self, self.engine.close)
        self.model = self.engine.model
        self.context_window = int(getattr(self.model.config, "max_position_embeddings", 2048))

    @property
    def max_concurrency(self) -> int:
        """Generations that make progress at once (a server's bounded queue admits this many)."""
        return self.engine.max_batch

    def close(self) -> None:
        self.engine.close()

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def encode(self, messages: list[Message]):
        return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)

    def prompt_tokens(self, messages: list[Message]) -> int:
        return int(self.encode(messages)["input_ids"].shape[1])

    def memory_bytes(self) -> int:
        return int(self.model.get_memory_footprint())

    def stream(self, messages: list[Message], options: GenerationOptions = GenerationOptions()) -> TextStream:
        from transformers import TextIteratorStreamer

        prompt = self.encode(messages)["input_ids"][0].tolist()
        check_fits(len(prompt), options, self.context_window)
        stream = TextStream(iter(()))
        # The streamer turns token ids into text a word at a time; the engine feeds it from its thread.
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=False, skip_special_tokens=True, timeout=options.timeout_s + 30)
        request = BatchRequest(prompt, options, emit=lambda token: streamer.put(_one(token)), done=streamer.end, cancel=stream.cancel_event)

        stream.pieces = relayed(stream, request, lambda: self.engine.submit(request), iter(streamer), options.stop)
        return stream

    def generate(self, messages: list[Message], options: GenerationOptions = GenerationOptions()) -> str:
        return self.stream(messages, options).text()


def _one(token: int):
    import torch

    return torch.tensor([token])
