"""`tutor quantize`, `tutor build-model`, `tutor pipeline` and the evaluations
`tutor eval perplexity|generation|compare`."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from app.settings import Settings

logger = logging.getLogger(__name__)

GATE_FAILED_EXIT = 3  # distinct from bad input (2), so scripts can tell a refused model apart


def store_factory(settings: Settings):
    """A function opening the course store lazily (only when a source names a course)."""

    def open_store():
        from app.resources import open_store as open_configured_store

        return open_configured_store(settings)

    return open_store


def answer_context(settings: Settings):
    """The retriever (opened when an answer set needs it) and the server's answer options, so the
    pipeline's answer sets are asked as /v1/ask answers."""
    from app.resources import open_retriever
    from app.tutoring.service import answer_options
    from training.pipeline import AnswerContext

    return AnswerContext(lambda: open_retriever(settings), answer_options(settings))


def runtime_for(model: str, settings: Settings):
    """MODEL ('default': the packaged one) loaded in-process as the server would load it with these
    settings (TUTOR_LOAD_IN_BITS, dtype, device, generation precision), never a remote generator."""
    from app.resources import open_runtime

    return open_runtime(settings.model_copy(update={"model": None if model == "default" else model,
                                                    "generation_url": None}))


def default_course(settings: Settings) -> str:
    """The only ingested course, the default calibration source."""
    courses = store_factory(settings)().courses()
    if len(courses) != 1:
        listing = ", ".join(courses) if courses else "none yet"
        raise typer.BadParameter(f"Name the calibration source: a course ({listing}) or a text file.",
                                 param_hint="--calibration")
    return courses[0]


def quantize(
    model_dir: str = typer.Argument(..., help="The model to quantise: HF folder, .gguf file or 'default'."),
    out: Path = typer.Option(..., "--out", help="The quantised folder (published only if the gate passes)."),
    bits: int | None = typer.Option(None, help="Bits per weight (recipe default 4)."),
    group_size: int | None = typer.Option(None, help="Weights per scale (recipe default 32)."),
    calibration: str | None = typer.Option(
        None, help="Calibration and held-out text: a course name (its ingested chunks) or a text file. "
        "Default: the only ingested course."),
    recipe: Path | None = typer.Option(None, help="A YAML recipe (QuantizeRecipe fields, gate thresholds)."),
    questions: Path | None = typer.Option(None, help="An MCQ JSONL file for the MCQA accuracy gate."),
    max_perplexity_increase: float | None = typer.Option(None, help="Gate: largest perplexity growth, %."),
    max_mcqa_drop: float | None = typer.Option(None, help="Gate: largest MCQA accuracy drop, points."),
) -> None:
    """GPTQ-quantise a model on course text; refuse (exit 3, nothing written) if quality drops too much."""
    from cli.ingest_commands import build_settings
    from training.errors import TrainingError
    from training.evaluate import load_texts, split_texts
    from training.quantize import QualityGateError, load_quantize_recipe, quantize_model

    settings = build_settings()
    gate = {"max_perplexity_increase_pct": max_perplexity_increase, "max_mcqa_drop_points": max_mcqa_drop}
    overrides = {"bits": bits, "group_size": group_size, "gate": gate,
                 "questions": str(questions) if questions else None}
    try:
        plan = load_quantize_recipe(recipe, overrides)
        texts = load_texts(calibration or default_course(settings), store_factory(settings))
        calibration_texts, heldout = split_texts(texts, plan.calibration_texts, plan.heldout_texts)
        source = None if model_dir == "default" else model_dir
        report = quantize_model(source, out, calibration_texts, heldout, plan, data_dir=settings.data_dir,
                                device=settings.device)
    except QualityGateError as error:
        logger.error("%s", error)
        typer.echo(json.dumps(error.report.to_dict(), indent=2))
        raise typer.Exit(GATE_FAILED_EXIT) from None
    except (TrainingError, LookupError, ImportError, FileNotFoundError) as error:
        logger.error("%s", error)
        raise typer.Exit(2) from None
    typer.echo(json.dumps(report.to_dict(), indent=2))


def eval_perplexity(
    model: str = typer.Argument(..., help="An HF folder, a GPTQ folder, a .gguf file, or 'default'."),
    texts: str = typer.Option(..., help="Held-out text: a course name or a text file."),
    limit: int | None = typer.Option(None, min=1, help="Use the first N texts."),
    max_tokens: int = typer.Option(512, help="Tokens per text at most."),
) -> None:
    """Perplexity of MODEL on held-out text (token-weighted)."""
    from cli.ingest_commands import build_settings
    from training.evaluate import load_texts, perplexity

    settings = build_settings()
    held = load_texts(texts, store_factory(settings))[:limit]
    runtime = runtime_for(model, settings)
    typer.echo(json.dumps(perplexity(runtime, held, max_tokens).__dict__, indent=2))


def eval_generation(
    model: str = typer.Argument(..., help="An HF folder, a GPTQ folder, a .gguf file, or 'default'."),
    references: Path = typer.Argument(..., help="JSONL of {prompt, reference} (question/answer also read)."),
    limit: int | None = typer.Option(None, min=1, help="Answer only the first N prompts."),
    max_new_tokens: int = typer.Option(128, help="Tokens generated per answer at most."),
) -> None:
    """BLEU (sacrebleu) and ROUGE-1/L F1 of MODEL's answers against reference answers."""
    from cli.ingest_commands import build_settings
    from training.evaluate import generation_scores

    settings = build_settings()
    runtime = runtime_for(model, settings)
    scores = generation_scores(runtime, references, limit, max_new_tokens)
    typer.echo(json.dumps(scores.__dict__, indent=2))


