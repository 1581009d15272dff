"""GPTQ at CI size: a 4-layer cut of the default model, 16 calibration texts, through the real GPTQModel.

A 4-layer cut of a 30-layer model is no longer a language model (its perplexity on English is in
the millions), so both the calibration and the held-out texts are text the unquantised cut itself
samples from the same opening word. On its own samples the source model has the lowest expected
perplexity (Gibbs' inequality), any quantisation error raises it, and GPTQ, calibrated on that
distribution, should raise it less than round-to-nearest.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from safetensors import safe_open

pytest.importorskip("gptqmodel", reason="the quant extra (gptqmodel) is not installed")

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

KEPT_LAYERS = 4


@pytest.fixture(scope="module")
def cut_model(models_data_dir) -> Path:
    """The default model's first layers as a plain float32 folder, built once per machine."""
    from tests.utils.tiny_models import make_cut_down_model
    from training.modeling import resolve_model_folder

    source = resolve_model_folder(None, models_data_dir)
    target = models_data_dir / "test-models" / f"{source.name}-{KEPT_LAYERS}-layers"
    return make_cut_down_model(source, target, layers=KEPT_LAYERS)


@pytest.fixture(scope="module")
def samples(cut_model) -> list[str]:
    """32 texts the unquantised cut model samples after "The" (seeded, temperature 1)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(cut_model)
    model = AutoModelForCausalLM.from_pretrained(cut_model, dtype=torch.float32).eval()
    encoded = tokenizer(["The"] * 32, return_tensors="pt")
    torch.manual_seed(0)
    with torch.inference_mode():
        output = model.generate(**encoded, do_sample=True, top_k=0, top_p=1.0, temperature=1.0,
                                max_new_tokens=40, pad_token_id=tokenizer.pad_token_id)
    return tokenizer.batch_decode(output, skip_special_tokens=True)


@pytest.fixture(scope="module")
def calibration(samples) -> list[str]:
    return samples[:16]


@pytest.fixture(scope="module")
def heldout(samples) -> list[str]:
    return samples[16:]


@pytest.fixture(scope="module")
def published(cut_model, calibration, heldout, tmp_path_factory, models_data_dir):
    """A lenient-gate quantisation, run from an empty working folder to catch stray ./logs."""
    from training.quantize import GateThresholds, QuantizeRecipe, quantize_model

    workdir = tmp_path_factory.mktemp("cwd")
    out = tmp_path_factory.mktemp("published") / "q4"
    recipe = QuantizeRecipe(gate=GateThresholds(max_perplexity_increase_pct=1e6))  # the shipped defaults
    previous = os.getcwd()
    os.chdir(workdir)
    try:
        report = quantize_model(cut_model, out, calibration, heldout, recipe, data_dir=models_data_dir)
    finally:
        os.chdir(previous)
    return out, report, workdir, recipe


def test_quantize_publishes_a_gptq_folder_and_leaves_no_litter(published):
    out, report, workdir, recipe = published
    config = json.loads((out / "config.json").read_text())
    assert config["quantization_config"]["quant_method"] == "gptq"
    assert config["quantization_config"]["bits"] == recipe.bits
    assert json.loads((out / "quantization_report.json").read_text())["passed"] is True
    assert report.quantized_perplexity > 0 and report.source_perplexity > 0
    assert [path.name for path in out.parent.iterdir()] == [out.name]  # no .partial or .work folder left
    with safe_open(out / "model.safetensors", "pt") as weights:
        names = list(weights.keys())
    # the tied table is stored once (as the quantised head) and no plain column-to-group map is stored
    assert "lm_head.qweight" in names and not any(name.startswith("model.embed_tokens") for name in names)
    assert not any(name.endswith(".g_idx") for name in names)
    assert not (workdir / "logs").exists()


def test_quantized_folder_reloads_through_the_runtime_and_generates(published, cut_model, models_data_dir):
    import torch

    from engine.runtime import GenerationRequest, load_runtime
    from engine.runtime.gptq import GPTQRuntime

    runtime = load_runtime(str(published[0]), data_dir=models_data_dir, device="cpu")
    assert isinstance(runtime, GPTQRuntime)
    # the tied table is stored once, as the quantised head, and the embedding filled from it at load
    embedding = runtime.model.get_input_embeddings()
    assert type(embedding) is torch.nn.Embedding and embedding.weight.abs().mean() > 0
    reference = load_runtime(str(cut_model), data_dir=models_data_dir, device="cpu")
    table = reference.model.get_input_embeddings().weight
    error = (embedding.weight.float() - table).abs().mean() / table.abs().mean()
    assert error < 0.25, f"mean 4-bit error {error:.2f} of the mean weight: rows mixed up, not just rounded"
    [result] = runtime.generate(
        [GenerationRequest(messages=[{"role": "user", "content": "What is energy?"}], max_new_tokens=8)]
    )
    assert result.completion_tokens > 0 and result.text, result


def test_gptq_perplexity_is_below_round_to_nearest(published, cut_model, heldout, models_data_dir):
    from engine.runtime import load_runtime
    from training.evaluate import perplexity
    from training.quantize import round_to_nearest_

    recipe = published[3]
    runtime = load_runtime(str(cut_model), data_dir=models_data_dir, device="cpu")
    assert round_to_nearest_(runtime.model, recipe) == KEPT_LAYERS * 7 + recipe.quantize_embeddings
    rtn = perplexity(runtime, heldout).perplexity
    gptq = published[1].quantized_perplexity
    assert gptq < rtn, f"GPTQ perplexity {gptq:.2f} is not below round-to-nearest's {rtn:.2f}"
    assert published[1].source_perplexity < gptq


def test_strict_gate_refuses_and_publishes_nothing(cut_model, calibration, heldout, tmp_path,
                                                   models_data_dir):
    from training.quantize import GateThresholds, QualityGateError, QuantizeRecipe, quantize_model

    out = tmp_path / "refused"
    strict = GateThresholds(max_perplexity_increase_pct=0.0)  # any loss at all fails
    recipe = QuantizeRecipe(gate=strict)
    with pytest.raises(QualityGateError, match="perplexity grew") as caught:
        quantize_model(cut_model, out, calibration, heldout, recipe, data_dir=models_data_dir)
    assert not caught.value.report.passed
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []
