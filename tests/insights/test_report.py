"""The report on a seeded log: topics, not covered questions, pages cited most, latency per day, CSV, PNG."""

from __future__ import annotations

import csv
import io
from datetime import datetime

import pytest

from insights import QuestionEntry
from insights.chart import report_png
from insights.report import CSV_COLUMNS, build_report, cluster_questions, write_csv

COURSE = "physics-101"
KEYWORDS = ("inertia", "momentum", "exam", "entropy", "cafeteria")


class KeywordEmbedder:
    """One axis per keyword a question mentions: questions sharing a keyword are the same topic."""

    def embed(self, texts: list[str]) -> list[list[float]]:
        return [[1.0 if word in text.lower() else 0.0 for word in KEYWORDS] + [0.1] for text in texts]


def asked(question: str, day: int, latency_s: float, pages: tuple[int, ...] = (), hour: int = 10,
          not_covered: bool = False) -> QuestionEntry:
    sources = [{"source": "mechanics.pdf", "page": page, "score": 0.5 + page / 100} for page in pages]
    return QuestionEntry(course=COURSE, question=question, route="ask", model="fake-model", sources=sources,
                         not_covered=not_covered, latency_s=latency_s, asked_at=datetime(2026, 3, day, hour))


SEEDED = [
    asked("What is inertia?", 1, 1.0, (2, 3)),
    asked("what is  INERTIA?", 1, 2.0, (2,)),
    asked("Explain inertia with an example", 1, 3.0, (2, 4)),
    asked("How is momentum defined?", 2, 4.0, (5,)),
    asked("Is momentum conserved?", 2, 5.0, (5, 2)),
    asked("When is the exam?", 2, 0.1, not_covered=True),
    asked("What time is the final exam?", 3, 0.2, not_covered=True),
    asked("Where is the cafeteria?", 3, 0.3, not_covered=True),
]


@pytest.fixture
def report():
    return build_report(COURSE, SEEDED, KeywordEmbedder(), since_days=30)


def test_topics_are_clusters_named_by_their_most_central_question(report):
    assert [(topic.label, topic.size) for topic in report.topics] == [
        ("What is inertia?", 3), ("How is momentum defined?", 2), ("When is the exam?", 2),
        ("Where is the cafeteria?", 1)]
    assert report.topics[0].examples == ["Explain inertia with an example"]  # the rewording merged with it
    assert (report.questions, report.not_covered) == (8, 3)


def test_not_covered_questions_are_grouped_apart(report):
    assert [(topic.label, topic.size) for topic in report.uncovered] == [
        ("When is the exam?", 2), ("Where is the cafeteria?", 1)]


def test_pages_cited_most_count_answers_and_average_scores(report):
    assert [(p.source, p.page, p.count) for p in report.pages] == [
        ("mechanics.pdf", 2, 4), ("mechanics.pdf", 5, 2), ("mechanics.pdf", 3, 1), ("mechanics.pdf", 4, 1)]
    assert report.pages[0].mean_score == pytest.approx(0.52)


def test_latency_per_day_has_percentiles_and_not_covered_counts(report):
    series = [(str(d.day), d.questions, d.not_covered, d.p50_s, d.p95_s) for d in report.latency]
    assert series == [("2026-03-01", 3, 0, 2.0, 2.9), ("2026-03-02", 3, 1, 4.0, 4.9),
                      ("2026-03-03", 2, 2, 0.25, 0.295)]


def test_csv_has_the_header_and_one_row_per_question():
    out = io.StringIO()
    assert write_csv(SEEDED, out) == len(SEEDED)
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert rows[1] == ["2026-03-01T10:00:00", COURSE, "ask", "fake-model", "What is inertia?", "false",
                       "1.0000", "mechanics.pdf p.2 (0.52); mechanics.pdf p.3 (0.53)"]
    assert rows[6][5:] == ["true", "0.1000", ""]
    assert len(rows) == len(SEEDED) + 1


def test_chart_is_a_png(report):
    png = report_png(report)
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000


def test_no_questions_no_topics():
    assert cluster_questions([], KeywordEmbedder()) == []
    [single] = cluster_questions(["What is entropy?"], KeywordEmbedder())
    assert (single.label, single.size, single.examples) == ("What is entropy?", 1, [])


@pytest.mark.integration
def test_the_course_embedder_groups_rewordings_and_topics(embedder):
    questions = ["What is inertia?", "what is inertia", "Explain inertia please", "How is momentum defined?",
                 "What is momentum?", "Is momentum conserved in collisions?", "When is the exam?",
                 "What time is the final exam?", "What is entropy?"]
    topics = {topic.label: topic.size for topic in cluster_questions(questions, embedder)}
    assert topics == {"What is inertia?": 3, "What is momentum?": 3, "When is the exam?": 2,
                      "What is entropy?": 1}
