"""Decoding on a CPU: packed weights (4-bit codes or int8) for few-token steps, the bf16 ones for the prompt,
one thread, and grouped-query attention without ``enable_gqa`` in a step."""

from __future__ import annotations

import copy
import threading

import pytest
import torch
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from engine.runtime.decoding import (
    CPU_ATTENTION,
    DECODING_TOKENS,
    FEWER_THREADS_TOKENS,
    GROUP,
    DecodingThreads,
    PackedDecodingLinear,
    cpu_sdpa_attention,
    four_bit_codes,
    pack_for_decoding,
    use_cpu_attention,
)


def relative_error(got: torch.Tensor, expected: torch.Tensor) -> float:
    return float((got.float() - expected.float()).norm() / expected.float().norm())


def four_bit_weight(rows: int, columns: int) -> torch.Tensor:
    """Weights as a Q4_1 file holds them, dequantised: per group of 32, a minimum plus 0 to 15 steps, both
    ends used (Q4_1's minimum and maximum are the group's own)."""
    codes = torch.randint(0, 16, (rows, columns // GROUP, GROUP))
    codes[..., 0], codes[..., 1] = 0, 15
    low = torch.randn(rows, columns // GROUP, 1) * 0.05
    step = torch.rand(rows, columns // GROUP, 1) * 0.01 + 0.001
    return (low + codes * step).reshape(rows, columns)


@pytest.mark.parametrize(("four_bit", "bias"), [(False, False), (False, True), (True, False)])
def test_a_decoding_step_multiplies_packed_weights_and_the_prompt_the_layers_own(four_bit, bias):
    torch.manual_seed(0)
    source = torch.nn.Linear(576, 1536, bias=bias)
    if four_bit:
        source.weight.data = four_bit_weight(1536, 576)
    linear = copy.deepcopy(source).to(torch.bfloat16)
    packed = PackedDecodingLinear(linear, source.weight)
    assert packed.bits == (4 if four_bit else 8)
    step = torch.randn(2, 1, 576, dtype=torch.bfloat16)  # two sequences, one new token each
    prompt = torch.randn(1, DECODING_TOKENS + 1, 576, dtype=torch.bfloat16)
    assert packed(step).shape == (2, 1, 1536)
    assert not torch.equal(packed(step), linear(step))  # packed weights, not the layer's
    assert relative_error(packed(step), linear(step)) < 0.02
    assert torch.equal(packed(prompt), linear(prompt))


def test_four_bit_codes_are_found_only_on_weights_of_sixteen_even_levels_per_group():
    weight = four_bit_weight(64, 128)
    codes, scales_and_zeros = four_bit_codes(weight)
    assert codes.min() == 0 and codes.max() == 15 and scales_and_zeros.shape == (128 // GROUP, 64, 2)
    scale = scales_and_zeros[..., 0].T.repeat_interleave(GROUP, dim=1)
    zero = scales_and_zeros[..., 1].T.repeat_interleave(GROUP, dim=1)
    assert torch.allclose((codes - 8) * scale + zero, weight, atol=1e-6)  # the int4 kernel's reading
    assert four_bit_codes(torch.randn(64, 128)) is None  # float weights: int8
    assert four_bit_codes(weight[:, :100]) is None  # rows not in whole groups


def test_packing_wraps_the_large_linear_layers_of_a_bf16_model_only():
    source = torch.nn.Sequential(torch.nn.Linear(512, 256), torch.nn.ReLU(), torch.nn.Linear(256, 8))
    with pytest.raises(ValueError, match="bfloat16"):
        pack_for_decoding(copy.deepcopy(source), source)
    source[0].weight.data = four_bit_weight(256, 512)
    model = copy.deepcopy(source).to(torch.bfloat16)
    assert four_bit_codes(model[0].weight) is None  # bfloat16 moved the weights off their levels...
    assert pack_for_decoding(model, source) == {4: 1, 8: 0}  # ...so the float32 source's are packed
    assert isinstance(model[0], PackedDecodingLinear) and isinstance(model[2], torch.nn.Linear)


class GroupedAttention(torch.nn.Module):
    """What the attention functions read of an attention module: 9 query heads over 3 key/value heads."""

    num_key_value_groups = 3
    is_causal = True


@pytest.mark.parametrize(("queries", "padded"), [(1, False), (1, True), (7, False), (7, True)])
def test_cpu_attention_gives_transformers_sdpa_results(queries, padded):
    torch.manual_seed(0)
    keys = 7 if queries > 1 else 40  # a prompt sees itself; a step sees the cache and itself
    query = torch.randn(2, 9, queries, 64)
    key, value = torch.randn(2, 3, keys, 64), torch.randn(2, 3, keys, 64)
    mask = None
    if padded:  # the first row's first three tokens are left padding
        mask = torch.ones(2, 1, queries, keys, dtype=torch.bool).tril(keys - queries)
        mask[0, :, :, :3] = False
        mask[0, :, :3, 0] = True  # as transformers' masks, a padding query attends somewhere
    expected, _ = sdpa_attention_forward(GroupedAttention(), query, key, value, mask, scaling=0.125)
    got, _ = cpu_sdpa_attention(GroupedAttention(), query, key, value, mask, scaling=0.125)
    assert got.shape == expected.shape == (2, queries, 9, 64)
    assert torch.allclose(got, expected, atol=1e-5)


def test_cpu_attention_is_set_only_on_a_model_using_sdpa():
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=32, hidden_size=96, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=6, num_key_value_heads=2, attn_implementation="sdpa")
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).eval()
    eager = copy.deepcopy(model)
    eager.set_attn_implementation("eager")
    assert not use_cpu_attention(eager) and eager.config._attn_implementation == "eager"
    ids = torch.randint(0, 32, (1, 9))
    with torch.inference_mode():
        expected = model.generate(ids, max_new_tokens=6, do_sample=False, pad_token_id=0)
        assert use_cpu_attention(model) and model.config._attn_implementation == CPU_ATTENTION
        got = model.generate(ids, max_new_tokens=6, do_sample=False, pad_token_id=0)
    assert torch.equal(got, expected)


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
def test_the_packaged_model_decodes_on_its_4_bit_codes_and_scores_with_float32(models_data_dir, runtime):
    from engine.runtime import GenerationRequest, LoglikelihoodRequest, load_runtime

    packed = load_runtime(None, data_dir=models_data_dir, device="cpu", generation_dtype="bfloat16",
                          packed_decoding=True, decode_threads=1)
    assert packed.model.dtype == torch.float32 and packed.generation_model.dtype == torch.bfloat16
    assert packed.generation_model.config._attn_implementation == CPU_ATTENTION
    layer, head = packed.generation_model.model.layers[0].mlp.up_proj, packed.generation_model.lm_head
    assert layer.bits == 4 and head.bits == 8  # Q4_1 layers keep their codes; the Q8_0 head goes int8
    step = torch.randn(1, 1, layer.linear.in_features, dtype=torch.bfloat16)
    assert relative_error(layer(step), layer.linear(step)) < 0.02
    [answer] = packed.generate(
        [GenerationRequest(messages=[{"role": "user", "content": "What is a force?"}], max_new_tokens=12)]
    )
    assert answer.completion_tokens > 0 and answer.text
    scored = [LoglikelihoodRequest(context="The unit of force is the", continuation=" newton")]
    assert packed.loglikelihood(scored) == runtime.loglikelihood(scored)  # the float32 weights, unchanged
