"""The decoding-step bench: a prompt of the asked length, then timed one-token steps (a tiny model)."""

from __future__ import annotations

from types import SimpleNamespace

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from bench.decode_steps import step_ms
from engine.runtime.decoding import CPU_ATTENTION, use_cpu_attention


def test_steps_follow_a_prompt_of_the_asked_length_with_the_asked_attention():
    config = LlamaConfig(vocab_size=32, hidden_size=96, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=6, num_key_value_heads=2, attn_implementation="sdpa")
    model = LlamaForCausalLM(config).eval()
    assert use_cpu_attention(model)
    passes = []  # the tokens of each forward pass
    model.get_input_embeddings().register_forward_pre_hook(lambda _, args: passes.append(args[0].shape[1]))

    def tokenizer(text: str, return_tensors: str) -> dict[str, torch.Tensor]:
        return {"input_ids": torch.tensor([[1, 2, 3, 4, 5]])}

    runtime = SimpleNamespace(generation_model=model, tokenizer=tokenizer, decoding_threads=None)
    assert step_ms(runtime, "sdpa", 12, steps=3) > 0 and model.config._attn_implementation == "sdpa"
    assert passes == [12, 1, 1, 1]  # the 5-token text repeated and cut to 12, then three steps
    assert step_ms(runtime, CPU_ATTENTION, 7, steps=2) > 0 and passes[4:] == [7, 1, 1]
