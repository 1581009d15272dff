"""`tutor eval answers`: ask every question of a file through the grounded-answer path and score it.

Rows may be the MCQ schema (``choices`` with ``answer_index`` or ``answer_key``; the gold option's
text is the reference and the other options are distractors, the question asked open) or
``{question, answers: [...]}``. Either may carry ``source``, ``page`` and ``page_end`` (the gold
pages) for the citation scores. A conversation file (``scripts/make_coqa_course.py``) adds ``turn``
and ``history``, the earlier turns as ``[{"role": "user"|"assistant", "content": ...}, ...]``: the
question is asked after them (they join the search and the model reads them, as in a chat), and
the summary is split into first turns (no history) and later turns. With ``own_history`` the earlier
turns' answers are the tutor's own from the same run, as a student's conversation sends them back, in
place of the file's reference answers. Model loading stays out of here: callers pass a retriever and a
runtime, as the server holds them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path

from engine.citations import CITATION, QUOTE_LEAD, is_refusal
from engine.evaluation.answer_metrics import (
    PageSpan,
    exact_match,
    mean,
    percentile,
    score_citations,
    states_answer,
    token_f1,
)
from engine.evaluation.questions_file import read_questions
from engine.grounded import AnswerOptions, GroundedAnswer, answer_question
from engine.runtime.base import Runtime
from retrieval import Hit, Retriever
from retrieval.history import parse_history

logger = logging.getLogger(__name__)


class AnswerFileError(ValueError):
    """A questions file that cannot be read for answer evaluation."""


@dataclass
class AnswerItem:
    """One question with what a right answer states, and where the course answers it.

    ``answerable`` is False for questions the course does not cover: the right reply is then the
    "not covered" answer.
    """

    id: str
    question: str
    references: list[str]
    distractors: list[str] = field(default_factory=list)
    gold: PageSpan | None = None
    answerable: bool = True
    turn: int | None = None
    conversation: list[dict[str, str]] = field(default_factory=list)

    @property
    def group(self) -> str:
        """"first" for a question asked without earlier turns, "later" for a follow-up."""
        return "later" if self.conversation else "first"


def _gold_pages(row: dict) -> PageSpan | None:
    if row.get("source") is None or row.get("page") is None:
        return None
    page = int(row["page"])
    return PageSpan(str(row["source"]), page, int(row.get("page_end") or page))


def _references(row: dict, where: str) -> tuple[list[str], list[str]]:
    """(references, distractors) of an MCQ row or an open-question row."""
    choices = row.get("choices")
    if isinstance(choices, list) and choices:
        choices = [str(choice) for choice in choices]
        index = row.get("answer_index")
        if index is None and row.get("answer_key") is not None:
            labels = row.get("labels") or [chr(ord("A") + i) for i in range(len(choices))]
            index = labels.index(row["answer_key"]) if row["answer_key"] in labels else None
        if index is None or not 0 <= int(index) < len(choices):
            raise AnswerFileError(f"{where}: an MCQ row needs a valid 'answer_index' or 'answer_key'.")
        return [choices[int(index)]], [c for i, c in enumerate(choices) if i != int(index)]
    answers = row.get("answers", [row["answer"]] if isinstance(row.get("answer"), str) else [])
    if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
        raise AnswerFileError(f"{where}: 'answers' must be a list of reference answer strings.")
    return [a for a in answers if a.strip()], []


def parse_item(row: dict, where: str, *, off_topic: bool = False) -> AnswerItem:
    """One row as an AnswerItem; ``where`` (file:line) names it in errors."""
    question = row.get("question")
    if not isinstance(question, str) or not question.strip():
        raise AnswerFileError(f"{where}: each row needs a non-empty 'question' string.")
    references, distractors = _references(row, where)
    try:
        conversation = parse_history(row.get("history", []))
    except ValueError as error:
        raise AnswerFileError(f"{where}: {error}") from None
    return AnswerItem(id=str(row.get("id", where)), question=question, references=references,
                      distractors=distractors, gold=_gold_pages(row),
                      answerable=bool(references) and not off_topic, conversation=conversation,
                      turn=int(row["turn"]) if row.get("turn") is not None else None)


def read_answer_items(path: Path, *, limit: int | None = None, off_topic: bool = False) -> list[AnswerItem]:
    """The first ``limit`` questions of a JSONL file; ``off_topic`` marks them all as not covered."""
    return read_questions(path, lambda row, where: parse_item(row, where, off_topic=off_topic),
                          error=AnswerFileError, limit=limit)


def score_answer(item: AnswerItem, answer: GroundedAnswer) -> dict:
    """Every per-item score of one answer (a row of the results file, without the texts)."""
    sources = [PageSpan(hit.source, hit.page, hit.page_end) for hit in answer.sources]
    citations = score_citations(answer.text, sources, item.gold)
    refused = answer.not_covered or is_refusal(answer.text)
    scores = {
        "refused": refused,
        "cited": citations.cited,
        "malformed": citations.malformed,
        "uncited": not refused and not citations.cited,
        "server_added": answer.added.strip(),
        "note_quoted": QUOTE_LEAD in answer.added,
        "citation_precision": citations.precision,
        "citation_recall": citations.recall,
        "gold_retrieved": citations.gold_retrieved,
        "answer_tokens": answer.completion_tokens,
        "latency_s": round(answer.retrieval_s + answer.generation_s, 4),
    }
    if item.answerable:
        # The [n] markers are no words of the answer: "[2]" would read as "2" against a reference.
        words = CITATION.sub(" ", answer.text)
        short = answer.short.text if answer.short is not None else ""
        scores |= {"correct": states_answer(words, item.references, item.distractors),
                   "exact_match": exact_match(words, item.references),
                   "f1": round(token_f1(words, item.references), 4),
                   "short_answer": short or None,
                   "short_exact_match": exact_match(short, item.references),
                   "short_f1": round(token_f1(short, item.references), 4)}
    return scores


@dataclass
class AnswerSummary:
    """One model's scores over a file; shares are in [0, 1] and None when nothing could be judged."""

    model: str
    questions: int
    correct: float | None
    exact_match: float | None
    f1: float | None
    short_exact_match: float | None  # of the reader's short answer alone ("" when it found none)
    short_f1: float | None
    citation_precision: float | None
    citation_recall: float | None
    gold_retrieved: float | None
    malformed: float | None
    uncited: float | None
    server_added: float | None  # the share of answers the server added a quote or citation to
    notes_quoted: float | None  # ... with the best note's key sentence quoted
    false_refusals: float | None
    abstained: float | None
    answer_tokens: float | None
    latency_p50_s: float | None
    latency_p95_s: float | None
    by_turn: list[AnswerSummary] = field(default_factory=list)  # first and later turns of a conversation file


