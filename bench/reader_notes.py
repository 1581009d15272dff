"""Which retrieved notes the short-answer reader should read: the first alone, or more with a lead needed.

For every question of a `tutor eval answers` file, the course is searched exactly as `/v1/ask` searches
(the server's settings, follow-ups included), and the shipped reader reads each of the top four notes
alone, favouring the sentence sharing most words with the question as served (``KEY_SENTENCE_BONUS``).
The policies are then scored on the same spans: read the first ``k`` notes and take the span whose
margin over "no answer", less ``penalty`` per rank after the first, is highest. Printed per policy:
short-answer token F1 (questions asked for yes or no left out: they get no span) and the share of
short answers citing a gold page. The served policy is ``engine.reader.READ_NOTES`` and
``RANK_PENALTY``; ``k=1`` is the reader before it::

    TUTOR_DATA_DIR=... python -m bench.reader_notes out/squad-course/squad-course-dev-questions.jsonl \\
        --course squad-dev
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from app.resources import open_retriever, open_store
from app.settings import get_settings
from app.tutoring.service import answer_options
from engine.evaluation.answer_metrics import PageSpan, token_f1
from engine.evaluation.answers import read_answer_items
from engine.reader import KEY_SENTENCE_BONUS, RANK_PENALTY, READ_NOTES, asks_yes_or_no, reader_question
from retrieval.history import search_conversation

logger = logging.getLogger(__name__)


def read_each_note(file: Path, course: str, limit: int | None) -> list[list[dict]]:
    """Per question, per retrieved note: the reader's span on it alone, its margin, F1 and gold flag."""
    settings = get_settings()
    retriever = open_retriever(settings, open_store(settings))
    options = answer_options(settings)
    questions = []
    for item in read_answer_items(file, limit=limit):
        if asks_yes_or_no(item.question):
            continue
        hits = search_conversation(retriever, course, item.question, item.conversation, k=options.top_k,
                                   min_score=options.min_score, mode=options.retrieval,
                                   settings=options.follow_up)
        notes = []
        for hit in hits:
            span = options.reader.read(reader_question(item.question, item.conversation), [hit.text],
                                       asked=item.question, key_sentence_bonus=KEY_SENTENCE_BONUS)
            gold = item.gold is not None and PageSpan(hit.source, hit.page, hit.page_end).overlaps(item.gold)
            notes.append({"margin": span.margin, "f1": token_f1(span.text, item.references), "gold": gold}
                         if span else None)
        questions.append(notes)
    return questions


def score(questions: list[list[dict]], k: int, penalty: float) -> tuple[float, float]:
    """(mean F1, share citing a gold page) of the policy, over all questions (none read: 0)."""
    f1 = gold = 0.0
    for notes in questions:
        ranked = [(note["margin"] - penalty * rank, note) for rank, note in enumerate(notes[:k]) if note]
        if ranked:
            best = max(ranked, key=lambda pair: pair[0])[1]
            f1, gold = f1 + best["f1"], gold + best["gold"]
    return f1 / max(1, len(questions)), gold / max(1, len(questions))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--course", required=True)
    parser.add_argument("--limit", type=int)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    questions = read_each_note(args.file, args.course, args.limit)
    logger.info("%s: %d questions not asked for yes or no", args.file.name, len(questions))
    logger.info("notes read | lead needed per rank | short F1 | cites a gold page")
    for k in (1, 2, 3, 4):
        for penalty in ((0.0,) if k == 1 else (0.0, 1.0, 2.0, 4.0, 8.0)):
            f1, gold = score(questions, k, penalty)
            served = " (served)" if (k, penalty) == (READ_NOTES, RANK_PENALTY) else ""
            logger.info("%d | %g | %.3f | %.3f%s", k, penalty, f1, gold, served)


if __name__ == "__main__":
    main()
