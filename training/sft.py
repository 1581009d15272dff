"""Supervised fine-tuning with a LoRA, DoRA or QLoRA adapter on TRL's SFTTrainer.

Rows are prompt/completion pairs (text or chat), so the loss covers the answer only.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from training.errors import RecipeError
from training.modeling import lora_config
from training.recipes import SFTRecipe
from training.runs import common_arguments, train_and_record

logger = logging.getLogger(__name__)


def sft_config(recipe: SFTRecipe, checkpoints: Path, has_eval: bool) -> Any:
    from trl import SFTConfig

    return SFTConfig(
        **common_arguments(recipe, checkpoints, has_eval),
        train_sampling_strategy="group_by_length" if recipe.group_by_length else "random",
        packing=False,
        completion_only_loss=True,
    )


def build_sft_trainer(
    recipe: SFTRecipe, model: Any, tokenizer: Any, train: Any, validation: Any | None, checkpoints: Path
) -> Any:
    from trl import SFTTrainer

    return SFTTrainer(
        model=model,
        args=sft_config(recipe, checkpoints, validation is not None),
        train_dataset=train,
        eval_dataset=validation,
        processing_class=tokenizer,
        peft_config=lora_config(recipe.adapter, model),
    )


def run_sft(recipe: SFTRecipe) -> Path:
    """Train an SFT adapter as the recipe says; returns the adapter folder (``<output_dir>/adapter``)."""
    if recipe.task != "sft":
        raise RecipeError(f"run_sft needs a recipe with task sft, not {recipe.task!r}.")
    return train_and_record(recipe, build_sft_trainer)
