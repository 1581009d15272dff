"""Small helpers for model folders, shared by the runtime and by training (merge, GPTQ, QLoRA).

Each answers one question once: a converted GGUF folder's stale quantisation note, publishing a
folder only when it is complete, a tokenizer without a padding token, the bitsandbytes settings,
and what device "auto" means on this machine.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

BITSANDBYTES_BITS = (4, 8)


def quant_method(quantization: Any) -> str | None:
    """The ``quant_method`` of a quantisation config (a dict or a transformers config object), lowercase."""
    if not quantization:
        return None
    method = (quantization.get("quant_method") if isinstance(quantization, dict)
              else getattr(quantization, "quant_method", None))
    method = getattr(method, "value", method)  # transformers' QuantizationMethod enum
    return str(method).lower() if method else None


def drop_gguf_note(config: Any) -> Any:
    """``config`` without the ``quantization_config`` a folder converted from GGUF keeps.

    Converting de-quantises the weights, so the saved folder holds plain floats; the note
    ``quant_method: gguf`` stays in config.json, and transformers then refuses a bitsandbytes
    config and GPTQModel refuses the folder. Takes a transformers config or config.json's dict,
    changes it in place and returns it; any other quantisation is kept.
    """
    if isinstance(config, dict):
        if quant_method(config.get("quantization_config")) == "gguf":
            config.pop("quantization_config")
    elif quant_method(getattr(config, "quantization_config", None)) == "gguf":
        del config.quantization_config
    return config


def load_plain_config(folder: str | Path) -> Any:
    """The model folder's config, without a stale GGUF note (see ``drop_gguf_note``)."""
    from transformers import AutoConfig

    return drop_gguf_note(AutoConfig.from_pretrained(folder))


@contextmanager
def publishing(target: str | Path) -> Iterator[Path]:
    """Write a folder as ``<target>.partial`` and rename it to ``target`` once the block succeeds.

    The rename is atomic, so a killed or failed write never leaves a half folder at ``target``;
    an error inside the block removes the partial folder. ``target`` may exist if it is empty.

    >>> with publishing(out) as folder:       # doctest: +SKIP
    ...     model.save_pretrained(folder)
    """
    target = Path(target)
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        yield partial
        if target.exists():
            target.rmdir()  # an empty folder: callers refuse a non-empty one before writing
        partial.rename(target)
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def with_pad_token(tokenizer: Any) -> Any:
    """``tokenizer`` with a padding token: its EOS token when it has none (batches need one)."""
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_tokenizer(folder: str | Path) -> Any:
    """The folder's tokenizer, with a padding token (see ``with_pad_token``)."""
    from transformers import AutoTokenizer

    return with_pad_token(AutoTokenizer.from_pretrained(folder))


def bitsandbytes_config(bits: int, compute_dtype: Any, *, quant_type: str = "fp4",
                        double_quant: bool = False) -> Any:
    """The transformers ``BitsAndBytesConfig`` that loads linear layers in 4 or 8 bits.

    Args:
        bits: 4 or 8.
        compute_dtype: the dtype 4-bit layers compute in (a torch dtype or its name, e.g. "bfloat16").
        quant_type: the 4-bit data type, "fp4" (transformers' default) or "nf4".
        double_quant: also quantise the 4-bit scales (QLoRA's double quantisation).
    """
    import torch
    from transformers import BitsAndBytesConfig

    if bits not in BITSANDBYTES_BITS:
        raise ValueError(f"bitsandbytes loads weights in 4 or 8 bits, not {bits}; set 4, 8, or no bits.")
    if isinstance(compute_dtype, str):
        compute_dtype = getattr(torch, compute_dtype)
    return BitsAndBytesConfig(load_in_4bit=bits == 4, load_in_8bit=bits == 8,
                              bnb_4bit_compute_dtype=compute_dtype, bnb_4bit_quant_type=quant_type,
                              bnb_4bit_use_double_quant=double_quant)


def resolve_device(device: str) -> str:
    """``device`` as torch names it: "auto" becomes "cuda" when a GPU is visible, else "cpu"."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
