"""What a follow-up costs when the model reads the whole conversation, against the last exchanges only.

The search draws on the last two exchanges of a conversation (the reader on the last one); the model
reads the same two (``engine.grounded.prepare_answer``), where it used to read all of them. For the first
``--stories`` conversations of a conversation file (``scripts/make_coqa_course.py``), every turn up to
``--turns`` is asked in order after the tutor's own earlier answers, as the student page sends them
(the file's true answers are not used). Each later turn is generated twice, in alternating order, on
the same prepared prompt: as served, and with the whole conversation between the system prompt and
the grounded question. Printed: prompt tokens and generation seconds of each, median and max, and the
ratio of the medians::

    TUTOR_DATA_DIR=... python -m bench.conversation_latency out/coqa-dev/coqa-course-conversations.jsonl \\
        --course coqa-dev
"""

from __future__ import annotations

import argparse
import logging
import statistics
from dataclasses import replace
from pathlib import Path

from app.resources import open_retriever, open_runtime, open_store
from app.settings import get_settings
from app.tutoring.service import answer_options
from engine.evaluation.answers import AnswerItem, read_answer_items
from engine.grounded import GroundedAnswer, PreparedAnswer, generate_answer, prepare_answer

logger = logging.getLogger(__name__)


def conversations(items: list[AnswerItem], stories: int, turns: int) -> list[list[str]]:
    """The questions of the first ``stories`` conversations, turns 1..``turns`` of each, in order."""
    asked: list[list[str]] = []
    for item in items:
        if not item.conversation:
            if len(asked) == stories:
                break
            asked.append([])
        if asked and len(asked[-1]) < turns:
            asked[-1].append(item.question)
    return asked


def reading_everything(prepared: PreparedAnswer, conversation: list[dict[str, str]]) -> PreparedAnswer:
    """The same prepared answer with the whole conversation in the model's prompt."""
    system, *_, question = prepared.generation.messages
    messages = [system, *conversation, question]
    return replace(prepared, generation=replace(prepared.generation, messages=messages))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--course", required=True)
    parser.add_argument("--stories", type=int, default=6)
    parser.add_argument("--turns", type=int, default=12)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    settings = get_settings()
    retriever, runtime = open_retriever(settings, open_store(settings)), open_runtime(settings)
    options = answer_options(settings)
    timed: dict[str, list[GroundedAnswer]] = {"served (last exchanges)": [], "whole conversation": []}
    for questions in conversations(read_answer_items(args.file), args.stories, args.turns):
        conversation: list[dict[str, str]] = []
        for number, question in enumerate(questions):
            prepared = prepare_answer(retriever, args.course, question, conversation=conversation,
                                      options=options)
            if not conversation or prepared.generation is None:
                served = generate_answer(runtime, prepared)
            else:
                variants = [("served (last exchanges)", prepared),
                            ("whole conversation", reading_everything(prepared, conversation))]
                for name, variant in variants[::-1] if number % 2 else variants:
                    timed[name].append(generate_answer(runtime, variant))
                served = timed["served (last exchanges)"][-1]
            conversation += [{"role": "user", "content": question},
                             {"role": "assistant", "content": served.text}]
    if not timed["whole conversation"]:
        parser.error(f"{args.file} has no later turns among its first {args.stories} conversations.")
    medians = {}
    logger.info("model reads | later turns | prompt tokens median / max | generation s median / max")
    for name, answers in timed.items():
        tokens, seconds = [a.prompt_tokens for a in answers], [a.generation_s for a in answers]
        medians[name] = statistics.median(seconds)
        logger.info("%s | %d | %d / %d | %.2f / %.2f", name, len(answers), statistics.median(tokens),
                    max(tokens), medians[name], max(seconds))
    logger.info("median generation time, served / whole conversation: %.2f",
                medians["served (last exchanges)"] / medians["whole conversation"])


if __name__ == "__main__":
    main()
