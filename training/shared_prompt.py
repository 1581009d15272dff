"""Shared-prompt packing for DPO: each pair's prompt goes through the model once, not twice.

TRL's DPOTrainer runs a pair as two rows, prompt + chosen and prompt + rejected, so every prompt
token is computed twice (the prompts of PandaLM pairs are 60% of those rows' tokens). Here a pair
is one row::

    prompt  chosen  last  rejected

where ``last`` repeats the prompt's last token at its position: the original one predicts the
chosen answer's first token, the copy the rejected answer's. An attention mask lets each answer see
the prompt and itself only, and positions restart after the prompt, so every scored token has the
context it has in TRL's rows; the log-probabilities agree to float rounding (tests check it).

``SharedPromptCollator`` keeps TRL's two-row tensors, whose masks TRL's loss code reads, and adds
the packed ones. ``PackedPairsModel`` stands in for the model in the trainer's calls: it runs the
packed rows and returns the per-token outputs laid out as TRL's two-row batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from trl.trainer.dpo_trainer import DataCollatorForPreference

from engine.runtime.scoring import attention_mask_for, packed_mask

IGNORE = -100
# Segments of a packed row (engine.runtime.scoring.packed_mask's parts): every segment sees the prompt
# body (0) and itself.
PROMPT, CHOSEN, REJECTED = 0, 1, 2
PACKED_KEYS = ("packed_input_ids", "packed_position_ids", "packed_attention_mask", "packed_shift_labels",
               "packed_index")


@dataclass
class PackedPair:
    """One pair as a packed row: tokens, positions, segments and next-token labels."""

    tokens: list[int]
    positions: list[int]
    segments: list[int]
    labels: list[int]  # the token each position predicts, IGNORE where none is scored
    chosen_start: int  # where the chosen answer's predictions start (the prompt's last token)
    rejected_start: int  # where the rejected answer's predictions start (the copied last token)
    chosen_length: int
    rejected_length: int


def pack_pair(prompt: list[int], chosen: list[int], rejected: list[int],
              max_length: int | None) -> PackedPair:
    """The packed row of a pair, truncated as TRL's collator truncates (keep_start, per sequence)."""
    if not prompt:
        raise ValueError("A preference pair has an empty prompt; shared-prompt packing needs one.")
    limit = max_length if max_length is not None else len(prompt) + max(len(chosen), len(rejected))
    prompt = prompt[:limit]
    chosen, rejected = chosen[: limit - len(prompt)], rejected[: limit - len(prompt)]
    p = len(prompt)
    # The prompt's last token belongs to the chosen answer's segment, so that the rejected answer's
    # copy of it does not see it.
    tokens = prompt + chosen
    positions = list(range(p + len(chosen)))
    segments = [PROMPT] * (p - 1) + [CHOSEN] * (1 + len(chosen))
    labels = [IGNORE] * (p - 1) + chosen + [IGNORE]
    rejected_start = len(tokens)
    if rejected:
        tokens += [prompt[-1], *rejected]
        positions += [p - 1, *range(p, p + len(rejected))]
        segments += [REJECTED] * (1 + len(rejected))
        labels += [*rejected, IGNORE]
    return PackedPair(tokens, positions, segments, labels, p - 1, rejected_start, len(chosen), len(rejected))


@dataclass
class SharedPromptCollator(DataCollatorForPreference):
    """TRL's preference batch plus the packed rows of its pairs (``PACKED_KEYS``)."""

    @classmethod
    def like(cls, collator: DataCollatorForPreference) -> SharedPromptCollator:
        if collator.truncation_mode != "keep_start":
            raise ValueError("Shared-prompt packing needs truncation_mode keep_start: truncating from the "
                             "start cuts the chosen and rejected rows' prompts differently.")
        return cls(pad_token_id=collator.pad_token_id, max_length=collator.max_length,
                   truncation_mode=collator.truncation_mode, pad_to_multiple_of=collator.pad_to_multiple_of)

    def torch_call(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        batch = super().torch_call(examples)
        pairs = [pack_pair(e["prompt_ids"], e["chosen_ids"], e["rejected_ids"], self.max_length)
                 for e in examples]
        width = max(len(pair.tokens) for pair in pairs)
        rows = len(pairs)
        ids = torch.full((rows, width), self.pad_token_id, dtype=torch.long)
        positions = torch.zeros((rows, width), dtype=torch.long)
        segments = torch.full((rows, width), -1, dtype=torch.long)
        pair_ids = torch.full((rows, width), -1, dtype=torch.long)  # a row holds one pair (0); -1: padding
        labels = torch.full((rows, width), IGNORE, dtype=torch.long)
        # For each column of TRL's shifted two-row layout, the packed position that predicts the same token.
        index = torch.full((2 * rows, batch["completion_mask"].shape[1] - 1), -1, dtype=torch.long)
        for row, pair in enumerate(pairs):
            length = len(pair.tokens)
            ids[row, :length] = torch.tensor(pair.tokens)
            positions[row, :length] = torch.tensor(pair.positions)
            segments[row, :length] = torch.tensor(pair.segments)
            pair_ids[row, :length] = 0
            labels[row, :length] = torch.tensor(pair.labels)
            # TRL's row predicts answer token j from column (prompt length - 1 + j), the prompt's last
            # token being pair.chosen_start.
            for unpacked, start, count in ((row, pair.chosen_start, pair.chosen_length),
                                           (rows + row, pair.rejected_start, pair.rejected_length)):
                index[unpacked, pair.chosen_start : pair.chosen_start + count] = (
                    row * width + torch.arange(start, start + count))
        batch.update(packed_input_ids=ids, packed_position_ids=positions, packed_shift_labels=labels,
                     packed_attention_mask=packed_mask(pair_ids, segments), packed_index=index)
        return batch


class PackedPairsModel:
    """Called as TRL calls the model on a preference batch; computes it from the packed rows.

    With TRL's fused head, TRL reads per-token outputs (``log_probs``, ``entropy``, ...) of shape
    [2 * pairs, width - 1]; this returns those, gathered from the packed rows' outputs, zero where
    TRL's would be. Other calls (logits for ``compute_metrics``) go to the model on the two rows.
    """

    def __init__(self, model: Any):
        self.model = model

    def __call__(self, **inputs: Any) -> Any:
        packed = {key: inputs.pop(key) for key in PACKED_KEYS}
        if not inputs.get("fused_lm_head"):
            return self.model(**inputs)
        if inputs.get("output_router_logits"):
            raise ValueError("Shared-prompt packing does not compute MoE router losses; set "
                             "share_prompt: false.")
        out = self.model(input_ids=packed["packed_input_ids"], position_ids=packed["packed_position_ids"],
                         attention_mask=attention_mask_for(self.model, packed["packed_attention_mask"]),
                         shift_labels=packed["packed_shift_labels"], fused_lm_head=True, use_cache=False)
        index = packed["packed_index"]
        missing, safe_index = index < 0, index.clamp(min=0)

        def unpack(values):
            return None if values is None else values.reshape(-1)[safe_index].masked_fill(missing, 0)

        per_token = ("log_probs", "entropy", "log_sum_sq_probs", "mean_logits", "is_top1", "label_mask")
        return type(out)(loss=out.loss, aux_loss=out.aux_loss,
                         **{name: unpack(getattr(out, name)) for name in per_token})
