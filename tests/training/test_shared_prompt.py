"""Shared-prompt packing: the packed row's layout on hand-made ids, and on a real (cut-down) model the
same log-probabilities and LoRA gradients as TRL's two rows per pair."""

from __future__ import annotations

import pytest

from training.shared_prompt import (
    CHOSEN,
    IGNORE,
    PROMPT,
    REJECTED,
    PackedPairsModel,
    SharedPromptCollator,
    pack_pair,
)


def test_a_pair_packs_its_prompt_once_and_repeats_its_last_token_for_the_rejected_answer():
    pair = pack_pair([1, 2, 3], [10, 11], [20, 21, 22], max_length=None)
    assert pair.tokens == [1, 2, 3, 10, 11, 3, 20, 21, 22]
    assert pair.positions == [0, 1, 2, 3, 4, 2, 3, 4, 5]
    assert pair.segments == [PROMPT, PROMPT, CHOSEN, CHOSEN, CHOSEN, REJECTED, REJECTED, REJECTED, REJECTED]
    # Each position predicts the next token of its own answer.
    assert pair.labels == [IGNORE, IGNORE, 10, 11, IGNORE, 20, 21, 22, IGNORE]
    assert (pair.chosen_start, pair.rejected_start) == (2, 5)


def test_packing_truncates_each_answer_as_trls_rows_are_truncated():
    # max_length 5 keeps prompt + 2 tokens of each answer, as TRL keeps the first 5 of each row.
    pair = pack_pair([1, 2, 3], [10, 11, 12], [20, 21, 22, 23], max_length=5)
    assert pair.tokens == [1, 2, 3, 10, 11, 3, 20, 21]
    assert (pair.chosen_length, pair.rejected_length) == (2, 2)
    only_prompt = pack_pair([1, 2, 3, 4], [10], [20], max_length=3)
    assert only_prompt.tokens == [1, 2, 3] and set(only_prompt.labels) == {IGNORE}
    with pytest.raises(ValueError, match="empty prompt"):
        pack_pair([], [10], [20], max_length=None)


def test_the_mask_keeps_the_answers_apart_and_padding_out_of_them():
    collator = SharedPromptCollator(pad_token_id=0)
    batch = collator([{"prompt_ids": [1, 2, 3], "chosen_ids": [10, 11], "rejected_ids": [20]},
                      {"prompt_ids": [4], "chosen_ids": [12], "rejected_ids": [21, 22]}])
    mask = batch["packed_attention_mask"][:, 0].int().tolist()
    # Row 0: 1 2 | 3 10 11 | 3' 20.
    assert mask[0][3] == [1, 1, 1, 1, 0, 0, 0]  # the chosen answer sees the prompt and itself
    assert mask[0][5] == [1, 1, 0, 0, 0, 1, 0]  # the copied last token sees the prompt body only
    assert mask[0][6] == [1, 1, 0, 0, 0, 1, 1]
    # Row 1: 4 | 12 | 4' 21 22 | padding: no answer token sees the padding.
    assert batch["packed_input_ids"][1].tolist() == [4, 12, 4, 21, 22, 0, 0]
    assert all(row[5] == 0 and row[6] == 0 for row in mask[1][:5])
    # TRL's own two-row tensors are still there, unchanged.
    assert batch["input_ids"].shape == (4, 5) and batch["completion_mask"][2].tolist() == [0, 0, 0, 1, 0]


@pytest.fixture(scope="module", params=["sdpa", "eager"])
def lora_model(tiny_model_dir, request):
    """The cut-down model with TRL's fused head and a LoRA adapter whose B is not zero, on each
    attention kernel that takes a 4D mask (SDPA reads it as booleans, eager adds it to the scores)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM
    from trl.trainer.utils import add_fused_lm_head

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32,
                                                 attn_implementation=request.param)
    add_fused_lm_head(model)
    torch.manual_seed(0)
    model = get_peft_model(model, LoraConfig(r=4, target_modules="all-linear"))
    for name, parameter in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(parameter, std=0.02)
    return model


@pytest.mark.integration
@pytest.mark.parametrize("max_length", [None, 12])
def test_packed_rows_give_trls_log_probs_and_gradients(lora_model, max_length):
    import torch

    examples = [
        {"prompt_ids": [5, 17, 99, 230, 7], "chosen_ids": [41, 42, 43, 44, 2], "rejected_ids": [300, 2]},
        {"prompt_ids": [11, 12], "chosen_ids": [500, 2], "rejected_ids": [61, 62, 63, 64, 65, 66, 2]},
        {"prompt_ids": [8, 9, 10, 11, 12, 13, 14, 15, 16, 17], "chosen_ids": [2], "rejected_ids": [70, 2]},
    ]
    batch = SharedPromptCollator(pad_token_id=0, max_length=max_length)(examples)
    labels = batch["input_ids"].masked_fill(batch["completion_mask"] == 0, -100)

    def logps_and_grads(call):
        lora_model.zero_grad()
        out = call()
        logps = out.log_probs[:, -(batch["completion_mask"].shape[1] - 1) :]
        weights = torch.arange(1, logps.shape[0] + 1, dtype=logps.dtype)  # each sequence weighs differently
        (logps.sum(dim=1) * weights).sum().backward()
        grads = {n: p.grad.clone() for n, p in lora_model.named_parameters() if p.grad is not None}
        return logps.detach(), grads

    two_rows, two_rows_grads = logps_and_grads(lambda: lora_model(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels,
        fused_lm_head=True))
    packed, packed_grads = logps_and_grads(lambda: PackedPairsModel(lora_model)(**batch, fused_lm_head=True))
    assert (two_rows != 0).sum() == (packed != 0).sum() > 0
    torch.testing.assert_close(packed, two_rows, atol=1e-5, rtol=1e-5)
    assert packed_grads.keys() == two_rows_grads.keys() and packed_grads
    for name, grad in packed_grads.items():
        # float32 rounding, relative to the gradient's size (measured: up to 3e-6 of it); a token that saw
        # the wrong tokens would be off by its whole size.
        scale = two_rows_grads[name].abs().max().item()
        torch.testing.assert_close(grad, two_rows_grads[name], atol=5e-5 * scale, rtol=1e-4, msg=name)


@pytest.mark.integration
def test_calls_without_the_fused_head_go_to_the_model_on_the_two_rows(lora_model):
    import torch

    pair = {"prompt_ids": [5, 6], "chosen_ids": [7], "rejected_ids": [8]}
    batch = SharedPromptCollator(pad_token_id=0)([pair])
    model_inputs = {key: batch[key] for key in ("input_ids", "attention_mask")}
    with torch.no_grad():
        expected = lora_model(**model_inputs).logits
        logits = PackedPairsModel(lora_model)(**model_inputs, **{k: v for k, v in batch.items()
                                                                  if k.startswith("packed_")}).logits
    torch.testing.assert_close(logits, expected)
