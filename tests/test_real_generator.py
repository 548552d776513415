"""The real embedded generator with the shipped LoRA adapter, on both local engines: transformers
(SmolLM2-135M-Instruct in 4-bit, bitsandbytes NF4 on the CPU, the adapter through peft) and llama.cpp (the
adapter merged into the GGUF, generator/export.py). The behaviour a caller relies on (citations, streaming,
token limits, deadlines, cancellation, concurrent callers) is tested on both. Slow: loads the models
(converting the GGUF once into the user cache)."""

from __future__ import annotations

import gc
import json
import os
import threading
import time
import weakref

import pytest

from core.citations import cited_numbers
from core.config import Settings
from generator.base import GenerationOptions
from generator.batching import MODEL_THREAD
from generator.llamacpp import LlamaCppGenerator, available
from generator.local import SHIPPED_ADAPTER, LocalGenerator
from generator.prompt import Passage, build_prompt
from tests.conftest import REPO, run_cli

pytestmark = pytest.mark.slow
CACHE = Settings().generator.cache_dir

PASSAGES = [
    Passage("Revenue recognition", "Revenue is recognised when control of goods passes to the customer."),
    Passage(
        "What is glaucoma?",
        "Glaucoma is a group of diseases that can damage the eye's optic nerve and result in vision loss and blindness.",
    ),
    Passage("Dividends", "A dividend is a distribution of profits to shareholders."),
]


needs_llamacpp = pytest.mark.skipif(not available(), reason="llama-cpp-python is not installed (`make install` builds it)")


@pytest.fixture(scope="module", params=["transformers", pytest.param("llamacpp", marks=needs_llamacpp)])
def tuned(request):
    if request.param == "llamacpp":
        return LlamaCppGenerator("embedded", adapter=SHIPPED_ADAPTER, cache_dir=CACHE)
    return LocalGenerator("embedded", quantization="4bit", adapter=SHIPPED_ADAPTER, cache_dir=CACHE)


@pytest.fixture(scope="module")
def transformers_tuned(tuned):
    if not isinstance(tuned, LocalGenerator):
        pytest.skip("the transformers engine's own behaviour")
    return tuned


def prompt_for(generator, question: str):
    return build_prompt(question, PASSAGES, count_tokens=generator.prompt_tokens, budget=1024).messages


def test_loads_in_4bit_with_the_adapter_at_a_fraction_of_float32(transformers_tuned):
    tuned = transformers_tuned
    assert tuned.name == "SmolLM2-135M-Instruct 4bit + LoRA"
    assert tuned.context_window == 8192
    full = LocalGenerator("embedded", quantization="none", cache_dir=CACHE)
    assert tuned.memory_bytes() < 0.5 * full.memory_bytes()


@needs_llamacpp
def test_llamacpp_serves_the_merged_file_and_counts_tokens_as_transformers_does():
    fast = LlamaCppGenerator("embedded", adapter=SHIPPED_ADAPTER, cache_dir=CACHE, context_tokens=1024)
    assert fast.name == "SmolLM2-135M-Instruct + LoRA (llama.cpp, Q8_0)"
    assert fast.context_window == 1024 and fast.max_concurrency == 1
    assert "smollm2-grounded" in fast.path.name and fast.memory_bytes() == fast.path.stat().st_size
    # the same token ids the transformers engine feeds its model: its tokenizer and chat template, rendered
    from transformers import AutoTokenizer

    from generator.model_files import resolve_model

    hf = AutoTokenizer.from_pretrained(resolve_model("embedded", CACHE)[0])
    messages = prompt_for(fast, "What is glaucoma?") + [
        {"role": "assistant", "content": "Glaucoma [2]."},
        {"role": "user", "content": "Ünïcode, 5 µg?"},
    ]
    assert fast.encode(messages) == list(hf.apply_chat_template(messages, add_generation_prompt=True))
    assert fast.count_tokens("Revenue in 2019: $1,496 million") == len(
        hf("Revenue in 2019: $1,496 million", add_special_tokens=False)["input_ids"]
    )
    # a prompt that cannot fit is refused before any work, with the figures
    with pytest.raises(Exception, match=r"exceeds the model's context window \(1024\)"):
        fast.stream([{"role": "user", "content": "word " * 1100}], GenerationOptions(max_new_tokens=10))
    fast.close()


def test_answers_from_the_passages_with_a_citation(tuned):
    # The 135M model often cites the wrong number on tiny synthetic prompts (held-out: 67 % of answers
    # cite a gold passage, docs/generation.md); the output rail catches that. What must hold: the answer
    # comes from the passage, carries a valid citation, and stops by itself.
    stream = tuned.stream(prompt_for(tuned, "What is glaucoma?"), GenerationOptions(max_new_tokens=60))
    answer = stream.text()
    assert "optic nerve" in answer.lower()
    assert cited_numbers(answer, len(PASSAGES)), answer
    assert stream.finish_reason == "stop"


