"""`tutor eval mcq`: answer a JSONL file of multiple-choice questions and report accuracy."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from app.settings import Settings
    from engine.mcq.engine import MCQEngine, MCQOptions
    from engine.mcq.evaluate import EvalSummary

logger = logging.getLogger(__name__)


def build_engine(settings: Settings, *, use_context: bool) -> MCQEngine:
    """The engine `/v1/mcq` answers with: the server's runtime (app.resources, batching included), and
    its retriever only when course context is wanted."""
    from app.resources import serving_runtime
    from cli.ingest_commands import open_embedder, open_store
    from engine.mcq.engine import MCQEngine
    from retrieval import Retriever

    retriever = Retriever(open_store(settings), open_embedder(settings)) if use_context else None
    return MCQEngine(serving_runtime(settings), retriever)


def run_eval_mcq(settings: Settings, file: Path, options: MCQOptions, *, limit: int | None,
                 out: Path) -> EvalSummary:
    """Build the engine as the server does, answer FILE with a progress bar, and release the model."""
    from cli.progress import progress_bar
    from engine.mcq.evaluate import evaluate_file

    engine = build_engine(settings, use_context=options.use_context)
    try:
        with progress_bar(f"MCQ {file.name}") as update:
            return evaluate_file(engine, file, options, limit=limit, out=out, progress=update)
    finally:
        close = getattr(engine.runtime, "close", None)  # the batching worker; fakes have none
        if close is not None:
            close()


def print_summary(summary: EvalSummary) -> None:
    from rich.console import Console
    from rich.table import Table

    def share(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.1f}%"

    name = Path(summary.file).name
    table = Table(title=f"MCQ evaluation of {name} ({summary.method}, {summary.prompt_format})")
    for column in ("questions", "accuracy", "acc_norm", "no letter", "questions/s", "seconds"):
        table.add_column(column, justify="right")
    table.add_row(str(summary.questions), share(summary.acc), share(summary.acc_norm),
                  share(summary.no_letter_rate), f"{summary.questions_per_second:.2f}",
                  f"{summary.seconds:.1f}")
    Console().print(table)


def eval_mcq(
    file: Path = typer.Argument(..., help="A JSONL file of questions (the schema of shared/data/mcq)."),
    method: str = typer.Option("loglik", help="loglik (score each option) or generate (extract a letter)."),
    course: str | None = typer.Option(None, help="The course to retrieve context from (with --use-context)."),
    use_context: bool = typer.Option(False, "--use-context", help="Put the course's top passages first."),
    prompt_format: str | None = typer.Option(None, help="loglik: lm-eval (default) or letters; "
                                             "generate: chat-letter (default) or chat-reason."),
    limit: int | None = typer.Option(None, min=1, help="Answer only the first N questions."),
    out: Path | None = typer.Option(None, help="Per-item results JSONL (default: "
                                    "<FILE stem>.<method>.results.jsonl in the current folder)."),
    model: str | None = typer.Option(None, help="LLM: 'tutor', 'stock', an HF model folder or a .gguf file "
                                     "(default: TUTOR_MODEL, else the packaged model)."),
) -> None:
    """Answer every question of FILE; write per-item results and print accuracy, acc_norm, no-letter rate."""
    from app.mcq.service import RetrievalDefaults
    from cli.ingest_commands import build_settings
    from engine.mcq.engine import MCQInputError, MCQOptions, check_options
    from engine.mcq.evaluate import MCQFileError

    if method not in ("loglik", "generate"):
        raise typer.BadParameter(f"Unknown method {method!r}; use loglik or generate.", param_hint="--method")
    options = MCQOptions(method=method, prompt_format=prompt_format, course=course, use_context=use_context)
    settings = build_settings(model=model)
    try:
        check_options(options)
        options = RetrievalDefaults.from_settings(settings).applied(options)
        target = out or Path(f"{file.stem}.{method}.results.jsonl")
        summary = run_eval_mcq(settings, file, options, limit=limit, out=target)
    except (MCQInputError, MCQFileError) as error:
        raise typer.BadParameter(str(error)) from None
    print_summary(summary)
    logger.info("Per-item results written to %s.", target)


def register(app: typer.Typer, eval_app: typer.Typer) -> None:
    eval_app.command("mcq")(eval_mcq)
