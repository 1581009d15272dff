"""Recipes: validation, precedence (defaults < YAML < flags), the SFT/DPO split, the shipped examples,
loss settings."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO_ROOT
from training.config import parse_overrides
from training.dpo import dpo_loss_settings
from training.errors import RecipeError
from training.recipes import DPORecipe, Recipe, SFTRecipe, load_recipe, recipe_from_dict
from training.sweep import combinations, load_sweep

CONFIGS = REPO_ROOT / "configs"
MINIMAL = {"datasets": [{"path": "pairs.jsonl"}]}


SPECS = {"pipeline.yaml", "tutor_model.yaml", "tiny_tutor_model.yaml", "sweep.yaml",
         "tiny_sweep.yaml"}  # not training recipes
RECIPE_FILES = sorted(p.name for p in CONFIGS.glob("*.yaml") if p.name not in SPECS)


@pytest.mark.parametrize("name", RECIPE_FILES)
def test_shipped_recipes_are_valid(name):
    recipe = load_recipe(CONFIGS / name)
    assert recipe.datasets and recipe.task in ("sft", "dpo")
    assert isinstance(recipe, SFTRecipe if recipe.task == "sft" else DPORecipe)


def test_every_shipped_config_is_checked():
    assert {"sft.yaml", "dpo.yaml", "dpo_qlora.yaml", "tiny_sft.yaml", "tiny_dpo.yaml"} <= set(RECIPE_FILES)
    assert SPECS <= {p.name for p in CONFIGS.glob("*.yaml")}


def test_top_layers_adapts_only_the_last_decoder_layers():
    import torch
    from peft import inject_adapter_in_model

    from training.modeling import lora_config
    from training.recipes import AdapterConfig

    class Layer(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.q_proj, self.down_proj = torch.nn.Linear(4, 4), torch.nn.Linear(4, 4)

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.config = type("Config", (), {"num_hidden_layers": 3})()
            self.layers, self.lm_head = torch.nn.ModuleList(Layer() for _ in range(3)), torch.nn.Linear(4, 8)

    model = inject_adapter_in_model(lora_config(AdapterConfig(top_layers=2), Tiny()), Tiny())
    adapted = {name.split(".lora_")[0] for name, _ in model.named_parameters() if ".lora_" in name}
    assert adapted == {f"layers.{i}.{m}" for i in (1, 2) for m in ("q_proj", "down_proj")}
    with pytest.raises(RecipeError, match="top_layers"):
        AdapterConfig(top_layers=0)


def test_shipped_sweeps_are_valid():
    for name in ("sweep.yaml", "tiny_sweep.yaml"):
        spec = load_sweep(CONFIGS / name)
        assert len(combinations(spec.grid)) >= 2
        load_recipe(spec.base)


def test_a_sweep_refuses_an_unknown_key_or_grid_key_with_a_suggestion(tmp_path):
    sweep = {"base": str(CONFIGS / "tiny_sft.yaml"), "grid": {"learning_rate": [1e-3]}}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({**sweep, "subst": 8}), encoding="utf-8")
    with pytest.raises(RecipeError, match=r"Sweep file .*: unknown key 'subst'\. Did you mean 'subset'"):
        load_sweep(path)
    path.write_text(yaml.safe_dump({**sweep, "grid": {"adapter.rank": [8]}}), encoding="utf-8")
    with pytest.raises(RecipeError, match=r"grid: unknown key 'adapter\.rank'\. Did you mean 'adapter\.r'"):
        load_sweep(path)
    path.write_text(yaml.safe_dump({**sweep, "grid": {"beta": [0.1, 0.2]}}), encoding="utf-8")
    with pytest.raises(RecipeError, match="'beta' belongs to DPO recipes"):
        load_sweep(path)
    path.write_text(yaml.safe_dump({"grid": sweep["grid"]}), encoding="utf-8")
    with pytest.raises(RecipeError, match="base is missing; add it"):
        load_sweep(path)


def test_every_recipe_field_has_help():
    import dataclasses

    from training.cleaning import CleaningConfig
    from training.pipeline import EvaluationSpec, PipelineRecipe
    from training.quantize import GateThresholds, QuantizeRecipe
    from training.recipes import AdapterConfig, DatasetSpec, QuantizationConfig
    from training.sweep import SweepSpec

    configs = (Recipe, SFTRecipe, DPORecipe, AdapterConfig, DatasetSpec, QuantizationConfig, CleaningConfig,
               QuantizeRecipe, GateThresholds, PipelineRecipe, EvaluationSpec, SweepSpec)
    for cls in configs:
        assert all(f.metadata.get("help") for f in dataclasses.fields(cls)), cls.__name__


def test_precedence_is_defaults_then_yaml_then_flags(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({**MINIMAL, "beta": 0.3, "adapter": {"r": 4}}), encoding="utf-8")
    assert DPORecipe(datasets=MINIMAL["datasets"]).beta == 0.1
    from_yaml = load_recipe(path)
    assert (from_yaml.beta, from_yaml.adapter.r, from_yaml.adapter.alpha) == (0.3, 4, 32)
    flagged = load_recipe(path, ["beta=0.5", "adapter.alpha=8", "learning_rate=1e-4"])
    assert (flagged.beta, flagged.adapter.r, flagged.adapter.alpha, flagged.learning_rate) == (
        0.5,
        4,
        8,
        1e-4,
    )


def test_flags_override_the_yaml_inside_a_section_key_by_key(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({**MINIMAL, "task": "sft", "cleaning": {"max_tokens": 64, "seed": 3}}))
    recipe = load_recipe(path, ["cleaning.seed=7"])
    cleaning = recipe.cleaning
    assert (cleaning.max_tokens, cleaning.seed, cleaning.drop_duplicates) == (64, 7, True)


def test_a_value_given_twice_names_both():
    with pytest.raises(RecipeError, match=r"beta is given twice.*'beta=1'.*'beta=2'"):
        parse_overrides(["beta=1", "beta=2"])


@pytest.mark.parametrize(
    "override, message",
    [
        ("lerning_rate=1", "Did you mean 'learning_rate'"),
        ("loss=sigmod", "Did you mean 'sigmoid'"),
        ("label_smoothing=0.1", None),
        ("batch_size=0", "batch_size must be positive"),
        ("split=[0.5,0.1]", "three non-negative fractions"),
        ("adapter.dropout=1.5", "adapter.dropout"),
        ("quantization.quant_type=int4", "nf4 or fp4"),
    ],
)
def test_bad_values_are_refused_with_a_fix(override, message):
    if message is None:
        assert recipe_from_dict(MINIMAL, [override]).label_smoothing == 0.1
        return
    with pytest.raises(RecipeError, match=message):
        recipe_from_dict(MINIMAL, [override])


@pytest.mark.parametrize(
    "data, overrides, message",
    [
        ({"lerning_rate": 1}, [], r"Recipe .*r\.yaml: unknown key 'lerning_rate'\. Did you mean 'learning_"),
        ({"adapter": {"alpah": 8}}, [], r"unknown key 'adapter\.alpah'\. Did you mean 'adapter\.alpha'"),
        ({}, ["cleaning.agreement_rule=globl"], r"with overrides cleaning.*Did you mean 'global'"),
        ({"task": "dpp"}, [], r"task is 'dpp'; use sft or dpo\. Did you mean 'dpo'"),
        ({"datasets": [{"name": "x"}]}, [], r"datasets\.0\.path is missing; add it\. The data file"),
    ],
)
def test_unknown_keys_and_values_name_the_file_and_the_nearest_fix(tmp_path, data, overrides, message):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({**MINIMAL, **data}), encoding="utf-8")
    with pytest.raises(RecipeError, match=message):
        load_recipe(path, overrides)


@pytest.mark.parametrize("key, value", [("beta", 0.2), ("loss", "ipo"), ("share_prompt", False),
                                        ("init_adapter", "runs/sft/adapter")])
def test_an_sft_recipe_cannot_carry_a_dpo_key(tmp_path, key, value):
    path = tmp_path / "sft.yaml"
    path.write_text(yaml.safe_dump({**MINIMAL, "task": "sft", key: value}), encoding="utf-8")
    expected = rf"Recipe .*sft\.yaml: '{key}' belongs to DPO recipes \(task: dpo\), not to SFT recipes"
    with pytest.raises(RecipeError, match=expected):
        load_recipe(path)
    with pytest.raises(RecipeError, match=f"'{key}' belongs to DPO recipes"):
        recipe_from_dict({**MINIMAL, "task": "sft"}, [f"{key}={value}"])
    assert getattr(recipe_from_dict(MINIMAL, [f"{key}={value}"]), key) == value


def test_the_task_picks_the_recipe_class_and_the_output_folder():
    sft, dpo = recipe_from_dict({**MINIMAL, "task": "sft"}), recipe_from_dict(MINIMAL)
    assert (type(sft), sft.output_dir, sft.init_adapter) == (SFTRecipe, "runs/sft", None)
    assert (type(dpo), dpo.output_dir) == (DPORecipe, "runs/dpo")
    with pytest.raises(RecipeError, match="this is a DPORecipe; use SFTRecipe instead"):
        DPORecipe(task="sft", datasets=MINIMAL["datasets"])


def test_label_smoothing_is_refused_for_ipo_and_hinge():
    with pytest.raises(RecipeError, match="sigmoid loss only"):
        recipe_from_dict(MINIMAL, ["loss=ipo", "label_smoothing=0.1"])


def test_shared_prompt_packing_needs_the_precomputed_reference():
    with pytest.raises(RecipeError, match="share_prompt needs precompute_reference"):
        recipe_from_dict(MINIMAL, ["precompute_reference=false"])
    assert not recipe_from_dict(MINIMAL, ["precompute_reference=false", "share_prompt=false"]).share_prompt


def test_recipe_task_must_match_the_command(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({**MINIMAL, "task": "sft"}), encoding="utf-8")
    with pytest.raises(RecipeError, match="use `tutor train sft`"):
        load_recipe(path, task="dpo")


def test_dataset_paths_resolve_next_to_the_recipe(tmp_path):
    (tmp_path / "pairs.jsonl").write_text("", encoding="utf-8")
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(MINIMAL), encoding="utf-8")
    assert Path(load_recipe(path).datasets[0].path) == tmp_path / "pairs.jsonl"


def _sigmoid_loss(delta: float) -> float:
    return -math.log(1 / (1 + math.exp(-delta)))


@pytest.mark.parametrize("eps", [0.05, 0.1, 0.3])
@pytest.mark.parametrize("delta", [-2.0, -0.1, 0.0, 0.7, 3.0])
def test_conservative_dpo_is_the_weighted_sigmoid_and_robust_losses(eps, delta):
    settings = dpo_loss_settings("sigmoid", eps)
    assert settings["loss_type"] == ["sigmoid", "robust"]
    sigmoid = _sigmoid_loss(delta)
    # TRL's robust loss: ((1 - e) L(d) - e L(-d)) / (1 - 2e)
    robust = ((1 - eps) * _sigmoid_loss(delta) - eps * _sigmoid_loss(-delta)) / (1 - 2 * eps)
    combined = settings["loss_weights"][0] * sigmoid + settings["loss_weights"][1] * robust
    assert combined == pytest.approx((1 - eps) * _sigmoid_loss(delta) + eps * _sigmoid_loss(-delta))


def test_losses_without_smoothing_map_directly():
    assert dpo_loss_settings("ipo", 0.0) == {"loss_type": ["ipo"], "label_smoothing": 0.0}
    assert dpo_loss_settings("sigmoid", 0.0)["loss_type"] == ["sigmoid"]
