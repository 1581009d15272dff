"""Turn what a model wrote into one option letter, or None with the reason.

Models answer "B", "(B)", "b.", "Answer: B", "The correct answer is B) Paris", "option b", the
option's text alone, or reason at length before a final answer. The rules, strongest first:

1. a stated answer ("answer is B", "Answer: (B)", "option b", "choice C");
2. a letter opening a line ("b.", "(B)", "B) Paris"); when several lines open with different
   letters, the reply lists the options rather than choosing, and gives no letter unless it
   also states one;
3. a capital letter standing alone ("C is correct", "I pick (C)");
4. the text of an option without its letter (an option contained in a longer named one loses).

Within the strongest rule that matches, the last mention wins: a model that corrects itself
("A... no, the answer is C") is taken at its final word.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

LETTERS = "ABCDEFGHIJ"

# "answer is B", "Answer: (b)", "correct option would be C", "option d", "choice: A", "letter B"
_STATED = re.compile(
    r"(?:answer|option|choice|letter)s?\b[^A-Za-z0-9\n]{0,3}"
    r"(?:(?:is|would be|will be|should be|must be)\b[^A-Za-z0-9\n]{0,3})?(?:(?:option|choice|letter)\s+)?"
    r"[\(\[]?(?P<letter>[A-Ja-j])(?P<after>[\)\]]?)(?![A-Za-z0-9'])",
    re.IGNORECASE,
)
# A line that starts with a letter marker: "B) Paris", "(B) Paris", "b. Paris", "C: ...", or only "C"
_LINE_START = re.compile(r"^\s*[\(\[]?(?P<letter>[A-Ja-j])(?P<after>[\)\]\.:]|\s*$)", re.MULTILINE)
# A capital letter standing alone: "(C)", "C is correct", "between B and C".
_ALONE = re.compile(r"(?<![A-Za-z0-9'\-])[\(\[]?(?P<letter>[A-J])(?P<after>[\)\]]?)(?![A-Za-z0-9'\-])")
_WORD_AFTER = re.compile(r"\s+[a-z]")


@dataclass(frozen=True)
class LetterExtraction:
    """The extracted letter (None when nothing usable) and which rule decided, or why none did."""

    letter: str | None
    index: int | None
    rule: str  # "stated", "line_start", "alone", "option_text", or "none"
    reason: str | None = None  # why no letter, when letter is None


def _is_word(text: str, match: re.Match) -> bool:
    """'A', 'a' or 'I' followed by a lowercase word is English ("a cat", "I think"), not a letter."""
    return (match.group("letter") in "aAIi" and not match.group("after")
            and _WORD_AFTER.match(text, match.end()) is not None)


def _mentions(pattern: re.Pattern, text: str) -> list[tuple[int, str]]:
    matches = [m for m in pattern.finditer(text) if not _is_word(text, m)]
    return [(m.start("letter"), m.group("letter").upper()) for m in matches]


def _normalise(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text.lower()).split())


def _option_text_index(text: str, choices: Sequence[str]) -> int | None:
    """The option whose text the reply names last; an option contained in a longer match loses."""
    reply = f" {_normalise(text)} "
    spans = []
    for index, choice in enumerate(choices):
        needle = _normalise(choice)
        if needle:
            position = reply.rfind(f" {needle} ")
            if position >= 0:
                spans.append((position, position + len(needle) + 1, index))
    inside_other = {i for s, e, i in spans for s2, e2, j in spans if j != i and s2 <= s and e <= e2
                    and (e2 - s2) > (e - s)}
    kept = [span for span in spans if span[2] not in inside_other]
    return max(kept, key=lambda span: (span[1], span[1] - span[0]))[2] if kept else None


def _last_valid(mentions: list[tuple[int, str]], valid: str) -> tuple[str | None, str | None]:
    """The last mentioned letter among the options, or why the mentions were unusable."""
    in_range = [letter for _, letter in mentions if letter in valid]
    if in_range:
        return in_range[-1], None
    if mentions:
        letter = mentions[-1][1]
        return None, f"the reply names letter {letter}, not one of the options {valid[0]}-{valid[-1]}"
    return None, None


def extract_letter(text: str | None, choices: Sequence[str]) -> LetterExtraction:
    """The option letter a reply states, or None with the reason.

    >>> extract_letter("The correct answer is B.", ["cat", "dog"]).letter
    'B'
    """
    valid = LETTERS[: len(choices)]
    cleaned = (text or "").replace("**", " ").strip()
    if not cleaned:
        return LetterExtraction(None, None, "none", "the reply is empty")
    line_starts = _mentions(_LINE_START, cleaned)
    # Lines opening with different letters list the options rather than choose one.
    listed = {letter for _, letter in line_starts}
    listing = len(listed) > 1
    alone = [m for m in _mentions(_ALONE, cleaned) if not (listing and m in line_starts)]
    out_of_range = None
    tiers = (("stated", _mentions(_STATED, cleaned)), ("line_start", [] if listing else line_starts),
             ("alone", alone))
    for rule, mentions in tiers:
        letter, why = _last_valid(mentions, valid)
        if letter:
            return LetterExtraction(letter, valid.index(letter), rule)
        out_of_range = out_of_range or why
    if listing:
        return LetterExtraction(None, None, "none", f"the reply lists options {', '.join(sorted(listed))} "
                                "without choosing one")
    index = _option_text_index(cleaned, choices)
    if index is not None:
        return LetterExtraction(valid[index], index, "option_text")
    reason = out_of_range or "the reply names no option letter and no option's text"
    return LetterExtraction(None, None, "none", reason)
