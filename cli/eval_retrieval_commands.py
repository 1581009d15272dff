"""`tutor eval retrieval`: page-level recall, MRR and nDCG of each search mode against gold pages.

A conversation file (lines with ``turn`` and ``history``, see ``retrieval/evaluate.py``) is also
searched with each ``--follow-up`` strategy, and the metrics are split by first and later turns.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from retrieval.evaluate import CoverageResult, GoldItem, ModeResult
    from retrieval.history import FollowUpSettings

logger = logging.getLogger(__name__)

# Issue 14's targets: recall on the sciq-dev course, and the "not covered" cut.
RECALL_TARGETS = {"recall@1": 0.90, "recall@5": 0.97}
OFF_TOPIC_REFUSED_TARGET = 0.90
ON_TOPIC_REFUSED_TARGET = 0.05
# Issue 16's targets for follow-ups: later turns within 5 points of first turns, 15 above no history.
FOLLOW_UP_GAP_TARGET = 0.05
FOLLOW_UP_GAIN_TARGET = 0.15
TURN_COLUMNS = ("recall@1", "recall@5", "mrr@10")


def row_label(result: ModeResult, conversations: bool) -> str:
    """The mode, and in a conversation file the follow-up strategy too ("none": no history)."""
    return f"{result.mode}, follow-up {result.strategy}" if conversations else result.mode


def print_table(results: list[ModeResult], course: str, questions: int, conversations: bool = False) -> None:
    from rich.console import Console
    from rich.table import Table

    from retrieval.evaluate import METRICS

    table = Table(title=f"Retrieval on {course!r}: {questions} questions, mean [95% bootstrap interval]")
    table.add_column("mode")
    for name in (*METRICS, "queries/s"):
        table.add_column(name, justify="right")
    for result in results:
        cells = [f"{result.means[n]:.3f} [{result.intervals[n][0]:.2f}, {result.intervals[n][1]:.2f}]"
                 for n in METRICS]
        table.add_row(row_label(result, conversations), *cells, f"{result.queries_per_s:.1f}")
    Console().print(table)
    for result in results:
        checks = [f"{name} {result.means[name]:.3f} {'>=' if result.means[name] >= goal else '<'} {goal}"
                  for name, goal in RECALL_TARGETS.items()]
        typer.echo(f"targets (sciq-dev, hybrid) for {row_label(result, conversations)}: " + "; ".join(checks))


def print_turns(results: list[ModeResult], course: str) -> None:
    """First and later turns side by side, and the follow-up targets of each strategy."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Retrieval on {course!r} by turn: first turns (no history) and later turns")
    table.add_column("mode, follow-up")
    for group in ("first", "later"):
        table.add_column(f"{group} n", justify="right")
        for name in TURN_COLUMNS:
            table.add_column(f"{group} {name}", justify="right")
    for result in results:
        cells = []
        for group in ("first", "later"):
            means = result.groups.get(group, {})
            cells += [str(int(means.get("questions", 0))), *(f"{means[n]:.3f}" if means else "-"
                                                            for n in TURN_COLUMNS)]
        table.add_row(row_label(result, True), *cells)
    Console(width=200).print(table)
    for result in results:
        typer.echo(follow_up_check(result, results))


def follow_up_check(result: ModeResult, results: list[ModeResult]) -> str:
    """The follow-up targets of one result: later-turn recall@5 near first turns', above no history's."""
    first = result.groups.get("first", {}).get("recall@5")
    later = result.groups.get("later", {}).get("recall@5")
    alone = next((r.groups.get("later", {}).get("recall@5") for r in results
                  if r.mode == result.mode and r.strategy == "none"), None)
    label = row_label(result, True)
    if first is None or later is None:
        return f"follow-up targets for {label}: the file needs first and later turns."
    checks = [f"later recall@5 {later:.3f} vs first {first:.3f}: "
              f"{'within' if first - later <= FOLLOW_UP_GAP_TARGET else 'not within'} "
              f"{100 * FOLLOW_UP_GAP_TARGET:.0f} points"]
    if alone is not None and result.strategy != "none":
        gain = later - alone
        checks.append(f"{100 * gain:+.1f} points over no history "
                      f"(target >= +{100 * FOLLOW_UP_GAIN_TARGET:.0f})")
    return f"follow-up targets for {label}: " + "; ".join(checks)


