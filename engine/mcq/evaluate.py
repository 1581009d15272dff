"""Evaluate the MCQ engine on a JSONL file of questions (the schema of ``shared/data/mcq``).

Each line: ``{"id", "question", "choices": [...], "answer_index"?, "answer_key"?, "labels"?, "subject"?}``.
Labels and gold answers are optional; without gold only the no-letter rate is measured.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engine.evaluation.questions_file import read_questions
from engine.mcq.engine import MCQEngine, MCQItem, MCQOptions, MCQPrediction
from engine.mcq.letters import LETTERS
from engine.mcq.metrics import aggregate

logger = logging.getLogger(__name__)


class MCQFileError(ValueError):
    """A questions file that cannot be read as MCQ JSONL."""


@dataclass
class EvalSummary:
    """What one evaluation run measured."""

    file: str
    method: str
    prompt_format: str
    questions: int
    acc: float | None
    acc_norm: float | None
    no_letter_rate: float | None
    seconds: float
    questions_per_second: float


def _gold_index(row: dict, choices: list[str], where: str) -> int | None:
    if row.get("answer_index") is not None:
        index = int(row["answer_index"])
    elif row.get("answer_key") is not None:
        labels = row.get("labels") or list(LETTERS[: len(choices)])
        if row["answer_key"] not in labels:
            raise MCQFileError(f"{where}: answer_key {row['answer_key']!r} is not one of the labels "
                               f"{labels}.")
        index = labels.index(row["answer_key"])
    else:
        return None
    if not 0 <= index < len(choices):
        raise MCQFileError(f"{where}: the gold answer {index} is outside its {len(choices)} choices.")
    return index


def parse_row(row: dict, where: str) -> MCQItem:
    """One JSONL row as an MCQItem; ``where`` (file:line) names the row in errors."""
    question, choices = row.get("question"), row.get("choices")
    if not isinstance(question, str) or not isinstance(choices, list) or not choices:
        raise MCQFileError(f"{where}: each row needs a 'question' string and a non-empty 'choices' list.")
    choices = [str(choice) for choice in choices]
    return MCQItem(question=question, choices=choices, id=str(row.get("id", where)),
                   answer=_gold_index(row, choices, where))


def read_mcq_jsonl(path: Path, limit: int | None = None) -> list[MCQItem]:
    """The first ``limit`` questions of a JSONL file (all when None)."""
    return read_questions(path, parse_row, error=MCQFileError, limit=limit)


def result_row(item: MCQItem, prediction: MCQPrediction) -> dict:
    """One line of the per-item results file."""
    return {"id": item.id, "gold": None if item.answer is None else LETTERS[item.answer],
            "answer": prediction.letter, "answer_norm": prediction.letter_norm, "correct": prediction.correct,
            "logliks": prediction.logliks, "raw_text": prediction.raw_text, "reason": prediction.reason}


def evaluate_file(engine: MCQEngine, path: Path, options: MCQOptions, *, limit: int | None = None,
                  out: Path | None = None, progress: Callable[[int, int], None] | None = None) -> EvalSummary:
    """Answer every question of ``path``, write per-item results to ``out``, and summarise.

    ``progress(done, total)`` hears after each chunk of questions (default: a log line), so a long run
    shows how far it got.
    """
    items = read_mcq_jsonl(path, limit)
    report = progress or (lambda done, total: logger.info("%d/%d", done, total))
    started = time.perf_counter()
    predictions = engine.answer(items, options, progress=lambda done: report(done, len(items)))
    seconds = time.perf_counter() - started
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", encoding="utf-8") as handle:
            for item, prediction in zip(items, predictions, strict=True):
                handle.write(json.dumps(result_row(item, prediction)) + "\n")
    metrics = aggregate([p.outcome() for p in predictions])
    return EvalSummary(file=str(path), method=options.method, prompt_format=options.format_name,
                       questions=len(items), acc=metrics["acc"], acc_norm=metrics["acc_norm"],
                       no_letter_rate=metrics["no_letter_rate"], seconds=round(seconds, 3),
                       questions_per_second=round(len(items) / seconds, 3) if seconds > 0 else 0.0)
