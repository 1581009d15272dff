"""`tutor report --course C`: what students asked, from the question log the server writes."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from app.settings import Settings
    from insights.report import CourseReport, TextEmbedder, Topic

logger = logging.getLogger(__name__)


@dataclass
class ReportFiles:
    """What ``write_report`` wrote: the chart and the CSV of the questions."""

    chart: Path
    csv: Path


def write_report(report: CourseReport, entries: list, *, out_dir: Path, csv_path: Path | None) -> ReportFiles:
    """``report.png`` in ``out_dir``, and the rows as CSV (``csv_path``, or ``out_dir/questions.csv``)."""
    from insights.chart import report_png
    from insights.report import write_csv

    out_dir.mkdir(parents=True, exist_ok=True)
    files = ReportFiles(chart=out_dir / "report.png", csv=csv_path or out_dir / "questions.csv")
    files.chart.write_bytes(report_png(report))
    files.csv.parent.mkdir(parents=True, exist_ok=True)
    with files.csv.open("w", newline="", encoding="utf-8") as out:
        write_csv(entries, out)
    return files


def make_report(course: str, settings: Settings, *, since_days: int | None, top: int, out_dir: Path,
                csv_path: Path | None, embedder: TextEmbedder | None = None) -> CourseReport | None:
    """Read the course's logged questions, build the report, print it and write its files.

    ``embedder`` defaults to the course embedder the server loads; None is returned (nothing written)
    when the log holds no question of the course in the period.
    """
    from app.resources import open_question_store
    from insights.report import build_report
    from retrieval.store import check_course_name

    store = open_question_store(settings)
    try:
        entries = store.entries(check_course_name(course), since_days=since_days)
    finally:
        store.close()
    if not entries:
        period = f" in the last {since_days} days" if since_days else ""
        logger.warning("The question log at %s holds no question of %s%s.", store.location, course, period)
        return None
    if embedder is None:
        from cli.ingest_commands import open_embedder

        embedder = open_embedder(settings)
    report = build_report(course, entries, embedder, since_days=since_days, top=top)
    print_report(report)
    files = write_report(report, entries, out_dir=out_dir, csv_path=csv_path)
    logger.info("Wrote %s and %s (%d questions).", files.chart, files.csv, len(entries))
    return report


def topic_table(title: str, topics: list[Topic]):
    from rich.table import Table

    table = Table(title=title)
    for column in ("questions", "topic (its most central question)", "other questions"):
        table.add_column(column, justify="right" if column == "questions" else "left")
    for topic in topics:
        table.add_row(str(topic.size), topic.label, " | ".join(topic.examples))
    return table


def print_report(report: CourseReport) -> None:
    """The summary line, then topics, not covered topics, pages cited most and latency per day."""
    from rich.console import Console
    from rich.table import Table

    console = Console(width=160)
    period = f"the last {report.since_days} days" if report.since_days else "the whole log"
    console.print(f"{report.course}: {report.questions} questions over {period}, "
                  f"{report.not_covered} not covered by the material.")
    console.print(topic_table("Most asked topics", report.topics))
    console.print(topic_table("Questions the course material does not cover", report.uncovered))
    pages = Table(title="Pages cited most")
    for column in ("file", "page", "answers citing it", "mean score"):
        pages.add_column(column, justify="left" if column == "file" else "right")
    for page in report.pages:
        pages.add_row(page.source, str(page.page), str(page.count), f"{page.mean_score:.2f}")
    console.print(pages)
    latency = Table(title="Latency per day (UTC)")
    for column in ("day", "questions", "not covered", "p50 s", "p95 s"):
        latency.add_column(column, justify="left" if column == "day" else "right")
    for day in report.latency:
        latency.add_row(day.day.isoformat(), str(day.questions), str(day.not_covered), f"{day.p50_s:.2f}",
                        f"{day.p95_s:.2f}")
    console.print(latency)


def report(
    course: str = typer.Option(..., "--course", "-c", help="The course to report on."),
    since: int | None = typer.Option(None, "--since", min=1, help="Only the questions of the last N days "
                                     "(default: every kept one, see TUTOR_QUESTION_LOG_RETENTION_DAYS)."),
    out_dir: Path = typer.Option(Path("."), "--out", help="Folder for report.png (and questions.csv)."),
    csv_path: Path | None = typer.Option(None, "--csv", help="Write the questions as CSV here instead of "
                                         "<out>/questions.csv."),
    top: int = typer.Option(10, min=1, help="Rows in each table."),
) -> None:
    """Most asked topics, questions the material does not cover, pages cited most and latency per day,
    from the question log (TUTOR_QUESTION_LOG_URL); writes report.png and the questions as CSV."""
    from cli.ingest_commands import build_settings
    from insights import QuestionLogUnavailableError
    from retrieval import InvalidCourseNameError

    settings = build_settings()
    try:
        made = make_report(course, settings, since_days=since, top=top, out_dir=out_dir, csv_path=csv_path)
    except InvalidCourseNameError as error:
        raise typer.BadParameter(str(error), param_hint="--course") from None
    except QuestionLogUnavailableError as error:
        raise typer.BadParameter(str(error), param_hint="TUTOR_QUESTION_LOG_URL") from None
    if made is None:
        raise typer.Exit(1)


def register(app: typer.Typer, eval_app: typer.Typer) -> None:
    app.command("report")(report)
