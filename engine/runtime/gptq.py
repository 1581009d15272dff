"""The GPTQ backend: a folder that ``tutor quantize`` (GPTQModel) wrote, loaded through GPTQModel.

Everything but loading is the HF backend's: GPTQModel returns the transformers model with its
linear layers swapped for packed int4/int8 kernels, so generation and scoring run unchanged.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

from engine.runtime.base import register_backend
from engine.runtime.hf import HFRuntime
from engine.runtime.model_files import quant_method

logger = logging.getLogger(__name__)

# GPTQModel's CPU thread pool fails on small machines unless its worker count is set (2 on two cores).
MIN_CPU_WORKERS, MAX_CPU_WORKERS = 2, 8
# config.json key naming the input embedding a quantised folder fills from its quantised output head
TIED_EMBEDDING_KEY = "tutor_embedding_from_head"
TORCHAO = "torchao"


class GPTQNotInstalledError(ImportError):
    """The folder is GPTQ-quantised but the optional GPTQModel package is missing."""


def quantization_method(folder: str | Path) -> str | None:
    """The ``quant_method`` in a model folder's config.json (e.g. "gptq"), or None for plain weights."""
    config_file = Path(folder) / "config.json"
    if not config_file.is_file():
        return None
    config = json.loads(config_file.read_text(encoding="utf-8"))
    return quant_method(config.get("quantization_config"))


def defer_torchao() -> None:
    """Keep torchao out of this process until a GPTQ folder is loaded or written.

    transformers (when it loads any model), peft and sentence-transformers import torchao whenever
    it is installed, and the quant extra installs it for GPTQModel: every command that loads a model
    then paid for its import and printed its kernel and torch ``_pytree`` warnings. A ``None`` entry
    in ``sys.modules`` is Python's mark for an absent module, so their probes find no torchao;
    ``import_gptqmodel`` removes the mark first. A no-op once torchao is imported.
    """
    sys.modules.setdefault(TORCHAO, None)


def _undefer_torchao() -> None:
    if TORCHAO in sys.modules and sys.modules[TORCHAO] is None:
        del sys.modules[TORCHAO]


def import_gptqmodel():
    """Import GPTQModel with this machine's settings, or explain how to install it."""
    _undefer_torchao()  # GPTQModel uses torchao's kernels
    workers = max(MIN_CPU_WORKERS, min(os.cpu_count() or MIN_CPU_WORKERS, MAX_CPU_WORKERS))
    os.environ.setdefault("GPTQMODEL_CPU_WORKERS", str(workers))
    try:
        import gptqmodel
    except ImportError as error:
        raise GPTQNotInstalledError(
            "Loading or writing a GPTQ model needs the optional GPTQModel package; install it with "
            "`pip install -e .[quant]` (gptqmodel 7.6.0, which matches torch 2.13)."
        ) from error
    return gptqmodel


@register_backend("gptq")
class GPTQRuntime(HFRuntime):
    """A GPTQ-quantised folder served like any HF folder (see ``HFRuntime`` for the arguments)."""

    def _load_model(self, dtype, load_in_bits: int | None):
        if load_in_bits is not None:
            raise ValueError(
                f"{self.folder} is already GPTQ-quantised; load it without load_in_bits={load_in_bits}."
            )
        gptqmodel = import_gptqmodel()
        import torch

        if self.device.type == "cuda" and dtype == torch.float32:
            dtype = torch.float16  # GPTQ's GPU kernels compute in half precision
        elif self.device.type == "cpu" and dtype == torch.float32:
            # In bfloat16 GPTQModel picks its ATen int4 kernel (TorchAtenLinear). For float32 it picks
            # TorchFusedLinear, which drops the zero points of asymmetric (sym=False) checkpoints and
            # decodes garbage (perplexity in the millions); both kernels multiply in bfloat16 anyway.
            dtype = torch.bfloat16
        wrapper = gptqmodel.GPTQModel.load(str(self.folder), device=str(self.device), dtype=dtype)
        return restore_tied_embedding(wrapper.model).eval()


def restore_tied_embedding(model):
    """Fill the input embedding of a tied model whose folder stores the table once, as the quantised head.

    ``tutor quantize`` drops the float copy (training.quantize.compact_folder); the table is
    de-quantised here once, before the head's first forward pass repacks its weights for the kernel.
    """
    import torch

    if not getattr(model.config, TIED_EMBEDDING_KEY, None):  # config.json's key, kept by the loaded config
        return model
    embedding = model.get_input_embeddings()
    with torch.no_grad():
        table = model.get_output_embeddings().dequantize_weight().T  # (in, out) -> (vocabulary, hidden)
        embedding.weight.data = table.to(embedding.weight.dtype).contiguous()
    return model
