"""Decoding on a CPU: int8 weights for few-token steps, the bf16 ones for the prompt, and one thread."""

from __future__ import annotations

import threading

import pytest
import torch

from engine.runtime.decoding import (
    DECODING_TOKENS,
    FEWER_THREADS_TOKENS,
    DecodingThreads,
    Int8DecodingLinear,
    pack_int8_for_decoding,
)


def relative_error(got: torch.Tensor, expected: torch.Tensor) -> float:
    return float((got.float() - expected.float()).norm() / expected.float().norm())


@pytest.mark.parametrize("bias", [False, True])
def test_a_decoding_step_multiplies_int8_weights_and_the_prompt_the_layers_own(bias):
    torch.manual_seed(0)
    linear = torch.nn.Linear(576, 1536, bias=bias).to(torch.bfloat16)
    packed = Int8DecodingLinear(linear)
    step = torch.randn(2, 1, 576, dtype=torch.bfloat16)  # two sequences, one new token each
    prompt = torch.randn(1, DECODING_TOKENS + 1, 576, dtype=torch.bfloat16)
    assert packed(step).shape == (2, 1, 1536)
    assert not torch.equal(packed(step), linear(step))  # int8 weights, not the layer's
    assert relative_error(packed(step), linear(step)) < 0.02
    assert torch.equal(packed(prompt), linear(prompt))


def test_packing_wraps_the_large_linear_layers_of_a_bf16_model_only():
    model = torch.nn.Sequential(torch.nn.Linear(512, 256), torch.nn.ReLU(), torch.nn.Linear(256, 8))
    with pytest.raises(ValueError, match="bfloat16"):
        pack_int8_for_decoding(model)
    model = model.to(torch.bfloat16)
    assert pack_int8_for_decoding(model) == 1
    assert isinstance(model[0], Int8DecodingLinear) and isinstance(model[2], torch.nn.Linear)


class ThreadsSeen(torch.nn.Module):
    """A stand-in causal LM that records the thread count its forward pass ran with."""

    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(10, 4)
        self.seen: list[int] = []

    def get_input_embeddings(self) -> torch.nn.Module:
        return self.embed

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        hidden = self.embed(input_ids)
        self.seen.append(torch.get_num_threads())
        return hidden


def threads_of_a_new_thread() -> int:
    seen = []
    started = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
    started.start()
    started.join()
    return seen[0]


def test_decoding_steps_run_on_their_own_thread_count_and_the_rest_on_all():
    all_threads = torch.get_num_threads()
    if all_threads < 2:
        pytest.skip("needs two threads to tell one from all")
    model = ThreadsSeen()
    decoding = DecodingThreads(model, threads=1)
    with decoding.generating():
        model(torch.zeros(1, DECODING_TOKENS + 1, dtype=torch.long))  # the prompt
        model(torch.zeros(1, 1, dtype=torch.long))  # a step
        # A thread started meanwhile (a server's worker) has all the threads for its own work.
        assert torch.get_num_threads() == 1 and threads_of_a_new_thread() == all_threads
        model(torch.zeros(FEWER_THREADS_TOKENS, 1, dtype=torch.long))  # a step of a small batch
        model(torch.zeros(FEWER_THREADS_TOKENS + 1, 1, dtype=torch.long))  # of a larger batch
    assert model.seen == [all_threads, 1, 1, all_threads]
    assert torch.get_num_threads() == all_threads  # the embedder and reader run on all of them next


@pytest.mark.integration
def test_the_packaged_model_generates_with_a_bf16_copy_on_int8_steps_and_scores_with_float32(models_data_dir,
                                                                                             runtime):
    from engine.runtime import GenerationRequest, LoglikelihoodRequest, load_runtime

    packed = load_runtime(None, data_dir=models_data_dir, device="cpu", generation_dtype="bfloat16",
                          int8_decoding=True, decode_threads=1)
    assert packed.model.dtype == torch.float32 and packed.generation_model.dtype == torch.bfloat16
    layer = packed.generation_model.model.layers[0].mlp.up_proj
    assert isinstance(layer, Int8DecodingLinear)
    step = torch.randn(1, 1, layer.linear.in_features, dtype=torch.bfloat16)
    assert relative_error(layer(step), layer.linear(step)) < 0.02
    [answer] = packed.generate(
        [GenerationRequest(messages=[{"role": "user", "content": "What is a force?"}], max_new_tokens=12)]
    )
    assert answer.completion_tokens > 0 and answer.text
    scored = [LoglikelihoodRequest(context="The unit of force is the", continuation=" newton")]
    assert packed.loglikelihood(scored) == runtime.loglikelihood(scored)  # the float32 weights, unchanged
