"""The int8 question copy's bookkeeping, without a model: which file, when it is made, and what a failure does."""

from __future__ import annotations

import logging

import core.embedding.onnx as onnx
from core.embedding.onnx import int8_copy


def test_an_existing_int8_file_is_used_and_a_folder_outside_the_cache_is_left_alone(tmp_path, monkeypatch):
    monkeypatch.setattr(onnx, "int8_kind", lambda: "avx2")
    cache = tmp_path / "cache"
    ours = cache / "model-abc-onnx"
    (ours / "onnx").mkdir(parents=True)
    (ours / "onnx" / "model_qint8_avx2.onnx").write_bytes(b"x")
    assert int8_copy(object(), str(ours), cache) == "onnx/model_qint8_avx2.onnx"
    shipped = tmp_path / "shipped-model"  # a model that ships its own ONNX files: not ours to write into
    (shipped / "onnx").mkdir(parents=True)
    assert int8_copy(object(), str(shipped), cache) is None
    assert list((shipped / "onnx").iterdir()) == []


def test_a_cpu_without_a_preset_keeps_float32(tmp_path, monkeypatch):
    monkeypatch.setattr(onnx, "int8_kind", lambda: None)
    assert int8_copy(object(), str(tmp_path / "cache" / "m"), tmp_path / "cache") is None


def test_a_model_the_quantizer_refuses_keeps_float32_and_says_so(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(onnx, "int8_kind", lambda: "avx2")
    cache = tmp_path / "cache"
    folder = cache / "model-abc-onnx"
    (folder / "onnx").mkdir(parents=True)
    with caplog.at_level(logging.WARNING, logger="core.embedding.onnx"):
        assert int8_copy(object(), str(folder), cache) is None  # not an ONNX SentenceTransformer
    assert "embedding them in float32" in caplog.text
    assert [p.name for p in folder.iterdir()] == ["onnx"]  # no staging folder left behind
    assert list((folder / "onnx").iterdir()) == []
