"""Merge a LoRA/DoRA adapter into its base model: a full HF folder that ``tutor serve --model`` loads."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

from training.errors import TrainingError

logger = logging.getLogger(__name__)


def adapter_base(adapter_dir: Path) -> str:
    """The base model folder an adapter was trained on (from its adapter_config.json)."""
    from engine.runtime.models import adapter_base as named_base

    base = named_base(adapter_dir)
    if base is None:
        raise TrainingError(
            f"{adapter_dir} is not an adapter folder (no adapter_config.json); give the "
            "'adapter' folder a training run wrote."
        )
    return base


def merge_adapter(
    adapter_dir: str | Path,
    out_dir: str | Path,
    base: str | Path | None = None,
    data_dir: str | Path | None = None,
) -> Path:
    """Merge ``adapter_dir`` into its base model (float32) and save model + tokenizer to ``out_dir``.

    The base is read from the adapter's config unless ``base`` is given. A 4-bit (QLoRA) adapter
    merges into the full-precision base. The folder is written next to ``out_dir`` and renamed into
    place, so an interrupted merge leaves no half folder.
    """
    adapter_dir, out_dir = Path(adapter_dir), Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise TrainingError(f"{out_dir} already exists and is not empty; choose another --out or remove it.")
    base_name = base or adapter_base(adapter_dir)

    import torch
    from peft import PeftModel

    from engine.runtime.model_files import load_tokenizer, publishing
    from training.modeling import load_base_model, resolve_model_folder

    base_folder = resolve_model_folder(base_name, data_dir)
    model = PeftModel.from_pretrained(load_base_model(base_folder), adapter_dir)
    merged = model.merge_and_unload()
    merged.to(torch.float32)
    tokenizer_source = adapter_dir if (adapter_dir / "tokenizer_config.json").exists() else base_folder
    with publishing(out_dir) as folder:
        merged.save_pretrained(folder)
        load_tokenizer(tokenizer_source).save_pretrained(folder)
    logger.info("Merged %s into %s; saved to %s.", adapter_dir, base_folder, out_dir)
    return out_dir


# Adapter settings that must agree for two adapters to stack into one.
STACKABLE_KEYS = ("peft_type", "target_modules", "layers_to_transform", "layers_pattern", "bias",
                  "modules_to_save", "fan_in_fan_out")


def _lora_scale(config: dict[str, Any]) -> float:
    rank = config["r"]
    return config["lora_alpha"] / (math.sqrt(rank) if config.get("use_rslora") else rank)


def stack_adapters(first: str | Path, second: str | Path, out_dir: str | Path, *,
                   base: str | None = None) -> Path:
    """One LoRA adapter on ``first``'s base (or ``base``, as the config names it) equal to merging
    ``first``, then ``second``.

    ``second`` was trained on the model with ``first`` merged (the pipeline's DPO on its SFT model).
    Merging adds ``s1·B1·A1 + s2·B2·A2`` to each weight, which is exactly one adapter of rank
    ``r1 + r2`` with ``A = [A1; A2]``, ``B = [s1·B1, s2·B2]`` and scale 1: the repository ships that
    single adapter. DoRA and per-module ranks do not add up this way and are refused.
    """
    import torch
    from safetensors.torch import load_file, save_file

    from engine.runtime.model_files import publishing
    from engine.runtime.models import ADAPTER_WEIGHTS as WEIGHTS

    folders = [Path(first), Path(second)]
    for folder in folders:
        if not (folder / "adapter_config.json").is_file() or not (folder / WEIGHTS).is_file():
            raise TrainingError(f"{folder} is not a saved LoRA adapter (adapter_config.json and {WEIGHTS}).")
    configs = [json.loads((f / "adapter_config.json").read_text(encoding="utf-8")) for f in folders]
    if any(c.get("use_dora") or c.get("rank_pattern") or c.get("alpha_pattern") for c in configs):
        raise TrainingError("Only plain LoRA adapters stack into one: DoRA and per-module ranks do not "
                            "add up.")
    differ = [key for key in STACKABLE_KEYS if _setting(configs[0], key) != _setting(configs[1], key)]
    if differ:
        raise TrainingError(f"{first} and {second} differ in {', '.join(differ)}; train both with the same "
                            "adapter settings (target_modules, top_layers) to stack them.")
    weights = [load_file(folder / WEIGHTS) for folder in folders]
    if weights[0].keys() != weights[1].keys():
        raise TrainingError(f"{first} and {second} adapt different modules; they cannot stack into one.")
    scales = [_lora_scale(c) for c in configs]
    stacked = {}
    for key, a in weights[0].items():
        b = weights[1][key]
        if ".lora_A." in key:
            stacked[key] = torch.cat([a, b], dim=0).contiguous()
        elif ".lora_B." in key:
            stacked[key] = torch.cat([a * scales[0], b * scales[1]], dim=1).contiguous()
        else:
            raise TrainingError(f"{key} is not a LoRA A or B matrix; only LoRA weights stack.")
    rank = configs[0]["r"] + configs[1]["r"]
    config = dict(configs[0], r=rank, lora_alpha=rank, use_rslora=False)
    if base is not None:
        config["base_model_name_or_path"] = base
    out_dir = Path(out_dir)
    with publishing(out_dir) as folder:
        save_file(stacked, str(folder / WEIGHTS))
        (folder / "adapter_config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    logger.info("Stacked %s and %s into one rank-%d adapter in %s.", first, second, rank, out_dir)
    return out_dir


def _setting(config: dict[str, Any], key: str) -> Any:
    value = config.get(key)
    return sorted(value) if isinstance(value, list) else value  # PEFT saves module sets in any order
