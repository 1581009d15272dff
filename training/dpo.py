"""DPO (sigmoid, IPO, hinge, conservative) with LoRA, DoRA or QLoRA on TRL's DPOTrainer.

The reference policy is never a second copy of the weights: with a fresh adapter it is the base
model with the adapter disabled; starting from an SFT adapter (``init_adapter``) TRL keeps a frozen
copy of that small adapter only. With ``precompute_reference`` the reference log-probabilities are
computed once before training instead of at every step. In float32 they equal the per-step values
bit for bit; under bf16 or fp16 they carry the rounding of other batch shapes than the training
step's (0.16 nats per answer on average, up to 0.6, in bench/dpo_throughput.py on a CPU), so the
first training loss is near log 2, not exactly log 2. With ``share_prompt`` a pair runs as one row,
its prompt once (``training.shared_prompt``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from training.errors import RecipeError
from training.modeling import lora_config
from training.recipes import DPORecipe
from training.runs import common_arguments, train_and_record

logger = logging.getLogger(__name__)


def dpo_loss_settings(loss: str, label_smoothing: float) -> dict[str, Any]:
    """DPOConfig loss fields for a recipe's loss.

    TRL 1.x ignores ``label_smoothing`` in the sigmoid loss. Conservative DPO,
    ``(1 - e) * L(d) + e * L(-d)`` with ``L(d) = -log sigmoid(beta * d)``, equals
    ``2 (1 - e) * sigmoid - (1 - 2e) * robust`` in TRL's terms, since its robust loss is
    ``((1 - e) L(d) - e L(-d)) / (1 - 2e)``; that weighted pair is what we ask for.
    """
    if loss == "sigmoid" and label_smoothing > 0:
        return {
            "loss_type": ["sigmoid", "robust"],
            "loss_weights": [2 * (1 - label_smoothing), -(1 - 2 * label_smoothing)],
            "label_smoothing": label_smoothing,
        }
    return {"loss_type": [loss], "label_smoothing": 0.0}


def dpo_config(recipe: DPORecipe, checkpoints: Path, has_eval: bool) -> Any:
    from trl import DPOConfig

    return DPOConfig(
        **common_arguments(recipe, checkpoints, has_eval),
        **dpo_loss_settings(recipe.loss, recipe.label_smoothing),
        beta=recipe.beta,
        precompute_ref_log_probs=recipe.precompute_reference,
        precompute_ref_batch_size=2 * recipe.batch_size,  # = the evaluation batch (see common_arguments)
    )


def pair_lengths(dataset: Any, shared_prompt: bool = False) -> list[int]:
    """Tokens of each tokenized pair's row: its prompt and its longer answer, or (``shared_prompt``)
    its packed row, the prompt once and both answers."""
    columns = zip(dataset["prompt_ids"], dataset["chosen_ids"], dataset["rejected_ids"], strict=True)
    if shared_prompt:
        return [len(p) + len(c) + 1 + len(r) for p, c, r in columns]
    return [len(p) + max(len(c), len(r)) for p, c, r in columns]


def tutor_dpo_trainer_class(group_by_length: bool, shared_prompt: bool = False) -> type:
    """DPOTrainer that precomputes the reference over length-sorted pairs and can length-group training.

    Sorting the precompute pass cuts its padding (it runs once, so its batches need not match the
    training batches). Length-grouped training batches need their own sampler: transformers'
    ``group_by_length`` reads ``input_ids``, which a tokenized preference dataset does not have.
    With ``shared_prompt`` each pair is one packed row (``training.shared_prompt``); that needs the
    precomputed reference, since TRL's per-step reference pass would read the two-row batch.
    """
    import torch
    from transformers.trainer_pt_utils import LengthGroupedSampler
    from trl import DPOTrainer

    from training.shared_prompt import PackedPairsModel, SharedPromptCollator

    class TutorDPOTrainer(DPOTrainer):
        def _precompute_ref_logps(self, dataset, name, batch_size):
            if shared_prompt and not isinstance(self.data_collator, SharedPromptCollator):
                # TRL builds its collator and precomputes within __init__: the first moment to swap it.
                self.data_collator = SharedPromptCollator.like(self.data_collator)
            lengths = pair_lengths(dataset, shared_prompt)
            order = sorted(range(len(dataset)), key=lengths.__getitem__)
            computed = super()._precompute_ref_logps(dataset.select(order), name, batch_size)
            position = {index: rank for rank, index in enumerate(order)}
            return computed.select([position[index] for index in range(len(dataset))])

        def compute_ref_log_probs(self, model, inputs):
            return super().compute_ref_log_probs(packed_if_possible(model, inputs), inputs)

        def _compute_loss(self, model, inputs, return_outputs):
            return super()._compute_loss(packed_if_possible(model, inputs), inputs, return_outputs)

        def _get_train_sampler(self, train_dataset=None):
            if not group_by_length:
                return super()._get_train_sampler(train_dataset)
            dataset = train_dataset if train_dataset is not None else self.train_dataset
            generator = torch.Generator().manual_seed(self.args.seed)
            return LengthGroupedSampler(
                self.args.train_batch_size * self.args.gradient_accumulation_steps,
                lengths=pair_lengths(dataset, shared_prompt),
                generator=generator,
            )

    def packed_if_possible(model, inputs):
        return PackedPairsModel(model) if "packed_input_ids" in inputs else model

    return TutorDPOTrainer


def build_dpo_trainer(
    recipe: DPORecipe, model: Any, tokenizer: Any, train: Any, validation: Any | None, checkpoints: Path
) -> Any:
    """The configured DPOTrainer (length-grouped when the recipe asks)."""
    from peft import PeftModel

    trainer_class = tutor_dpo_trainer_class(recipe.group_by_length, recipe.share_prompt)
    peft_config = None if isinstance(model, PeftModel) else lora_config(recipe.adapter, model)
    return trainer_class(
        model=model,
        args=dpo_config(recipe, checkpoints, validation is not None),
        train_dataset=train,
        eval_dataset=validation,
        processing_class=tokenizer,
        peft_config=peft_config,
    )


def run_dpo(recipe: DPORecipe) -> Path:
    """Train a DPO adapter as the recipe says; returns the adapter folder (``<output_dir>/adapter``)."""
    if recipe.task != "dpo":
        raise RecipeError(f"run_dpo needs a recipe with task dpo, not {recipe.task!r}.")
    return train_and_record(recipe, build_dpo_trainer)
