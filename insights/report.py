"""A course's report from its logged questions: topics, what the material does not cover, the pages
cited most, latency per day; and the rows as CSV.

Topics come from clustering the questions' embeddings (the course's own embedder) by average-linkage
agglomeration with a cosine-similarity threshold: no number of topics to guess, and a question
unlike all others stays a topic of its own. Each topic is named by its most central question.
"""

from __future__ import annotations

import csv
import logging
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Protocol, TextIO

from insights.log import QuestionEntry

logger = logging.getLogger(__name__)

# all-MiniLM-L6-v2, on 13 physics and course questions: rewordings of one question 0.81-0.95, other
# questions on one topic (momentum defined / conserved) 0.55-0.61, unrelated ones below 0.45. Average
# linkage at 0.5 joins a topic's questions without chaining unrelated ones; 0.6 split momentum in two.
TOPIC_SIMILARITY = 0.5
MAX_DISTINCT_QUESTIONS = 2000  # the clustering holds a square distance matrix: 2000² floats is 32 MB
EXAMPLES_PER_TOPIC = 4
CSV_COLUMNS = ("asked_at_utc", "course", "route", "model", "question", "not_covered", "latency_s", "sources")


class TextEmbedder(Protocol):
    """What clustering needs of an embedder (``retrieval.Embedder`` has it)."""

    def embed(self, texts: list[str]) -> list[list[float]]: ...


@dataclass
class Topic:
    """Questions about one thing: named by the most central one, with how many were asked."""

    label: str
    size: int
    examples: list[str]


@dataclass
class CitedPage:
    """A page of a course file with how many answers cited it and its mean retrieval score."""

    source: str
    page: int
    count: int
    mean_score: float


@dataclass
class DailyLatency:
    """One day's questions and answer latency percentiles, in seconds."""

    day: date
    questions: int
    not_covered: int
    p50_s: float
    p95_s: float


@dataclass
class CourseReport:
    """Everything the report page and ``tutor report`` show for one course."""

    course: str
    since_days: float | None
    questions: int
    not_covered: int
    topics: list[Topic]
    uncovered: list[Topic]
    pages: list[CitedPage]
    latency: list[DailyLatency]


def distinct_questions(questions: Sequence[str]) -> tuple[list[str], list[int]]:
    """Questions with spacing and case differences merged, most asked first, with their counts."""
    counts: Counter[str] = Counter()
    first_form: dict[str, str] = {}
    for question in questions:
        text = " ".join(question.split())
        key = text.casefold()
        counts[key] += 1
        first_form.setdefault(key, text)
    ranked = counts.most_common(MAX_DISTINCT_QUESTIONS)
    if len(counts) > MAX_DISTINCT_QUESTIONS:
        logger.info("Clustering the %d most asked of %d distinct questions.", MAX_DISTINCT_QUESTIONS,
                    len(counts))
    return [first_form[key] for key, _ in ranked], [count for _, count in ranked]


def cluster_labels(vectors, similarity: float) -> list[int]:
    """Average-linkage clusters of unit ``vectors`` whose members are on average ``similarity``-close."""
    if len(vectors) < 2:
        return [0] * len(vectors)
    from sklearn.cluster import AgglomerativeClustering

    clustering = AgglomerativeClustering(n_clusters=None, metric="cosine", linkage="average",
                                         distance_threshold=1.0 - similarity)
    return clustering.fit_predict(vectors).tolist()


def cluster_questions(questions: Sequence[str], embedder: TextEmbedder, *,
                      similarity: float = TOPIC_SIMILARITY) -> list[Topic]:
    """Group ``questions`` into topics, largest first; a topic's label is its most central question."""
    import numpy as np

    texts, counts = distinct_questions(questions)
    if not texts:
        return []
    vectors = np.asarray(embedder.embed(texts), dtype=np.float64)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    members: dict[int, list[int]] = defaultdict(list)
    for index, label in enumerate(cluster_labels(vectors, similarity)):
        members[label].append(index)
    topics = []
    for indices in members.values():
        weights = np.asarray([counts[i] for i in indices], dtype=np.float64)
        centrality = (vectors[indices] @ vectors[indices].T) @ weights  # repeats pull the centre
        ordered = [indices[i] for i in np.argsort(-centrality, kind="stable")]
        topics.append(Topic(label=texts[ordered[0]], size=int(weights.sum()),
                            examples=[texts[i] for i in ordered[1 : 1 + EXAMPLES_PER_TOPIC]]))
    return sorted(topics, key=lambda topic: (-topic.size, topic.label))


def cited_pages(entries: Sequence[QuestionEntry], *, top: int = 10) -> list[CitedPage]:
    """The (file, page) pairs cited by most answers."""
    counts: Counter[tuple[str, int]] = Counter()
    scores: dict[tuple[str, int], float] = defaultdict(float)
    for entry in entries:
        for source in entry.sources:
            key = (str(source["source"]), int(source["page"]))
            counts[key] += 1
            scores[key] += float(source["score"])
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:top]
    return [CitedPage(source=source, page=page, count=count,
                      mean_score=round(scores[source, page] / count, 4)) for (source, page), count in ranked]


def latency_by_day(entries: Sequence[QuestionEntry]) -> list[DailyLatency]:
    """Per UTC day: questions, "not covered" answers, and p50/p95 of the answer latency."""
    import numpy as np

    days: dict[date, list[QuestionEntry]] = defaultdict(list)
    for entry in entries:
        days[entry.asked_at.date()].append(entry)
    series = []
    for day in sorted(days):
        latencies = np.asarray([entry.latency_s for entry in days[day]])
        series.append(DailyLatency(day=day, questions=len(latencies),
                                   not_covered=sum(entry.not_covered for entry in days[day]),
                                   p50_s=round(float(np.percentile(latencies, 50)), 4),
                                   p95_s=round(float(np.percentile(latencies, 95)), 4)))
    return series


def build_report(course: str, entries: Sequence[QuestionEntry], embedder: TextEmbedder, *,
                 since_days: float | None = None, top: int = 10) -> CourseReport:
    """The report of ``entries`` (one course's logged questions); ``top`` bounds each list."""
    uncovered = [entry.question for entry in entries if entry.not_covered]
    return CourseReport(
        course=course, since_days=since_days, questions=len(entries), not_covered=len(uncovered),
        topics=cluster_questions([entry.question for entry in entries], embedder)[:top],
        uncovered=cluster_questions(uncovered, embedder)[:top],
        pages=cited_pages(entries, top=top), latency=latency_by_day(entries),
    )


def sources_text(sources: Sequence[dict]) -> str:
    """``notes.pdf p.2 (0.83); notes.pdf p.3 (0.51)``: readable in a spreadsheet cell."""
    return "; ".join(f"{s['source']} p.{s['page']} ({s['score']:.2f})" for s in sources)


def write_csv(entries: Sequence[QuestionEntry], out: TextIO) -> int:
    """Write ``entries`` as CSV rows under ``CSV_COLUMNS``; returns the number of rows."""
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for entry in entries:
        writer.writerow([entry.asked_at.isoformat(timespec="seconds"), entry.course, entry.route, entry.model,
                         entry.question, str(entry.not_covered).lower(), f"{entry.latency_s:.4f}",
                         sources_text(entry.sources)])
    return len(entries)
