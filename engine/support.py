"""The model's sentences that the notes support, as the answer streams.

The stock 135M model's own sentences, after the short answer, are as often made up as read: "The great
captain was Aleck Dan Baxter.", "The French general, who was also a poet, died on July 7, 1789." (CoQA
dev), "The system that allows trees to transport nutrients is called transpiration." (sciq-dev), or
talk about the prompt ("The notes and citation provide a detailed answer to the question."). A sentence
using a word that neither the notes shown, the question nor the conversation holds states something
the student cannot check against the course, and is dropped; so is one that adds no word to the
question (an echo of it, or a question). On saved sciq-dev and SQuAD answers the dropped sentences
stated the right answer a quarter as often as the kept ones (README, "Only what the notes say"), and
the short answer and the quote still said it. A refusal is kept: whether to answer is not this filter's
call. Words are compared stemmed, so "landed" is supported by "land", and without the words that name
nothing ("does", "him", "also").
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Set

from engine.citations import CITATION, is_refusal
from retrieval.history import FUNCTION_WORDS, POINTING_BACK, WORD
from retrieval.lexical import LexicalSettings, tokenize
from retrieval.prompt import LEADS_ON

# A sentence ends at ., ! or ? and the citations right after it, before whitespace: "... land. [1] The".
SENTENCE_BREAK = re.compile(r"[.!?](?:\s*\[[\d\s,;]*\])*\s+")
# Words a sentence may use without a note: they name nothing (the lexical index's own stop words are few),
# or only link a term to what it names ("X is known as Y" of a note saying "Y is X").
UNNAMING = FUNCTION_WORDS | POINTING_BACK | frozenset(
    "a an the also all any both each few more most other some such only own same so very just may might "
    "must shall i you we us our your my me yes known called named referred".split())


def stems(text: str) -> set[str]:
    """The stems of the words of ``text`` that name something (not ``UNNAMING``), citations left out."""
    words = [word for word in WORD.findall(CITATION.sub(" ", text).lower()) if word not in UNNAMING]
    [stemmed] = tokenize([" ".join(words)], LexicalSettings(stopwords=None))
    return set(stemmed)


def supported(sentence: str, known: Set[str], asked: Set[str]) -> bool:
    """Whether ``sentence`` says only what ``known`` (the stems of notes, question and conversation)
    holds and adds a word to ``asked`` (the question's stems; none for a yes/no question, which a
    restatement answers); a refusal always is."""
    if is_refusal(sentence):
        return True
    words = stems(sentence)
    return (not sentence.rstrip().rstrip("[]0-9,; ").endswith("?") and words <= known
            and bool(words - asked))


def sentences(text: str) -> list[str]:
    """``text`` cut after each sentence's end (``SENTENCE_BREAK``), ends kept; the last piece is what
    follows the last end ("" when ``text`` ends with one)."""
    parts, start = [], 0
    for match in SENTENCE_BREAK.finditer(text):
        parts.append(text[start:match.end()])
        start = match.end()
    return [*parts, text[start:]]


def unfinished(text: str) -> bool:
    """Whether ``text``, the last piece of an answer, stops mid-sentence: after a comma, semicolon, colon,
    bracket or dash, on a word that leads on ("... and by July 7 Ferdinand II was", "A list is mutable,"),
    or inside brackets ("It explains what the function does (without getting"), where the token budget
    cut it (2 to 5 of each 100 dev answers)."""
    words = CITATION.sub(" ", text).split()
    return bool(words) and (words[-1][-1] in ",;:([-–—" or words[-1].lower() in LEADS_ON
                            or text.count("(") > text.count(")"))


def supported_sentences(pieces: Iterable[str], known: Set[str], asked: Set[str]) -> Iterator[str]:
    """The answer's pieces with each unsupported sentence dropped (``supported``). A sentence is held
    until it ends, then passes whole or not at all; the last one when the answer ends, unless it stops
    mid-sentence (``unfinished``). The space after a sentence passes only before the next one kept, so
    the answer never ends with it."""
    held, space = "", ""
    for piece in pieces:
        *ended, held = sentences(held + piece)
        for sentence in ended:
            if supported(sentence, known, asked):
                yield space + sentence.rstrip()
                space = sentence[len(sentence.rstrip()):]
    if held.strip() and not unfinished(held) and supported(held, known, asked):
        yield space + held
