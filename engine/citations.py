"""The ``[n]`` citations of a grounded answer: reading them, and what the server adds to an answer
so that a student can check it.

A 135M model leaves out the ``[n]`` about two times in three, and its answer often does not say
what the notes say: it restates the question, talks about the prompt, or writes only "The answer is
[1]." (README, "What the server adds to an answer"). So the server ends every answer that does not
already say it with the best-ranked note's key sentence, quoted and cited, and cites that note for
an uncited answer that says it: the student can check the answer against the notes without opening
them. A refusal is left as the model wrote it. An opening that says nothing ("The answer is [1].") is
dropped as the answer streams.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator, Sequence

from retrieval.lexical import LexicalSettings, tokenize
from retrieval.prompt import (
    ANSWER_INSTRUCTION,
    NO_CONTEXT_ANSWER,
    NOTES_HEADING,
    QUESTION_LABEL,
    SENTENCE_CLOSE,
    SYSTEM_PROMPT,
    key_sentences,
    one_line,
)

# "[2]", "[1, 3]", "[1][2]": every number inside square brackets made only of numbers and commas.
CITATION = re.compile(r"\[\s*(\d+(?:\s*[,;]\s*\d+)*)\s*\]")
# What a refusal says: the fixed "not covered" answer, or a model's own wording of it.
_REFUSAL = re.compile(r"\b(does not|doesn't|do not|don't) (cover|contain|mention)\b|\bnot covered\b",
                      re.IGNORECASE)
# How an answer that does not say the best-ranked note's key sentence is ended: with it, quoted.
QUOTE_LEAD = "The notes say:"
QUOTE_WORDS = 40
# An answer "says" the quote when it holds this share of the words the quote adds to the question. Half
# was chosen while headings ("Section 154") counted among those words; without them, half dropped a right
# answer on sciq-dev and two thirds kept them all (README, "What the server adds to an answer").
SAYS_SHARE = 2 / 3
# An opening that says nothing: "The answer is [1].", "The answer to this question is:" and the citations
# after it. A third of the stock model's sciq-dev answers opened so, and most said nothing more (README,
# "What the server adds to an answer").
FILLER_OPENING = re.compile(r"\s*(?:the\s+)?answer(?:\s+to\s+(?:this|the|your)\s+question)?"
                            r"\s+(?:is|would\s+be)\b(?:\s+that\b)?[\s:]*(?:\[[\d\s,;]*\][\s.:]*)*",
                            re.IGNORECASE)
_FILLER_PHRASES = tuple(f"{start}answer{asked} {verb} that" for start in ("the ", "")
                        for asked in ("", " to this question", " to the question", " to your question")
                        for verb in ("is", "would be"))
# Words that make what follows a filler opening lean on it: "The answer is [1] and [2]: marshes."
_LEANING_WORDS = frozenset("and or but nor which who whom whose where when while because since so as if then"
                           .split())
# A citation with the spaces before it, and what may still grow into one at the end of a piece.
_SPACED_CITATION = re.compile(r"(\s*)" + CITATION.pattern)
_OPEN_CITATION = re.compile(r"\s*(\[[\d\s,;]*)?$")


def cited_numbers(answer: str) -> list[int]:
    """The source numbers an answer cites, in order of first appearance."""
    numbers: list[int] = []
    for group in CITATION.findall(answer):
        for number in group_numbers(group):
            if number not in numbers:
                numbers.append(number)
    return numbers


def group_numbers(group: str) -> list[int]:
    """The numbers inside one citation's brackets: "1, 3" → [1, 3]."""
    return [int(number) for number in re.split(r"\s*[,;]\s*", group)]


class CitationFilter:
    """Drops the numbers of ``[n]`` citations that name no source, as the answer streams.

    The 135M model now and then numbers its own list ("[5] The principle ...") past the four sources
    it was shown; a student clicking such a citation finds nothing. ``[1, 5]`` becomes ``[1]``, ``[5]``
    goes with the spaces before it. A piece ending in what may still become a citation (" [", " [1,")
    is held back until the next piece settles it; ``flush`` returns what is held at the end.
    """

    def __init__(self, sources: int):
        self.sources = sources
        self.held = ""

    def feed(self, piece: str) -> str:
        text = self.held + piece
        cut = _OPEN_CITATION.search(text).start()
        self.held = text[cut:]
        return _SPACED_CITATION.sub(self._keep_valid, text[:cut])

    def flush(self) -> str:
        text, self.held = self.held, ""
        return _SPACED_CITATION.sub(self._keep_valid, text)

    def _keep_valid(self, match: re.Match[str]) -> str:
        spaces, group = match.groups()
        numbers = group_numbers(group)
        valid = [str(n) for n in numbers if 1 <= n <= self.sources]
        if len(valid) == len(numbers):
            return match.group(0)
        return f"{spaces}[{', '.join(valid)}]" if valid else ""


def valid_citations(pieces: Iterable[str], sources: int) -> Iterator[str]:
    """The answer's pieces with the citations of no source dropped (``CitationFilter``), as they come."""
    citations = CitationFilter(sources)
    for piece in pieces:
        if kept := citations.feed(piece):
            yield kept
    if rest := citations.flush():
        yield rest


