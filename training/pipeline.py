"""`tutor pipeline RECIPE.yaml`: SFT, DPO, merge, quantise, evaluate and report, in one command.

Each stage records a stamp (a hash of its settings and of its inputs' files) next to its outputs and
is skipped when the stamp matches and the outputs exist, so a rerun after changing the DPO section
redoes DPO and what follows it, not SFT. Stages:

- ``sft``: train an SFT adapter on the base model and merge it (``<out>/sft-model``);
- ``dpo``: train DPO on the SFT model (or the base) and merge it (``<out>/dpo-model``);
- ``adapter``: with both, the SFT and DPO adapters stacked into one LoRA adapter on the base model
  (``<out>/adapter``), the small artefact that ships (``models/tutor-lora``);
- ``quantize``: GPTQ the last trained model behind the quality gate (``<out>/quantized``);
- ``evaluate``: the same evaluations on base, SFT, DPO and quantised models (``<out>/evaluation.json``);
- ``report``: ``<out>/report.md`` with a comparison table and PNG plots.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from engine.runtime.models import STOCK_MODEL
from training.config import Origin, load_config, read_yaml
from training.errors import TrainingError
from training.evaluate import METRIC_ROWS, AnswerSet, EvalSuite, ModelReport, comparison_table
from training.merge import stack_adapters
from training.quantize import QuantizeRecipe
from training.recipes import Recipe, recipe_from_dict

logger = logging.getLogger(__name__)

STAMPS = ".stamps"
# Files up to this size are hashed by content; larger ones (model weights) by size and mtime.
CONTENT_HASH_LIMIT = 64 * 2**20


class PipelineError(TrainingError):
    """A pipeline recipe that cannot run as written."""


class AnswerGateError(PipelineError):
    """The quantised model answers worse than the model it was quantised from, beyond the recipe's limit."""


@dataclass
class EvaluationSpec:
    """The evaluations every model of the pipeline gets; a missing input leaves its metric out."""

    texts: str | None = field(default=None, metadata={"help": "Held-out text: a file or course:NAME."})
    text_limit: int = field(default=48, metadata={"help": "Held-out texts used for perplexity."})
    questions: str | None = field(default=None, metadata={"help": "MCQ JSONL for MCQA accuracy."})
    question_limit: int | None = field(default=200, metadata={"help": "Questions used."})
    pairs: str | None = field(default=None, metadata={"help": "Preference pairs for reward accuracy."})
    pair_limit: int | None = field(default=100, metadata={"help": "Pairs used."})
    speed_tokens: int = field(default=32, metadata={"help": "Tokens generated to time tokens/s; 0 skips."})
    answers: list[AnswerSet] = field(default_factory=list, metadata={
        "help": "Question sets answered from a course through the grounded-answer path (name, file, course, "
                "limit), with the server's retrieval settings."})
    max_answer_drop_points: float | None = field(default=None, metadata={
        "help": "Quality gate of the quantised model: at most this many points below the model it was "
                "quantised from on answer F1 and citation precision of every answer set (null: no gate)."})


@dataclass
class PipelineRecipe:
    """The whole workflow; ``sft``, ``dpo`` and ``quantize`` are optional sections."""

    output_dir: str = field(default="runs/pipeline", metadata={"help": "Where every stage writes."})
    model: str | None = field(default=None, metadata={"help": "Base model; null for the packaged one."})
    sft: dict[str, Any] | str | None = field(
        default=None, metadata={"help": "An SFT recipe (training.recipes): inline, or a YAML file's path."}
    )
    dpo: dict[str, Any] | str | None = field(
        default=None, metadata={"help": "A DPO recipe (training.recipes): inline, or a YAML file's path."}
    )
    quantize: dict[str, Any] | None = field(
        default=None, metadata={"help": "QuantizeRecipe fields plus 'calibration' (a file or course:NAME)."}
    )
    evaluation: EvaluationSpec = field(default_factory=EvaluationSpec, metadata={"help": "Evaluations."})

    def __post_init__(self) -> None:
        self.sft, self.dpo = _section(self.sft, "sft"), _section(self.dpo, "dpo")
        if self.quantize is not None and not self.quantize.get("calibration"):
            raise PipelineError("The quantize section needs 'calibration': a text file or course:NAME.")

    @property
    def out(self) -> Path:
        return Path(self.output_dir)


