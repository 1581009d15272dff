"""Training recipes: SFT and DPO runs as validated dataclasses, read by ``training.config``.

As TRL splits ``ModelConfig`` from ``SFTConfig``/``DPOConfig``, what both runs take (model, data,
cleaning, adapter, training arguments) lives in ``Recipe``; ``SFTRecipe`` and ``DPORecipe`` add their
own keys, and an SFT recipe that carries a DPO key (``beta``, ``loss``, ...) is refused.

Precedence follows TRL's ``TrlParser``: dataclass defaults < the YAML recipe < command-line
overrides (``key=value``, dotted for nested sections, e.g. ``adapter.r=16``). A key given twice on
the command line is an error that names both values.

>>> recipe = recipe_from_dict({"task": "dpo", "datasets": [{"path": "pairs.jsonl"}]}, ["beta=0.2"])
>>> recipe.beta
0.2
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from training.cleaning import CleaningConfig, SourceShare
from training.config import Origin, build, check_choice, merge, parse_overrides, read_yaml
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
        check_choice(f"on_error of dataset {self.path}", self.on_error, ("skip", "fail"))
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
    top_layers: int | None = field(
        default=None,
        metadata={"help": "Adapt only the last N decoder layers (null: all). The backward pass then stops "
                  "at the lowest adapted layer, which makes a CPU step much cheaper."},
    )

    def __post_init__(self) -> None:
        if self.top_layers is not None and self.top_layers < 1:
            raise RecipeError("adapter.top_layers must be at least 1, or null for every layer.")
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
        check_choice("quantization.quant_type", self.quant_type, ("nf4", "fp4"))
        check_choice("quantization.compute_dtype", self.compute_dtype, ("bfloat16", "float32"))


@dataclass
class Recipe:
    """What SFT and DPO runs share: model, data, cleaning, adapter and training arguments.

    Build an ``SFTRecipe`` or a ``DPORecipe``; ``recipe_from_dict`` picks one by ``task``.
    """

    TASK: ClassVar[str] = ""

    task: str = field(
        default="",
        metadata={
            "help": "sft or dpo: the trainer that runs the recipe. It must agree with the command "
            "(`tutor train sft|dpo`); empty takes the recipe class's task."
        },
    )
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
    group_by_length: bool = field(
        default=True,
        metadata={"help": "Batch rows of similar length together to waste less compute on padding."},
    )
    seed: int = field(default=0, metadata={"help": "Seed of data order, adapter init and cleaning."})
    eval_steps: int = field(
        default=50, metadata={"help": "Evaluate on the validation split every N updates."}
    )
    logging_steps: int = field(default=5, metadata={"help": "Log the training loss every N updates."})
    save_steps: int = field(default=50, metadata={"help": "Save a resumable checkpoint every N updates."})
    output_dir: str = field(
        default="", metadata={"help": "Where the adapter, logs and plots go; empty for runs/<task>."}
    )
    resume: bool = field(
        default=True, metadata={"help": "Resume from the last checkpoint in output_dir when there is one."}
    )

    def __post_init__(self) -> None:
        self.task = self.task or self.TASK
        check_choice("task", self.task, tuple(RECIPES))
        if RECIPES[self.task] is not type(self):
            raise RecipeError(
                f"task is {self.task!r} but this is a {type(self).__name__}; use "
                f"{RECIPES[self.task].__name__} instead, or let recipe_from_dict pick the class."
            )
        self.output_dir = self.output_dir or f"runs/{self.task}"
        check_choice("lr_scheduler", self.lr_scheduler, SCHEDULES)
        check_choice("precision", self.precision, PRECISIONS)
        if not self.datasets:
            raise RecipeError(
                "The recipe names no datasets; add at least one under 'datasets:' with a 'path'."
            )
        self._check_positive(
            "learning_rate", "batch_size", "gradient_accumulation", "epochs", "max_length", "eval_steps",
            "logging_steps", "save_steps",
        )
        if not 0 <= self.warmup_ratio < 1:
            raise RecipeError("warmup_ratio must be in [0, 1).")
        if len(self.split) != 3 or abs(sum(self.split) - 1) > 1e-6 or min(self.split) < 0:
            raise RecipeError(f"split {self.split} must be three non-negative fractions summing to 1.")

    def _check_positive(self, *names: str) -> None:
        for name in names:
            if getattr(self, name) <= 0:
                raise RecipeError(f"{name} must be positive, not {getattr(self, name)}.")

    @property
    def init_adapter(self) -> str | None:
        """The adapter training continues; SFT always starts a fresh one (``DPORecipe`` has the field)."""
        return None

    @property
    def output_path(self) -> Path:
        return Path(self.output_dir)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class SFTRecipe(Recipe):
    """An SFT run: the shared recipe keys only; the answers to learn come from the datasets."""

    TASK: ClassVar[str] = "sft"


@dataclass
class DPORecipe(Recipe):
    """A DPO run: the shared recipe keys plus the loss, its beta and the reference settings."""

    TASK: ClassVar[str] = "dpo"

    init_adapter: str | None = field(
        default=None,
        metadata={
            "help": "An SFT adapter folder to start from. Training continues that adapter and the "
            "reference is a frozen copy of it (the adapter only, not the model), so the SFT model is "
            "the reference; the recipe's adapter section is then unused."
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
    precompute_reference: bool = field(
        default=True,
        metadata={"help": "Compute the reference log-probabilities once before training, not at every step."},
    )
    share_prompt: bool = field(
        default=True,
        metadata={
            "help": "Run each pair as one row, its prompt once and both answers after it, not as two rows "
            "that repeat the prompt. Needs precompute_reference."
        },
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("loss", self.loss, LOSSES)
        self._check_positive("beta")
        if not 0 <= self.label_smoothing < 0.5:
            raise RecipeError("label_smoothing must be in [0, 0.5).")
        if self.label_smoothing and self.loss != "sigmoid":
            raise RecipeError(
                f"label_smoothing applies to the sigmoid loss only; set loss: sigmoid or remove "
                f"label_smoothing (loss is {self.loss})."
            )
        if self.share_prompt and not self.precompute_reference:
            raise RecipeError(
                "share_prompt needs precompute_reference: the packed rows come with the reference pass "
                "(TRL's per-step one runs on two rows per pair). Set precompute_reference: true, or "
                "share_prompt: false."
            )


RECIPES: dict[str, type[Recipe]] = {"sft": SFTRecipe, "dpo": DPORecipe}


def foreign_keys(cls: type[Recipe]) -> dict[str, str]:
    """The keys only another task's recipe has, each mapped to where it belongs, for ``Origin.foreign``."""
    shared = {f.name for f in dataclasses.fields(Recipe)}
    return {
        f.name: f"{other.TASK.upper()} recipes (task: {other.TASK}), not to {cls.TASK.upper()} recipes"
        for other in RECIPES.values()
        if other is not cls
        for f in dataclasses.fields(other)
        if f.name not in shared
    }


def recipe_from_dict(
    data: dict[str, Any], overrides: list[str] | None = None, source: str = "The recipe"
) -> SFTRecipe | DPORecipe:
    """A validated recipe from a mapping (a parsed YAML file) and command-line overrides.

    The merged ``task`` (default dpo) picks ``SFTRecipe`` or ``DPORecipe``; ``source`` names the
    file in error messages.
    """
    overrides = overrides or []
    merged = merge(data or {}, parse_overrides(overrides))
    if overrides:
        source = f"{source} (with overrides {', '.join(overrides)})"
    task = merged.get("task") or "dpo"
    check_choice("task", task, tuple(RECIPES), Origin(source).fail)
    cls = RECIPES[task]
    return build(cls, merged, Origin(source, foreign=foreign_keys(cls)))


def load_recipe(
    path: str | Path, overrides: list[str] | None = None, task: str | None = None
) -> SFTRecipe | DPORecipe:
    """Read a YAML recipe; ``task`` (from the command) fills the recipe's task or must agree with it.

    Relative dataset paths are resolved against the recipe file's folder when they exist there.
    """
    path = Path(path)
    data = read_yaml(path, "Recipe")
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
    return recipe_from_dict(data, overrides, f"Recipe {path}")
