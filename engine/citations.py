"""The ``[n]`` citations of a grounded answer: reading them, and what the server adds when the
model cited nothing.

A 135M model leaves out the ``[n]`` about two times in three, and then it is often wrong: about one
answer in six draws on no note at all (it restates the question, or talks about the prompt), others
draw on the wrong one (README, "What the server adds to an answer"). So the server ends an answer
that cites nothing with the citation of the best-ranked note holding any of its own words (those
neither the question nor the prompt already held), and with the best-ranked note's key sentence,
quoted and cited, unless the answer already says it: the student can check the answer against the
notes without opening them. An answer that cites a note or refuses is left as the model wrote it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

from retrieval.lexical import LexicalSettings, tokenize
from retrieval.prompt import (
    ANSWER_INSTRUCTION,
    NOTES_HEADING,
    QUESTION_LABEL,
    SYSTEM_PROMPT,
    key_sentences,
    one_line,
)

# "[2]", "[1, 3]", "[1][2]": every number inside square brackets made only of numbers and commas.
CITATION = re.compile(r"\[\s*(\d+(?:\s*[,;]\s*\d+)*)\s*\]")
# What a refusal says: the fixed "not covered" answer, or a model's own wording of it.
_REFUSAL = re.compile(r"\b(does not|doesn't|do not|don't) (cover|contain|mention)\b|\bnot covered\b",
                      re.IGNORECASE)
# How an uncited answer is ended: the best-ranked note's key sentence, quoted.
QUOTE_LEAD = "The notes say:"
QUOTE_WORDS = 40


def cited_numbers(answer: str) -> list[int]:
    """The source numbers an answer cites, in order of first appearance."""
    numbers: list[int] = []
    for group in CITATION.findall(answer):
        for number in re.split(r"\s*[,;]\s*", group):
            if int(number) not in numbers:
                numbers.append(int(number))
    return numbers


def is_refusal(answer: str) -> bool:
    """Whether the answer says the course does not cover the question."""
    return bool(_REFUSAL.search(answer))


def supporting_note(answer: str, question: str, notes: Sequence[str]) -> int | None:
    """The number (1-based) of the best-ranked note holding any of the answer's own words, or None.

    Words are compared as the lexical index compares them (stemmed, stop words dropped). The
    answer's own words are those neither in the question nor in the prompt's own wording: an answer
    to "What is an area of land that is wet ...?" shares "land" and "wet" with every note on the
    topic, and "The answer to the question is ..." shares the prompt's words; "wetland" is what ties
    it to a note. Notes come best first, and the first one the answer draws on is cited: on 200
    sciq-dev answers of the stock model that cited nothing, it was a gold page for 72 of 93, where
    the note holding the most own words was for 60 (README, "What the server adds to an answer").
    """
    answer_words, question_words, *note_words = tokenize([answer, question, *notes], LexicalSettings())
    return _first_holding(_beyond(answer_words, question_words), note_words)


def _beyond(words: list[str], question_words: list[str]) -> set[str]:
    """``words`` that neither the question nor the prompt's own wording holds."""
    return set(words) - set(question_words) - _prompt_words()


def _first_holding(words: set[str], note_words: list[list[str]]) -> int | None:
    """The number (1-based) of the first note holding any of ``words``, or None."""
    return next((n for n, held in enumerate(note_words, start=1) if words.intersection(held)), None)


@functools.cache
def _prompt_words() -> frozenset[str]:
    """The words of the grounded prompt's own text: echoing them ("The answer to the question is")
    is no sign of which note an answer came from."""
    [words] = tokenize([" ".join([SYSTEM_PROMPT, NOTES_HEADING, QUESTION_LABEL, ANSWER_INSTRUCTION])],
                       LexicalSettings())
    return frozenset(words)


def answer_ending(answer: str, question: str, notes: Sequence[str]) -> str:
    """What to append to ``answer`` so that a student can check it against the notes ("": nothing).

    Nothing for an answer that cites one of the notes or refuses. Otherwise `` [n]`` for the
    best-ranked note the answer draws on (none if it draws on no note), then
    `` The notes say: "<sentence>" [1]``: the best-ranked note's sentence sharing the most words
    with the question (at most ``QUOTE_WORDS``), unless the answer already holds half of the words it
    adds to the question. The quote's ``[1]`` stands for an answer drawing on note 1 as well.
    """
    if not notes or is_refusal(answer) or any(1 <= n <= len(notes) for n in cited_numbers(answer)):
        return ""
    words = one_line(key_sentences(question, [notes[0]], 1)).split()
    quote = " ".join(words[:QUOTE_WORDS]) + (" …" if len(words) > QUOTE_WORDS else "")
    answer_words, question_words, quote_words, *note_words = tokenize([answer, question, quote, *notes],
                                                                      LexicalSettings())
    note = _first_holding(_beyond(answer_words, question_words), note_words)  # supporting_note's choice
    citation = "" if note is None else f" [{note}]"
    news = _beyond(quote_words, question_words)  # what the quote says beyond the question
    if len(news.intersection(answer_words)) >= len(news) / 2:
        return citation
    return f'{"" if note == 1 else citation} {QUOTE_LEAD} "{quote}" [1]'