def _section(value: dict[str, Any] | str | None, name: str) -> dict[str, Any] | None:
    """A training section as a mapping; a string names a YAML recipe file to read it from."""
    if value is None or isinstance(value, dict):
        return value
    return read_yaml(value, f"The {name} section's recipe", PipelineError)


def load_pipeline_recipe(path: str | Path) -> PipelineRecipe:
    """Read a pipeline YAML and check its sections, so that a bad key fails now and not after SFT.

    Relative paths inside it are taken relative to the current folder.
    """
    source = f"Pipeline recipe {path}"
    recipe = load_config(PipelineRecipe, read_yaml(path, "Pipeline recipe", PipelineError), {},
                         Origin(source, PipelineError))
    for task, section in (("sft", recipe.sft), ("dpo", recipe.dpo)):
        if section is not None:
            training_recipe(section, task, f"{source}, section {task}")
    if recipe.quantize is not None:
        quantize_plan(recipe.quantize, f"{source}, section quantize")
    return recipe


def training_recipe(section: dict[str, Any], task: str, source: str, **settings: Any) -> Recipe:
    """The SFT or DPO recipe of a pipeline section; ``settings`` (model, output_dir) are the pipeline's."""
    return recipe_from_dict({**section, "task": task, **settings}, source=source)


def quantize_plan(section: dict[str, Any], source: str) -> QuantizeRecipe:
    """The quantisation recipe of the pipeline's quantize section (its calibration source left out)."""
    plan = {key: value for key, value in section.items() if key != "calibration"}
    return load_config(QuantizeRecipe, plan, {}, Origin(source, PipelineError))


# -- stamps --------------------------------------------------------------------------------------
def file_signature(path: Path) -> list[Any]:
    """What identifies a file or folder's content: per file, its name and a content or size/mtime key."""
    if not path.exists():
        return [str(path), None]
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    signature = []
    for item in files:
        stat = item.stat()
        if stat.st_size <= CONTENT_HASH_LIMIT:
            key = hashlib.sha256(item.read_bytes()).hexdigest()
        else:
            key = f"{stat.st_size}:{stat.st_mtime_ns}"
        signature.append([str(item.relative_to(path)) if path.is_dir() else item.name, key])
    return signature


