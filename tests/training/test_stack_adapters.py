"""Stacking two LoRA adapters into one: the same weight change as merging one after the other."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from training.errors import TrainingError
from training.merge import stack_adapters

KEY = "base_model.model.model.layers.0.self_attn.q_proj.lora_{}.weight"


def write_adapter(folder, rank, alpha, *, seed, target_modules=("q_proj", "v_proj"), **config):
    generator = torch.Generator().manual_seed(seed)
    folder.mkdir()
    save_file({KEY.format("A"): torch.randn(rank, 6, generator=generator),
               KEY.format("B"): torch.randn(5, rank, generator=generator)},
              str(folder / "adapter_model.safetensors"))
    settings = {"peft_type": "LORA", "r": rank, "lora_alpha": alpha, "base_model_name_or_path": "/some/base",
                "target_modules": list(target_modules), "layers_to_transform": [0]} | config
    (folder / "adapter_config.json").write_text(json.dumps(settings))
    return folder


def delta(folder):
    """The weight change the adapter's merge adds: scale * B @ A."""
    config = json.loads((folder / "adapter_config.json").read_text())
    weights = load_file(folder / "adapter_model.safetensors")
    return config["lora_alpha"] / config["r"] * weights[KEY.format("B")] @ weights[KEY.format("A")]


def test_the_stacked_adapter_adds_both_changes(tmp_path):
    first = write_adapter(tmp_path / "sft", 4, 8, seed=1)
    second = write_adapter(tmp_path / "dpo", 2, 16, seed=2, target_modules=("v_proj", "q_proj"))
    stacked = stack_adapters(first, second, tmp_path / "stacked", base="stock")
    config = json.loads((stacked / "adapter_config.json").read_text())
    assert (config["r"], config["lora_alpha"], config["base_model_name_or_path"]) == (6, 6, "stock")
    torch.testing.assert_close(delta(stacked), delta(first) + delta(second))


def test_adapters_with_different_settings_are_refused_and_nothing_is_written(tmp_path):
    first = write_adapter(tmp_path / "sft", 4, 8, seed=1)
    second = write_adapter(tmp_path / "dpo", 4, 8, seed=2, target_modules=("q_proj",))
    with pytest.raises(TrainingError, match="target_modules"):
        stack_adapters(first, second, tmp_path / "stacked")
    dora = write_adapter(tmp_path / "dora", 4, 8, seed=3, use_dora=True)
    with pytest.raises(TrainingError, match="DoRA"):
        stack_adapters(first, dora, tmp_path / "stacked")
    with pytest.raises(TrainingError, match="not a saved LoRA adapter"):
        stack_adapters(first, tmp_path / "missing", tmp_path / "stacked")
    assert not (tmp_path / "stacked").exists()
