"""The report page and CSV of one course, from the question log (see insights/ for the report itself)."""

from __future__ import annotations

import base64
import io
from html import escape

from insights import QuestionLog
from insights.report import CourseReport, TextEmbedder, build_report, write_csv
from retrieval.store import check_course_name

PAGE_STYLE = ("body{font-family:sans-serif;max-width:70em;margin:2em auto}table{border-collapse:collapse}"
              "td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}")


def course_report(course: str, log: QuestionLog, embedder: TextEmbedder,
                  since_days: int | None) -> CourseReport:
    """The report of ``course`` over the whole log, or its last ``since_days`` days."""
    entries = log.store.entries(check_course_name(course), since_days=since_days)
    return build_report(course, entries, embedder, since_days=since_days)


def course_csv(course: str, log: QuestionLog, since_days: int | None) -> str:
    """The course's logged questions as CSV text (insights.report.CSV_COLUMNS)."""
    out = io.StringIO()
    write_csv(log.store.entries(check_course_name(course), since_days=since_days), out)
    return out.getvalue()


def table(headers: tuple[str, ...], rows: list[tuple]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    cells = ("".join(f"<td>{escape(str(cell))}</td>" for cell in row) for row in rows)
    body = "".join(f"<tr>{row}</tr>" for row in cells)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def topic_rows(report_topics) -> list[tuple]:
    return [(topic.size, topic.label, " | ".join(topic.examples)) for topic in report_topics]


def report_sections(report: CourseReport) -> list[str]:
    """The page's tables, in reading order."""
    return [
        "<h2>Most asked topics</h2>",
        table(("questions", "topic (its most central question)", "other questions"),
              topic_rows(report.topics)),
        "<h2>Questions the course material does not cover</h2>",
        table(("questions", "topic", "other questions"), topic_rows(report.uncovered)),
        "<h2>Pages cited most</h2>",
        table(("file", "page", "answers citing it", "mean score"),
              [(p.source, p.page, p.count, f"{p.mean_score:.2f}") for p in report.pages]),
        "<h2>Latency per day (UTC)</h2>",
        table(("day", "questions", "not covered", "p50 s", "p95 s"),
              [(d.day.isoformat(), d.questions, d.not_covered, f"{d.p50_s:.2f}", f"{d.p95_s:.2f}")
               for d in report.latency]),
    ]


def report_html(report: CourseReport) -> str:
    """A self-contained page: the tables, the chart inlined as a base64 PNG, a link to the CSV."""
    from insights.chart import report_png

    course = escape(report.course)
    period = f"the last {report.since_days:g} days" if report.since_days else "the whole log"
    parts = [f"<h1>Questions asked in {course}</h1>",
             f"<p>{report.questions} questions over {period}; {report.not_covered} not covered by the "
             f"material. <a href=\"report.csv?course={course}\">CSV export</a></p>"]
    if report.questions:
        png = base64.b64encode(report_png(report)).decode()
        chart = f'<img alt="charts of {course}" src="data:image/png;base64,{png}">'
        parts += [*report_sections(report), chart]
    return (f"<!doctype html><html><head><meta charset=\"utf-8\"><title>Report: {course}</title>"
            f"<style>{PAGE_STYLE}</style></head><body>{''.join(parts)}</body></html>")
