"""The shipped tutor model: the repository's LoRA adapter (``models/tutor-lora``) merged into the packaged
SmolLM2-135M-Instruct and GPTQ-quantised once, cached in the data directory.

The adapter is small enough to live in git; the 4-bit model is built from it on each machine by
`tutor build-model`, so the served weights always come from the committed adapter and its recorded
recipe. ``engine.runtime.models.shipped_model_folder`` names the cache folder, so the server finds it
without importing training code. (No adapter ships yet: the first full run answered worse than the
stock model.)
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from engine.runtime.models import SHIPPED_ADAPTER, STOCK_MODEL, shipped_model_folder
from training.data.grounded import CALIBRATION_FILE
from training.errors import TrainingError

logger = logging.getLogger(__name__)

# GPTQ took 15 min on 2 cores with 128 chunk-sized texts (the pipeline's); the set-up build takes fewer.
CALIBRATION_TEXTS, HELDOUT_TEXTS = 32, 16


def build_shipped_model(data_dir: str | Path, *, adapter: Path = SHIPPED_ADAPTER, target: Path | None = None,
                        device: str = "cpu", progress: Callable[[int, int], None] | None = None) -> Path:
    """The 4-bit tutor model's folder, built now (merge, then GPTQ behind its quality gate) if missing.

    ``target`` defaults to the data directory's cache that ``TUTOR_MODEL=tutor`` loads. ``progress(done,
    total)`` hears of each finished stage. A failed or killed build leaves no folder behind (both stages
    publish by renaming), so the next call starts over.
    """
    from training.evaluate import read_texts, split_texts
    from training.merge import merge_adapter
    from training.quantize import QuantizeRecipe, quantize_model

    if not (adapter / "adapter_config.json").is_file():
        raise TrainingError(f"{adapter} holds no LoRA adapter (adapter_config.json); check out the "
                            "repository's models/tutor-lora, or set TUTOR_MODEL to another model.")
    target = target or shipped_model_folder(data_dir, adapter)
    if (target / "quantize_config.json").is_file():
        return target
    texts = read_texts(adapter / CALIBRATION_FILE)
    calibration, heldout = split_texts(texts, CALIBRATION_TEXTS, HELDOUT_TEXTS)
    update = progress or (lambda done, total: None)
    update(0, 2)
    logger.info("Building the tutor model once: %s merged into SmolLM2-135M-Instruct, then GPTQ 4-bit, "
                "into %s.", adapter, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        merged = merge_adapter(adapter, Path(scratch) / "merged", base=STOCK_MODEL, data_dir=data_dir)
        update(1, 2)
        quantize_model(merged, target, calibration, heldout, QuantizeRecipe(), data_dir=data_dir,
                       device=device)
        shutil.rmtree(merged, ignore_errors=True)
    update(2, 2)
    return target
