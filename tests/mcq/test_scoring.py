"""Continuation scoring: lm-eval's encoding rules on a toy tokenizer, and the KV-cache path
against the full-sequence reference on the real default model."""

from __future__ import annotations

import pytest

from app.runtime.base import LoglikelihoodRequest
from app.runtime.scoring import (
    OptionRow,
    ScoringError,
    _pack_chunks,
    encode_requests,
    group_by_context,
    plan_batches,
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
    batches = plan_batches(groups, context_tokens=24)
    assert [[len(g.context) for g in batch] for batch in batches] == [[11, 6], [3]]  # longest first
    assert all(len(batch[0].context) * len(batch) <= 24 for batch in batches)


def test_options_pack_per_question_sorted_by_length_with_bounded_padding():
    lengths = {0: [5, 2, 1], 1: [3, 2], 2: [9, 5], 3: [1, 1]}
    rows = [OptionRow(g, i, tuple(range(n))) for g, ns in lengths.items() for i, n in enumerate(ns)]
    chunks = _pack_chunks(rows, groups=4, option_tokens=16)
    packs = [pack for chunk in chunks for pack in chunk]
    # One pack per question with a multi-token option; one-token options need no pass.
    assert sorted([rows[i].group for i in pack] for pack in packs) == [[0, 0], [1, 1], [2, 2]]
    assert sorted(i for pack in packs for i in pack) == [0, 1, 3, 4, 5, 6]
    for chunk in chunks:
        widths = [sum(len(rows[i].continuation) - 1 for i in pack) for pack in chunk]
        assert max(widths) * len(chunk) <= max(16, max(widths))
        assert max(widths) * len(chunk) <= 1.25 * sum(widths)


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


@pytest.fixture(scope="module")
def reference(runtime) -> list[tuple[float, bool]]:
    """The slow full-sequence scores, computed once for the tests below."""
    return reference_scores(runtime, real_requests())


@pytest.mark.integration
@pytest.mark.parametrize("budgets", [{}, {"context_tokens": 24, "option_tokens": 4}])
def test_kv_cache_path_equals_full_sequence_reference(runtime, reference, budgets):
    requests = real_requests()
    fast = score_continuations(runtime, requests, **budgets)
    slow = reference
    for request, (fast_ll, fast_greedy), (slow_ll, slow_greedy) in zip(requests, fast, slow, strict=True):
        assert fast_ll == pytest.approx(slow_ll, abs=1e-4), request
        assert fast_greedy == slow_greedy, request
    assert any(greedy for _, greedy in slow)  # the check covers a greedy continuation too


@pytest.mark.integration
def test_runtime_loglikelihood_uses_the_scoring_path(runtime):
    requests = real_requests()[:3]
    assert runtime.loglikelihood(requests) == score_continuations(runtime, requests)
