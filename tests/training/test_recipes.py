"""Recipes: validation, precedence (defaults < YAML < flags), the shipped examples, loss settings."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO_ROOT
from training.dpo import dpo_loss_settings
from training.errors import RecipeError
from training.recipes import Recipe, load_recipe, parse_overrides, recipe_from_dict
from training.sweep import combinations, load_sweep

CONFIGS = REPO_ROOT / "configs"
MINIMAL = {"datasets": [{"path": "pairs.jsonl"}]}


@pytest.mark.parametrize("name", ["sft.yaml", "dpo.yaml", "dpo_qlora.yaml", "tiny_sft.yaml", "tiny_dpo.yaml"])
def test_shipped_recipes_are_valid(name):
    recipe = load_recipe(CONFIGS / name)
    assert recipe.datasets and recipe.task in ("sft", "dpo")


def test_shipped_sweeps_are_valid():
    for name in ("sweep.yaml", "tiny_sweep.yaml"):
        spec = load_sweep(CONFIGS / name)
        assert len(combinations(spec.grid)) >= 2
        load_recipe(spec.base)


def test_every_recipe_field_has_help():
    import dataclasses

    from training.cleaning import CleaningConfig
    from training.recipes import AdapterConfig, DatasetSpec, QuantizationConfig

    for cls in (Recipe, AdapterConfig, DatasetSpec, QuantizationConfig, CleaningConfig):
        assert all(f.metadata.get("help") for f in dataclasses.fields(cls)), cls.__name__


def test_precedence_is_defaults_then_yaml_then_flags(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({**MINIMAL, "beta": 0.3, "adapter": {"r": 4}}), encoding="utf-8")
    assert Recipe(datasets=MINIMAL["datasets"]).beta == 0.1
    from_yaml = load_recipe(path)
    assert (from_yaml.beta, from_yaml.adapter.r, from_yaml.adapter.alpha) == (0.3, 4, 32)
    flagged = load_recipe(path, ["beta=0.5", "adapter.alpha=8", "learning_rate=1e-4"])
    assert (flagged.beta, flagged.adapter.r, flagged.adapter.alpha, flagged.learning_rate) == (
        0.5,
        4,
        8,
        1e-4,
    )


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
