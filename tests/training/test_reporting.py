"""Run records from a hand-made log history: curves drawn only for logged metrics, summary files."""

from __future__ import annotations

import json

from training.reporting import first_and_last, plot_curves, write_log, write_summary

HISTORY = [
    {"eval_loss": 0.69, "eval_rewards/accuracies": 0.0, "step": 0},
    {"loss": 0.69, "rewards/accuracies": 0.5, "step": 1},
    {"loss": 0.55, "rewards/accuracies": 0.75, "step": 2},
    {"eval_loss": 0.5, "eval_rewards/accuracies": 0.8, "step": 2},
    {"train_runtime": 12.0, "step": 2},
]


def test_curves_are_drawn_for_the_metrics_that_were_logged(tmp_path):
    written = plot_curves(HISTORY, tmp_path)
    assert [p.name for p in written] == ["loss.png", "reward_accuracy.png"]
    sft_only = tmp_path / "sft"
    sft_only.mkdir()
    assert [p.name for p in plot_curves([{"loss": 1.0, "step": 1}], sft_only)] == ["loss.png"]


def test_first_and_last_points_of_a_metric():
    assert first_and_last(HISTORY, "eval_rewards/accuracies") == {
        "first": 0.0,
        "last": 0.8,
        "first_step": 0,
        "last_step": 2,
    }
    assert first_and_last(HISTORY, "missing") is None


def test_summary_and_log_files(tmp_path):
    write_log(HISTORY, tmp_path / "log.jsonl")
    assert len((tmp_path / "log.jsonl").read_text(encoding="utf-8").splitlines()) == len(HISTORY)
    write_summary(
        tmp_path,
        {
            "task": "dpo",
            "steps": 2,
            "loss": {"first": 0.69, "last": 0.55},
            "cleaning_markdown": "| step | before |",
        },
    )
    assert json.loads((tmp_path / "summary.json").read_text(encoding="utf-8"))["steps"] == 2
    markdown = (tmp_path / "summary.md").read_text(encoding="utf-8")
    assert (
        markdown.startswith("# DPO run summary") and "- last: 0.55" in markdown and "## Cleaning" in markdown
    )
