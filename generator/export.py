"""A LoRA adapter merged into the GGUF it was trained on: the file the fast engine (llama.cpp) serves.

Training stays on transformers + peft + bitsandbytes (the adapter is a peft folder). Serving it unmerged costs
the adapter's extra matrix products on every token: 1.8x on the transformers path, and 1.5x in llama.cpp
itself (its run-time LoRA, measured on 2 CPU cores: 41 against 62 tokens/s). Merged, it costs nothing. The
embedded base ships as a 4-bit GGUF (Q4_1), so the merge happens there: each projection weight is
de-quantized, ``B @ A * alpha / r`` added, and stored again; every other tensor (embeddings, norms) and every
metadata key (tokenizer, chat template) is copied byte for byte.

What is stored: the weights the transformers engine computes with, so both engines serve one model. The
adapter was trained (QLoRA) over the base quantized to NF4 by bitsandbytes, and the transformers engine serves
it that way; so every projection is taken through the same NF4 round trip (bitsandbytes' own functions, in
the Hugging Face row order it quantizes in: identical values, checked in the tests), the update added, and the
result stored as Q8_0. Measured on bench/finetune_eval.py's 50 held-out prompts, greedy: 40 answers identical
word for word to the transformers engine's; merged onto the GGUF's Q4_1 values instead, 11.

Why 8 bits, not the base's own 4: the adapter's update is smaller than a 4-bit step (mean magnitude 4.5e-4 on
the shipped adapter, against Q4_1's rounding error of 5.5e-4 on the same weights), so re-quantizing to 4 bits
rounds most of it away: the merged Q4_1 model answered like the base, without a single citation, and Q5_1 kept
half of it (answers that repeated themselves). Q8_0 keeps it, and llama.cpp decodes Q8_0 on AVX2 as fast as
Q4_1 or faster (70 against 62 tokens/s on 2 cores). So the file holds 4-bit values (NF4) plus the update, at 8
bits (``MERGED_TYPE``). An adapter trained over an 8-bit or float base (its training.json says) is merged onto
the GGUF's values as they are.

One subtlety: llama.cpp stores the query and key projections with their rows permuted for its rotary
embedding layout (convert_hf_to_gguf.py's ``permute``; transformers undoes it when it reads GGUF), so the
adapter's update to those two is permuted the same way before it is added.

Merged files are cached by content (the base file, the adapter's weights and config, the type), written to a
temporary file and renamed into place: a kill mid-export or two processes exporting at once leave no
half-written file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path

from core.errors import UserError

# GGUF tensor name (llama layout) -> the peft module path of the same weight.
_MODULES = {
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
_BLOCK = re.compile(r"^blk\.(\d+)\.(\w+)\.weight$")
EXPORT_VERSION = "2"  # part of the cache key: bump when the merge itself changes
MERGED_TYPE = "Q8_0"  # the type merged weights are stored in (the module doc says why not the base's 4 bits)


def rope_permute(weight, heads: int):
    """Rows of a query/key projection reordered as llama.cpp stores them (convert_hf_to_gguf.py)."""
    rows = weight.shape[0]
    return weight.reshape(heads, 2, rows // heads // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def rope_unpermute(weight, heads: int):
    """The inverse of ``rope_permute``: llama.cpp's rows back in the Hugging Face order."""
    rows = weight.shape[0]
    return weight.reshape(heads, rows // heads // 2, 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def nf4_round_trip(weight):
    """``weight`` (Hugging Face row order) as bitsandbytes' NF4 holds it: what a 4-bit transformers model
    computes with (blocks of 64, as ``BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4")``)."""
    import numpy as np
    import torch
    from bitsandbytes.functional import dequantize_4bit, quantize_4bit

    packed, state = quantize_4bit(torch.from_numpy(np.ascontiguousarray(weight, dtype=np.float32)), blocksize=64, quant_type="nf4")
    return dequantize_4bit(packed, state).numpy()


def trained_over(adapter: Path) -> str:
    """The quantization the adapter was trained over (its training.json; QLoRA's 4bit when it does not say)."""
    card = adapter / "training.json"
    if card.exists():
        return str(json.loads(card.read_text(encoding="utf-8")).get("quantization") or "4bit")
    return "4bit"


def adapter_deltas(adapter: Path) -> tuple[dict[str, object], float]:
    """{peft module path (``layers.3.self_attn.q_proj``): (A, B)} and the scale alpha / r of a LoRA folder."""
    from safetensors.numpy import load_file

    config_file, weights = adapter / "adapter_config.json", adapter / "adapter_model.safetensors"
    if not config_file.exists() or not weights.exists():
        raise UserError(f"no LoRA adapter at {adapter} (expected adapter_config.json and adapter_model.safetensors)")
    config = json.loads(config_file.read_text(encoding="utf-8"))
    if config.get("peft_type") != "LORA" or config.get("use_dora") or config.get("rank_pattern") or config.get("alpha_pattern"):
        raise UserError(f"{adapter}: only plain LoRA adapters (one rank and alpha, no DoRA) can be merged into GGUF")
    scale = float(config["lora_alpha"]) / float(config["r"])
    if config.get("use_rslora"):
        scale = float(config["lora_alpha"]) / float(config["r"]) ** 0.5
    pairs: dict[str, dict[str, object]] = {}
    for key, value in load_file(str(weights)).items():
        found = re.search(r"layers\.(\d+)\.(.+)\.lora_([AB])\.weight$", key)
        if not found:
            raise UserError(f"{adapter}: cannot place adapter weight {key!r} (only the decoder layers' projections can be merged)")
        pairs.setdefault(f"layers.{found[1]}.{found[2]}", {})[found[3]] = value
    return {module: (p["A"], p["B"]) for module, p in pairs.items()}, scale


def export_key(base: Path, adapter: Path, weights: str = MERGED_TYPE) -> str:
    digest = hashlib.sha256(f"{EXPORT_VERSION}|{weights}".encode())
    stat = base.stat()
    digest.update(f"{base.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        digest.update(hashlib.sha256((adapter / name).read_bytes()).digest())
    digest.update(trained_over(adapter).encode())
    return digest.hexdigest()[:16]


def merge_into_gguf(base: Path, adapter: Path, target: Path, weights: str | None = MERGED_TYPE) -> Path:
    """Write ``base`` with ``adapter`` merged into it to ``target`` (see the module doc); returns ``target``.
    ``weights``: the GGML type the merged weights are stored in (None: each tensor's own type)."""
    import gguf
    import numpy as np

    reader = gguf.GGUFReader(base)
    arch = str(reader.fields["general.architecture"].contents())
    if arch != "llama":
        raise UserError(f"{base}: merging an adapter into GGUF is done for the llama layout only, not {arch!r}")
    heads = int(reader.fields["llama.attention.head_count"].contents())
    kv_heads = int(reader.fields["llama.attention.head_count_kv"].contents())
    deltas, scale = adapter_deltas(adapter)

    writer = gguf.GGUFWriter(str(target), arch=arch, endianess=reader.endianess)
    for field in reader.fields.values():
        if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
            continue  # written by GGUFWriter itself
        value = field.contents()
        if field.name == gguf.Keys.General.FILE_TYPE and weights:  # what llama.cpp reports the file as
            value = int(gguf.LlamaFileType[f"MOSTLY_{weights}"])
        value_type = field.types[0]
        sub = field.types[-1] if value_type == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, value, value_type, sub_type=sub)
    writer.add_string("general.lora_merged", adapter.name)

    nf4 = trained_over(adapter) == "4bit"
    merged: dict[str, object] = {}
    for tensor in reader.tensors:
        data, kind = tensor.data, tensor.tensor_type
        found = _BLOCK.match(tensor.name)
        module = f"layers.{found[1]}.{_MODULES[found[2]]}" if found and found[2] in _MODULES else None
        if module is not None and (nf4 or module in deltas):
            # in the Hugging Face row order (q and k are permuted in GGUF), where NF4 and the adapter work
            rows = {"attn_q": heads, "attn_k": kv_heads}.get(found[2])
            weight = gguf.quants.dequantize(data, kind)
            weight = rope_unpermute(weight, rows) if rows else weight
            if nf4:
                weight = nf4_round_trip(weight)
            if module in deltas:
                a, b = deltas.pop(module)
                weight = weight + (np.asarray(b, dtype=np.float32) @ np.asarray(a, dtype=np.float32)) * scale
            weight = rope_permute(weight, rows) if rows else weight
            kind = gguf.GGMLQuantizationType[weights] if weights else kind
            data = gguf.quants.quantize(np.ascontiguousarray(weight, dtype=np.float32), kind)
        merged[tensor.name] = data
        writer.add_tensor_info(tensor.name, data.shape, data.dtype, data.nbytes, kind)
    if deltas:
        raise UserError(f"{adapter}: {len(deltas)} adapter weights match no tensor of {base.name} (e.g. {next(iter(deltas))})")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for tensor in reader.tensors:
        writer.write_tensor_data(merged[tensor.name], tensor_endianess=reader.endianess)
    writer.close()
    return target


def merged_gguf(base: Path, adapter: Path | None, cache_dir: Path) -> Path:
    """The GGUF to serve: ``base`` itself without an adapter, else ``base`` with ``adapter`` merged, exported
    once into ``cache_dir`` and reused while neither changes."""
    if adapter is None:
        return base
    adapter = Path(adapter)
    if not (adapter / "adapter_config.json").exists():
        raise UserError(
            f"no LoRA adapter at {adapter} (expected adapter_config.json there); set ASSISTANT_GENERATOR__ADAPTER=none to run without one"
        )
    target = cache_dir / f"{base.stem}+{adapter.name}-{MERGED_TYPE}-{export_key(base, adapter)}.gguf"
    if target.exists():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".export-", suffix=".gguf", dir=cache_dir)
    os.close(fd)
    try:
        merge_into_gguf(base, adapter, Path(tmp))
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def lora_gguf(base: Path, adapter: Path, target: Path) -> Path:
    """``adapter`` as a llama.cpp LoRA file (applied at run time over ``base``, unmerged): the two matrices of
    each projection in float32, B's rows in llama.cpp's order for q and k (convert_lora_to_gguf.py's layout)."""
    import gguf
    import numpy as np

    reader = gguf.GGUFReader(base)
    heads = int(reader.fields["llama.attention.head_count"].contents())
    kv_heads = int(reader.fields["llama.attention.head_count_kv"].contents())
    config = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))
    deltas, _ = adapter_deltas(adapter)
    names = {module: name for name, module in _MODULES.items()}
    writer = gguf.GGUFWriter(str(target), arch="llama")
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(config["lora_alpha"]))
    for module, (a, b) in sorted(deltas.items()):
        layer, path = module.split(".", 2)[1], module.split(".", 2)[2]
        name = f"blk.{layer}.{names[path]}.weight"
        b = np.asarray(b, dtype=np.float32)
        if names[path] in ("attn_q", "attn_k"):
            b = rope_permute(b, heads if names[path] == "attn_q" else kv_heads)
        writer.add_tensor(name + ".lora_a", np.ascontiguousarray(a, dtype=np.float32))
        writer.add_tensor(name + ".lora_b", np.ascontiguousarray(b))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return target
