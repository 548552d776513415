"""The continuous-batching engine (generator/batching.py) on tiny, randomly initialised transformers models:
real forward passes and KV caches, checked token for token against ``model.generate`` on each prompt alone."""

from __future__ import annotations

import gc
import threading
import time
import weakref

import pytest

torch = pytest.importorskip("torch")
from transformers import LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM  # noqa: E402

from generator import batching  # noqa: E402
from generator.base import GenerationOptions  # noqa: E402
from generator.batching import BatchEngine, BatchRequest  # noqa: E402

VOCAB, EOS, PAD = 64, 63, 0


def tiny(kind: str = "llama"):
    torch.manual_seed(0)
    common = dict(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        eos_token_id=EOS,
        bos_token_id=1,
        pad_token_id=PAD,
    )
    if kind == "mistral":  # a sliding-window cache: not stackable
        return MistralForCausalLM(MistralConfig(**common, sliding_window=16)).eval()
    return LlamaForCausalLM(LlamaConfig(**common)).eval()


@pytest.fixture(scope="module")
def model():
    return tiny()


def engine_for(model, eos_ids: set[int], **kwargs) -> BatchEngine:
    return BatchEngine(lambda: (model, eos_ids), **kwargs)


def prompts(*lengths: int) -> list[list[int]]:
    generator = torch.Generator().manual_seed(1)
    return [[1] + torch.randint(2, EOS - 1, (n,), generator=generator).tolist() for n in lengths]


def reference(model, prompt: list[int], max_new_tokens: int, eos: int = EOS) -> list[int]:
    """What model.generate gives for the prompt alone, greedy, without the end-of-sequence token."""
    with torch.inference_mode():
        out = model.generate(torch.tensor([prompt]), max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=eos, pad_token_id=PAD)
    tokens = out[0, len(prompt) :].tolist()
    return tokens[: tokens.index(eos)] if eos in tokens else tokens


class Recorder:
    """A request plus what the engine handed it."""

    def __init__(self, prompt, **options):
        self.tokens: list[int] = []
        self.ended = threading.Event()
        self.request = BatchRequest(prompt, GenerationOptions(**options), emit=self.tokens.append, done=self.ended.set)

    def wait(self, timeout: float = 30.0) -> BatchRequest:
        assert self.ended.wait(timeout), "the request never ended"
        return self.request


def run_all(engine: BatchEngine, recorders: list[Recorder], stagger_s: float = 0.0) -> None:
    for recorder in recorders:
        engine.submit(recorder.request)
        time.sleep(stagger_s)
    for recorder in recorders:
        recorder.wait()


def test_rows_joining_and_leaving_a_running_batch_get_exactly_the_tokens_of_generate_alone(model):
    steps: list[int] = []
    engine = engine_for(model, {EOS}, max_batch=3, on_step=steps.append)
    ps = prompts(5, 17, 9, 30, 3, 12)
    limits = [10, 25, 4, 18, 30, 7]
    recorders = [Recorder(p, max_new_tokens=n) for p, n in zip(ps, limits)]
    run_all(engine, recorders, stagger_s=0.005)  # arrivals while others are decoding
    for recorder, p, n in zip(recorders, ps, limits):
        expected = reference(model, p, n)
        assert recorder.tokens == expected
        assert recorder.request.tokens == len(expected)
        assert recorder.request.finish_reason == ("length" if len(expected) == n else "stop")
    assert max(steps) == 3  # the batch really filled up to max_batch, never beyond
    assert steps[-1] == 1  # and emptied as rows finished
    engine.close()


def test_end_of_sequence_ends_a_row_without_emitting_the_token(model):
    p = prompts(8)[0]
    free_run = reference(model, p, 12, eos=-1)
    eos = free_run[4]  # pretend the fifth generated token is the end of sequence
    engine = engine_for(model, {eos}, max_batch=2)
    recorder = Recorder(p, max_new_tokens=12)
    run_all(engine, [recorder])
    assert recorder.tokens == free_run[: free_run.index(eos)]
    assert recorder.request.finish_reason == "stop"
    engine.close()


