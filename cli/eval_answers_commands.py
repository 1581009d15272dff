"""`tutor eval answers`: ask a file's questions through the grounded-answer path and score the answers."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from app.settings import Settings
    from engine.evaluation.answers import AnswerSummary
    from engine.runtime import Runtime
    from retrieval import Retriever

logger = logging.getLogger(__name__)

COLUMNS = ("model", "questions", "correct", "EM", "F1", "short EM", "short F1", "cite prec", "cite recall",
           "gold retrieved", "malformed", "uncited", "server-added", "quoted", "false refusals", "abstained",
           "tokens", "p50 s", "p95 s")


def build_resources(settings: Settings) -> tuple[Retriever, Runtime]:
    """The course retriever and the LLM, loaded exactly as the server loads them for /v1/ask."""
    from app.resources import load_resources
    from engine.runtime.models import ModelNotFoundError

    try:
        resources = load_resources(settings)
    except ModelNotFoundError as error:
        raise typer.BadParameter(str(error), param_hint="--model / TUTOR_MODEL") from None
    return resources.retriever, resources.runtime


def results_path(folder: Path, file: Path, model: str | None) -> Path:
    """``<folder>/<file stem>.<model name>.answers.jsonl``: one results file per model."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(model).name if model else "default")
    return folder / f"{file.stem}.{name}.answers.jsonl"


def print_summaries(summaries: list[AnswerSummary], title: str) -> None:
    """One row per model, so models compare at a glance; on a conversation file, then its first and later
    turns apart."""
    from rich.console import Console
    from rich.table import Table

    def share(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.1f}%"

    def number(value: float | None, digits: int = 1) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    table = Table(title=title)
    for column in COLUMNS:
        table.add_column(column, justify="left" if column == "model" else "right")
    for s in [row for summary in summaries for row in (summary, *summary.by_turn)]:
        table.add_row(s.model, str(s.questions), share(s.correct), share(s.exact_match), share(s.f1),
                      share(s.short_exact_match), share(s.short_f1),
                      share(s.citation_precision), share(s.citation_recall), share(s.gold_retrieved),
                      share(s.malformed), share(s.uncited), share(s.server_added), share(s.notes_quoted),
                      share(s.false_refusals), share(s.abstained),
                      number(s.answer_tokens), number(s.latency_p50_s, 2), number(s.latency_p95_s, 2))
    Console(width=200).print(table)


def eval_answers(
    file: Path = typer.Argument(..., help="JSONL questions: the MCQ schema (asked open) or "
                                "{question, answers, source?, page?}; a conversation file adds turn and "
                                "history."),
    course: str = typer.Option(..., "--course", "-c", help="The course to answer from."),
    model: list[str] = typer.Option([], help="'tutor' (the built tutor model), 'stock', an HF folder or a "
                                    ".gguf file; repeat to compare models (default: TUTOR_MODEL, else the "
                                    "packaged model)."),
    limit: int | None = typer.Option(None, min=1, help="Ask only the first N questions."),
    off_topic: bool = typer.Option(False, "--off-topic", help="The course does not cover these questions: "
                                   "measure how often the answer is 'not covered'."),
    max_new_tokens: int | None = typer.Option(None, min=1, help="Longest answer in tokens "
                                              "(TUTOR_ANSWER_TOKENS, as the server)."),
    out_dir: Path = typer.Option(Path("."), help="Folder for the per-item results, one JSONL per model."),
    follow_up: str | None = typer.Option(None, help="How a question with history is searched: none (the "
                                         "question alone), gate, concat or decay (default: the tutor's, "
                                         "gate)."),
    own_history: bool = typer.Option(False, "--own-history", help="Ask a follow-up after the tutor's own "
                                     "earlier answers of this run, as a student's conversation sends them, "
                                     "instead of the file's reference answers."),
) -> None:
    """Answer FILE's questions exactly as /v1/ask does and score correctness, citations and abstention."""
    from dataclasses import replace

    from app.tutoring.service import answer_options
    from cli.ingest_commands import build_settings
    from cli.progress import progress_bar
    from engine.evaluation.answers import AnswerFileError, evaluate_answers, read_answer_items
    from retrieval import CourseNotFoundError
    from retrieval.history import FollowUpSettings, UnknownFollowUpStrategyError

    try:
        items = read_answer_items(file, limit=limit, off_topic=off_topic)
    except AnswerFileError as error:
        raise typer.BadParameter(str(error), param_hint="FILE") from None
    try:
        searched = FollowUpSettings(strategy=follow_up) if follow_up else FollowUpSettings()
    except UnknownFollowUpStrategyError as error:
        raise typer.BadParameter(str(error), param_hint="--follow-up") from None
    summaries = []
    for name in model or [None]:
        settings = build_settings(model=name, answer_tokens=max_new_tokens, max_new_tokens=max_new_tokens)
        retriever, runtime = build_resources(settings)
        target = results_path(out_dir, file, name)
        try:
            with progress_bar(f"Answers {runtime.model_name}") as update:
                summaries.append(evaluate_answers(
                    items, retriever, runtime, course, out=target,
                    options=replace(answer_options(settings), follow_up=searched),
                    progress=lambda done: update(done, len(items)), own_history=own_history))
        except CourseNotFoundError as error:
            raise typer.BadParameter(str(error), param_hint="--course") from None
        logger.info("Per-item results of %s written to %s.", runtime.model_name, target)
    print_summaries(summaries, f"Answers to {file.name} from course {course!r}")


def register(app: typer.Typer, eval_app: typer.Typer) -> None:
    eval_app.command("answers")(eval_answers)
