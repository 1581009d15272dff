"""Metrics on hand-built log-likelihoods: lm-eval's acc / acc_norm definitions, no model."""

from __future__ import annotations

import math

import pytest

from engine.mcq.metrics import METRICS, Outcome, aggregate, argmax, score_choices, softmax


def test_acc_pick_is_the_largest_loglik():
    scores = score_choices([-5.0, -2.0, -3.0], ["cat", "elephant", "dog"])
    assert scores.pred == 1


def test_acc_norm_divides_by_choice_length_in_characters():
    scores = score_choices([-4.0, -6.0], ["ab", "abcdefghij"])
    assert scores.pred == 0  # -4 > -6
    assert scores.pred_norm == 1  # -6/10 = -0.6 > -4/2 = -2


def test_ties_go_to_the_first_option_like_numpy_argmax():
    assert argmax([-1.0, -1.0, -3.0]) == 0
    assert score_choices([-2.0, -2.0], ["xx", "yy"]).pred_norm == 0


def test_probs_are_the_softmax_of_logliks():
    scores = score_choices([math.log(0.2), math.log(0.6), math.log(0.2)], ["a", "b", "c"])
    assert scores.probs == pytest.approx([0.2, 0.6, 0.2])
    assert sum(softmax([-1000.0, -1001.0])) == pytest.approx(1.0)


def test_score_choices_refuses_mismatched_lengths():
    with pytest.raises(ValueError, match="one per choice"):
        score_choices([-1.0], ["a", "b"])


def test_aggregate_means_over_items_where_each_metric_applies():
    outcomes = [
        Outcome(pred=0, gold=0, pred_norm=1),
        Outcome(pred=1, gold=0, pred_norm=0),
        Outcome(pred=None, gold=2),  # generation without a letter: wrong, no acc_norm
        Outcome(pred=2),  # no gold: counts only for the no-letter rate
    ]
    report = aggregate(outcomes)
    assert report["acc"] == pytest.approx(1 / 3)
    assert report["acc_norm"] == pytest.approx(1 / 2)
    assert report["no_letter_rate"] == pytest.approx(1 / 4)


def test_metric_table_declares_direction():
    assert METRICS["acc"].higher_is_better and METRICS["acc_norm"].higher_is_better
    assert not METRICS["no_letter_rate"].higher_is_better
    assert aggregate([Outcome(pred=0)], ["acc"]) == {"acc": None}
    with pytest.raises(KeyError, match="Did you mean 'acc_norm'"):
        aggregate([Outcome(pred=0)], ["acc_nrom"])
