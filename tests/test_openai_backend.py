"""The openai backend against a small real OpenAI-compatible server (stdlib http.server in a thread)."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from core.errors import UserError
from generator.base import GenerationOptions, Generator
from generator.openai_compat import KEY_SETTING, MODEL_SETTING, URL_SETTING, BackendError, OpenAIGenerator
from tests.fake_openai import running_server

KEY = "sk-test-secret-4242"
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Is metformin first-line?"}]


@pytest.fixture
def server():
    with running_server() as srv:
        yield srv


@pytest.fixture
def gen(server):
    g = OpenAIGenerator(server.url, "smol-test", api_key=KEY)
    yield g
    g.close()


def test_is_a_generator_and_names_model_and_url(gen, server):
    assert isinstance(gen, Generator)
    assert gen.name == f"smol-test @ {server.url}"
    assert gen.context_window == 8192


def test_streamed_pieces_join_to_the_reply(gen, server):
    server.reply(text="Yes, metformin is first-line for type 2 diabetes.")
    stream = gen.stream(MESSAGES)
    pieces = list(stream)
    assert len(pieces) == 8  # one per word: really streamed, not one blob
    assert "".join(pieces) == "Yes, metformin is first-line for type 2 diabetes."
    assert stream.finish_reason == "stop"
    assert stream.tokens == 8  # no usage from the server: pieces are counted


def test_request_carries_options_and_bearer_key(gen, server):
    gen.generate(MESSAGES, GenerationOptions(max_new_tokens=33, temperature=0.7, top_p=0.9, stop=("\n\n", "END")))
    request = server.requests[-1]
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["Authorization"] == f"Bearer {KEY}"
    body = request["body"]
    assert body["messages"] == MESSAGES
    assert body["model"] == "smol-test"
    assert (body["max_tokens"], body["temperature"], body["top_p"]) == (33, 0.7, 0.9)
    assert body["stop"] == ["\n\n", "END"]
    assert body["stream"] is True


def test_no_key_no_header_and_no_empty_stop(server):
    g = OpenAIGenerator(server.url + "/", "m")  # a trailing slash is tolerated
    assert g.generate(MESSAGES) == "Hello there."
    request = server.requests[-1]
    assert request["path"] == "/v1/chat/completions"
    assert "Authorization" not in request["headers"]
    assert "stop" not in request["body"]
    g.close()


def test_finish_reason_and_usage_from_server(gen, server):
    server.reply(text="one two three", finish_reason="length", usage=42)
    server.reply(text="done", finish_reason="eos_token")  # anything unknown counts as a normal stop
    stream = gen.stream(MESSAGES)
    assert stream.text() == "one two three"
    assert (stream.finish_reason, stream.tokens) == ("length", 42)
    stream = gen.stream(MESSAGES)
    assert stream.text() == "done"
    assert stream.finish_reason == "stop"


def test_local_stop_strings_cut_when_the_server_ignores_them(gen, server):
    server.reply(text="Answer: yes [1]. END and more words the server should not have sent", finish_reason="length")
    stream = gen.stream(MESSAGES, GenerationOptions(stop=("END",)))
    assert stream.text() == "Answer: yes [1]. "
    assert stream.finish_reason == "stop"


def test_timeout_returns_partial_text_well_before_the_server_finishes(gen, server):
    server.reply(text="slow " * 20, delay=0.3)  # 6 s in all
    start = time.monotonic()
    stream = gen.stream(MESSAGES, GenerationOptions(timeout_s=0.5))
    text = stream.text()
    elapsed = time.monotonic() - start
    assert stream.finish_reason == "timeout"
    assert text.startswith("slow ") and len(text) < len("slow " * 20)
    assert elapsed < 1.0
    assert server.broken.wait(2), "the connection should be closed, so the server stops generating"


def test_closing_the_iterator_stops_reading(gen, server):
    server.reply(text="word " * 30, delay=0.05)
    stream = gen.stream(MESSAGES)
    it = iter(stream)
    assert next(it) + next(it) == "word word "
    it.close()  # e.g. the HTTP client of our API disconnected
    assert stream.finish_reason == "cancelled"
    assert server.broken.wait(2)
    assert server.sent[-1] < 30


def test_cancel_from_another_thread_while_the_server_is_silent(gen, server):
    server.reply(text="a b c d", delay=5)
    stream = gen.stream(MESSAGES)
    threading.Timer(0.2, stream.cancel).start()
    start = time.monotonic()
    assert stream.text() == "a "
    assert time.monotonic() - start < 1.0  # not stuck waiting for the next chunk
    assert stream.finish_reason == "cancelled"
    assert server.broken.wait(1), "the socket should be closed at once, even while the reader is blocked"
    assert server.sent[-1] == 1


def test_connection_refused_names_the_url_setting():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # free once closed: nothing listens there
    g = OpenAIGenerator(f"http://127.0.0.1:{port}/v1", "m")
    with pytest.raises(UserError) as err:
        g.stream(MESSAGES)
    assert URL_SETTING in str(err.value) and f"127.0.0.1:{port}" in str(err.value)


def test_rejected_key_names_the_key_setting_and_hides_the_key(gen, server):
    server.reply(status=401, error={"error": {"message": f"Invalid API key {KEY}", "type": "auth"}})
    with pytest.raises(UserError) as err:
        gen.stream(MESSAGES)
    message = str(err.value)
    assert KEY_SETTING in message and "401" in message and "Invalid API key" in message
    assert KEY not in message


def test_unknown_model_names_the_model_setting(gen, server):
    server.reply(status=404, error={"error": {"message": "The model `smol-test` does not exist."}})
    with pytest.raises(UserError) as err:
        gen.generate(MESSAGES)
    assert MODEL_SETTING in str(err.value) and "'smol-test'" in str(err.value)


def test_server_error_is_a_backend_error_with_its_message(gen, server):
    server.reply(status=500, error={"error": {"message": "CUDA out of memory " + "x" * 1000}})
    with pytest.raises(BackendError) as err:
        gen.stream(MESSAGES)
    message = str(err.value)
    assert not isinstance(err.value, UserError)
    assert "500" in message and "CUDA out of memory" in message
    assert len(message) < 400  # the server's message is truncated


def test_generate_returns_the_whole_text(gen, server):
    server.reply(text="The payout ratio is dividends divided by net income [2].")
    assert gen.generate(MESSAGES) == "The payout ratio is dividends divided by net income [2]."


def test_token_estimates_without_a_tokenizer(gen):
    assert gen.count_tokens("") == 0
    assert gen.count_tokens("abcde") == 2  # ceil(5 / 4): an estimate, not a real tokenizer
    assert gen.prompt_tokens(MESSAGES) == gen.count_tokens("Be brief.") + gen.count_tokens("Is metformin first-line?") + 8
