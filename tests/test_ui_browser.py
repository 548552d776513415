"""The real chat in a real browser: `assistant ui` on the embedded models and a collection of bundled
MedQuAD files, opened in headless Chromium; a question is typed, the streamed answer and its sources are
checked in the rendered page, and a screenshot is taken: into the test's temporary folder, or, with
ASSISTANT_TEST_SCREENSHOT=path (`make screenshot`), to that file: docs/ui-chat.png, which the README shows."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.browser import Browser, chromium_binary
from tests.conftest import REPO
from tests.live_server import free_port

pytestmark = pytest.mark.slow
FILES = REPO / "data" / "samples" / "medical" / "medquad" / "4_MPlus_Health_Topics_QA"


@pytest.fixture
def medical_env(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTANT_")}
    env.update(
        ASSISTANT_INDEX_DIR=str(tmp_path / "indexes"),
        ASSISTANT_GUARDRAILS__AUDIT_LOG=str(tmp_path / "audit.jsonl"),
        ASSISTANT_UI__FEEDBACK_DB=str(tmp_path / "feedback.sqlite"),
        ASSISTANT_UI__REPORTS_DIR=str(tmp_path / "reports"),
    )
    built = subprocess.run(
        [sys.executable, "-m", "cli", "ingest", str(FILES), "--collection", "medical", "--quiet"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stderr
    return env


@pytest.fixture
def chat_url(medical_env):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "cli", "ui", "--port", str(port)],
        env=medical_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(url + "/_stcore/health", timeout=2).text == "ok":
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"the chat did not start: {process.stdout.read() if process.poll() is not None else 'timeout'}")
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
        # `assistant ui` is Streamlit itself (exec), so stopping it leaves no server behind
        with pytest.raises(httpx.ConnectError):
            httpx.get(url + "/_stcore/health", timeout=2)


@pytest.mark.skipif(chromium_binary() is None, reason="needs Chromium (Debian package `chromium`; `make test` installs it)")
def test_question_answered_with_sources_in_a_real_browser(chat_url, tmp_path):
    screenshot = Path(os.environ.get("ASSISTANT_TEST_SCREENSHOT") or tmp_path / "ui-chat.png")
    browser = Browser(chromium_binary(), height=1100)
    try:
        browser.goto(chat_url)
        browser.wait_for("document.querySelector('[data-testid=\"stChatInputTextArea\"]') !== null", timeout=180)
        browser.js("document.querySelector('[data-testid=\"stChatInputTextArea\"]').focus()")
        browser.type("What is atrial fibrillation?")
        browser.press_enter()
        # The answer is done when its sources are drawn (they come after the last token).
        browser.wait_for(
            "[...document.querySelectorAll('[data-testid=\"stExpander\"] summary')].some(e => /\\[\\d+\\]/.test(e.innerText))", timeout=300
        )
        messages = browser.js("[...document.querySelectorAll('[data-testid=\"stChatMessage\"]')].map(m => m.innerText)")
        sources = browser.js("[...document.querySelectorAll('[data-testid=\"stExpander\"] summary')].map(e => e.innerText.trim())")
        assert len(messages) == 2 and "What is atrial fibrillation?" in messages[0]
        answer = messages[1]
        assert "fibrillation" in answer.lower() and "▌" not in answer
        assert "Medical information from your documents" in answer  # the medical disclaimer
        assert any("Atrial Fibrillation" in s for s in sources), sources
        # Open the first source: the passage with the cited sentences highlighted.
        browser.js("document.querySelector('[data-testid=\"stExpander\"] summary').click()")
        assert browser.wait_for("document.querySelectorAll('[data-testid=\"stExpander\"] mark').length", timeout=20) >= 1
        time.sleep(0.5)  # let the last paint settle
        browser.screenshot(screenshot)
        assert screenshot.stat().st_size > 20_000
    finally:
        browser.close()
