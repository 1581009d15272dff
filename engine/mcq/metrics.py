"""MCQ metrics as pure functions of per-choice log-likelihoods, choice texts and gold answers.

``acc`` and ``acc_norm`` follow lm-evaluation-harness's ``multiple_choice`` output type: the
prediction is the argmax of the log-likelihoods (first on ties, as ``np.argmax``), and for
``acc_norm`` the argmax after dividing each by its choice text's length in characters.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ChoiceScores:
    """What log-likelihood scoring says about one question's options."""

    logliks: list[float]
    probs: list[float]  # softmax of the log-likelihoods over the options
    pred: int  # argmax of logliks: lm-eval's acc prediction
    pred_norm: int  # argmax of logliks / len(choice): lm-eval's acc_norm prediction


@dataclass(frozen=True)
class Outcome:
    """One answered question: what was predicted, and the gold index when known."""

    pred: int | None  # None when generation yielded no letter
    gold: int | None = None
    pred_norm: int | None = None  # only log-likelihood scoring has it


def argmax(values: Sequence[float]) -> int:
    """Index of the largest value, the first one on ties (as numpy's argmax)."""
    return max(range(len(values)), key=lambda i: (values[i], -i))


def softmax(values: Sequence[float]) -> list[float]:
    top = max(values)
    exps = [math.exp(v - top) for v in values]
    total = sum(exps)
    return [e / total for e in exps]


def score_choices(logliks: Sequence[float], choices: Sequence[str]) -> ChoiceScores:
    """acc / acc_norm predictions and normalised probabilities of one question.

    >>> score_choices([-3.0, -4.0], ["a", "bbbb"]).pred_norm
    1
    """
    if len(logliks) != len(choices) or not choices:
        raise ValueError(f"Got {len(logliks)} log-likelihoods for {len(choices)} choices; "
                         "give one per choice.")
    # lm-eval divides by the raw length; an empty choice would divide by zero there, so count it as 1.
    normalised = [ll / max(len(text), 1) for ll, text in zip(logliks, choices, strict=True)]
    return ChoiceScores(logliks=list(logliks), probs=softmax(logliks), pred=argmax(logliks),
                        pred_norm=argmax(normalised))


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


@dataclass(frozen=True)
class Metric:
    """A per-question value (None where it does not apply) and how to combine those values."""

    per_item: Callable[[Outcome], float | None]
    higher_is_better: bool
    aggregation: Callable[[Sequence[float]], float] = mean


def _acc(outcome: Outcome) -> float | None:
    return None if outcome.gold is None else float(outcome.pred == outcome.gold)


def _acc_norm(outcome: Outcome) -> float | None:
    if outcome.gold is None or outcome.pred_norm is None:
        return None
    return float(outcome.pred_norm == outcome.gold)


def _no_letter(outcome: Outcome) -> float:
    return float(outcome.pred is None)


# Every MCQ metric, lm-eval style: name -> (per-question value, direction, aggregation).
METRICS: dict[str, Metric] = {
    "acc": Metric(_acc, higher_is_better=True),
    "acc_norm": Metric(_acc_norm, higher_is_better=True),
    "no_letter_rate": Metric(_no_letter, higher_is_better=False),
}


def aggregate(outcomes: Sequence[Outcome], names: Sequence[str] | None = None) -> dict[str, float | None]:
    """Each metric over the questions it applies to; None when it applies to none."""
    report: dict[str, float | None] = {}
    for name in names or METRICS:
        if name not in METRICS:
            near = difflib.get_close_matches(name, METRICS, n=1)
            hint = f" Did you mean {near[0]!r}?" if near else ""
            raise KeyError(f"Unknown MCQ metric {name!r}; known: {', '.join(METRICS)}.{hint}")
        metric = METRICS[name]
        values = [v for v in map(metric.per_item, outcomes) if v is not None]
        report[name] = metric.aggregation(values) if values else None
    return report
