"""Runs inside the image (deploy/smoke.sh mounts it): ingest the sample documents, start `assistant serve` the way
the entrypoint does, wait for /readyz, ask one question over HTTP, stop the server; print the figures as JSON.

Only the standard library: the image's venv is not this file's concern."""

import json
import os
import resource
import subprocess
import sys
import time
import urllib.error
import urllib.request

PORT = int(os.environ.get("SMOKE_PORT", "18765"))
KEY = "smoke-key-0123456789abcdef"
QUESTION = os.environ.get("SMOKE_QUESTION", "What are the symptoms of dry mouth?")
BASE = f"http://127.0.0.1:{PORT}"


def get(path: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(BASE + path, timeout=5) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def main() -> int:
    out: dict = {"question": QUESTION}
    env = dict(os.environ)

    t = time.monotonic()
    ingest = subprocess.run(
        ["assistant", "ingest", "/samples/medical/medquad", "--collection", "medical", "--quiet", "--json"],
        capture_output=True,
        text=True,
        env=env,
    )
    if ingest.returncode:
        print(ingest.stderr, file=sys.stderr)
        return 1
    report = json.loads(ingest.stdout)
    out["ingest_s"] = round(time.monotonic() - t, 1)
    out["ingest_documents"] = report.get("documents_added")
    out["ingest_chunks"] = report.get("chunks_added")

    # Cold start: a new process, as the container's entrypoint starts it, to the first answer over HTTP.
    env.update(ASSISTANT_API_KEYS=f"{KEY}:admin", ASSISTANT_API__HOST="127.0.0.1", ASSISTANT_API__PORT=str(PORT))
    t0 = time.monotonic()
    server = subprocess.Popen(["assistant", "serve"], env=env, stdout=subprocess.DEVNULL, stderr=open("/tmp/serve.log", "w"))
    try:
        status, body = 0, {}
        while time.monotonic() - t0 < 600:
            if server.poll() is not None:
                print(open("/tmp/serve.log").read()[-3000:], file=sys.stderr)
                return 1
            try:
                status, body = get("/readyz")
                if status == 200:
                    break
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.25)
        out["ready_s"] = round(time.monotonic() - t0, 1)
        out["readyz"] = body
        if status != 200:
            print(f"not ready: {status} {body}", file=sys.stderr)
            return 1
        request = urllib.request.Request(
            BASE + "/v1/ask",
            data=json.dumps({"question": QUESTION, "collection": "medical", "max_tokens": 120}).encode(),
            headers={"X-API-Key": KEY, "content-type": "application/json"},
        )
        t1 = time.monotonic()
        with urllib.request.urlopen(request, timeout=600) as r:
            answer = json.load(r)
        out["first_answer_s"] = round(time.monotonic() - t1, 1)
        out["cold_start_to_first_answer_s"] = round(time.monotonic() - t0, 1)
        out["answer"] = answer.get("answer")
        out["citations"] = len(answer.get("citations") or [])
        out["finish_reason"] = answer.get("finish_reason")
        out["timings_ms"] = answer.get("timings_ms")
        _, health = get("/healthz")
        out["healthz"] = health
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    # The largest resident set of any one process this driver waited for (ingest, serve), in MB.
    out["max_child_rss_mb"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
    print(json.dumps(out))
    ok = bool(out["answer"]) and out["citations"] > 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
