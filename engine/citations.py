"""The ``[n]`` citations of a grounded answer: reading them, and the one the server adds when the
model cited nothing.

A 135M model states an answer from the notes but leaves out the ``[n]`` about two times in three
(README, "Citations the model leaves out"). A student then cannot open the page the answer came
from, so the server cites it: the best-ranked note holding any of the answer's own words, those
neither the question nor the prompt already held. An answer that cites a note, refuses, or shares
no such word with any note is left as the model wrote it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

from retrieval.lexical import LexicalSettings, tokenize
from retrieval.prompt import ANSWER_INSTRUCTION, NOTES_HEADING, QUESTION_LABEL, SYSTEM_PROMPT

# "[2]", "[1, 3]", "[1][2]": every number inside square brackets made only of numbers and commas.
CITATION = re.compile(r"\[\s*(\d+(?:\s*[,;]\s*\d+)*)\s*\]")
# What a refusal says: the fixed "not covered" answer, or a model's own wording of it.
_REFUSAL = re.compile(r"\b(does not|doesn't|do not|don't) (cover|contain|mention)\b|\bnot covered\b",
                      re.IGNORECASE)


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
    it to a note. Notes come best first, and the first one the answer draws on is cited: on 100
    sciq-dev answers of the stock model that cited nothing, it was a gold page for 39 of 50, where
    the note holding the most own words was for 30 (README, "Citations the model leaves out").
    """
    answer_words, question_words, *note_words = tokenize([answer, question, *notes], LexicalSettings())
    own = set(answer_words) - set(question_words) - _prompt_words()
    return next((n for n, words in enumerate(note_words, start=1) if own.intersection(words)), None)


@functools.cache
def _prompt_words() -> frozenset[str]:
    """The words of the grounded prompt's own text: echoing them ("The answer to the question is")
    is no sign of which note an answer came from."""
    [words] = tokenize([" ".join([SYSTEM_PROMPT, NOTES_HEADING, QUESTION_LABEL, ANSWER_INSTRUCTION])],
                       LexicalSettings())
    return frozenset(words)


def citation_to_add(answer: str, question: str, notes: Sequence[str]) -> str:
    """What to append to ``answer`` so that it cites its note: ``" [n]"``, or "" to leave it as it is.

    Nothing is added to an answer that cites one of the notes, that refuses, or whose own words no
    note holds.
    """
    if any(1 <= n <= len(notes) for n in cited_numbers(answer)) or is_refusal(answer):
        return ""
    note = supporting_note(answer, question, notes)
    return "" if note is None else f" [{note}]"
