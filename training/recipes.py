"""Training recipes: YAML files read into validated dataclasses.

Precedence follows TRL's ``TrlParser``: dataclass defaults < the YAML recipe < command-line
overrides (``key=value``, dotted for nested sections, e.g. ``adapter.r=16``). A key given twice on
the command line is an error that names both values.

>>> recipe = recipe_from_dict({"task": "dpo", "datasets": [{"path": "pairs.jsonl"}]}, ["beta=0.2"])
>>> recipe.beta
0.2
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from training.cleaning import CleaningConfig, SourceShare
from training.errors import RecipeError

LOSSES = ("sigmoid", "ipo", "hinge")
SCHEDULES = ("cosine", "constant", "linear")
PRECISIONS = ("float32", "bf16", "fp16")


@dataclass
class DatasetSpec:
    """One data file and how much of it to use."""

    path: str = field(metadata={"help": "The data file (JSONL, or a JSON array for PandaLM)."})
    format: str = field(
        default="auto",
        metadata={
            "help": "Reader: auto, annotations, pairs, hh, pandalm or sft. 'auto' guesses from the first row."
        },
    )
    name: str = field(
        default="", metadata={"help": "Source name in reports and merge caps; default: file stem."}
    )
    cap: int | None = field(
        default=None, metadata={"help": "Keep at most this many rows of this source: N_i = min(cap, S_i)."}
    )
    fraction: float | None = field(
        default=None, metadata={"help": "Keep this fraction of the source's rows instead of a cap."}
    )
    on_error: Literal["skip", "fail"] = field(
        default="skip",
        metadata={
            "help": "'skip' leaves bad rows out and lists them with file and line; 'fail' stops at the first."
        },
    )

    def __post_init__(self) -> None:
        if self.cap is not None and self.fraction is not None:
            raise RecipeError(f"Dataset {self.path} sets both cap and fraction; keep one of them.")
        if self.cap is not None and self.cap < 1:
            raise RecipeError(f"Dataset {self.path}: cap must be at least 1.")
        if self.fraction is not None and not 0 < self.fraction <= 1:
            raise RecipeError(f"Dataset {self.path}: fraction must be in (0, 1].")
        if self.on_error not in ("skip", "fail"):
            raise RecipeError(f"Dataset {self.path}: on_error must be 'skip' or 'fail'.")
        self.name = self.name or Path(self.path).stem

    @property
    def share(self) -> SourceShare:
        return SourceShare(cap=self.cap, fraction=self.fraction)


@dataclass
class AdapterConfig:
    """The LoRA adapter trained on top of the frozen model."""

    r: int = field(default=16, metadata={"help": "LoRA rank."})
    alpha: int = field(default=32, metadata={"help": "LoRA alpha; the update is scaled by alpha / r."})
    dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA input."})
    target_modules: list[str] | str = field(
        default="all-linear",
        metadata={"help": "Module names to adapt, e.g. [q_proj, v_proj], or 'all-linear'."},
    )
    use_rslora: bool = field(
        default=False,
        metadata={"help": "Rank-stabilised LoRA: scale by alpha / sqrt(r) instead of alpha / r."},
    )
    use_dora: bool = field(
        default=False, metadata={"help": "DoRA: learn a magnitude vector besides the LoRA direction."}
    )

    def __post_init__(self) -> None:
        if self.r < 1:
            raise RecipeError("adapter.r must be at least 1.")
        if self.alpha <= 0:
            raise RecipeError("adapter.alpha must be positive.")
        if not 0 <= self.dropout < 1:
            raise RecipeError("adapter.dropout must be in [0, 1).")


@dataclass
class QuantizationConfig:
    """QLoRA: load the frozen model in 4 bits (bitsandbytes) and train the adapter on top."""

    load_in_4bit: bool = field(
        default=False, metadata={"help": "Load the base model's linear layers in 4 bits."}
    )
    quant_type: Literal["nf4", "fp4"] = field(
        default="nf4", metadata={"help": "4-bit data type; NF4 for QLoRA."}
    )
    double_quant: bool = field(default=True, metadata={"help": "Quantise the quantisation constants too."})
    compute_dtype: Literal["bfloat16", "float32"] = field(
        default="bfloat16", metadata={"help": "Dtype of the de-quantised matmuls."}
    )

    def __post_init__(self) -> None:
        if self.quant_type not in ("nf4", "fp4"):
            raise RecipeError("quantization.quant_type must be nf4 or fp4.")
        if self.compute_dtype not in ("bfloat16", "float32"):
            raise RecipeError("quantization.compute_dtype must be bfloat16 or float32.")


@dataclass
class Recipe:
    """Everything one SFT or DPO run needs. Every field has a default except the data."""

    task: Literal["sft", "dpo"] = field(default="dpo", metadata={"help": "sft or dpo."})
    model: str | None = field(
        default=None,
        metadata={
            "help": "Base model: an HF folder or a .gguf file; null for the packaged SmolLM2-135M-Instruct."
        },
    )
    data_dir: str | None = field(
        default=None,
        metadata={"help": "Where converted GGUF models are cached; null for the tutor's data directory."},
    )
    init_adapter: str | None = field(
        default=None,
        metadata={
            "help": "DPO only: an SFT adapter folder to start from. Training continues that adapter and the "
            "reference is a frozen copy of it (the adapter only, not the model), so the SFT model is "
            "the reference; the recipe's adapter section is then unused."
        },
    )
    datasets: list[DatasetSpec] = field(
        default_factory=list, metadata={"help": "Data files to read and merge."}
    )
    cleaning: CleaningConfig = field(default_factory=CleaningConfig, metadata={"help": "Cleaning steps."})
    split: list[float] = field(
        default_factory=lambda: [0.9, 0.05, 0.05],
        metadata={"help": "Train, validation and test fractions, grouped by question."},
    )
    adapter: AdapterConfig = field(default_factory=AdapterConfig, metadata={"help": "The LoRA adapter."})
    quantization: QuantizationConfig = field(
        default_factory=QuantizationConfig, metadata={"help": "QLoRA settings."}
    )
    chat_template: bool = field(
        default=True,
        metadata={
            "help": "Wrap plain-text prompts as a user message so that the model's chat template frames "
            "them, as the tutor does when it answers."
        },
    )
    loss: str = field(default="sigmoid", metadata={"help": "DPO loss: sigmoid, ipo or hinge."})
    beta: float = field(default=0.1, metadata={"help": "DPO beta (the IPO tau for loss ipo)."})
    label_smoothing: float = field(
        default=0.0,
        metadata={
            "help": "Conservative DPO: the chance that a label is flipped, in [0, 0.5); sigmoid loss only."
        },
    )
    learning_rate: float = field(default=5e-5, metadata={"help": "Peak learning rate of AdamW."})
    lr_scheduler: str = field(
        default="cosine", metadata={"help": "cosine, linear or constant, after warm-up."}
    )
    warmup_ratio: float = field(default=0.1, metadata={"help": "Share of steps spent warming up, in [0, 1)."})
    batch_size: int = field(default=4, metadata={"help": "Pairs (or examples) per device per step."})
    gradient_accumulation: int = field(
        default=1, metadata={"help": "Steps accumulated per optimizer update."}
    )
    epochs: float = field(default=1.0, metadata={"help": "Passes over the training split."})
    max_steps: int = field(default=-1, metadata={"help": "Stop after this many updates; -1 to use epochs."})
    max_length: int = field(default=512, metadata={"help": "Longest tokenized prompt plus answer."})
    gradient_checkpointing: bool = field(
        default=False,
        metadata={"help": "Recompute activations in the backward pass: less memory, about 30% slower."},
    )
    precision: str = field(default="float32", metadata={"help": "float32, bf16 (mixed) or fp16 (GPU)."})
    precompute_reference: bool = field(
        default=True,
        metadata={
            "help": "DPO: compute the reference log-probabilities once before training, not at every step."
        },
    )
    group_by_length: bool = field(
        default=True,
        metadata={"help": "Batch rows of similar length together to waste less compute on padding."},
    )
    share_prompt: bool = field(
        default=True,
        metadata={
            "help": "DPO: run each pair as one row, its prompt once and both answers after it, not as two "
            "rows that repeat the prompt. Needs precompute_reference."
        },
    )
    seed: int = field(default=0, metadata={"help": "Seed of data order, adapter init and cleaning."})
    eval_steps: int = field(
        default=50, metadata={"help": "Evaluate on the validation split every N updates."}
    )
    logging_steps: int = field(default=5, metadata={"help": "Log the training loss every N updates."})
    save_steps: int = field(default=50, metadata={"help": "Save a resumable checkpoint every N updates."})
    output_dir: str = field(default="runs/dpo", metadata={"help": "Where the adapter, logs and plots go."})
    resume: bool = field(
        default=True, metadata={"help": "Resume from the last checkpoint in output_dir when there is one."}
    )

    def __post_init__(self) -> None:
        _check_choice("task", self.task, ("sft", "dpo"))
        _check_choice("loss", self.loss, LOSSES)
        _check_choice("lr_scheduler", self.lr_scheduler, SCHEDULES)
        _check_choice("precision", self.precision, PRECISIONS)
        if not self.datasets:
            raise RecipeError(
                "The recipe names no datasets; add at least one under 'datasets:' with a 'path'."
            )
        for name in (
            "learning_rate",
            "beta",
            "batch_size",
            "gradient_accumulation",
            "epochs",
            "max_length",
            "eval_steps",
            "logging_steps",
            "save_steps",
        ):
            if getattr(self, name) <= 0:
                raise RecipeError(f"{name} must be positive, not {getattr(self, name)}.")
        if not 0 <= self.label_smoothing < 0.5:
            raise RecipeError("label_smoothing must be in [0, 0.5).")
        if self.label_smoothing and self.loss != "sigmoid":
            raise RecipeError(
                f"label_smoothing applies to the sigmoid loss only; set loss: sigmoid or remove "
                f"label_smoothing (loss is {self.loss})."
            )
        if not 0 <= self.warmup_ratio < 1:
            raise RecipeError("warmup_ratio must be in [0, 1).")
        if self.init_adapter and self.task != "dpo":
            raise RecipeError(
                "init_adapter is for DPO runs that start from an SFT adapter; remove it for SFT."
            )
        if self.task == "dpo" and self.share_prompt and not self.precompute_reference:
            raise RecipeError(
                "share_prompt needs precompute_reference: the packed rows come with the reference pass "
                "(TRL's per-step one runs on two rows per pair). Set precompute_reference: true, or "
                "share_prompt: false."
            )
        if len(self.split) != 3 or abs(sum(self.split) - 1) > 1e-6 or min(self.split) < 0:
            raise RecipeError(f"split {self.split} must be three non-negative fractions summing to 1.")

    @property
    def output_path(self) -> Path:
        return Path(self.output_dir)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        near = difflib.get_close_matches(str(value), allowed, n=1)
        hint = f" Did you mean {near[0]!r}?" if near else ""
        raise RecipeError(f"{name} is {value!r}; use one of {', '.join(allowed)}.{hint}")


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """``["adapter.r=8", "beta=0.2"]`` -> nested dict; values are parsed as YAML scalars."""
    nested: dict[str, Any] = {}
    seen: dict[str, str] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip().lstrip("-").replace("-", "_")
        if not sep or not key:
            raise RecipeError(f"Override {item!r} is not key=value, e.g. learning_rate=1e-4 or adapter.r=8.")
        if key in seen:
            raise RecipeError(
                f"{key} is given twice on the command line ({seen[key]!r} and {item!r}); keep one."
            )
        seen[key] = item
        target = nested
        *parents, leaf = key.split(".")
        for part in parents:
            target = target.setdefault(part, {})
        target[leaf] = yaml.safe_load(raw) if raw.strip() else None
    return nested


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _build(cls: type, data: Any, where: str) -> Any:
    """Instantiate dataclass ``cls`` from ``data``, recursing into nested dataclasses and lists of them."""
    if not isinstance(data, dict):
        raise RecipeError(f"{where or 'The recipe'} must be a mapping of keys to values.")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = [key for key in data if key not in fields]
    if unknown:
        near = difflib.get_close_matches(unknown[0], fields, n=1)
        hint = f" Did you mean {near[0]!r}?" if near else ""
        raise RecipeError(f"Unknown recipe key {where + unknown[0]!r}.{hint}")
    values = {}
    for key, value in data.items():
        values[key] = _convert(hints[key], value, f"{where}{key}.")
    try:
        return cls(**values)
    except TypeError as error:
        raise RecipeError(f"{where or 'The recipe'} is incomplete: {error}.") from error


def _convert(hint: Any, value: Any, where: str) -> Any:
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, where)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is list and args and dataclasses.is_dataclass(args[0]):
        if not isinstance(value, list):
            raise RecipeError(f"{where.rstrip('.')} must be a list.")
        return [_build(args[0], item, f"{where}{i}.") for i, item in enumerate(value)]
    numbers = [t for t in (float, int) if t is hint or t in args]
    if numbers and isinstance(value, int | str) and not isinstance(value, bool):
        try:
            return numbers[0](value)  # YAML reads 1e-4 (no dot) as a string
        except ValueError:
            raise RecipeError(f"{where.rstrip('.')} must be a number, not {value!r}.") from None
    return value


def recipe_from_dict(data: dict[str, Any], overrides: list[str] | None = None) -> Recipe:
    """A validated Recipe from a mapping (a parsed YAML file) and command-line overrides."""
    return _build(Recipe, _merge(data or {}, parse_overrides(overrides or [])), "")


def load_recipe(path: str | Path, overrides: list[str] | None = None, task: str | None = None) -> Recipe:
    """Read a YAML recipe; ``task`` (from the command) fills the recipe's task or must agree with it.

    Relative dataset paths are resolved against the recipe file's folder when they exist there.
    """
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"Recipe {path} does not exist; see configs/ for examples.")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise RecipeError(f"Recipe {path} is not valid YAML: {error}") from error
    if task is not None:
        if data.get("task", task) != task:
            raise RecipeError(
                f"Recipe {path} has task {data['task']!r} but was run with `tutor train {task}`; "
                f"use `tutor train {data['task']}` or change the recipe's task."
            )
        data["task"] = task
    for spec in data.get("datasets") or []:
        if isinstance(spec, dict) and "path" in spec and not Path(spec["path"]).is_absolute():
            local = path.parent / spec["path"]
            spec["path"] = str(local) if local.exists() else spec["path"]
    return recipe_from_dict(data, overrides)
