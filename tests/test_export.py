"""The LoRA adapter merged into the 4-bit GGUF (generator/export.py): what the llama.cpp engine serves."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.config import Settings
from core.errors import UserError
from generator.export import adapter_deltas, export_key, merged_gguf, nf4_round_trip, rope_permute, rope_unpermute
from generator.local import SHIPPED_ADAPTER
from generator.model_files import embedded_gguf

pytestmark = pytest.mark.slow  # the real embedded model: a merge (about 30 s once) and a transformers load
CACHE = Settings().generator.cache_dir


def test_rope_permute_is_the_inverse_of_what_transformers_undoes_when_it_reads_gguf():
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

    undo = LlamaTensorProcessor(config={})._reverse_permute_weights
    weight = np.arange(24 * 5, dtype=np.float32).reshape(24, 5)
    for heads in (1, 3, 6):
        assert np.array_equal(undo(rope_permute(weight, heads), heads, heads), weight)
        assert np.array_equal(rope_unpermute(rope_permute(weight, heads), heads), weight)
    assert not np.array_equal(rope_permute(weight, 3), weight)


@pytest.fixture(scope="module")
def merged():
    return merged_gguf(embedded_gguf(), SHIPPED_ADAPTER, CACHE)


def test_the_merged_file_is_the_base_with_exactly_the_adapters_update(merged):
    import gguf

    base, out = gguf.GGUFReader(embedded_gguf()), gguf.GGUFReader(merged)
    deltas, scale = adapter_deltas(SHIPPED_ADAPTER)
    assert scale == 2.0 and len(deltas) == 30 * 7  # every projection of every layer
    before, after = {t.name: t for t in base.tensors}, {t.name: t for t in out.tensors}
    assert list(before) == list(after)
    # untouched tensors and every metadata key travel byte for byte (tokenizer, chat template)
    for name in ("token_embd.weight", "blk.0.attn_norm.weight", "output_norm.weight"):
        assert np.array_equal(before[name].data, after[name].data)
    for key in ("tokenizer.chat_template", "tokenizer.ggml.tokens", "llama.attention.head_count", "llama.context_length"):
        assert out.fields[key].contents() == base.fields[key].contents()
    assert out.fields["general.file_type"].contents() == gguf.LlamaFileType.MOSTLY_Q8_0
    assert out.fields["general.lora_merged"].contents() == SHIPPED_ADAPTER.name
    # a merged weight is what the transformers engine computes with (the base through bitsandbytes' NF4, in
    # the Hugging Face row order) plus B @ A * scale, back in llama.cpp's row order for q and k, at 8 bits
    for name, module, heads in (
        ("blk.3.attn_q.weight", "layers.3.self_attn.q_proj", 9),
        ("blk.3.ffn_down.weight", "layers.3.mlp.down_proj", None),
    ):
        t_before, t_after = before[name], after[name]
        assert t_before.tensor_type.name == "Q4_1" and t_after.tensor_type.name == "Q8_0"  # generator/export.py says why
        a, b = deltas[module]
        update = (b @ a) * scale
        weight = gguf.quants.dequantize(t_before.data, t_before.tensor_type)
        weight = rope_unpermute(weight, heads) if heads else weight
        expected = nf4_round_trip(weight) + update
        expected = rope_permute(expected, heads) if heads else expected
        assert np.array_equal(t_after.data, gguf.quants.quantize(expected, gguf.GGMLQuantizationType.Q8_0))
        if heads:  # the row order matters: unpermuted, the update would land on the wrong rows
            assert not np.array_equal(t_after.data, gguf.quants.quantize(rope_unpermute(expected, heads), gguf.GGMLQuantizationType.Q8_0))


def test_8_bits_keep_the_adapters_update_where_4_bits_round_it_away():
    import gguf

    deltas, scale = adapter_deltas(SHIPPED_ADAPTER)
    a, b = deltas["layers.3.mlp.down_proj"]
    update = (b @ a) * scale
    tensor = next(t for t in gguf.GGUFReader(embedded_gguf()).tensors if t.name == "blk.3.ffn_down.weight")
    base = nf4_round_trip(gguf.quants.dequantize(tensor.data, tensor.tensor_type))
    inputs = np.random.default_rng(0).standard_normal((base.shape[1], 256)).astype(np.float32)

    def error(kind):  # how far the stored weights' output is from the update's, relative to the update's
        stored = gguf.quants.dequantize(gguf.quants.quantize(base + update, kind), kind)
        return np.linalg.norm((stored - base) @ inputs - update @ inputs) / np.linalg.norm(update @ inputs)

    q8, q4 = error(gguf.GGMLQuantizationType.Q8_0), error(gguf.GGMLQuantizationType.Q4_1)
    assert q4 > 8 * q8, (q4, q8)  # measured 33.6 against 2.3


def test_the_nf4_round_trip_is_what_the_transformers_engine_computes_with():
    import gguf
    from bitsandbytes.functional import dequantize_4bit

    from generator.local import load_model

    lm, _, _ = load_model("embedded", "4bit", CACHE, "cpu")
    layer = lm.model.layers[3].self_attn.k_proj.weight
    served = dequantize_4bit(layer.data, layer.quant_state).float().numpy()
    tensor = next(t for t in gguf.GGUFReader(embedded_gguf()).tensors if t.name == "blk.3.attn_k.weight")
    ours = nf4_round_trip(rope_unpermute(gguf.quants.dequantize(tensor.data, tensor.tensor_type), 3))
    assert np.array_equal(ours, served)


def test_the_export_is_cached_and_a_changed_adapter_is_exported_again(merged, tmp_path):
    assert merged_gguf(embedded_gguf(), SHIPPED_ADAPTER, CACHE) == merged
    assert merged_gguf(embedded_gguf(), None, CACHE) == embedded_gguf()  # no adapter: the base file itself
    changed = tmp_path / "adapter"
    changed.mkdir()
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        (changed / name).write_bytes((SHIPPED_ADAPTER / name).read_bytes())
    config = json.loads((changed / "adapter_config.json").read_text())
    config["lora_alpha"] = 16
    (changed / "adapter_config.json").write_text(json.dumps(config))
    assert export_key(embedded_gguf(), changed) != export_key(embedded_gguf(), SHIPPED_ADAPTER)


def test_what_cannot_be_merged_is_refused_with_the_reason(tmp_path):
    with pytest.raises(UserError, match="no LoRA adapter at"):
        merged_gguf(embedded_gguf(), tmp_path, tmp_path / "cache")
    (tmp_path / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "use_dora": True, "r": 8, "lora_alpha": 16}))
    (tmp_path / "adapter_model.safetensors").write_bytes(b"")
    with pytest.raises(UserError, match="only plain LoRA adapters"):
        merged_gguf(embedded_gguf(), tmp_path, tmp_path / "cache")
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").iterdir())  # nothing half-written