def inputs_hash(settings: Any, paths: list[Path]) -> str:
    payload = json.dumps({"settings": settings, "inputs": [file_signature(p) for p in paths]},
                         sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def run_stage(out: Path, name: str, settings: Any, inputs: list[Path], outputs: list[Path],
              work: Callable[[], None], force: bool = False) -> bool:
    """Run ``work`` unless the stamp of ``name`` matches and ``outputs`` exist; returns whether it ran."""
    stamp = out / STAMPS / f"{name}.json"
    digest = inputs_hash(settings, inputs)
    if not force and stamp.is_file() and all(p.exists() for p in outputs):
        if json.loads(stamp.read_text(encoding="utf-8")).get("inputs") == digest:
            logger.info("Stage %s is up to date; skipped.", name)
            return False
    stamp.unlink(missing_ok=True)
    for output in outputs:
        shutil.rmtree(output, ignore_errors=True) if output.is_dir() else output.unlink(missing_ok=True)
    logger.info("Stage %s: running.", name)
    work()
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(json.dumps({"inputs": digest}), encoding="utf-8")
    return True


# -- stages --------------------------------------------------------------------------------------
def train_and_merge(section: dict[str, Any], task: str, base: str | None, run_dir: Path, merged: Path,
                    data_dir: Path) -> None:
    """Train an SFT or DPO adapter on ``base`` with the training engineer's recipe, then merge it."""
    from training.dpo import run_dpo
    from training.merge import merge_adapter
    from training.sft import run_sft

    recipe = training_recipe(section, task, f"The pipeline's {task} section", model=base,
                             output_dir=str(run_dir), data_dir=str(data_dir))
    shutil.rmtree(run_dir, ignore_errors=True)  # changed settings start afresh, not from old checkpoints
    adapter = (run_sft if task == "sft" else run_dpo)(recipe)
    merge_adapter(adapter, merged, data_dir=data_dir)


def quantize_stage(recipe: PipelineRecipe, source: str | None, target: Path, *, data_dir: Path, device: str,
                   store_factory: Callable[[], Any] | None) -> None:
    from training.evaluate import load_texts, split_texts
    from training.quantize import quantize_model

    section = recipe.quantize or {}
    texts = load_texts(section["calibration"], store_factory)
    plan = quantize_plan(section, "The pipeline's quantize section")
    calibration, heldout = split_texts(texts, plan.calibration_texts, plan.heldout_texts)
    quantize_model(source, target, calibration, heldout, plan, data_dir=data_dir, device=device)


@dataclass
class AnswerContext:
    """What answer sets are asked with: the course retriever (opened only when a set needs it) and the
    server's AnswerOptions, so the pipeline measures what /v1/ask serves."""

    retriever_factory: Callable[[], Any]
    options: Any


def evaluate_stage(recipe: PipelineRecipe, models: dict[str, str | None], target: Path, *, data_dir: Path,
                   device: str, store_factory: Callable[[], Any] | None,
                   answers: AnswerContext | None = None) -> None:
    """Evaluate every model with one suite; reward accuracy is against the base model."""
    from training.evaluate import evaluate_folder, load_texts, reference_pair_scores

    spec = recipe.evaluation
    suite = EvalSuite(questions=Path(spec.questions) if spec.questions else None,
                      question_limit=spec.question_limit, pairs=Path(spec.pairs) if spec.pairs else None,
                      pair_limit=spec.pair_limit, speed_tokens=spec.speed_tokens)
    if spec.answers:
        if answers is None:
            raise PipelineError("The evaluation's answer sets need the course store and the server's answer "
                                "settings; run them through tutor pipeline.")
        suite.answer_sets, suite.answer_options = spec.answers, answers.options
        suite.retriever = answers.retriever_factory()
    if spec.texts:
        suite.heldout_texts = load_texts(spec.texts, store_factory)[: spec.text_limit]
    suite.reference_scores = reference_pair_scores(models["base"], suite, data_dir=data_dir, device=device)
    rows = [{"name": name, **evaluate_folder(model, suite, data_dir=data_dir, device=device).to_dict()}
            for name, model in models.items()]
    target.write_text(json.dumps(rows, indent=2), encoding="utf-8")


def check_answer_gate(recipe: PipelineRecipe, evaluation: Path) -> None:
    """Refuse a quantised model that answers worse than the model it came from (AnswerGateError)."""
    limit = recipe.evaluation.max_answer_drop_points
    rows = {row["name"]: row for row in json.loads(evaluation.read_text(encoding="utf-8"))}
    if limit is None or "quantized" not in rows:
        return
    source = rows[next(name for name in ("dpo", "sft", "base") if name in rows)]
    failures = []
    for answer_set, scores in rows["quantized"].get("answers", {}).items():
        for key in ("f1", "citation_precision"):
            before, after = source.get("answers", {}).get(answer_set, {}).get(key), scores.get(key)
            if before is not None and after is not None and 100 * (before - after) > limit:
                failures.append(f"{key} on {answer_set}: {after:.3f} against {before:.3f}")
    if failures:
        raise AnswerGateError(f"The quantised model lost more than {limit:g} points: {'; '.join(failures)}. "
                              "Do not ship it: quantise with more calibration texts or a smaller group_size, "
                              "or raise max_answer_drop_points. The report shows every figure.")


def plot_metrics(rows: list[dict[str, Any]], folder: Path) -> list[Path]:
    """One bar chart per metric that at least one model has."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    charts = [(label, key, lambda row, k=key: row.get(k)) for label, key in METRIC_ROWS]
    for answer_set in dict.fromkeys(name for row in rows for name in row.get("answers", {})):
        charts += [(f"{label}, {answer_set}", f"{answer_set}-{key}",
                    lambda row, s=answer_set, k=key: row.get("answers", {}).get(s, {}).get(k))
                   for label, key in (("answer F1", "f1"), ("citation precision", "citation_precision"))]
    for label, key, metric in charts:
        points = [(row["name"], metric(row)) for row in rows if metric(row) is not None]
        if not points:
            continue
        figure, axes = plt.subplots(figsize=(5, 3))
        axes.bar([name for name, _ in points], [value for _, value in points], color="#4a7ab5")
        axes.set_title(label)
        figure.tight_layout()
        path = folder / f"{key}.png"
        figure.savefig(path, dpi=100)
        plt.close(figure)
        written.append(path)
    return written


def write_report(evaluation: Path, target: Path) -> None:
    """Markdown: the comparison table, then each metric's plot."""
    rows = json.loads(evaluation.read_text(encoding="utf-8"))
    fields = set(ModelReport.__dataclass_fields__)
    reports = [ModelReport(**{k: v for k, v in row.items() if k in fields}) for row in rows]
    plots = plot_metrics(rows, target.parent / "plots")
    lines = ["# Pipeline report", "", comparison_table(reports, [row["name"] for row in rows]), ""]
    lines += [f"![{p.stem}](plots/{p.name})" for p in plots]
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")


def run_pipeline(recipe: PipelineRecipe, *, data_dir: Path, device: str = "cpu",
                 store_factory: Callable[[], Any] | None = None, answers: AnswerContext | None = None,
                 force: bool = False) -> Path:
    """Run every stage that is out of date; returns the report's path (the answer gate is checked last)."""
    out = recipe.out
    out.mkdir(parents=True, exist_ok=True)
    models: dict[str, str | None] = {"base": recipe.model}
    current = recipe.model
    for task, section in (("sft", recipe.sft), ("dpo", recipe.dpo)):
        if section is None:
            continue
        merged = out / f"{task}-model"
        datasets = [Path(d["path"]) for d in section.get("datasets") or [] if "path" in d]
        inputs = ([Path(current)] if current else []) + datasets

        def train(t=task, s=section, b=current, m=merged) -> None:
            train_and_merge(s, t, b, out / f"{t}-run", m, data_dir)

        run_stage(out, task, {"section": section, "base": current}, inputs, [merged], train, force)
        models[task] = current = str(merged)
    if recipe.sft is not None and recipe.dpo is not None:
        adapters = [out / "sft-run" / "adapter", out / "dpo-run" / "adapter"]
        run_stage(out, "adapter", {"base": recipe.model}, adapters, [out / "adapter"],
                  lambda: stack_adapters(*adapters, out / "adapter", base=recipe.model or STOCK_MODEL), force)
    if recipe.quantize is not None:
        quantized = out / "quantized"
        run_stage(out, "quantize", {"section": recipe.quantize, "base": current},
                  [Path(current)] if current else [], [quantized],
                  lambda: quantize_stage(recipe, current, quantized, data_dir=data_dir, device=device,
                                         store_factory=store_factory), force)
        models["quantized"] = str(quantized)
    evaluation, report = out / "evaluation.json", out / "report.md"
    model_paths = [Path(m) for m in models.values() if m]
    run_stage(out, "evaluate", {"evaluation": asdict(recipe.evaluation), "models": models}, model_paths,
              [evaluation], lambda: evaluate_stage(recipe, models, evaluation, data_dir=data_dir,
                                                   device=device, store_factory=store_factory,
                                                   answers=answers), force)
    run_stage(out, "report", {}, [evaluation], [report, out / "plots"],
              lambda: write_report(evaluation, report), force)
    check_answer_gate(recipe, evaluation)
    return report
