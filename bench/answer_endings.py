"""What a change to the server's additions does to saved answers, without generating them again.

``tutor eval answers`` writes each answer whole: the short answer, the model's own text and what the
server added (``server_added``). For every answered question of that run, this takes the model's text
back out, prepares the question again as ``/v1/ask`` does (the notes the ending quotes from), cleans and
ends it as the server now does (``PreparedAnswer.cleaned`` and ``finish``: the filler opening dropped,
``engine.citations.answer_ending``) and scores both versions, and the answer without the model's text
(the short answer and the quote alone: what the model adds to them): correct, citation precision, the
share quoting a note and the words; then the model's sentences the notes support and those they do
not (``engine.support``), and how many of each state the answer; then a few changed answers, those
that lost a right answer first::

    TUTOR_DATA_DIR=... python -m bench.answer_endings RUN/sciq-dev-mcq.default.answers.jsonl \\
        ../shared/data/courses/sciq-dev/sciq-dev-mcq.jsonl --course sciq-dev
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from app.resources import open_retriever, open_store
from app.settings import get_settings
from app.tutoring.service import answer_options
from engine.citations import CITATION, QUOTE_LEAD
from engine.evaluation.answer_metrics import PageSpan, mean, score_citations, states_answer
from engine.evaluation.answers import read_answer_items
from engine.evaluation.questions_file import read_questions
from engine.grounded import prepare_answer
from engine.support import sentences, supported

logger = logging.getLogger(__name__)


def models_text(row: dict, lead: str) -> str:
    """The model's own text of a saved answer: without the short answer's line and the server's ending.

    ``lead`` is the short answer's line as the question is prepared now; a saved answer opening
    otherwise was made with other settings (``TUTOR_SHORT_ANSWERS``, another reader), and is refused.
    """
    if not row["answer"].startswith(lead):
        raise SystemExit(f"Answer {row['id']} does not open with {lead!r}: ask the saved run's questions "
                         "with the settings it ran with.")
    text = row["answer"].removeprefix(lead)
    added = row["server_added"]
    return text[: len(text) - len(added)].rstrip() if added else text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("answers", type=Path, help="The per-item JSONL of a `tutor eval answers` run.")
    parser.add_argument("file", type=Path, help="The question file that run asked.")
    parser.add_argument("--course", required=True)
    parser.add_argument("--shown", type=int, default=5, help="Changed answers to print.")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    settings = get_settings()
    retriever, options = open_retriever(settings, open_store(settings)), answer_options(settings)
    rows = read_questions(args.answers, lambda row, _: row, error=ValueError)
    items = {item.id: item for item in read_answer_items(args.file)}
    scored: dict[str, list[tuple[bool, float | None, bool, int]]] = {
        "saved": [], "as served now": [], "without the model's text": []}
    changed = []
    by_support = {True: [0, 0], False: [0, 0]}  # supported or not: [sentences, stating the answer]
    for row in rows:
        item = items[row["id"]]
        if row["refused"] or not item.answerable:
            continue
        prepared = prepare_answer(retriever, args.course, item.question, conversation=item.conversation,
                                  options=options)
        written = models_text(row, prepared.lead)
        served, _ = prepared.finish("".join(prepared.cleaned([written])))
        alone, _ = prepared.finish("")  # the short answer and the quote: what the model's text adds to them
        sources = [PageSpan(hit["source"], hit["page"], hit["page_end"]) for hit in row["sources"]]
        versions = (("saved", row["answer"]), ("as served now", served), ("without the model's text", alone))
        for name, text in versions:
            scored[name].append((states_answer(CITATION.sub(" ", text), item.references, item.distractors),
                                 score_citations(text, sources, item.gold).precision, QUOTE_LEAD in text,
                                 len(text.split())))
        asked = prepared.asked_words
        for sentence in sentences(written) if prepared.known else []:
            if sentence.strip():
                tally = by_support[supported(sentence, prepared.known, asked)]
                tally[0] += 1
                tally[1] += states_answer(CITATION.sub(" ", sentence), item.references, item.distractors)
        if served != row["answer"]:
            lost = scored["saved"][-1][0] and not scored["as served now"][-1][0]
            changed.append((not lost, row["answer"], served))
    logger.info("answers | answered | correct | citation precision | quoting a note | words (mean)")
    for name, scores in scored.items():
        logger.info("%s | %d | %d | %.3f | %d | %.1f", name, len(scores), sum(s[0] for s in scores),
                    mean([s[1] for s in scores]) or 0.0, sum(s[2] for s in scores),
                    mean([s[3] for s in scores]) or 0.0)
    for kept, (count, right) in by_support.items():
        logger.info("model's sentences %s: %d, stating the answer %d", "kept" if kept else "dropped",
                    count, right)
    logger.info("%d answers changed, %d of them no longer right", len(changed),
                sum(not still for still, _, _ in changed))
    for _, before, after in sorted(changed, key=lambda change: change[0])[: args.shown]:
        logger.info("  %s\n  -> %s", " ".join(before.split()), " ".join(after.split()))


if __name__ == "__main__":
    main()