def test_a_cancelled_row_leaves_at_once_and_the_others_are_unaffected(model):
    engine = engine_for(model, set(), max_batch=4)
    ps = prompts(6, 11, 20)
    stopped = Recorder(ps[0], max_new_tokens=400)
    others = [Recorder(p, max_new_tokens=40) for p in ps[1:]]

    def cancel_after_three(token: int, tokens=stopped.tokens) -> None:
        tokens.append(token)
        if len(tokens) == 3:
            stopped.request.cancel.set()

    stopped.request.emit = cancel_after_three
    run_all(engine, [stopped, *others])
    assert stopped.request.finish_reason == "cancelled"
    assert 3 <= len(stopped.tokens) <= 4  # at most the step already under way
    for recorder, p in zip(others, ps[1:]):
        assert recorder.tokens == reference(model, p, 40, eos=-1)
    engine.close()


def test_a_deadline_ends_the_row_with_timeout_and_what_it_had(model):
    engine = engine_for(model, set(), max_batch=2)
    recorder = Recorder(prompts(5)[0], max_new_tokens=100_000, timeout_s=0.3)
    started = time.monotonic()
    run_all(engine, [recorder])
    assert recorder.request.finish_reason == "timeout"
    assert time.monotonic() - started < 5
    assert 0 < recorder.request.tokens == len(recorder.tokens) < 100_000
    engine.close()


def test_a_request_waiting_for_room_is_ended_when_cancelled_without_being_prefilled(model):
    engine = engine_for(model, set(), max_batch=1)
    running = Recorder(prompts(5)[0], max_new_tokens=100_000, timeout_s=10)
    engine.submit(running.request)
    waiting = Recorder(prompts(7)[0], max_new_tokens=5)
    engine.submit(waiting.request)
    deadline = time.monotonic() + 5
    while not (engine.running == 1 and running.tokens) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert engine.waiting == 1 and engine.running == 1
    waiting.request.cancel.set()
    assert waiting.wait(timeout=5).finish_reason == "cancelled"
    assert waiting.tokens == [] and waiting.request.tokens == 0  # ended without a prefill
    running.request.cancel.set()
    assert running.wait().finish_reason == "cancelled"
    engine.close()


def test_a_failing_prefill_fails_that_request_only(model):
    engine = engine_for(model, {EOS}, max_batch=4)
    good = Recorder(prompts(9)[0], max_new_tokens=8)
    bad = Recorder([1, VOCAB + 50], max_new_tokens=8)  # a token id outside the vocabulary
    run_all(engine, [good, bad])
    assert bad.request.finish_reason == "error" and isinstance(bad.request.error, IndexError)
    assert good.request.finish_reason in {"length", "stop"} and good.tokens == reference(model, good.request.prompt, 8)
    engine.close()


def test_a_failing_decode_step_fails_that_batch_and_the_next_request_starts_clean(model):
    class Failing(torch.nn.Module):  # the real model, whose decode steps raise while armed
        def __init__(self):
            super().__init__()
            self.inner, self.armed, self.device = model, True, model.device

        def forward(self, **kwargs):
            if kwargs.get("past_key_values") is not None and self.armed:
                raise RuntimeError("out of memory")
            return self.inner(**kwargs)

    failing = Failing()
    engine = engine_for(failing, set(), max_batch=4)
    doomed = [Recorder(p, max_new_tokens=10) for p in prompts(5, 8)]
    run_all(engine, doomed)
    failing.armed = False
    assert all(r.request.finish_reason == "error" and "out of memory" in str(r.request.error) for r in doomed)
    assert engine.running == 0
    later = Recorder(prompts(6)[0], max_new_tokens=10)
    run_all(engine, [later])
    assert later.request.finish_reason == "length" and later.tokens == reference(model, prompts(6)[0], 10, eos=-1)
    engine.close()


def test_sampled_and_greedy_rows_share_a_batch(model):
    torch.manual_seed(3)
    engine = engine_for(model, set(), max_batch=4)
    ps = prompts(10, 14)
    greedy = Recorder(ps[0], max_new_tokens=20)
    sampled = Recorder(ps[1], max_new_tokens=20, temperature=1.5, top_p=0.9)
    run_all(engine, [greedy, sampled])
    assert greedy.tokens == reference(model, ps[0], 20, eos=-1)
    assert len(sampled.tokens) == 20 and all(0 <= t < VOCAB for t in sampled.tokens)
    assert sampled.tokens != reference(model, ps[1], 20, eos=-1)  # at temperature 1.5 over 20 tokens
    engine.close()


