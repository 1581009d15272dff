"""Decoding on a CPU: int8 weights and one thread for the steps that generate token by token.

After the prompt's forward pass, each new token is one forward pass over one token per sequence. On a
CPU that pass is bound by reading the weights and by the overhead of its ~4,000 small operations, not by
arithmetic: the bfloat16 copy that prefills fast on AMX multiplies one row slower than float32, and
under ``OMP_WAIT_POLICY=PASSIVE`` (the tutor's default) waking the second thread for each parallel
operation costs more than it shares. So a step of few tokens reads int8 copies of the linear layers'
weights (``torch._weight_int8pack_mm``, one scale per output row), on ``decode_threads`` threads for one
to four sequences, and the prompt's pass keeps the bfloat16 weights and every thread (README, "Generation
speed on a CPU").
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import torch

logger = logging.getLogger(__name__)

# A forward pass over at most this many tokens (a batch of up to 8 sequences decoding) is a decoding step.
DECODING_TOKENS = 8
# ... and runs on ``decode_threads`` up to this many: 4 sequences decoded in 66 ms a step on one thread and
# 71 ms on two, 8 in 100 ms and 81 ms (int8, OMP_WAIT_POLICY=PASSIVE, two cores).
FEWER_THREADS_TOKENS = 4
# Linear layers smaller than this (a LoRA adapter's A and B) keep their weights: nothing to gain.
PACKED_MIN_WEIGHTS = 65_536


class Int8DecodingLinear(torch.nn.Module):
    """A linear layer that multiplies a decoding step's few rows by int8 weights, the rest by its own.

    The int8 weights round each output row to 255 levels of its largest magnitude; ``linear`` stays for
    the prompt's pass, where bfloat16 matrix units are fast.
    """

    def __init__(self, linear: torch.nn.Linear):
        super().__init__()
        self.linear = linear
        weight = linear.weight.detach().float()
        scale = (weight.abs().amax(dim=1) / 127).clamp(min=torch.finfo(torch.float32).tiny)
        self.register_buffer("int8_weight", (weight / scale[:, None]).round().clamp(-127, 127)
                             .to(torch.int8).contiguous(), persistent=False)
        self.register_buffer("scale", scale.to(linear.weight.dtype), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.numel() // x.shape[-1]
        if rows > DECODING_TOKENS:
            return self.linear(x)
        out = torch._weight_int8pack_mm(x.reshape(rows, x.shape[-1]), self.int8_weight, self.scale)
        out = out.reshape(*x.shape[:-1], out.shape[-1])
        return out if self.linear.bias is None else out + self.linear.bias


def pack_int8_for_decoding(model: torch.nn.Module) -> int:
    """Wrap ``model``'s linear layers (a bfloat16 copy on the CPU) in ``Int8DecodingLinear``, in place; a
    layer sharing its weight with the embeddings (a tied output head) is wrapped too, the embeddings kept.
    Returns how many layers were wrapped."""
    if next(model.parameters()).dtype != torch.bfloat16:
        raise ValueError("int8 decoding packs a bfloat16 generation copy; load one with "
                         "generation_dtype='bfloat16'.")
    wrapped = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, torch.nn.Linear) and child.weight.numel() >= PACKED_MIN_WEIGHTS:
                setattr(parent, name, Int8DecodingLinear(child))
                wrapped += 1
    return wrapped


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