def summarise(model: str, items: Sequence[AnswerItem], rows: Sequence[dict]) -> AnswerSummary:
    """Aggregate per-item scores: answer metrics over answerable items, abstention over the others."""
    answerable = [r for i, r in zip(items, rows, strict=True) if i.answerable]
    off_topic = [r for i, r in zip(items, rows, strict=True) if not i.answerable]
    generated = [r for r in rows if r["answer_tokens"]]
    latencies = [r["latency_s"] for r in rows]

    def share(selected: Sequence[dict], key: str) -> float | None:
        return mean([None if r.get(key) is None else float(bool(r[key])) for r in selected])

    return AnswerSummary(
        model=model, questions=len(rows), correct=share(answerable, "correct"),
        exact_match=mean([r["exact_match"] for r in answerable]), f1=mean([r["f1"] for r in answerable]),
        short_exact_match=mean([r["short_exact_match"] for r in answerable]),
        short_f1=mean([r["short_f1"] for r in answerable]),
        citation_precision=mean([r["citation_precision"] for r in answerable]),
        citation_recall=mean([r["citation_recall"] for r in answerable]),
        gold_retrieved=share(answerable, "gold_retrieved"),
        malformed=mean([float(bool(r["malformed"])) for r in rows]) if rows else None,
        uncited=share(answerable, "uncited"), server_added=share(answerable, "server_added"),
        notes_quoted=share(answerable, "note_quoted"),
        false_refusals=share(answerable, "refused"),
        abstained=share(off_topic, "refused"),
        answer_tokens=mean([r["answer_tokens"] for r in generated]),
        latency_p50_s=percentile(latencies, 50), latency_p95_s=percentile(latencies, 95))


def summarise_by_turn(model: str, items: Sequence[AnswerItem], rows: Sequence[dict]) -> list[AnswerSummary]:
    """One summary for the first turns and one for the later turns (those the items have), named
    ``<model>, first turns`` and ``<model>, later turns``."""
    summaries = []
    for group in ("first", "later"):
        pairs = [(i, r) for i, r in zip(items, rows, strict=True) if i.group == group]
        if pairs:
            summaries.append(summarise(f"{model}, {group} turns", [i for i, _ in pairs],
                                       [r for _, r in pairs]))
    return summaries


