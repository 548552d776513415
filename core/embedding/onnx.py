"""ONNX Runtime for sentence-transformers models on the CPU: a one-off export cached on disk, session options
without thread spinning, and an int8 copy of the model for questions."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path

log = logging.getLogger(__name__)


def onnx_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
        import optimum.onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def onnx_copy(source: str, cache_dir: Path) -> str:
    """A folder holding the model exported to ONNX: the model's own if it ships one, else a cached export.

    The export runs once (a few seconds for MiniLM) and is written aside, then renamed into place, so two
    processes exporting at once or a kill mid-export never leave a half-written model behind.
    """
    from sentence_transformers import SentenceTransformer

    if (Path(source) / "onnx" / "model.onnx").exists():
        return source
    # Keyed by where the model is and by its weights' size and mtime, so an upgraded model is exported anew.
    identity = str(Path(source).resolve()) if Path(source).exists() else source
    for weights in sorted(Path(source).glob("*.safetensors")) + sorted(Path(source).glob("*.bin")):
        stat = weights.stat()
        identity += f"|{weights.name}:{stat.st_size}:{stat.st_mtime_ns}"
    key = hashlib.sha256(identity.encode()).hexdigest()[:16]
    target = Path(cache_dir) / f"{Path(source).name or 'model'}-{key}-onnx"
    if (target / "onnx" / "model.onnx").exists():
        return str(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        with warnings.catch_warnings():  # the tracer's warnings are about export internals, not the user's input
            warnings.simplefilter("ignore")
            SentenceTransformer(source, backend="onnx", device="cpu").save_pretrained(str(staging))
        try:
            staging.rename(target)
        except OSError:  # another process finished the same export first
            pass
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return str(target)


def session_options(threads: int = 0):
    """ONNX Runtime's worker threads spin while they wait for work by default: on a small machine that burns
    a core per idle wait. Without spinning a batch of 16 questions took 20 ms instead of 36 and half the CPU
    (2 cores); a single question about 1 ms more. ``threads`` 0: one per core."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    options.intra_op_num_threads = threads
    return options


def int8_kind() -> str | None:
    """The dynamic-quantization preset for this CPU: VNNI's int8 dot products where present; AVX2 without
    them (its preset avoids the saturation of 8-bit multiply-adds); ARM's own. None elsewhere."""
    import platform

    machine = platform.machine().lower()
    if machine in {"arm64", "aarch64"}:
        return "arm64"
    if machine not in {"x86_64", "amd64"}:
        return None
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:  # not Linux: AVX2 is the safe x86-64 preset
        return "avx2"
    if "avx512_vnni" in flags or "avx512vnni" in flags:
        return "avx512_vnni"
    return "avx2" if " avx2" in flags else None


def int8_copy(model, folder: str, cache_dir: Path) -> str | None:
    """The file (relative to ``folder``) of an int8 copy of the ONNX model in ``folder``, quantized once
    and cached beside it; None when this CPU has no preset or the folder is not ours to write (a model that
    ships its own ONNX files without an int8 one)."""
    kind = int8_kind()
    if kind is None:
        return None
    name = f"onnx/model_qint8_{kind}.onnx"
    if (Path(folder) / name).exists():
        return name
    if Path(cache_dir).resolve() not in Path(folder).resolve().parents:
        return None
    from sentence_transformers.backend import export_dynamic_quantized_onnx_model

    staging = Path(tempfile.mkdtemp(dir=folder, prefix=".int8."))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            export_dynamic_quantized_onnx_model(model, kind, str(staging), file_suffix=f"qint8_{kind}")
        os.replace(staging / name, Path(folder) / name)  # whole or absent, also with two processes at once
    except Exception as exc:  # a model the quantizer cannot handle keeps float32 questions
        log.warning("could not quantize %s for questions (%s: %s); embedding them in float32", folder, type(exc).__name__, exc)
        return None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return name