class FillerOpening:
    """Drops the answer's opening when it says nothing ("The answer is [1]."), as the answer streams.

    What follows the opening is kept ("The answer is: Annelida." → "Annelida.", a lowercase first word
    capitalised, "mRNA" and "pH" not); when it does not read as an answer without it (a number, which may
    be a count: "The answer is 1."; punctuation or a conjunction: "The answer is [1], which ...") the
    opening stays. Leading whitespace goes. Pieces are held only while the answer may still open so; any
    other first word passes at once.
    """

    def __init__(self) -> None:
        self.held = ""
        self.settled = False

    def feed(self, piece: str) -> str:
        if self.settled:
            return piece
        self.held += piece
        return self._decide(final=False)

    def flush(self) -> str:
        return "" if self.settled else self._decide(final=True)

    def _decide(self, *, final: bool) -> str:
        text = self.held
        match = FILLER_OPENING.match(text)
        rest = text[match.end():] if match else ""
        # "The ans", "The answer is [1", "The answer is an": the opening or the word after it may still grow.
        unsettled = _may_open_filler(text) or (match is not None and (_OPEN_CITATION.fullmatch(rest)
                                                                       or not re.search(r"\s", rest)))
        if not final and unsettled:
            return ""
        self.settled, self.held = True, ""
        if match is None or not _stands_alone(rest):
            return text.lstrip()
        first, *others = rest.split(" ", 1)
        return " ".join([first.capitalize() if first.isalpha() and first.islower() else first, *others])


def _stands_alone(rest: str) -> bool:
    """Whether what follows a filler opening reads as an answer without it: nothing, or a word or a quote
    that does not lean on the opening ("[1], which says ...", "[1] and [2]", "1." keep it)."""
    if not rest.strip():
        return True
    first = rest.split(maxsplit=1)[0].lower()
    return (rest[0].isalpha() or rest[0] in "\"'“") and first not in _LEANING_WORDS


def _may_open_filler(text: str) -> bool:
    """Whether ``text`` is still the start of a filler opening's words."""
    words = " ".join(text.lower().split())
    return any(phrase.startswith(words) for phrase in _FILLER_PHRASES)


def without_filler_opening(pieces: Iterable[str]) -> Iterator[str]:
    """The answer's pieces without an opening that says nothing (``FillerOpening``), as they come."""
    opening = FillerOpening()
    for piece in pieces:
        if kept := opening.feed(piece):
            yield kept
    if rest := opening.flush():
        yield rest


def is_refusal(answer: str) -> bool:
    """Whether the answer says the course does not cover the question."""
    return bool(_REFUSAL.search(answer))


@functools.cache
def _prompt_words() -> frozenset[str]:
    """The words of the grounded prompt's own text: an answer echoing them ("The answer to the
    question is") says nothing of the notes."""
    [words] = tokenize([" ".join([SYSTEM_PROMPT, NOTES_HEADING, QUESTION_LABEL, ANSWER_INSTRUCTION])],
                       LexicalSettings())
    return frozenset(words)


def quoted(words: list[str], question: str) -> str:
    """A sentence's ``words`` as quoted: whole, or the ``QUOTE_WORDS`` of them around those it shares with
    ``question`` (the part the question asks about; the opening when it shares none), "…" marking where
    it was cut, and where the sentence itself was cut off (a chunk at a file's end)."""
    start = 0
    if len(words) > QUOTE_WORDS:
        wanted = set(tokenize([question], LexicalSettings())[0])
        shared = [bool(wanted.intersection(stemmed)) for stemmed in tokenize(words, LexicalSettings())]
        places = [n for n, hit in enumerate(shared) if hit]
        middle = sum(places) / len(places) if places else 0.0
        windows = range(len(words) - QUOTE_WORDS + 1)
        start = max(windows, key=lambda n: (sum(shared[n:n + QUOTE_WORDS]),
                                            -abs(n + QUOTE_WORDS / 2 - middle)))
    end = min(len(words), start + QUOTE_WORDS)
    opening = "… " if start > 0 else ""
    closing = " …" if end < len(words) or not SENTENCE_CLOSE.search(words[-1] if words else ".") else ""
    return opening + " ".join(words[start:end]) + closing


def what_was_answered(answer: str) -> str:
    """An earlier answer of the tutor as a follow-up reads it: its first line (the short answer, when it
    opens with one), without the note it quoted and without citations, whose numbers named that turn's
    notes; the "not covered" answer as it is. Read whole, the earlier answers' quotes were read back by
    the model into every later answer, pulled the search to the earlier page and doubled the prompt
    (README, "Follow-up questions")."""
    if answer.strip() == NO_CONTEXT_ANSWER:
        return answer
    first = answer.strip().split("\n", 1)[0].split(QUOTE_LEAD, 1)[0]
    return " ".join(re.sub(r"\s*" + CITATION.pattern, "", first).split()) or answer


def answer_ending(answer: str, question: str, notes: Sequence[str]) -> str:
    """What to append to ``answer`` so that a student can check it against the notes ("": nothing).

    Nothing for a refusal. An answer that does not say what the best-ranked note's key sentence (the
    one sharing the most words with the question) adds to the question, ``SAYS_SHARE`` of its words or
    more, gets that sentence quoted and cited: `` The notes say: "<sentence>" [1]`` (``quoted``).
    An answer that says it but cites no note gets `` [1]``. Chosen on the saved answers of three dev
    sets (README, "What the server adds to an answer").
    """
    if not notes or is_refusal(answer):
        return ""
    quote = quoted(one_line(key_sentences(question, [notes[0]], 1)).split(), question)
    answer_words, question_words, quote_words = tokenize([answer, question, quote], LexicalSettings())
    news = set(quote_words) - set(question_words) - _prompt_words()  # what the quote says beyond the question
    # An answer without a word of its own (nothing, or only a dropped filler opening) says nothing either.
    if not answer_words or len(news.intersection(answer_words)) < len(news) * SAYS_SHARE:
        return f' {QUOTE_LEAD} "{quote}" [1]'
    return "" if any(1 <= n <= len(notes) for n in cited_numbers(answer)) else " [1]"