def test_a_model_whose_cache_cannot_be_stacked_is_served_one_at_a_time():
    model = tiny("mistral")
    steps: list[int] = []
    engine = engine_for(model, set(), max_batch=4, on_step=steps.append)
    ps = prompts(20, 6, 12)
    recorders = [Recorder(p, max_new_tokens=24) for p in ps]
    run_all(engine, recorders)
    assert set(steps) == {1}
    for recorder, p in zip(recorders, ps):
        assert recorder.tokens == reference(model, p, 24, eos=-1)
    engine.close()


def test_one_token_and_closing(model):
    engine = engine_for(model, set(), max_batch=1)
    one = Recorder(prompts(4)[0], max_new_tokens=1)
    run_all(engine, [one])
    assert one.request.finish_reason == "length" and len(one.tokens) == 1
    running = Recorder(prompts(5)[0], max_new_tokens=100_000, timeout_s=30)
    queued = Recorder(prompts(6)[0], max_new_tokens=3)
    engine.submit(running.request)
    engine.submit(queued.request)
    time.sleep(0.05)
    engine.close()
    for recorder in (running, queued):
        assert recorder.wait(timeout=5).finish_reason == "error"
        assert "closed" in str(recorder.request.error)
    with pytest.raises(RuntimeError, match="closed"):
        engine.submit(Recorder([1, 2], max_new_tokens=2).request)


def test_models_load_and_run_on_one_thread_and_a_failing_load_is_raised_to_the_caller(model):
    where: list[str] = []

    def load():
        where.append(threading.current_thread().name)
        return model, {EOS}

    first, second = BatchEngine(load), BatchEngine(load)
    assert where == ["local-models", "local-models"] and first.model is model and first.eos_ids == {EOS}
    recorders = [Recorder(p, max_new_tokens=6) for p in prompts(4, 9)]
    first.submit(recorders[0].request)
    second.submit(recorders[1].request)
    for recorder, p in zip(recorders, prompts(4, 9)):
        assert recorder.wait().finish_reason == "length" and recorder.tokens == reference(model, p, 6, eos=-1)
    first.close()
    second.close()
    assert first not in batching.MODEL_THREAD.engines and first.model is None

    def broken():
        raise OSError("no such model")

    with pytest.raises(OSError, match="no such model"):
        BatchEngine(broken)


def test_the_engine_keeps_nothing_its_loader_refers_to(model):
    class Owner:  # what LocalGenerator is to its engine: the loader closes over it
        pass

    owner = Owner()

    def load(owner=owner):
        return model, {EOS}

    engine = BatchEngine(load)
    gone = weakref.ref(owner)
    del owner, load
    gc.collect()
    assert gone() is None  # so a dropped LocalGenerator can be collected (and its finalizer close the engine)
    engine.close()


def test_stopping_the_model_thread_ends_what_it_holds_and_a_new_engine_starts_it_again(model):
    models = batching.ModelThread()  # what the interpreter's exit hook does to the process's own
    engine = BatchEngine(lambda: (model, set()), max_batch=1, thread=models)
    running = Recorder(prompts(5)[0], max_new_tokens=100_000, timeout_s=30)
    engine.submit(running.request)
    time.sleep(0.05)
    thread = models.thread
    models.stop()
    assert not thread.is_alive()
    assert running.wait(timeout=5).finish_reason == "error" and "closed" in str(running.request.error)
    again = BatchEngine(lambda: (model, set()), thread=models)
    assert models.thread.is_alive() and models.thread is not thread
    one = Recorder(prompts(3)[0], max_new_tokens=2)
    again.submit(one.request)
    assert one.wait().finish_reason == "length"
    models.stop()


def test_bad_arguments():
    with pytest.raises(ValueError, match="max_batch"):
        engine_for(object(), set(), max_batch=0)
    engine = engine_for(object(), set())
    with pytest.raises(ValueError, match="empty"):
        engine.submit(Recorder([], max_new_tokens=2).request)
    engine.close()
