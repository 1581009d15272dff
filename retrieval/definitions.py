"""Definition questions: "What is a tuple?" is answered by the sentence that defines the term.

Students ask what a term means more than anything else, and such a question shares one word with every
page that uses the term: retrieval ranks the pages that use it most, the reader picks a phrase of them
("Glossary 229 >>> printall" for "What is a keyword?"), and the quote is whichever sentence names it
first. A course defines a term in a sentence of a few set shapes ("A tuple is a sequence of values",
"tuple: an immutable sequence", "... is called a tuple"): ``defined_term`` reads the term off the
question, ``defines`` finds such a sentence, and hybrid search (``Retriever``) puts the chunks holding
one among its best ``DEFINITION_CANDIDATES`` at the head of its ranking (``definitions_first``).
Measured on Think Python's glossary terms asked of the book (README, "Definition questions").
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # search ranks with this module's help
    from retrieval.search import Hit

# The chunks of a wider search that may be moved ahead (the served k are the first of these).
DEFINITION_CANDIDATES = 20
_WORD = r"[A-Za-z][\w-]*"  # no apostrophe: "What is Newton's law?" or "the princes' names" name no term
_TERM = rf"({_WORD}(?:[ -]{_WORD}){{0,3}})"  # one to four words
_ARTICLE = r"(?:an? |the )?"
DEFINITION_QUESTION = re.compile(
    r"^\s*(?:" + "|".join([
        rf"what(?: is|'s| are) (?:an? )?{_TERM}",
        rf"what (?:does|do) {_ARTICLE}{_TERM} mean",
        rf"what is meant by {_ARTICLE}{_TERM}",
        rf"what is the (?:meaning|definition) of {_ARTICLE}{_TERM}",
        rf"define {_ARTICLE}{_TERM}",
    ]) + r")\s*[?.!]?\s*$", re.IGNORECASE)
# "What is the X?" asks what X means when the notes define X ("What is the Hall coefficient?"), and for a
# value or a name when they do not ("What is the population?", "What is the largest city?"): ``named_term``.
THE_TERM_QUESTION = re.compile(rf"^\s*what(?: is|'s| are) the {_TERM}\s*[?.!]?\s*$", re.IGNORECASE)
# Words that make "What is X?" ask for something other than X's meaning: what X is called or does ("What
# are those climates called?", "What is released during ...?"), a preposition tying X to something else
# ("What is another term for flagella?"), or a word pointing back or at one thing ("What is the
# difference?", "What is his name?").
NOT_A_TERM = frozenset(
    "called named known used made released found caused another other some most many for after during in on "
    "at by with from to into about the this that these those it its his her their he she they them your my "
    "our".split())
# Nouns that, with more words, ask for a name, a part or an example of them ("What are examples of economic
# actors?", "What is a type of rock?"); alone they are terms ("What does type mean?").
NAMING_NOUNS = frozenset("example examples kind kinds type types part parts name names term terms word words"
                         .split())


def defined_term(question: str) -> str | None:
    """The term ``question`` asks the meaning of ("What is a tuple?" → "tuple"), or None."""
    match = DEFINITION_QUESTION.match(question)
    if match is None:
        return None
    term = next(group for group in match.groups() if group)
    words = term.lower().split()
    if NOT_A_TERM.intersection(words) or (len(words) > 1 and NAMING_NOUNS.intersection(words)):
        return None
    return term


def named_term(question: str) -> str | None:
    """The X of "What is the X?" ("What is the Larmor frequency?" → "Larmor frequency"), or None; not X "of"
    something ("What is the capital of France?"). Such a question asks what X means only when the notes
    define X (``defines``), which callers check."""
    match = THE_TERM_QUESTION.match(question)
    if match is None:
        return None
    words = match.group(1).lower().split()
    return None if NOT_A_TERM.union(["of"]).intersection(words) else match.group(1)


def term_asked(question: str) -> str | None:
    """The term a question may ask the meaning of (``defined_term``, else ``named_term``): the chunks and
    sentences defining it, if any do, go first."""
    return defined_term(question) or named_term(question)


def _term_pattern(term: str) -> str:
    """The term as a regular expression: any spacing or hyphen between its words, an optional plural."""
    words = [re.escape(word) for word in re.split(r"[\s-]+", term.strip())]
    return r"[\s-]+".join(words) + r"(?:e?s)?"


@functools.lru_cache(maxsize=256)
def _definition_patterns(term: str) -> tuple[re.Pattern[str], ...]:
    named = _term_pattern(term)
    opening = r"(?:^|(?<=[.!?:])\s)[^\w\n]*"  # a sentence's (or a line's) start
    patterns = (rf"{opening}(?:an? |the )?{named}\s*(?::|\s-\s|\bmeans?\b|\brefers? to\b)",
                rf"\b(?:is|are) (?:called|known as) (?:an? |the )?[\"“']?{named}\b",
                rf"(?<!of )(?<!to )(?<!the )\b{named}\s*(?:\([^)]*\)\s*)?(?:is|are)\s+(?:an?|the|one|any)\b")
    return tuple(re.compile(pattern, re.IGNORECASE | re.MULTILINE) for pattern in patterns)


def defines(term: str, text: str) -> bool:
    """Whether a sentence of ``text`` defines ``term``: opens with it followed by a colon, a dash, "means"
    or "refers to" ("tuple: an immutable sequence"), names it with "is called" or "is known as", or says
    "<term> is a/an/the ..." ("In Python, a tuple is a sequence ..."; not "Analysis of algorithms is a
    ...", "learning to program is an ...", "The result of the operator is a new list")."""
    return any(pattern.search(text) for pattern in _definition_patterns(term))


def definitions_first(term: str, ranking: Sequence[Hit], k: int) -> list[Hit]:
    """The ``k`` first of ``ranking`` after moving the hits that define ``term`` (``defines``) to its head,
    each group in ranking order. Scores keep their places, so they still fall: a moved hit takes the
    score of the place it moves to."""
    defining = [hit for hit in ranking if defines(term, hit.text)]
    reordered = [*defining, *(hit for hit in ranking if hit not in defining)][:k]
    return [replace(hit, score=placed.score) for hit, placed in zip(reordered, ranking, strict=False)]