def result_row(item: AnswerItem, answer: GroundedAnswer, scores: dict) -> dict:
    """One line of the per-item results file: the question, the answer, its sources, its scores."""
    sources = [{"n": n, "source": hit.source, "page": hit.page, "page_end": hit.page_end,
                "score": round(hit.score, 4)} for n, hit in enumerate(answer.sources, start=1)]
    return {"id": item.id, "turn": item.turn, "group": item.group, "question": item.question,
            "references": item.references,
            "gold": None if item.gold is None else asdict(item.gold), "answer": answer.text,
            "sources": sources, **scores}


def asked_so_far(conversation: Sequence[dict[str, str]], question: str) -> tuple[str, ...]:
    """The student's questions up to and including ``question``: what names a turn of a conversation."""
    return (*(turn["content"] for turn in conversation if turn["role"] == "user"), question)


def with_own_answers(conversation: Sequence[dict[str, str]], answered: dict[tuple[str, ...], str]
                     ) -> list[dict[str, str]]:
    """``conversation`` with each assistant turn replaced by the tutor's own answer to the question before
    it (``answered``, by ``asked_so_far``); a turn the run did not ask keeps the file's answer."""
    own, asked = [], []
    for turn in conversation:
        if turn["role"] == "assistant" and asked:
            turn = {"role": "assistant", "content": answered.get(tuple(asked), turn["content"])}
        elif turn["role"] == "user":
            asked.append(turn["content"])
        own.append(turn)
    return own


def evaluate_answers(items: Sequence[AnswerItem], retriever: Retriever, runtime: Runtime, course: str, *,
                     options: AnswerOptions = AnswerOptions(), out: Path | None = None,
                     progress: Callable[[int], None] | None = None, own_history: bool = False
                     ) -> AnswerSummary:
    """Answer each item as ``/v1/ask`` does, write per-item rows to ``out``, and summarise.

    ``own_history``: a follow-up is asked after the tutor's own earlier answers of this run (items in
    the order of their conversations), not the file's. Rows are written as they come, so an interrupted
    run on a slow machine keeps what it answered.
    """
    rows = []
    answered: dict[tuple[str, ...], str] = {}
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
    with (out.open("w", encoding="utf-8") if out is not None else nullcontext()) as handle:
        for done, item in enumerate(items, start=1):
            conversation = with_own_answers(item.conversation, answered) if own_history else item.conversation
            answer = answer_question(retriever, runtime, course, item.question,
                                     conversation=conversation, options=options)
            if own_history:
                answered[asked_so_far(item.conversation, item.question)] = answer.text
            rows.append(result_row(item, answer, score_answer(item, answer)))
            if handle is not None:
                handle.write(json.dumps(rows[-1], ensure_ascii=False) + "\n")
                handle.flush()
            if progress is not None:
                progress(done)
    summary = summarise(runtime.model_name, items, rows)
    if any(item.conversation for item in items):
        summary.by_turn = summarise_by_turn(runtime.model_name, items, rows)
    return summary


class GivenPassages:
    """A retriever that returns fixed passages per question, for sets that come with their passages.

    SQuAD and CoQA give each question its passages instead of a course: this stands in for the
    course's retriever, so the same grounded path answers (and builds the same prompt).

    >>> hit = Hit(text="Paris is in France.", score=1.0, source="geo", page=1, page_end=1, chunk_index=0)
    >>> GivenPassages({"Where is Paris?": [hit]}).search("any", "Where is Paris?")[0].source
    'geo'
    """

    def __init__(self, passages: dict[str, list[Hit]]):
        self.passages = passages

    def search(self, course: str, question: str, *, k: int = 4, min_score: float | None = None,
               mode: str | None = None) -> list[Hit]:
        """The question's passages in their given order (all of them: the order is the point)."""
        if question not in self.passages:
            raise KeyError(f"No passages were given for the question {question!r}; "
                           "add them to GivenPassages.")
        return list(self.passages[question])

    def widen(self, course: str, hits: list[Hit], neighbours: int) -> list[Hit]:
        """The passages as given: each is whole, with no neighbours to draw on."""
        return hits
