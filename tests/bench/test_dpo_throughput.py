"""The DPO throughput bench's comparison helpers, on hand-made results (no model)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from bench.dpo_throughput import comparison, loss_difference, record_batches


def _result(variant: str, pairs_per_s: float, losses: list[float], batches: list[str]) -> dict:
    return {
        "variant": variant,
        "pairs_per_s": pairs_per_s,
        "train_only_pairs_per_s": 2 * pairs_per_s,
        "cpu_s": 10 / pairs_per_s,
        "train_cpu_s": 5 / pairs_per_s,
        "peak_memory_mib": 100.0,
        "losses": losses,
        "mean_loss": sum(losses) / len(losses),
        "batches": batches,
    }


def test_loss_difference_is_max_and_mean_absolute_gap():
    gap = loss_difference([0.7, 0.6, 0.5], [0.7, 0.65, 0.45])
    assert gap == {"max_abs": pytest.approx(0.05), "mean_abs": pytest.approx(0.1 / 3)}


def test_loss_curves_of_different_lengths_are_refused():
    with pytest.raises(ValueError, match="3 and 2 steps"):
        loss_difference([0.7, 0.6, 0.5], [0.7, 0.6])


def test_comparison_reports_speed_up_order_and_gaps_against_trl():
    results = [
        _result("trl", 1.0, [0.69, 0.60], ["a", "b"]),
        _result("ours", 2.0, [0.69, 0.64], ["b", "a"]),
        _result("ours-same-order", 1.5, [0.69, 0.61], ["a", "b"]),
    ]
    summary = comparison(results)
    assert summary["ours"]["speed_up"] == summary["ours"]["cpu_speed_up"] == pytest.approx(2.0)
    assert summary["ours"]["same_batches_as_trl"] is False
    assert summary["ours"]["mean_loss_difference"] == pytest.approx(0.02)
    assert summary["ours-same-order"]["same_batches_as_trl"] is True
    assert summary["ours-same-order"]["per_step_loss"]["max_abs"] == pytest.approx(0.01)


def test_record_batches_fingerprints_each_collated_batch_in_order():
    trainer = SimpleNamespace(data_collator=lambda examples: len(examples))
    seen = record_batches(trainer)
    first = [{"prompt_ids": [1], "chosen_ids": [2], "rejected_ids": [3]}]
    second = [{"prompt_ids": [4], "chosen_ids": [5], "rejected_ids": [6]}]
    assert [trainer.data_collator(b) for b in (first, second, first)] == [1, 1, 1]
    assert len(seen) == 3 and seen[0] == seen[2] != seen[1]


def test_record_batches_ignores_the_order_of_pairs_within_a_batch():
    trainer = SimpleNamespace(data_collator=lambda examples: examples)
    seen = record_batches(trainer)
    pairs = [{"prompt_ids": [n], "chosen_ids": [n + 1], "rejected_ids": [n + 2]} for n in (1, 7)]
    trainer.data_collator(pairs)
    trainer.data_collator(pairs[::-1])
    assert seen[0] == seen[1]
