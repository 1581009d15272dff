"""Decoding on a CPU: packed integer weights and one thread for the steps that generate token by token.

After the prompt's forward pass, each new token is one forward pass over one token per sequence. On a
CPU that pass is bound by reading the weights and by the overhead of its ~4,000 small operations, not by
arithmetic: the bfloat16 copy that prefills fast on AMX multiplies one row slower than float32, and
under ``OMP_WAIT_POLICY=PASSIVE`` (the tutor's default) waking the second thread for each parallel
operation costs more than it shares. So a step of few tokens reads packed copies of the linear layers'
weights: their own 4-bit codes where they are 4-bit already (a Q4_1 GGUF file's, dequantised:
``torch._weight_int4pack_mm_for_cpu``, exact), else int8 with one scale per output row
(``torch._weight_int8pack_mm``); on ``decode_threads`` threads for one to four sequences. The prompt's
pass keeps the bfloat16 weights and every thread (README, "Generation speed on a CPU").

A decoding step's attention on a CPU (``CPU_ATTENTION``) is transformers' SDPA attention without
``enable_gqa``, which torch's CPU kernel runs 6x slower for one query token (about 580 against 92 us a
layer at 600 cached tokens, a third of a step): the query heads are grouped under their key/value heads
instead, as transformers does when there is a mask.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import pack_gqa, sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

logger = logging.getLogger(__name__)

# A forward pass over at most this many tokens (a batch of up to 8 sequences decoding) is a decoding step.
DECODING_TOKENS = 8
# ... and runs on ``decode_threads`` up to this many: 4 sequences decoded in 51 ms a step on one thread and
# 63 ms on two, 8 in 88 ms and 80 ms (the packaged model packed, OMP_WAIT_POLICY=PASSIVE, two cores).
FEWER_THREADS_TOKENS = 4
# Linear layers smaller than this (a LoRA adapter's A and B) keep their weights: nothing to gain.
PACKED_MIN_WEIGHTS = 65_536
# Q4_1's block: 32 weights of a row share a scale and a minimum.
GROUP = 32

# The name ``cpu_sdpa_attention`` is registered under with transformers (masks are made as for "sdpa").
CPU_ATTENTION = "sdpa_cpu"


def four_bit_codes(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The 4-bit codes of ``weight`` [out, in] and its groups' (scale, zero) as the int4 kernel reads them
    (w = (code - 8) * scale + zero), when every group of ``GROUP`` weights along a row lies on 16 evenly
    spaced levels from its minimum to its maximum, as Q4_1's do; else None."""
    rows, columns = weight.shape
    if columns % GROUP:
        return None
    groups = weight.float().reshape(rows, columns // GROUP, GROUP)
    low = groups.amin(-1, keepdim=True)
    step = (groups.amax(-1, keepdim=True) - low) / 15
    step = torch.where(step > 0, step, torch.ones_like(step))  # a constant group: every code 0
    codes = ((groups - low) / step).round()
    if ((low + codes * step - groups).abs() > 1e-3 * step).any():
        return None
    scales_and_zeros = torch.stack([step.squeeze(-1), (low + 8 * step).squeeze(-1)], dim=-1)  # [rows, g, 2]
    return codes.reshape(rows, columns).to(torch.int32), scales_and_zeros.transpose(0, 1).contiguous()


class PackedDecodingLinear(torch.nn.Module):
    """A linear layer that multiplies a decoding step's few rows by packed weights, the rest by its own.

    4-bit weights keep their codes (``four_bit_codes``); others are rounded to int8, 255 levels of each
    output row's largest magnitude. ``linear`` stays for the prompt's pass, where bfloat16 matrix units
    are fast.
    """

    def __init__(self, linear: torch.nn.Linear, weight: torch.Tensor):
        """``weight``: the layer's weight before its bfloat16 copy was made (float32), which rounding to
        bfloat16 would have moved off its 4-bit levels."""
        super().__init__()
        self.linear = linear
        weight = weight.detach().float()
        four_bit = four_bit_codes(weight)
        self.bits = 8 if four_bit is None else 4
        if four_bit is not None:
            codes, scales_and_zeros = four_bit
            packed = torch._convert_weight_to_int4pack_for_cpu(codes, 1)
            self.register_buffer("packed", packed, persistent=False)
            self.register_buffer("scales", scales_and_zeros.to(linear.weight.dtype), persistent=False)
        else:
            scale = (weight.abs().amax(dim=1) / 127).clamp(min=torch.finfo(torch.float32).tiny)
            self.register_buffer("packed", (weight / scale[:, None]).round().clamp(-127, 127)
                                 .to(torch.int8).contiguous(), persistent=False)
            self.register_buffer("scales", scale.to(linear.weight.dtype), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.numel() // x.shape[-1]
        if rows > DECODING_TOKENS:
            return self.linear(x)
        flat = x.reshape(rows, x.shape[-1])
        if self.bits == 4:
            out = torch._weight_int4pack_mm_for_cpu(flat, self.packed, GROUP, self.scales)
        else:
            out = torch._weight_int8pack_mm(flat, self.packed, self.scales)
        out = out.reshape(*x.shape[:-1], out.shape[-1])
        return out if self.linear.bias is None else out + self.linear.bias


def pack_for_decoding(model: torch.nn.Module, source: torch.nn.Module) -> dict[int, int]:
    """Wrap ``model``'s linear layers (a bfloat16 copy of ``source`` on the CPU) in
    ``PackedDecodingLinear``, in place, packing ``source``'s weights; a layer sharing its weight with the
    embeddings (a tied output head) is wrapped too, the embeddings kept. Returns how many layers were
    packed in 4 and in 8 bits."""
    if next(model.parameters()).dtype != torch.bfloat16:
        raise ValueError("Decoding on packed weights packs a bfloat16 generation copy; load one with "
                         "generation_dtype='bfloat16'.")
    weights = {name: module.weight for name, module in source.named_modules()
               if isinstance(module, torch.nn.Linear)}
    packed = {4: 0, 8: 0}
    for parent_name, parent in list(model.named_modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, torch.nn.Linear) and child.weight.numel() >= PACKED_MIN_WEIGHTS:
                layer = PackedDecodingLinear(child, weights[f"{parent_name}.{name}".lstrip(".")])
                setattr(parent, name, layer)
                packed[layer.bits] += 1
    return packed


class DecodingThreads:
    """Runs ``model``'s decoding steps of up to ``FEWER_THREADS_TOKENS`` tokens on ``threads`` threads and its
    other forward passes on all those torch had when this was made.

    The count is set as the token ids enter the input embeddings: every forward pass of a causal LM starts
    there, also one wrapped by a LoRA adapter, whose ``generate`` calls the inner model. It is set through
    OpenMP in the generating thread alone: ``torch.set_num_threads`` would also store it for every thread
    that starts meanwhile (a server's worker, which would then run the reader on one thread for good).
    """

    def __init__(self, model: torch.nn.Module, threads: int):
        from threadpoolctl import ThreadpoolController

        self.threads, self.all_threads = threads, torch.get_num_threads()
        self.openmp = ThreadpoolController().select(user_api="openmp").lib_controllers
        if not self.openmp:
            logger.info("No OpenMP library found: decoding steps run on all %d threads.", self.all_threads)
            return
        model.get_input_embeddings().register_forward_pre_hook(self._before_forward)

    def _set_threads(self, count: int) -> None:
        for library in self.openmp:
            library.set_num_threads(count)

    def _before_forward(self, module, args) -> None:
        wanted = self.threads if args[0].numel() <= FEWER_THREADS_TOKENS else self.all_threads
        if torch.get_num_threads() != wanted:  # only on a change: resizing the thread team each step costs
            self._set_threads(wanted)

    @contextmanager
    def generating(self) -> Iterator[None]:
        """Around a ``generate`` call: the calling thread has all its threads again afterwards, for the
        embedder and reader that may run on it next."""
        try:
            yield
        finally:
            self._set_threads(self.all_threads)


def cpu_sdpa_attention(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor,
                       value: torch.Tensor, attention_mask: torch.Tensor | None, dropout: float = 0.0,
                       scaling: float | None = None, is_causal: bool | None = None,
                       **kwargs) -> tuple[torch.Tensor, None]:
    """transformers' ``sdpa_attention_forward``, but a decoding step's grouped-query attention runs without
    ``enable_gqa`` (the module docstring); same results. A prompt's pass goes to that function unchanged."""
    groups = getattr(module, "num_key_value_groups", 1)
    if query.shape[2] != 1 or groups == 1 or kwargs.get("position_bias") is not None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                      scaling=scaling, is_causal=is_causal, **kwargs)
    output = torch.nn.functional.scaled_dot_product_attention(
        pack_gqa(query, groups), key, value, attn_mask=pack_gqa(attention_mask, groups), dropout_p=dropout,
        scale=scaling)
    output = output.reshape(output.shape[0], -1, 1, value.shape[-1])  # undoes pack_gqa
    return output.transpose(1, 2).contiguous(), None


def use_cpu_attention(model: torch.nn.Module) -> bool:
    """Switch ``model`` (a transformers model, or a PEFT model around one) to ``CPU_ATTENTION`` when it uses
    SDPA attention; returns whether it did."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if getattr(base.config, "_attn_implementation", None) != "sdpa":
        return False
    if not base._can_set_attn_implementation():
        return False
    AttentionInterface.register(CPU_ATTENTION, cpu_sdpa_attention)
    AttentionMaskInterface.register(CPU_ATTENTION, sdpa_mask)
    base.set_attn_implementation(CPU_ATTENTION)
    return True

