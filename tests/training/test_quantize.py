"""GPTQ at CI size: a 4-layer cut of the default model, 16 calibration texts, through the real GPTQModel.

A 4-layer cut of a 30-layer model is no longer a language model (its perplexity on English is in
the millions), so held-out perplexity is measured on text the unquantised cut itself samples:
there it is meaningful, and any quantisation error shows as a higher perplexity.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import shared_data

pytest.importorskip("gptqmodel", reason="the quant extra (gptqmodel) is not installed")

pytestmark = [pytest.mark.integration, pytest.mark.shared_data, pytest.mark.timeout(600)]

BITS, GROUP_SIZE = 4, 64
KEPT_LAYERS = 4


def arc_texts() -> list[str]:
    lines = shared_data("mcq/ARC-Easy-validation.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    return [f"{row['question']} {row['choices'][row['answer_index']]}" for row in rows]


@pytest.fixture(scope="module")
def cut_model(models_data_dir) -> Path:
    """The default model's first layers as a plain float32 folder, built once per machine."""
    from tests.utils.tiny_models import make_cut_down_model
    from training.modeling import resolve_model_folder

    source = resolve_model_folder(None, models_data_dir)
    target = models_data_dir / "test-models" / f"{source.name}-{KEPT_LAYERS}-layers"
    return make_cut_down_model(source, target, layers=KEPT_LAYERS)


@pytest.fixture(scope="module")
def heldout(cut_model) -> list[str]:
    """Texts the unquantised cut model samples after held-out ARC questions (seeded)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(cut_model)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(cut_model, dtype=torch.float32).eval()
    prompts = arc_texts()[200:216]
    encoded = tokenizer(prompts, return_tensors="pt", padding=True)
    torch.manual_seed(0)
    with torch.inference_mode():
        output = model.generate(
            **encoded,
            do_sample=True,
            top_k=0,
            top_p=1.0,
            temperature=1.0,
            max_new_tokens=40,
            pad_token_id=tokenizer.pad_token_id,
        )
    return tokenizer.batch_decode(output, skip_special_tokens=True)


@pytest.fixture(scope="module")
def published(cut_model, heldout, tmp_path_factory, models_data_dir):
    """A lenient-gate quantisation, run from an empty working folder to catch stray ./logs."""
    from training.quantize import GateThresholds, QuantizeRecipe, quantize_model

    workdir = tmp_path_factory.mktemp("cwd")
    out = tmp_path_factory.mktemp("published") / "q4"
    lenient = GateThresholds(max_perplexity_increase_pct=1e6)
    recipe = QuantizeRecipe(bits=BITS, group_size=GROUP_SIZE, gate=lenient)
    previous = os.getcwd()
    os.chdir(workdir)
    try:
        report = quantize_model(cut_model, out, arc_texts()[:16], heldout, recipe, data_dir=models_data_dir)
    finally:
        os.chdir(previous)
    return out, report, workdir


def test_quantize_publishes_a_gptq_folder_and_leaves_no_litter(published):
    out, report, workdir = published
    config = json.loads((out / "config.json").read_text())
    assert config["quantization_config"]["quant_method"] == "gptq"
    assert config["quantization_config"]["bits"] == BITS
    assert json.loads((out / "quantization_report.json").read_text())["passed"] is True
    assert report.quantized_perplexity > 0 and report.source_perplexity > 0
    assert not list(out.parent.glob(".*partial*"))
    assert not (workdir / "logs").exists()


def test_quantized_folder_reloads_through_the_runtime_and_generates(published, models_data_dir):
    from app.runtime import GenerationRequest, load_runtime
    from app.runtime.gptq import GPTQRuntime

    runtime = load_runtime(str(published[0]), data_dir=models_data_dir, device="cpu")
    assert isinstance(runtime, GPTQRuntime)
    [result] = runtime.generate(
        [GenerationRequest(messages=[{"role": "user", "content": "What is energy?"}], max_new_tokens=8)]
    )
    assert result.completion_tokens > 0 and result.text


def test_gptq_perplexity_is_below_round_to_nearest(published, cut_model, heldout, models_data_dir):
    from app.runtime import load_runtime
    from training.evaluate import perplexity
    from training.quantize import round_to_nearest_

    runtime = load_runtime(str(cut_model), data_dir=models_data_dir, device="cpu")
    assert round_to_nearest_(runtime.model, BITS, GROUP_SIZE) == KEPT_LAYERS * 7
    rtn = perplexity(runtime, heldout).perplexity
    gptq = published[1].quantized_perplexity
    assert gptq < rtn, f"GPTQ perplexity {gptq:.2f} is not below round-to-nearest's {rtn:.2f}"
    assert published[1].source_perplexity < gptq


def test_strict_gate_refuses_and_publishes_nothing(cut_model, heldout, tmp_path, models_data_dir):
    from training.quantize import GateThresholds, QualityGateError, QuantizeRecipe, quantize_model

    out = tmp_path / "refused"
    strict = GateThresholds(max_perplexity_increase_pct=0.0)  # any loss at all fails
    recipe = QuantizeRecipe(bits=BITS, group_size=GROUP_SIZE, gate=strict)
    with pytest.raises(QualityGateError, match="perplexity grew") as caught:
        quantize_model(cut_model, out, arc_texts()[:16], heldout, recipe, data_dir=models_data_dir)
    assert not caught.value.report.passed
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []
