"""The runtime's whole contract: rolling log-likelihoods (perplexity) and preference-pair log-probs,
on the bare HF runtime and through the batching wrapper; the windows first, without a model."""

from __future__ import annotations

import pytest

from engine.runtime import LoglikelihoodRequest, PairRequest, RollingRequest
from engine.runtime.rolling import RollingWindowError, token_windows

TEXT = ("Energy is the capacity of a physical system to do work. It is conserved in a closed system, "
        "and it can change form: kinetic, potential, thermal or chemical.")


@pytest.mark.parametrize(("length", "window", "stride"),
                         [(1, 4, 2), (2, 4, 2), (4, 4, 3), (50, 8, 3), (9, 2, 1)])
def test_windows_score_every_token_but_the_first_once_within_the_window(length, window, stride):
    spans = token_windows(length, window, stride)
    scored = [token for _, end, first in spans for token in range(first, end)]
    assert scored == list(range(1, length))
    for start, end, first in spans:
        assert end - start <= window and start < first  # each scored token has one token or more before it
    for start, _, first in spans[1:]:
        assert first - start >= window - stride  # later windows keep window - stride tokens of context


@pytest.mark.parametrize(("window", "stride"), [(1, 1), (4, 0), (4, 4)])
def test_windows_that_cannot_score_every_token_are_refused(window, stride):
    with pytest.raises(RollingWindowError, match="stride from 1 to the window minus 1"):
        token_windows(10, window, stride)


def test_remote_backend_refuses_rolling_and_pair_scoring_in_a_sentence():
    from engine.runtime.openai import OpenAIRuntime, RemoteScoringUnsupportedError

    remote = OpenAIRuntime("some-model", base_url="http://127.0.0.1:9/v1")  # never contacted
    with pytest.raises(RemoteScoringUnsupportedError, match="cannot measure perplexity"):
        remote.loglikelihood_rolling([RollingRequest(TEXT)])
    with pytest.raises(RemoteScoringUnsupportedError, match="cannot score preference pairs"):
        remote.pair_logprobs([PairRequest("Q?", " yes", " no")])
    remote.close()


def direct_token_logprobs(runtime, ids: list[int]) -> list[float]:
    """log p(ids[t] | ids[:t]) for t >= 1, from one plain forward pass."""
    import torch

    with torch.inference_mode():
        logits = runtime.model(input_ids=torch.tensor([ids])).logits[0].float()
    log_probs = torch.log_softmax(logits[:-1], dim=-1)
    return [float(log_probs[t - 1, ids[t]]) for t in range(1, len(ids))]


@pytest.mark.integration
def test_rolling_loglikelihood_is_the_sum_of_the_tokens_log_probs(runtime):
    ids = runtime.tokenizer(TEXT)["input_ids"]
    [(logprob, tokens)] = runtime.loglikelihood_rolling([RollingRequest(TEXT)])
    assert tokens == len(ids) - 1
    assert logprob == pytest.approx(sum(direct_token_logprobs(runtime, ids)), rel=1e-5)
    [(cut, cut_tokens)] = runtime.loglikelihood_rolling([RollingRequest(TEXT, max_tokens=10)])
    assert cut_tokens == 9 and cut == pytest.approx(sum(direct_token_logprobs(runtime, ids[:10])), rel=1e-5)


@pytest.mark.integration
def test_rolling_windows_condition_each_token_on_the_tokens_in_its_window(runtime):
    ids = runtime.tokenizer(TEXT)["input_ids"][:12]
    # window 2: every token is scored after only the one before it
    bigrams = sum(direct_token_logprobs(runtime, ids[t - 1 : t + 1])[0] for t in range(1, len(ids)))
    [(logprob, tokens)] = runtime.loglikelihood_rolling([RollingRequest(TEXT, max_tokens=12, window=2)])
    assert tokens == 11 and logprob == pytest.approx(bigrams, rel=1e-4)
    [(whole, _)] = runtime.loglikelihood_rolling([RollingRequest(TEXT, max_tokens=12)])
    assert whole > logprob  # more context predicts English better


@pytest.mark.integration
def test_pair_logprobs_agree_with_the_continuation_loglikelihood_of_the_same_text(runtime):
    eos = runtime.tokenizer.eos_token
    prompt = "Question: What is the capital of France? Answer:"
    pair = PairRequest(prompt, " Paris", " a banana sandwich")
    [(chosen, rejected)] = runtime.pair_logprobs([pair])
    expected = runtime.loglikelihood([LoglikelihoodRequest(prompt, " Paris" + eos),
                                      LoglikelihoodRequest(prompt, " a banana sandwich" + eos)])
    assert chosen == pytest.approx(expected[0][0], abs=1e-3)
    assert rejected == pytest.approx(expected[1][0], abs=1e-3)
    assert chosen > rejected


@pytest.mark.integration
def test_pair_logprobs_cut_prompt_and_completion_to_max_tokens(runtime):
    prompt = "Question: What is the capital of France? Answer:"
    prompt_tokens = len(runtime.tokenizer(prompt, add_special_tokens=False)["input_ids"])
    [(whole, _)] = runtime.pair_logprobs([PairRequest(prompt, " Paris is the capital", " no")])
    [(first, _)] = runtime.pair_logprobs([PairRequest(prompt, " Paris is the capital", " no",
                                                      max_tokens=prompt_tokens + 1)])
    [(alone, _)] = runtime.pair_logprobs([PairRequest(prompt, " Paris", " no")])
    assert whole < first and first == pytest.approx(
        runtime.loglikelihood([LoglikelihoodRequest(prompt, " Paris")])[0][0], abs=1e-3)
    assert alone < first  # " Paris" alone also scores the EOS token after it


@pytest.mark.integration
def test_batching_wrapper_answers_rolling_and_pair_requests_as_the_bare_runtime(runtime):
    from engine.runtime.batching import BatchingRuntime

    rolling = [RollingRequest(TEXT), RollingRequest(TEXT, max_tokens=8, window=4)]
    pairs = [PairRequest([{"role": "user", "content": "2+2?"}], [{"role": "assistant", "content": "4"}],
                         [{"role": "assistant", "content": "five"}])]
    wrapped = BatchingRuntime(runtime)
    try:
        assert wrapped.loglikelihood_rolling(rolling) == runtime.loglikelihood_rolling(rolling)
        assert wrapped.pair_logprobs(pairs) == runtime.pair_logprobs(pairs)
    finally:
        wrapped.close()
