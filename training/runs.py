"""What SFT and DPO runs share: data preparation, trainer arguments, resuming and the run record."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from training.cleaning import (
    CleaningReport,
    TokenCounter,
    TokenizerCounter,
    clean,
    merge_sources,
    split_by_group,
)
from training.data.readers import read_dataset
from training.data.schema import PreferencePair, SFTExample
from training.errors import TrainingError
from training.modeling import changed_share, load_for_training, trainable_state
from training.recipes import Recipe
from training.reporting import first_and_last, plot_curves, write_log, write_summary

logger = logging.getLogger(__name__)


@dataclass
class PreparedData:
    """The cleaned splits of a run and the report of how they were made."""

    splits: dict[str, list[Any]]
    report: CleaningReport = field(default_factory=CleaningReport)


def prepare_data(recipe: Recipe, counter: TokenCounter | None = None) -> PreparedData:
    """Read every dataset, clean each source, merge with caps, split by question.

    An SFT run accepts preference data too and learns its chosen answers.
    """
    report = CleaningReport()
    sources: dict[str, list[Any]] = {}
    wanted = SFTExample if recipe.task == "sft" else PreferencePair
    for spec in recipe.datasets:
        result = read_dataset(spec.path, spec.format, spec.on_error, source=spec.name)
        report.bad_rows += len(result.bad_rows)
        rows = result.rows
        if recipe.task == "sft":
            rows = [_as_sft(row) for row in rows if not getattr(row, "tie", False)]
        if not rows or not all(isinstance(row, wanted) for row in rows):
            raise TrainingError(
                f"Dataset {spec.path} gave no {wanted.__name__} rows for a {recipe.task} run; "
                f"give {'SFT' if recipe.task == 'sft' else 'preference'} data or set its format."
            )
        cleaned, _ = clean(rows, recipe.cleaning, counter, report, prefix=f"{spec.name}: ")
        sources[spec.name] = sources.get(spec.name, []) + cleaned
    merged = merge_sources(sources, {s.name: s.share for s in recipe.datasets}, recipe.cleaning.seed, report)
    splits = split_by_group(merged, recipe.split, recipe.cleaning.seed)
    report.splits = {name: len(rows) for name, rows in splits.items()}
    if not splits["train"]:
        raise TrainingError("Cleaning left no training rows; loosen the cleaning rules or add data.")
    return PreparedData(splits, report)


def _as_sft(row: Any) -> Any:
    """SFT runs learn the preferred answer of a preference pair (ties are left out before this)."""
    if isinstance(row, PreferencePair):
        return SFTExample(prompt=row.prompt, completion=row.chosen, group=row.group, source=row.source,
                          origin=row.origin)
    return row


def write_splits(data: PreparedData, folder: Path) -> None:
    """The cleaned splits as JSONL (TRL format plus the group), so evaluations can reuse them."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in data.splits.items():
        with (folder / f"{name}.jsonl").open("w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(
                    json.dumps({**row.to_trl(), "question_id": row.group}, ensure_ascii=False) + "\n"
                )


def to_dataset(rows: list[Any], chat: bool) -> Any:
    """A datasets.Dataset in TRL's format; ``chat`` wraps plain-text prompts as a user message."""
    from datasets import Dataset

    return Dataset.from_list([row.to_trl(chat) for row in rows])


def checkpointing_argument() -> str:
    """TrainingArguments' name for gradient checkpointing: transformers 5 renamed it
    ``activation_checkpointing``, and the old name (TRL's configs set it) warns on every run."""
    from dataclasses import fields

    from transformers import TrainingArguments

    names = {f.name for f in fields(TrainingArguments)}
    return "activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing"


def common_arguments(recipe: Recipe, checkpoints: Path, has_eval: bool) -> dict[str, Any]:
    """TrainingArguments fields shared by SFTConfig and DPOConfig."""
    return {
        "output_dir": str(checkpoints),
        "per_device_train_batch_size": recipe.batch_size,
        # Twice the batch without gradients; DPO precomputes the reference with the same batches, so an
        # untrained policy scores exactly zero reward (equal shapes, equal rounding).
        "per_device_eval_batch_size": 2 * recipe.batch_size,
        "gradient_accumulation_steps": recipe.gradient_accumulation,
        "learning_rate": recipe.learning_rate,
        "lr_scheduler_type": recipe.lr_scheduler
        if recipe.lr_scheduler != "constant"
        else "constant_with_warmup",
        "warmup_steps": recipe.warmup_ratio,
        "num_train_epochs": recipe.epochs,
        "max_steps": recipe.max_steps,
        checkpointing_argument(): recipe.gradient_checkpointing,
        "bf16": recipe.precision == "bf16",
        "fp16": recipe.precision == "fp16",
        "seed": recipe.seed,
        "logging_steps": recipe.logging_steps,
        "logging_first_step": True,
        "eval_strategy": "steps" if has_eval else "no",
        "eval_steps": recipe.eval_steps,
        "eval_on_start": has_eval,
        "save_strategy": "steps",
        "save_steps": recipe.save_steps,
        "save_total_limit": 2,
        "report_to": "none",
        "max_length": recipe.max_length,
        "disable_tqdm": True,
        "dataloader_pin_memory": _has_gpu(),
        "use_cpu": not _has_gpu(),  # transformers refuses bf16 on CPU unless told it is CPU training
    }


