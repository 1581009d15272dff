"""Merge a LoRA/DoRA adapter into its base model: a full HF folder that ``tutor serve --model`` loads."""

from __future__ import annotations

import logging
from pathlib import Path

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
