"""Preference metrics of a policy against a reference: rewards, accuracy, margins, alignment.

With an adapter as the policy and no reference given, the reference is the adapter's base model,
obtained by disabling the adapter (no second copy of the weights), as in DPO training.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from training.data.readers import read_dataset
from training.errors import TrainingError

logger = logging.getLogger(__name__)


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


def encode_pair(tokenizer: Any, row: dict[str, Any]) -> tuple[list[int], list[int], list[int]]:
    """(prompt ids, chosen ids, rejected ids) as TRL's DPOTrainer tokenizes a row.

    Chat rows go through the chat template; the completion starts where the tokenized prompt and
    the tokenized prompt + answer diverge. Plain rows get the EOS token after each answer.
    """
    if isinstance(row["prompt"], list):

        def render(messages: list[dict[str, str]], generation: bool) -> list[int]:
            text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation)
            return tokenizer(text, add_special_tokens=False)["input_ids"]

        prompt = render(row["prompt"], True)
        full = [render(row["prompt"] + row[key], False) for key in ("chosen", "rejected")]
    else:
        prompt = tokenizer(row["prompt"], add_special_tokens=False)["input_ids"]
        full = [
            tokenizer(row["prompt"] + row[key] + tokenizer.eos_token, add_special_tokens=False)["input_ids"]
            for key in ("chosen", "rejected")
        ]
    shared = min(_common_prefix(prompt, ids) for ids in full)
    return prompt[:shared], full[0][shared:], full[1][shared:]


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def completion_logps(
    model: Any,
    sequences: list[tuple[list[int], list[int]]],
    pad_id: int,
    batch_size: int = 4,
    max_length: int = 1024,
) -> list[float]:
    """Summed log-probability of each completion given its prompt, in order."""
    import torch

    results: list[float] = []
    device = next(model.parameters()).device
    for start in range(0, len(sequences), batch_size):
        batch = [(p + c)[:max_length] for p, c in sequences[start : start + batch_size]]
        prompt_lengths = [len(p) for p, _ in sequences[start : start + batch_size]]
        width = max(len(ids) for ids in batch)
        ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, seq in enumerate(batch):
            ids[i, : len(seq)] = torch.tensor(seq)
            mask[i, : len(seq)] = 1
        with torch.no_grad():
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float()
        logps = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:, None].to(device)).squeeze(-1)
        for i, seq in enumerate(batch):
            results.append(float(logps[i, prompt_lengths[i] - 1 : len(seq) - 1].sum()))
    return results


def score_pairs(
    model: Any, tokenizer: Any, rows: list[dict[str, Any]], batch_size: int = 4, max_length: int = 1024
) -> list[tuple[float, float]]:
    """(chosen, rejected) summed log-probabilities of each row under ``model``."""
    encoded = [encode_pair(tokenizer, row) for row in rows]
    sequences = [(p, c) for p, c, _ in encoded] + [(p, r) for p, _, r in encoded]
    logps = completion_logps(model, sequences, tokenizer.pad_token_id, batch_size, max_length)
    return list(zip(logps[: len(rows)], logps[len(rows) :], strict=True))


def load_pairs(data: str | Path, limit: int | None = None, chat: bool = True) -> list[dict[str, Any]]:
    """Preference rows in TRL format from any supported file (a run's ``data/test.jsonl`` too)."""
    result = read_dataset(data, "auto", "skip")
    rows = [pair.to_trl(chat) for pair in result.rows if not getattr(pair, "tie", False)]
    if not rows:
        raise TrainingError(f"{data} holds no usable preference pairs.")
    return rows[:limit] if limit else rows


def _is_adapter(path: str | Path | None) -> bool:
    return path is not None and (Path(path) / "adapter_config.json").exists()


def load_scoring_model(model: str | Path | None, data_dir: str | Path | None) -> tuple[Any, Any]:
    """(model, tokenizer) in eval mode: an adapter on its base, or a plain model folder / GGUF file."""
    from training.modeling import load_base_model, load_tokenizer, resolve_model_folder

    if _is_adapter(model):
        from peft import PeftModel

        config = json.loads((Path(model) / "adapter_config.json").read_text(encoding="utf-8"))
        base = load_base_model(resolve_model_folder(config["base_model_name_or_path"], data_dir))
        tokenizer = load_tokenizer(Path(model))
        return PeftModel.from_pretrained(base, model).eval(), tokenizer
    folder = resolve_model_folder(model, data_dir)
    return load_base_model(folder).eval(), load_tokenizer(folder)


def evaluate_preferences(
    model: str | Path | None,
    data: str | Path,
    reference: str | Path | None = None,
    beta: float = 0.1,
    limit: int | None = None,
    batch_size: int = 4,
    data_dir: str | Path | None = None,
    max_length: int = 1024,
    chat: bool = True,
) -> PreferenceMetrics:
    """Score ``data`` with the policy ``model`` and a reference, and compute the preference metrics.

    Reference: ``reference`` when given; otherwise, for an adapter, its base with the adapter
    disabled; otherwise the packaged default model. ``chat`` frames plain-text prompts with the
    chat template, as training does with ``chat_template: true``.
    """
    rows = load_pairs(data, limit, chat)
    policy_model, tokenizer = load_scoring_model(model, data_dir)
    policy = score_pairs(policy_model, tokenizer, rows, batch_size, max_length)
    if reference is None and _is_adapter(model):
        with policy_model.disable_adapter():
            ref_scores = score_pairs(policy_model, tokenizer, rows, batch_size, max_length)
    else:
        del policy_model
        ref_model, ref_tokenizer = load_scoring_model(reference, data_dir)
        ref_scores = score_pairs(ref_model, ref_tokenizer, rows, batch_size, max_length)
    metrics = preference_metrics(policy, ref_scores, beta)
    logger.info("Preference metrics on %d pairs of %s: %s", metrics.pairs, data, metrics.to_dict())
    return metrics
