"""Preference pairs scored as DPO scores them: summed completion log-probabilities given the prompt.

Tokenisation follows TRL's DPOTrainer, so a pair scores here what it scored in training: chat rows
through the chat template, the completion starting where the tokenised prompt and the tokenised
prompt + answer diverge; plain rows with the EOS token after each answer. The functions take the
model and tokenizer themselves, so training can score its own (adapter) model between steps;
``Runtime.pair_logprobs`` is the way in for a loaded runtime.
"""

from __future__ import annotations

from typing import Any

# Completions scored per forward pass when the caller gives no batch size.
DEFAULT_BATCH_SIZE = 4


def encode_pair(tokenizer: Any, row: dict[str, Any]) -> tuple[list[int], list[int], list[int]]:
    """(prompt ids, chosen ids, rejected ids) as TRL's DPOTrainer tokenizes a {prompt, chosen, rejected} row.

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


def completion_logps(model: Any, sequences: list[tuple[list[int], list[int], int]], pad_id: int,
                     batch_size: int = DEFAULT_BATCH_SIZE) -> list[float]:
    """Summed log-probability of each (prompt, completion, max tokens) completion given its prompt.

    Prompt + completion is cut to its max tokens first; sequences run right-padded in batches.
    """
    import torch

    results: list[float] = []
    device = next(model.parameters()).device
    for start in range(0, len(sequences), batch_size):
        chunk = sequences[start : start + batch_size]
        batch = [(p + c)[:limit] for p, c, limit in chunk]
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
            results.append(float(logps[i, len(chunk[i][0]) - 1 : len(seq) - 1].sum()))
    return results


def score_pairs(model: Any, tokenizer: Any, rows: list[dict[str, Any]], batch_size: int = DEFAULT_BATCH_SIZE,
                max_length: int | list[int] = 1024) -> list[tuple[float, float]]:
    """(chosen, rejected) summed log-probabilities of each {prompt, chosen, rejected} row under ``model``.

    ``max_length`` cuts each prompt + completion: one limit for all rows, or one per row.
    """
    limits = max_length if isinstance(max_length, list) else [max_length] * len(rows)
    encoded = [encode_pair(tokenizer, row) for row in rows]
    sequences = ([(p, c, limit) for (p, c, _), limit in zip(encoded, limits, strict=True)]
                 + [(p, r, limit) for (p, _, r), limit in zip(encoded, limits, strict=True)])
    logps = completion_logps(model, sequences, tokenizer.pad_token_id, batch_size)
    return list(zip(logps[: len(rows)], logps[len(rows) :], strict=True))