def eval_compare(
    model_a: str = typer.Argument(..., help="First model ('default' for the packaged one)."),
    model_b: str = typer.Argument(..., help="Second model, e.g. its quantised folder."),
    texts: str | None = typer.Option(None, help="Held-out text for perplexity: a course name or a file."),
    text_limit: int = typer.Option(64, help="Use the first N texts."),
    questions: Path | None = typer.Option(None, help="MCQ JSONL for MCQA accuracy."),
    question_limit: int | None = typer.Option(200, help="Answer only the first N questions."),
    pairs: Path | None = typer.Option(None, help="Preference pairs for reward accuracy."),
    pair_limit: int | None = typer.Option(100, help="Score only the first N pairs."),
    reference: str | None = typer.Option(None, help="Reward accuracy's reference model (default: packaged)."),
    speed_tokens: int = typer.Option(64, help="Tokens generated to time tokens/s; 0 skips it."),
    out: Path | None = typer.Option(None, help="Also write both reports to this JSON file."),
) -> None:
    """Side by side: size on disk, load time, tokens/s, perplexity, MCQA accuracy, reward accuracy."""
    from cli.ingest_commands import build_settings
    from training.evaluate import (
        EvalSuite,
        comparison_table,
        evaluate_folder,
        load_texts,
        reference_pair_scores,
    )

    settings = build_settings()
    suite = EvalSuite(questions=questions, question_limit=question_limit, pairs=pairs, pair_limit=pair_limit,
                      speed_tokens=speed_tokens)
    if texts:
        suite.heldout_texts = load_texts(texts, store_factory(settings))[:text_limit]
    suite.reference_scores = reference_pair_scores(reference, suite, data_dir=settings.data_dir,
                                                   device=settings.device)
    reports = [evaluate_folder(None if m == "default" else m, suite, data_dir=settings.data_dir,
                               device=settings.device) for m in (model_a, model_b)]
    if out:
        out.write_text(json.dumps([r.to_dict() for r in reports], indent=2), encoding="utf-8")
    typer.echo(comparison_table(reports, [model_a, model_b]))


def pipeline(
    recipe: Path = typer.Argument(..., help="A pipeline YAML: sft, dpo, quantize and evaluation sections."),
    force: bool = typer.Option(False, "--force", help="Rerun every stage, even those up to date."),
) -> None:
    """SFT, DPO, merge, quantise, evaluate and report; stages whose inputs are unchanged are skipped."""
    from cli.ingest_commands import build_settings
    from training.errors import TrainingError
    from training.pipeline import AnswerGateError, load_pipeline_recipe, run_pipeline
    from training.quantize import QualityGateError

    settings = build_settings()
    try:
        plan = load_pipeline_recipe(recipe)
        report = run_pipeline(plan, data_dir=settings.data_dir, device=settings.device,
                              store_factory=store_factory(settings), answers=answer_context(settings),
                              force=force)
    except (QualityGateError, AnswerGateError) as error:
        logger.error("%s", error)
        raise typer.Exit(GATE_FAILED_EXIT) from None
    except (TrainingError, LookupError, ImportError, FileNotFoundError) as error:
        logger.error("%s", error)
        raise typer.Exit(2) from None
    typer.echo(f"Report: {report}")


def build_model(
    adapter: Path | None = typer.Option(None, help="The LoRA adapter folder; default: the repository's "
                                        "models/tutor-lora."),
    out: Path | None = typer.Option(None, "--out", help="Where the model goes; default: the data directory's "
                                    "cache that TUTOR_MODEL=tutor loads."),
) -> None:
    """Build the tutor model once: the shipped LoRA adapter (models/tutor-lora) merged into the packaged
    SmolLM2-135M-Instruct and GPTQ-quantised to 4 bits, cached in the data directory (TUTOR_MODEL=tutor)."""
    from cli.ingest_commands import build_settings
    from cli.progress import progress_bar
    from engine.runtime.models import SHIPPED_ADAPTER
    from training.errors import TrainingError
    from training.quantize import QualityGateError
    from training.shipped import build_shipped_model

    settings = build_settings()
    try:
        with progress_bar("Building the tutor model (merge, GPTQ 4-bit)") as update:
            folder = build_shipped_model(settings.data_dir, adapter=adapter or SHIPPED_ADAPTER, target=out,
                                         device=settings.device, progress=update)
    except QualityGateError as error:
        logger.error("%s", error)
        raise typer.Exit(GATE_FAILED_EXIT) from None
    except (TrainingError, FileNotFoundError, ImportError) as error:
        logger.error("%s", error)
        raise typer.Exit(2) from None
    typer.echo(f"Tutor model: {folder}")


def register(app: typer.Typer, eval_app: typer.Typer) -> None:
    app.command("quantize")(quantize)
    app.command("build-model")(build_model)
    app.command("pipeline")(pipeline)
    eval_app.command("perplexity")(eval_perplexity)
    eval_app.command("generation")(eval_generation)
    eval_app.command("compare")(eval_compare)