def print_coverage(coverage: CoverageResult, mode: str) -> None:
    typer.echo(f"not covered at min_score {coverage.min_score} ({mode}): "
               f"{100 * coverage.off_topic_refused:.1f}% of {coverage.off_topic} off-topic questions "
               f"(target >= {100 * OFF_TOPIC_REFUSED_TARGET:.0f}%), "
               f"{100 * coverage.on_topic_refused:.1f}% of {coverage.on_topic} course questions "
               f"(target <= {100 * ON_TOPIC_REFUSED_TARGET:.0f}%)")


def read_off_topic(path: Path, subjects: list[str]) -> list[str]:
    """The ``question`` of each JSONL row, only of ``subjects`` (a row's ``subject``) when given.

    Raises GoldFileError naming the file, or the line without a question.
    """
    from engine.evaluation.questions_file import read_questions
    from retrieval.evaluate import GoldFileError

    def parse(row: dict, where: str) -> tuple[str, object]:
        if not isinstance(row.get("question"), str):
            raise GoldFileError(f"{where}: an off-topic row needs a 'question' string.")
        return row["question"], row.get("subject")

    rows = read_questions(path, parse, error=GoldFileError)
    return [question for question, subject in rows if not subjects or subject in subjects]


def eval_retrieval(
    file: Path = typer.Argument(..., help="Gold JSONL: question, source, page (1-based), optional page_end, "
                                "id and choices; a conversation file adds turn and history."),
    course: str = typer.Option(..., "--course", "-c", help="The course to search."),
    mode: list[str] = typer.Option(["dense", "lexical", "hybrid"], "--mode", "-m",
                                   help="Search modes to compare (repeat the option)."),
    fusion: str | None = typer.Option(None, help="Hybrid fusion: convex or rrf (default convex)."),
    weight: float | None = typer.Option(None, min=0, max=1, help="Dense share of the convex fusion."),
    candidates: int | None = typer.Option(None, min=1, help="Candidates taken from each side in hybrid."),
    with_choices: bool = typer.Option(False, help="Search with the question followed by its choices."),
    limit: int | None = typer.Option(None, min=1, help="Only the first N questions."),
    out: Path | None = typer.Option(None, help="Per-item JSONL: rank, metrics and hits of each question "
                                    "in each mode."),
    off_topic: Path | None = typer.Option(None, help="JSONL of questions the course does not cover (e.g. "
                                          "MMLU): report the share answered 'not covered'."),
    off_topic_subject: list[str] = typer.Option([], help="Only off-topic rows of this subject (repeatable)."),
    min_score: float | None = typer.Option(None, help="The 'not covered' threshold (TUTOR_MIN_SCORE)."),
    chroma_url: str | None = typer.Option(None, help="A Chroma server URL instead of the embedded index."),
    follow_up: list[str] = typer.Option([], help="Follow-up strategies to compare on a conversation file: "
                                        "none (each question alone), gate, concat, decay (repeat the option; "
                                        "default: none and the tutor's default)."),
    history_turns: int | None = typer.Option(None, min=0, help="Earlier exchanges a follow-up search "
                                             "draws on."),
    leaning_turns: int | None = typer.Option(None, min=0, help="Earlier exchanges the search draws on for a "
                                             "follow-up that names nothing of its own ('How many?')."),
    history_decay: float | None = typer.Option(None, min=0, max=1, help="Weight of each further exchange "
                                               "in the decay strategy."),
    standalone_score: float | None = typer.Option(None, help="In the gate strategy, the dense score at "
                                                  "which a follow-up is searched alone."),
    continues_margin: float | None = typer.Option(None, min=0, help="For 'not covered' after earlier turns: "
                                                  "how much a question may lower the last two exchanges' "
                                                  "best dense match and still continue them."),
) -> None:
    """Score each search mode by the rank of the first chunk on a question's gold pages.

    On a conversation file, each mode is scored with each follow-up strategy, by first and later turns.
    """
    from dataclasses import replace

    from cli.ingest_commands import build_settings, open_embedder, open_store
    from retrieval import HybridSettings, Retriever
    from retrieval.evaluate import (
        GoldFileError,
        evaluate_coverage,
        evaluate_follow_up_coverage,
        evaluate_mode,
        load_gold,
    )
    from retrieval.search import UnknownRetrievalModeError, check_mode

    try:
        modes = [check_mode(m) for m in mode]
    except UnknownRetrievalModeError as error:
        raise typer.BadParameter(str(error), param_hint="--mode") from None
    if fusion not in (None, "convex", "rrf"):
        raise typer.BadParameter(f"Unknown fusion {fusion!r}; use convex or rrf.", param_hint="--fusion")
    settings = build_settings(chroma_url=chroma_url, min_score=min_score)
    overrides = {"fusion": fusion, "weight": weight, "candidates": candidates}
    hybrid = replace(HybridSettings(), **{k: v for k, v in overrides.items() if v is not None})
    try:
        items = load_gold(file)[:limit]
    except GoldFileError as error:
        raise typer.BadParameter(str(error), param_hint="FILE") from None
    try:
        questions = read_off_topic(off_topic, off_topic_subject) if off_topic is not None else []
    except GoldFileError as error:
        raise typer.BadParameter(str(error), param_hint="--off-topic") from None
    retriever = Retriever(open_store(settings), open_embedder(settings), hybrid)
    logger.info("Hybrid fusion: %s.", hybrid)
    strategies = follow_up_settings(items, follow_up, history_turns, history_decay, standalone_score,
                                    continues_margin, leaning_turns)
    results = [evaluate_mode(retriever, course, items, m, with_choices=with_choices, follow_up=s)
               for m in modes for s in strategies or [None]]
    print_table(results, course, len(items), conversations=bool(strategies))
    if strategies:
        print_turns(results, course)
    if out is not None:
        with out.open("w") as handle:
            for result in results:
                handle.writelines(json.dumps(record) + "\n" for record in result.items)
    if off_topic is not None:
        for m in modes:
            print_coverage(evaluate_coverage(retriever, course, [i.question for i in items], questions,
                                             settings.min_score, m), m)
            for strategy in strategies:
                if strategy.strategy != "none":
                    print_coverage(evaluate_follow_up_coverage(retriever, course, items, questions,
                                                               settings.min_score, m, strategy),
                                   f"{m}, later turns and changes of subject, follow-up {strategy.strategy}")


def follow_up_settings(items: list[GoldItem], names: list[str], turns: int | None, decay: float | None,
                       standalone_score: float | None = None,
                       continues_margin: float | None = None,
                       leaning_turns: int | None = None) -> list[FollowUpSettings]:
    """The strategies to compare: none for a file without history, else those named (none and the default)."""
    from dataclasses import replace

    from retrieval.history import FollowUpSettings

    if not any(item.history for item in items):
        return []
    given = {k: v for k, v in {"turns": turns, "decay": decay, "standalone_score": standalone_score,
                               "continues_margin": continues_margin, "leaning_turns": leaning_turns}.items()
             if v is not None}
    try:
        base = replace(FollowUpSettings(), **given)
        return [replace(base, strategy=name) for name in names or dict.fromkeys(["none", base.strategy])]
    except ValueError as error:  # an unknown strategy, or a decay of 0
        raise typer.BadParameter(str(error), param_hint="--follow-up / --history-decay") from None


def register(app: typer.Typer, eval_app: typer.Typer) -> None:
    eval_app.command("retrieval")(eval_retrieval)