@needs_llamacpp
def test_llamacpp_base_without_the_adapter_does_not_cite_and_a_dropped_one_stops_its_worker():
    base = LlamaCppGenerator("embedded", cache_dir=CACHE)
    assert base.name == "SmolLM2-135M-Instruct (llama.cpp, Q4_1)"
    answer = base.generate(prompt_for(base, "What is glaucoma?"), GenerationOptions(max_new_tokens=40))
    assert not cited_numbers(answer, len(PASSAGES)), answer  # what the adapter adds, merged or not
    worker, gone = base._worker, weakref.ref(base)
    del base
    gc.collect()
    worker.join(timeout=10)
    assert gone() is None and not worker.is_alive()


def test_base_model_without_the_adapter_does_not_cite(tmp_path):
    base = LocalGenerator("embedded", quantization="4bit", cache_dir=CACHE)
    assert base.name == "SmolLM2-135M-Instruct 4bit"
    answer = base.generate(prompt_for(base, "What is glaucoma?"), GenerationOptions(max_new_tokens=40))
    assert not cited_numbers(answer, len(PASSAGES)), answer  # what the adapter adds
    # a generator that is dropped takes its engine off the model thread (and frees the model)
    engine, gone = base.engine, weakref.ref(base)
    del base
    gc.collect()
    assert gone() is None and engine.model is None and engine not in MODEL_THREAD.engines


def test_streams_token_pieces_and_stops_at_the_token_limit(tuned):
    stream = tuned.stream(prompt_for(tuned, "What is a dividend?"), GenerationOptions(max_new_tokens=6))
    pieces = list(stream)
    assert len(pieces) >= 2 and stream.tokens == 6 and stream.finish_reason == "length"


def test_timeout_returns_what_was_generated_so_far(tuned):
    started = time.monotonic()
    # a question no earlier test asked: llama.cpp would find an asked prompt in its cache and answer it in time
    question = "Describe every way glaucoma can damage the optic nerve, in detail."
    stream = tuned.stream(prompt_for(tuned, question), GenerationOptions(max_new_tokens=1500, timeout_s=0.2))
    text = stream.text()
    assert stream.finish_reason == "timeout" and time.monotonic() - started < 5
    assert stream.tokens < 1500 and isinstance(text, str)


def test_cancelling_mid_stream_stops_generation(tuned):
    stream = tuned.stream(prompt_for(tuned, "What is glaucoma?"), GenerationOptions(max_new_tokens=1500))
    it = iter(stream)
    next(it)
    started = time.monotonic()
    it.close()  # what an API does when its client disconnects
    assert stream.finish_reason == "cancelled" and time.monotonic() - started < 5
    # the model is free again at once
    assert tuned.generate(prompt_for(tuned, "What is a dividend?"), GenerationOptions(max_new_tokens=3))


def test_cli_ask_over_the_sample_collection_end_to_end(tmp_path):
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ASSISTANT_")},
        "ASSISTANT_INDEX_DIR": str(tmp_path / "indexes"),
        "ASSISTANT_GUARDRAILS__AUDIT_LOG": str(tmp_path / "audit.jsonl"),
    }
    sample = REPO / "data/samples/medical/medquad/4_MPlus_Health_Topics_QA"
    assert run_cli(["ingest", str(sample), "--collection", "med", "-q"], env).returncode == 0
    result = run_cli(["ask", "What is atrial fibrillation?", "--collection", "med", "--json", "--max-tokens", "80"], env)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    # the default engine: llama.cpp where it is installed, transformers otherwise
    assert data["generator"] == ("SmolLM2-135M-Instruct + LoRA (llama.cpp, Q8_0)" if available() else "SmolLM2-135M-Instruct 4bit + LoRA")
    assert data["cited"] and not data["invalid_citations"], data["answer"]
    assert any("atrial fibrillation" in c["title"].lower() for c in data["citations"]), data["citations"]


def test_concurrent_streams_are_decoded_together_and_answer_as_they_would_alone(transformers_tuned):
    tuned = transformers_tuned
    questions = ["What is glaucoma?", "What is a dividend?", "When is revenue recognised?"]
    options = GenerationOptions(max_new_tokens=24)
    alone = [tuned.generate(prompt_for(tuned, q), options) for q in questions]
    rows: list[int] = []
    tuned.engine.on_step = rows.append
    together: dict[int, str] = {}
    threads = [
        threading.Thread(target=lambda i=i, q=q: together.__setitem__(i, tuned.generate(prompt_for(tuned, q), options)))
        for i, q in enumerate(questions)
    ]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    finally:
        tuned.engine.on_step = None
    assert [together[i] for i in range(len(questions))] == alone
    assert max(rows) > 1  # they shared decode steps


@needs_llamacpp
def test_llamacpp_concurrent_callers_are_served_in_turn_and_answer_as_they_would_alone(tuned):
    if not isinstance(tuned, LlamaCppGenerator):
        pytest.skip("the llama.cpp engine's own behaviour")
    questions = ["What is glaucoma?", "What is a dividend?", "When is revenue recognised?"]
    options = GenerationOptions(max_new_tokens=24)
    alone = [tuned.generate(prompt_for(tuned, q), options) for q in questions]
    together: dict[int, str] = {}
    threads = [
        threading.Thread(target=lambda i=i, q=q: together.__setitem__(i, tuned.generate(prompt_for(tuned, q), options)))
        for i, q in enumerate(questions)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert [together[i] for i in range(len(questions))] == alone
