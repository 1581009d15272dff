"""Loading models for training: the base model (optionally 4-bit), its tokenizer, and LoRA configs.

Paths resolve through ``engine.runtime.models.resolve_llm_folder``, so a GGUF file and the packaged
default work as they do in the service.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from training.errors import TrainingError
from training.recipes import AdapterConfig, QuantizationConfig, Recipe

logger = logging.getLogger(__name__)


def resolve_model_folder(model: str | Path | None, data_dir: str | Path | None = None) -> Path:
    """The HF folder for ``model`` (a folder, a .gguf file, or None for the packaged default)."""
    from engine.runtime.models import default_data_dir, resolve_llm_folder

    return resolve_llm_folder(model, data_dir or default_data_dir())


def bnb_config(quant: QuantizationConfig) -> Any:
    """The recipe's 4-bit bitsandbytes settings (QLoRA)."""
    from engine.runtime.model_files import bitsandbytes_config

    return bitsandbytes_config(4, quant.compute_dtype, quant_type=quant.quant_type,
                               double_quant=quant.double_quant)


def load_base_model(folder: Path, quant: QuantizationConfig | None = None) -> Any:
    """A causal LM in float32, or with 4-bit linear layers when ``quant.load_in_4bit``."""
    import torch
    from transformers import AutoModelForCausalLM

    from engine.runtime.model_files import load_plain_config

    kwargs: dict[str, Any] = {"config": load_plain_config(folder), "dtype": torch.float32}
    if quant is not None and quant.load_in_4bit:
        kwargs["quantization_config"] = bnb_config(quant)
    model = AutoModelForCausalLM.from_pretrained(folder, **kwargs)
    if quant is not None and quant.load_in_4bit:
        disable_cpu_weight_repacking(model)
    return model


def disable_cpu_weight_repacking(model: Any) -> int:
    """Keep bitsandbytes' 4-bit weights trainable on CPUs with AVX512-BF16.

    ``bitsandbytes.nn.Linear4bit.forward`` (0.50) repacks the weight *in place* into an
    inference-only layout the first time it runs on CPU with ``not self.training`` and an input
    that does not require grad (any ``model.eval()`` + ``torch.no_grad()`` pass: evaluation, a
    reference forward). From then on ``matmul_4bit`` routes every call, in training too, to the
    fused ``gemv_4bit`` kernel, which has no backward: gradients stop at each 4-bit layer, the LoRA
    adapters of earlier layers get none, and training silently stops learning. Clearing the
    per-module ``support_avx512bf16_for_cpu`` flag keeps the trainable layout; weights already
    repacked are converted back. Returns the number of layers converted back.
    """
    try:
        from bitsandbytes.functional import _convert_weight_packed_for_cpu_inverse
        from bitsandbytes.nn import Linear4bit
    except ImportError:
        return 0
    restored = 0
    for module in model.modules():
        if not isinstance(module, Linear4bit):
            continue
        module.support_avx512bf16_for_cpu = False
        state = getattr(module.weight, "quant_state", None)
        if state is not None and getattr(state, "packing_format_for_cpu", False):
            module.weight.data, state = _convert_weight_packed_for_cpu_inverse(module.weight.data, state)
            module.weight.quant_state = state
            module.quant_state = state
            restored += 1
    return restored


def lora_config(adapter: AdapterConfig, model: Any | None = None) -> Any:
    """PEFT's LoraConfig; with ``adapter.top_layers``, ``model`` tells which layers are the last ones."""
    from peft import LoraConfig

    targets, layers = adapter.target_modules, None
    if adapter.top_layers is not None and model is not None:
        count = model.config.num_hidden_layers
        layers = list(range(max(0, count - adapter.top_layers), count))
        if isinstance(targets, str):  # PEFT takes a layer subset only with module names, not "all-linear"
            targets = decoder_linear_names(model)
    return LoraConfig(
        r=adapter.r,
        lora_alpha=adapter.alpha,
        lora_dropout=adapter.dropout,
        target_modules=targets,
        layers_to_transform=layers,
        layers_pattern="layers" if layers is not None else None,
        use_rslora=adapter.use_rslora,
        use_dora=adapter.use_dora,
        bias="none",
        task_type="CAUSAL_LM",
    )


def decoder_linear_names(model: Any) -> list[str]:
    """The names of the linear layers inside the decoder layers (q_proj, ..., down_proj): what
    "all-linear" adapts, without the output head."""
    import torch

    return sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules()
                   if isinstance(module, torch.nn.Linear) and re.search(r"(^|\.)layers\.\d+\.", name)})


def load_for_training(recipe: Recipe) -> tuple[Any, Any, Path]:
    """(model, tokenizer, base folder) of a recipe; with ``init_adapter``, a trainable PeftModel."""
    from engine.runtime.model_files import load_tokenizer

    folder = resolve_model_folder(recipe.model, recipe.data_dir)
    tokenizer = load_tokenizer(folder)
    model = load_base_model(folder, recipe.quantization)
    if recipe.init_adapter:
        from peft import PeftModel

        adapter = Path(recipe.init_adapter)
        if not (adapter / "adapter_config.json").exists():
            raise TrainingError(
                f"init_adapter {adapter} has no adapter_config.json; give the folder an SFT "
                "run wrote (its 'adapter' subfolder)."
            )
        logger.info("Starting from adapter %s; the recipe's adapter settings are not used.", adapter)
        model = PeftModel.from_pretrained(model, adapter, is_trainable=True)
    return model, tokenizer, folder


def trainable_state(model: Any) -> dict[str, Any]:
    """A detached copy of the trainable parameters, to check later that training changed them."""
    return {name: p.detach().float().clone() for name, p in model.named_parameters() if p.requires_grad}


def changed_share(before: dict[str, Any], after: dict[str, Any]) -> float:
    """Share of trainable tensors that differ between two snapshots (0 means nothing was learned)."""
    if not before:
        return 0.0
    changed = sum(not before[name].equal(after[name]) for name in before if name in after)
    return changed / len(before)
