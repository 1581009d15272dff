"""Preference metrics of a policy against a reference: rewards, accuracy, margins, alignment.

With an adapter as the policy and no reference given, the reference is the adapter's base model,
obtained by disabling the adapter (no second copy of the weights), as in DPO training.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from engine.runtime.base import PairRequest
from training.data.readers import read_dataset
from training.errors import TrainingError

logger = logging.getLogger(__name__)

# Tokens of prompt + completion scored at most, as TRL's DPO max_length cuts them.
PAIR_MAX_TOKENS = 1024


@dataclass
class PreferenceMetrics:
    """What ``tutor eval preferences`` reports; rewards are beta * (policy - reference) log-probabilities."""

    pairs: int
    beta: float
    reward_accuracy: float
    mean_margin: float
    chosen_reward: float
    rejected_reward: float
    chosen_logp: float
    rejected_logp: float
    reference_chosen_logp: float
    reference_rejected_logp: float
    policy_alignment: float
    reference_alignment: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def preference_metrics(
    policy: list[tuple[float, float]], reference: list[tuple[float, float]], beta: float
) -> PreferenceMetrics:
    """Metrics from (chosen, rejected) summed log-probabilities of the policy and of the reference.

    Reward accuracy counts pairs whose chosen reward is strictly higher, as TRL does, so a policy
    equal to its reference scores 0; policy and reference alignment count pairs whose chosen answer
    is strictly more likely under that model.
    """
    if len(policy) != len(reference) or not policy:
        raise TrainingError(
            "Policy and reference log-probabilities must cover the same, non-empty set of pairs."
        )
    chosen_rewards = [beta * (p[0] - r[0]) for p, r in zip(policy, reference, strict=True)]
    rejected_rewards = [beta * (p[1] - r[1]) for p, r in zip(policy, reference, strict=True)]
    margins = [c - r for c, r in zip(chosen_rewards, rejected_rewards, strict=True)]
    return PreferenceMetrics(
        pairs=len(policy),
        beta=beta,
        reward_accuracy=_mean([float(m > 0) for m in margins]),
        mean_margin=_mean(margins),
        chosen_reward=_mean(chosen_rewards),
        rejected_reward=_mean(rejected_rewards),
        chosen_logp=_mean([p[0] for p in policy]),
        rejected_logp=_mean([p[1] for p in policy]),
        reference_chosen_logp=_mean([r[0] for r in reference]),
        reference_rejected_logp=_mean([r[1] for r in reference]),
        policy_alignment=_mean([float(p[0] > p[1]) for p in policy]),
        reference_alignment=_mean([float(r[0] > r[1]) for r in reference]),
    )


def pair_requests(rows: list[dict[str, Any]], max_tokens: int = PAIR_MAX_TOKENS) -> list[PairRequest]:
    """The runtime's pair requests for TRL-format {prompt, chosen, rejected} rows."""
    return [PairRequest(row["prompt"], row["chosen"], row["rejected"], max_tokens=max_tokens) for row in rows]


def load_pairs(data: str | Path, limit: int | None = None, chat: bool = True) -> list[dict[str, Any]]:
    """Preference rows in TRL format from any supported file (a run's ``data/test.jsonl`` too)."""
    result = read_dataset(data, "auto", "skip")
    rows = [pair.to_trl(chat) for pair in result.rows if not getattr(pair, "tie", False)]
    if not rows:
        raise TrainingError(f"{data} holds no usable preference pairs.")
    return rows[:limit] if limit else rows


def _is_adapter(path: str | Path | None) -> bool:
    return path is not None and (Path(path) / "adapter_config.json").exists()


def evaluate_preferences(
    model: str | Path | None,
    data: str | Path,
    reference: str | Path | None = None,
    beta: float = 0.1,
    limit: int | None = None,
    batch_size: int = 4,
    data_dir: str | Path | None = None,
    max_length: int = PAIR_MAX_TOKENS,
    chat: bool = True,
    device: str = "cpu",
) -> PreferenceMetrics:
    """Score ``data`` with the policy ``model`` and a reference, and compute the preference metrics.

    Reference: ``reference`` when given; otherwise, for an adapter, its base with the adapter
    disabled; otherwise the packaged default model. ``chat`` frames plain-text prompts with the
    chat template, as training does with ``chat_template: true``. Both load through
    ``engine.runtime.load_runtime`` (an adapter folder on its base model).
    """
    from engine.runtime import load_runtime
    from engine.runtime.models import default_data_dir

    requests = pair_requests(load_pairs(data, limit, chat), max_length)
    options = {"data_dir": data_dir or default_data_dir(), "device": device, "batch_size": batch_size}
    policy_runtime = load_runtime(None if model is None else str(model), **options)
    policy = policy_runtime.pair_logprobs(requests)
    if reference is None and _is_adapter(model):
        with policy_runtime.adapter_disabled():
            ref_scores = policy_runtime.pair_logprobs(requests)
    else:
        del policy_runtime
        reference_runtime = load_runtime(None if reference is None else str(reference), **options)
        ref_scores = reference_runtime.pair_logprobs(requests)
    metrics = preference_metrics(policy, ref_scores, beta)
    logger.info("Preference metrics on %d pairs of %s: %s", metrics.pairs, data, metrics.to_dict())
    return metrics
