"""Page-level retrieval metrics against gold pages, with bootstrap intervals (``tutor eval retrieval``).

The gold file is JSONL, one question per line::

    {"question": "...", "source": "notes.pdf", "page": 27, "page_end": 28, "id": "q1", "choices": [...]}

``question``, ``source`` and ``page`` (1-based, as a reader numbers pages) are required; ``page_end``
(default ``page``) closes a range of gold pages; ``id`` names the item in the per-item output;
``choices`` (an MCQ's options) are appended to the query when asked to. A conversation file (as
``scripts/make_coqa_course.py`` writes) adds to each line ``turn`` (1-based) and ``history``, the
earlier turns ``[{"role": "user", "content": ...}, {"role": "assistant", "content": ...}, ...]``:
searched with a follow-up strategy, the question draws on them, and the metrics are reported for
first turns (no history) and later turns apart. A retrieved chunk is
relevant when it comes from ``source`` and its pages overlap the gold ones. Each question has one
relevant unit (its gold pages), so with ``rank`` the position of the first relevant chunk:
recall@k is rank <= k, MRR@10 is 1/rank, nDCG@10 is 1/log2(rank + 1), all 0 past rank 10.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from retrieval.history import FollowUpSettings, parse_history, search_conversation
from retrieval.search import Hit, Retriever, check_mode

RECALL_AT = (1, 3, 5, 10)
DEPTH = 10  # chunks retrieved per question
METRICS = (*(f"recall@{k}" for k in RECALL_AT), "mrr@10", "ndcg@10")
TURN_GROUPS = ("first", "later")  # questions without and with earlier turns


class GoldFileError(ValueError):
    """A gold file line that cannot be used; the message names the file, the line and the fix."""


@dataclass
class GoldItem:
    """One question and the pages that answer it."""

    question: str
    source: str
    page: int
    page_end: int
    id: str
    choices: list[str] = field(default_factory=list)
    turn: int | None = None
    history: list[dict[str, str]] = field(default_factory=list)

    @property
    def group(self) -> str:
        """"first" for a question asked without earlier turns, "later" for a follow-up."""
        return "later" if self.history else "first"

    def query(self, with_choices: bool) -> str:
        """The search text: the question, followed by its options when ``with_choices``."""
        return " ".join([self.question, *self.choices]) if with_choices else self.question

    def answered_by(self, hit: Hit) -> bool:
        return hit.source == self.source and hit.page <= self.page_end and hit.page_end >= self.page


def load_gold(path: Path) -> list[GoldItem]:
    """The gold items of a JSONL file; raises GoldFileError naming the file when it is missing, or the
    first bad line."""
    if not Path(path).is_file():
        raise GoldFileError(f"Gold file {path} does not exist; check the path.")
    items = []
    with Path(path).open() as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise GoldFileError(f"{path}, line {number}: not valid JSON ({error.msg}); write one JSON "
                                    "object per line.") from None
            items.append(_gold_item(row, path, number))
    if not items:
        raise GoldFileError(f"{path} holds no questions; write one JSON object per line with question, "
                            "source and page.")
    return items


def _gold_item(row: dict, path: Path, number: int) -> GoldItem:
    missing = [name for name in ("question", "source", "page") if name not in row]
    if missing:
        raise GoldFileError(f"{path}, line {number}: missing {', '.join(missing)}; every line needs "
                            "question, source and page (1-based), and may give page_end, id and choices.")
    page = int(row["page"])
    page_end = int(row.get("page_end") or page)
    if page < 1 or page_end < page:
        raise GoldFileError(f"{path}, line {number}: pages {page}-{page_end} are not a range of 1-based "
                            "pages; give page >= 1 and page_end >= page.")
    try:
        history = parse_history(row.get("history", []))
    except ValueError as error:
        raise GoldFileError(f"{path}, line {number}: {error}") from None
    return GoldItem(question=str(row["question"]), source=str(row["source"]), page=page, page_end=page_end,
                    id=str(row.get("id", number)), choices=[str(c) for c in row.get("choices", [])],
                    turn=int(row["turn"]) if row.get("turn") is not None else None, history=history)


def first_relevant_rank(hits: Sequence[Hit], item: GoldItem) -> int | None:
    """1-based position of the first hit on the gold pages, or None if none is."""
    return next((rank for rank, hit in enumerate(hits, start=1) if item.answered_by(hit)), None)


def item_metrics(rank: int | None) -> dict[str, float]:
    """Every metric of one question from the rank of its first relevant chunk."""
    found = rank is not None and rank <= DEPTH
    metrics = {f"recall@{k}": float(found and rank <= k) for k in RECALL_AT}
    metrics["mrr@10"] = 1.0 / rank if found else 0.0
    metrics["ndcg@10"] = 1.0 / math.log2(rank + 1) if found else 0.0
    return metrics


def bootstrap_interval(values: Sequence[float], samples: int = 1000, seed: int = 0) -> tuple[float, float]:
    """A 95% percentile-bootstrap interval of the mean of ``values``."""
    if not values:
        return (0.0, 0.0)
    generator = random.Random(seed)
    n = len(values)
    means = sorted(sum(values[generator.randrange(n)] for _ in range(n)) / n for _ in range(samples))
    return means[int(0.025 * samples)], means[int(0.975 * samples) - 1]


@dataclass
class ModeResult:
    """The metrics of one mode: means, 95% intervals, per-item records and speed.

    ``strategy`` is the follow-up strategy the questions were searched with ("none": each question
    alone); ``groups`` holds the means over first turns and over later turns (with ``questions``,
    their count), for the groups the file has.
    """

    mode: str
    means: dict[str, float]
    intervals: dict[str, tuple[float, float]]
    items: list[dict]
    queries_per_s: float
    strategy: str = "none"
    groups: dict[str, dict[str, float]] = field(default_factory=dict)


def group_means(records: Sequence[dict]) -> dict[str, dict[str, float]]:
    """Mean metrics of the first-turn and the later-turn records, with their count as ``questions``."""
    groups = {}
    for group in TURN_GROUPS:
        selected = [r for r in records if r["group"] == group]
        if selected:
            groups[group] = {"questions": len(selected),
                             **{name: sum(r[name] for r in selected) / len(selected) for name in METRICS}}
    return groups


def evaluate_mode(retriever: Retriever, course: str, items: list[GoldItem], mode: str, *,
                  with_choices: bool = False, follow_up: FollowUpSettings | None = None) -> ModeResult:
    """Search every question in ``mode`` (no "not covered" cut) and score the ranks.

    Without ``follow_up`` the questions are searched alone and together (``Retriever.search_many``), so
    ``queries_per_s`` is batched speed; with it each question is searched with its earlier turns, as
    the tutor searches a conversation.
    """
    check_mode(mode)
    strategy = follow_up.strategy if follow_up is not None else "none"
    records, started = [], time.perf_counter()
    if follow_up is None:
        queries = [item.query(with_choices) for item in items]
        found = retriever.search_many(course, queries, k=DEPTH, mode=mode)
    else:
        found = [search_conversation(retriever, course, item.query(with_choices), item.history, k=DEPTH,
                                     mode=mode, settings=follow_up) for item in items]
    for item, hits in zip(items, found, strict=True):
        rank = first_relevant_rank(hits, item)
        records.append({"id": item.id, "mode": mode, "strategy": strategy, "turn": item.turn,
                        "group": item.group, "question": item.question, "source": item.source,
                        "page": item.page, "page_end": item.page_end, "rank": rank, **item_metrics(rank),
                        "hits": [{"source": h.source, "page": h.page, "page_end": h.page_end,
                                  "score": round(h.score, 4)} for h in hits]})
    seconds = time.perf_counter() - started
    means = {name: sum(r[name] for r in records) / len(records) for name in METRICS}
    intervals = {name: bootstrap_interval([r[name] for r in records]) for name in METRICS}
    return ModeResult(mode, means, intervals, records, len(records) / seconds if seconds else 0.0,
                      strategy=strategy, groups=group_means(records))


@dataclass
class CoverageResult:
    """How the "not covered" cut treats questions from outside and inside the course."""

    min_score: float
    off_topic_refused: float  # share of off-topic questions answered "not covered" (higher is better)
    on_topic_refused: float  # share of course questions wrongly refused (lower is better)
    off_topic: int
    on_topic: int


def evaluate_coverage(retriever: Retriever, course: str, on_topic: list[str], off_topic: list[str],
                      min_score: float, mode: str) -> CoverageResult:
    """Ask both sets with the threshold: an empty result is the tutor's "not covered" answer."""
    def refused(questions: list[str]) -> float:
        empty = sum(not hits for hits in retriever.search_many(course, questions, k=1, min_score=min_score,
                                                                mode=mode))
        return empty / len(questions) if questions else 0.0

    return CoverageResult(min_score, refused(off_topic), refused(on_topic), len(off_topic), len(on_topic))


def evaluate_follow_up_coverage(retriever: Retriever, course: str, items: list[GoldItem],
                                off_topic: list[str], min_score: float, mode: str,
                                follow_up: FollowUpSettings) -> CoverageResult:
    """The "not covered" cut in conversations: the later turns of ``items`` asked with their history, and
    each off-topic question asked after one of those histories in turn (a student changing the subject).
    """
    histories = [item.history for item in items if item.history]

    def refused(asked: list[tuple[str, list[dict[str, str]]]]) -> float:
        empty = sum(not search_conversation(retriever, course, question, history, k=1, min_score=min_score,
                                            mode=mode, settings=follow_up) for question, history in asked)
        return empty / len(asked) if asked else 0.0

    on_topic = [(item.question, item.history) for item in items if item.history]
    changes = [(question, histories[n % len(histories)]) for n, question in enumerate(off_topic)
               if histories]
    return CoverageResult(min_score, refused(changes), refused(on_topic), len(changes), len(on_topic))
