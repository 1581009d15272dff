"""`load_runtime` sends a GPTQ folder to the GPTQ backend, and HFRuntime loads bitsandbytes weights."""

from __future__ import annotations

import json

import pytest

import engine.runtime.base
from engine.runtime import load_runtime
from engine.runtime.gptq import quantization_method
from tests.utils.fakes import FakeRuntime


def write_config(folder, quantization=None):
    folder.mkdir(parents=True, exist_ok=True)
    config = {"model_type": "llama"}
    if quantization:
        config["quantization_config"] = quantization
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_quantization_method_reads_the_folder_config(tmp_path):
    assert quantization_method(write_config(tmp_path / "plain")) is None
    assert quantization_method(write_config(tmp_path / "q", {"quant_method": "GPTQ", "bits": 4})) == "gptq"
    assert quantization_method(tmp_path / "missing") is None


@pytest.mark.parametrize(("quantization", "expected"), [(None, "hf"), ({"quant_method": "gptq"}, "gptq"),
                                                         ({"quant_method": "gguf"}, "hf")])
def test_load_runtime_picks_the_gptq_backend_for_gptq_folders(tmp_path, monkeypatch, quantization, expected):
    chosen = []
    for name in ("hf", "gptq"):
        fake = lambda model, n=name, **options: chosen.append(n)  # noqa: E731
        monkeypatch.setitem(engine.runtime.base.BACKENDS, name, fake)
    load_runtime(str(write_config(tmp_path / "m", quantization)), data_dir=tmp_path)
    assert chosen == [expected]


@pytest.mark.integration
@pytest.mark.parametrize("bits", [4, 8])
def test_hf_runtime_loads_the_default_model_in_bitsandbytes_bits(models_data_dir, bits):
    pytest.importorskip("bitsandbytes")
    from engine.runtime import GenerationRequest

    runtime = load_runtime(None, data_dir=models_data_dir, device="cpu", load_in_bits=bits)
    layer = type(runtime.model.model.layers[0].self_attn.q_proj).__name__
    assert layer == {4: "Linear4bit", 8: "Linear8bitLt"}[bits]
    [result] = runtime.generate([GenerationRequest(messages=[{"role": "user", "content": "What is energy?"}],
                                                   max_new_tokens=6)])
    assert result.completion_tokens > 0 and result.text


@pytest.mark.parametrize(("precision", "dtype", "bits", "native", "device", "expected", "int8"), [
    ("auto", "float32", None, True, "cpu", "bfloat16", True),
    ("auto", "float32", None, False, "cpu", None, False),
    ("auto", "float32", None, True, "cuda", "bfloat16", False),
    ("auto", "bfloat16", None, True, "cpu", None, False),
    ("auto", "float32", 4, True, "cpu", None, False),
    ("weights", "float32", None, True, "cpu", None, False),
    ("bfloat16", "float32", None, False, "cpu", "bfloat16", False),
    ("packed", "float32", None, False, "cpu", "bfloat16", True),
    ("packed", "float32", None, True, "cuda", "bfloat16", False),
])
def test_generation_precision_follows_the_setting_and_the_hardware(monkeypatch, precision, dtype, bits,
                                                                   native, device, expected, int8):
    import retrieval.embedder
    from app.resources import generation_dtype, packed_decoding
    from app.settings import Settings

    monkeypatch.setattr(retrieval.embedder, "native_bf16", lambda device: native)
    settings = Settings(generation_precision=precision, dtype=dtype, load_in_bits=bits)
    assert generation_dtype(settings, device) == expected
    assert packed_decoding(settings, device) is int8


@pytest.mark.parametrize("score_locally", [True, False])
def test_remote_generation_is_split_from_in_process_scoring_unless_told_not_to(monkeypatch, tmp_path,
                                                                               score_locally):
    import app.resources
    import engine.runtime
    from app.settings import Settings
    from engine.runtime.split import SplitRuntime

    loaded = []

    def fake_load(model, *, data_dir, backend="hf", **options):
        loaded.append((backend, options))
        return FakeRuntime(model_name=f"{backend}-model")

    monkeypatch.setattr(engine.runtime, "load_runtime", fake_load)
    monkeypatch.setattr(app.resources, "check_model_paths",
                        lambda settings: (tmp_path, tmp_path if settings.score_locally else None))
    settings = Settings(data_dir=tmp_path, generation_url="http://127.0.0.1:9/v1",
                        score_locally=score_locally)
    runtime = app.resources.open_runtime(settings)
    assert loaded[0] == ("openai", {"base_url": "http://127.0.0.1:9/v1", "api_key": None})  # the server first
    if not score_locally:
        assert len(loaded) == 1 and runtime.model_name == "openai-model"
        return
    assert isinstance(runtime, SplitRuntime) and runtime.model_name == "openai-model"
    assert runtime.scorer.model_name == "hf-model" and loaded[1][1]["generation_dtype"] is None  # no 2nd copy