def _has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def last_checkpoint(recipe: Recipe, checkpoints: Path) -> str | None:
    """The checkpoint to resume from, when resuming is on and one exists."""
    if not recipe.resume or not checkpoints.is_dir():
        return None
    from transformers.trainer_utils import get_last_checkpoint

    found = get_last_checkpoint(str(checkpoints))
    if found:
        logger.info("Resuming from %s.", found)
    return found


def save_adapter(trainer: Any, tokenizer: Any, folder: Path) -> Path:
    """The trained adapter (the 'default' one only) and the tokenizer, ready for merge or eval."""
    model = trainer.accelerator.unwrap_model(trainer.model)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, selected_adapters=["default"])
    tokenizer.save_pretrained(folder)
    return folder


def finish_run(
    recipe: Recipe, trainer: Any, data: PreparedData, extra: dict[str, Any], started: float
) -> dict[str, Any]:
    """Write the log, curves and summary of a finished run; returns the summary."""
    folder = recipe.output_path
    history = trainer.state.log_history
    write_log(history, folder / "training_log.jsonl")
    plots = plot_curves(history, folder)
    summary: dict[str, Any] = {
        "task": recipe.task,
        "output_dir": str(folder),
        "adapter": str(folder / "adapter"),
        "steps": trainer.state.global_step,
        "seconds": round(time.perf_counter() - started, 1),
        "splits": data.report.splits,
        "bad_rows": data.report.bad_rows,
        "plots": [p.name for p in plots],
    }
    for key in ("loss", "eval_loss", "rewards/accuracies", "eval_rewards/accuracies", "eval_rewards/margins"):
        points = first_and_last(history, key)
        if points:
            summary[key] = points
    summary.update(extra)
    summary["cleaning_markdown"] = data.report.to_markdown()
    write_summary(folder, summary)
    return summary


def start_run(recipe: Recipe) -> Path:
    """Create the output folder and record the resolved recipe in it."""
    folder = recipe.output_path
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "recipe.yaml").write_text(yaml.safe_dump(recipe.to_dict(), sort_keys=False), encoding="utf-8")
    return folder


def _evaluate_test(trainer: Any, test: Any) -> dict[str, Any]:
    """Loss and reward metrics on the held-out test split, kept out of the validation log.

    TRL logs an evaluation's reward metrics under ``eval_`` whatever the prefix, so the entries
    this evaluation adds to the log history are taken out again and returned instead.
    """
    logged = len(trainer.state.log_history)
    metrics = dict(trainer.evaluate(test, metric_key_prefix="test"))
    for entry in trainer.state.log_history[logged:]:
        metrics.update(entry)
    del trainer.state.log_history[logged:]
    return {key.removeprefix("test_").removeprefix("eval_"): value for key, value in metrics.items()
            if key == "test_loss" or "rewards/" in key or "logps/" in key}


def _evaluated_at(trainer: Any, step: int) -> bool:
    return any(e.get("step") == step and "eval_loss" in e for e in trainer.state.log_history)


def train_and_record(recipe: Recipe, build_trainer: Callable[..., Any]) -> Path:
    """Prepare data, train (resuming when a checkpoint exists), save the adapter and the run record.

    ``build_trainer(recipe, model, tokenizer, train, validation, checkpoints)`` returns the TRL trainer.
    """
    started = time.perf_counter()
    folder = start_run(recipe)
    model, tokenizer, base = load_for_training(recipe)
    data = prepare_data(recipe, TokenizerCounter(tokenizer, chat=recipe.chat_template))
    write_splits(data, folder / "data")
    splits = {
        name: to_dataset(rows, recipe.chat_template) if rows else None for name, rows in data.splits.items()
    }
    checkpoints = folder / "checkpoints"
    trainer = build_trainer(recipe, model, tokenizer, splits["train"], splits["validation"], checkpoints)
    before = trainable_state(trainer.model)
    trainer.train(resume_from_checkpoint=last_checkpoint(recipe, checkpoints))
    if splits["validation"] is not None and not _evaluated_at(trainer, trainer.state.global_step):
        trainer.evaluate()  # the curves and summary end on the final model's validation metrics
    adapter = save_adapter(trainer, tokenizer, folder / "adapter")
    extra: dict[str, Any] = {
        "base_model": str(base),
        "trainable_changed": changed_share(before, trainable_state(trainer.model)),
    }
    if splits["test"] is not None:
        extra["test"] = _evaluate_test(trainer, splits["test"])
    finish_run(recipe, trainer, data, extra, started)
    logger.info("%s adapter written to %s.", recipe.task.upper(), adapter)
    return adapter
