"""CI-sized runs on a 2-layer cut-down model: SFT then DPO from the SFT adapter, reload, evaluate,
merge, resume, a sweep, and a recipe under `accelerate launch` in one CPU process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from training.recipes import load_recipe

pytestmark = pytest.mark.integration

FAST = {"max_steps": "3", "eval_steps": "3", "save_steps": "3", "logging_steps": "1", "max_length": "64"}


def tiny_recipe(name: str, model: Path, out: Path, *extra: str):
    """A tiny recipe with few steps; ``extra`` key=value items replace the fast defaults."""
    settings = {**FAST, **dict(item.split("=", 1) for item in extra)}
    overrides = [f"model={model}", f"output_dir={out}", *(f"{k}={v}" for k, v in settings.items())]
    return load_recipe(REPO_ROOT / "configs" / name, overrides)


@pytest.fixture(scope="module")
def sft_run(tiny_model_dir, tmp_path_factory) -> Path:
    from training.sft import run_sft

    return run_sft(tiny_recipe("tiny_sft.yaml", tiny_model_dir, tmp_path_factory.mktemp("sft")))


@pytest.fixture(scope="module")
def dpo_run(tiny_model_dir, sft_run, tmp_path_factory) -> Path:
    from training.dpo import run_dpo

    return run_dpo(
        tiny_recipe(
            "tiny_dpo.yaml", tiny_model_dir, tmp_path_factory.mktemp("dpo"), f"init_adapter={sft_run}"
        )
    )


def summary_of(adapter: Path) -> dict:
    return json.loads((adapter.parent / "summary.json").read_text(encoding="utf-8"))


def test_sft_logs_loss_changes_the_adapter_and_writes_its_record(sft_run):
    summary = summary_of(sft_run)
    assert summary["steps"] == 3 and summary["loss"]["first_step"] == 1
    assert summary["trainable_changed"] == 1.0
    assert summary["eval_loss"]["last"] < summary["eval_loss"]["first"]
    for name in (
        "adapter/adapter_model.safetensors",
        "training_log.jsonl",
        "loss.png",
        "summary.md",
        "data/train.jsonl",
        "recipe.yaml",
    ):
        assert (sft_run.parent / name).exists(), name


def test_dpo_from_the_sft_adapter_learns_and_evaluates_on_reload(dpo_run, sft_run):
    from training.metrics import evaluate_preferences

    summary = summary_of(dpo_run)
    assert summary["trainable_changed"] == 1.0 and "loss" in summary
    assert summary["eval_rewards/accuracies"]["first"] == 0.0  # policy == reference before training
    assert (dpo_run.parent / "reward_accuracy.png").exists()
    config = json.loads((dpo_run / "adapter_config.json").read_text(encoding="utf-8"))
    assert not (dpo_run / "ref").exists() and config["r"] == 8
    # Reload from disk; the reference is the SFT adapter (the reference the run trained against).
    validation = dpo_run.parent / "data" / "validation.jsonl"
    metrics = evaluate_preferences(dpo_run, validation, reference=sft_run, batch_size=8)
    assert metrics.pairs == summary["splits"]["validation"]
    assert metrics.reward_accuracy == pytest.approx(summary["eval_rewards/accuracies"]["last"], abs=0.01)
    assert metrics.mean_margin == pytest.approx(summary["eval_rewards/margins"]["last"], abs=0.05)


def test_merged_model_gives_the_adapter_model_logits(sft_run, tmp_path):
    import torch

    from engine.runtime import load_runtime
    from engine.runtime.models import default_data_dir
    from training.merge import merge_adapter

    merged = merge_adapter(sft_run, tmp_path / "merged")
    ids = torch.tensor([[1, 504, 3458, 314, 253, 2361, 30]])
    # the one loader: an adapter folder loads on its base model
    adapter_model = load_runtime(str(sft_run), data_dir=default_data_dir(), device="cpu").model
    merged_model = load_runtime(str(merged), data_dir=default_data_dir(), device="cpu").model
    with torch.no_grad():
        expected, got = adapter_model(input_ids=ids).logits, merged_model(input_ids=ids).logits
    assert torch.allclose(expected, got, atol=1e-3)


def test_an_adapter_runtime_scores_as_its_base_with_the_adapter_disabled(sft_run, tiny_model_dir):
    from engine.runtime import PairRequest, load_runtime
    from engine.runtime.models import default_data_dir

    pairs = [PairRequest("Q: What is energy? A:", " The capacity to do work.", " A banana.")]
    adapter = load_runtime(str(sft_run), data_dir=default_data_dir(), device="cpu")
    base = load_runtime(str(tiny_model_dir), data_dir=default_data_dir(), device="cpu")
    with adapter.adapter_disabled():
        disabled = adapter.pair_logprobs(pairs)
    assert disabled[0] == pytest.approx(base.pair_logprobs(pairs)[0], abs=1e-4)
    assert adapter.pair_logprobs(pairs) != disabled  # the adapter is back on after the block


def test_dpo_resumes_from_its_last_checkpoint(tiny_model_dir, tmp_path):
    from training.dpo import run_dpo

    out = tmp_path / "resume"
    run_dpo(tiny_recipe("tiny_dpo.yaml", tiny_model_dir, out, "save_steps=1", "max_steps=1", "split=[1,0,0]"))
    adapter = run_dpo(
        tiny_recipe("tiny_dpo.yaml", tiny_model_dir, out, "save_steps=1", "max_steps=2", "split=[1,0,0]")
    )
    log = [json.loads(line) for line in (out / "training_log.jsonl").read_text(encoding="utf-8").splitlines()]
    steps = [entry["step"] for entry in log if "loss" in entry]
    assert summary_of(adapter)["steps"] == 2 and steps == [1, 2]


def test_sweep_ranks_runs_and_lists_refused_combinations(tiny_model_dir, tmp_path):
    import yaml

    from training.sweep import load_sweep, run_sweep

    sweep = yaml.safe_load((REPO_ROOT / "configs" / "tiny_sweep.yaml").read_text(encoding="utf-8"))
    sweep["base"] = str(REPO_ROOT / "configs" / "tiny_dpo.yaml")
    sweep["grid"] = {"loss": ["sigmoid", "ipo"], "label_smoothing": [0.1]}
    sweep["overrides"] = [
        f"model={tiny_model_dir}",
        "max_steps=1",
        "eval_steps=1",
        "max_length=64",
        "split=[0.5,0.5,0]",
    ]
    sweep["output_dir"] = str(tmp_path / "sweep")
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(sweep), encoding="utf-8")
    ranked = run_sweep(load_sweep(tmp_path / "sweep.yaml"))
    assert len(ranked) == 2
    refused = [row for row in ranked if row["score"] is None]
    assert [(r["loss"], r["label_smoothing"]) for r in refused] == [("ipo", 0.1)]
    assert ranked[0]["score"] is not None and ranked[0]["loss"] == "sigmoid"
    assert (tmp_path / "sweep" / "results.md").read_text(encoding="utf-8").startswith("| run |")


def test_recipe_runs_under_accelerate_launch_in_one_cpu_process(tiny_model_dir, tmp_path):
    out = tmp_path / "accelerate"
    command = [
        str(Path(sys.executable).with_name("accelerate")),
        "launch",
        "--config_file",
        str(REPO_ROOT / "configs" / "accelerate" / "cpu_single.yaml"),
        "-m",
        "cli.main",
        "train",
        "dpo",
        str(REPO_ROOT / "configs" / "tiny_dpo.yaml"),
        "--set",
        f"model={tiny_model_dir}",
        "--set",
        "max_steps=1",
        "--set",
        "max_length=64",
        "--set",
        "split=[1,0,0]",
        "--output-dir",
        str(out),
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((out / "summary.json").read_text(encoding="utf-8"))["steps"] == 1


def test_reference_precompute_runs_length_sorted_and_keeps_each_rows_values(monkeypatch):
    from datasets import Dataset, concatenate_datasets
    from trl import DPOTrainer

    from training.dpo import pair_lengths, tutor_dpo_trainer_class

    rows = {"prompt_ids": [[1] * 5, [2] * 1, [3] * 9, [4] * 3],
            "chosen_ids": [[9] * 2, [9] * 7, [9], [9] * 4],
            "rejected_ids": [[8] * 6, [8], [8] * 2, [8] * 4]}
    seen = []

    def fake_precompute(self, dataset, name, batch_size):  # a row's "log-prob" is its own prompt token
        seen.append(pair_lengths(dataset))
        column = Dataset.from_dict({"ref_chosen_logps": [float(p[0]) for p in dataset["prompt_ids"]]})
        return concatenate_datasets([dataset, column], axis=1)

    monkeypatch.setattr(DPOTrainer, "_precompute_ref_logps", fake_precompute)
    trainer = object.__new__(tutor_dpo_trainer_class(group_by_length=False))
    computed = trainer._precompute_ref_logps(Dataset.from_dict(rows), "train", 2)
    assert pair_lengths(Dataset.from_dict(rows)) == [11, 8, 11, 7] and seen == [[7, 8, 11, 11]]
    assert computed["ref_chosen_logps"] == [1.0, 2.0, 3.0, 4.0]
    assert computed["prompt_ids"] == rows["prompt_ids"]
