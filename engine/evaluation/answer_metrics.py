"""Pure scores of one grounded answer: correctness, citations and abstention.

Correctness follows SQuAD's evaluation script (normalise: lower case, drop punctuation, articles
and extra spaces; then exact match and token F1 against the best reference). Citations are the
``[n]`` markers the grounded prompt asks for (read by ``engine.citations``), checked against the
numbered sources.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from engine.citations import cited_numbers

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD's normalisation: lower case, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, references: Sequence[str]) -> float:
    """1.0 when the normalised prediction equals a normalised reference."""
    normalized = normalize_answer(prediction)
    return float(any(normalized == normalize_answer(ref) for ref in references))


def _f1(prediction_tokens: list[str], reference_tokens: list[str]) -> float:
    common = Counter(prediction_tokens) & Counter(reference_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(prediction_tokens), same / len(reference_tokens)
    return 2 * precision * recall / (precision + recall)


def token_f1(prediction: str, references: Sequence[str]) -> float:
    """The best token F1 of the prediction against any reference (SQuAD's definition)."""
    tokens = normalize_answer(prediction).split()
    return max((_f1(tokens, normalize_answer(ref).split()) for ref in references), default=0.0)


def find_phrase(tokens: list[str], phrase: list[str]) -> list[int]:
    """Start positions of ``phrase`` as a whole-token run inside ``tokens``."""
    width = len(phrase)
    return [i for i in range(len(tokens) - width + 1) if width and tokens[i:i + width] == phrase]


def contains(prediction: str, reference: str) -> bool:
    """Whether the normalised reference occurs in the normalised prediction as whole tokens."""
    return bool(find_phrase(normalize_answer(prediction).split(), normalize_answer(reference).split()))


def _without(tokens: list[str], phrase: list[str]) -> list[str]:
    """``tokens`` with every occurrence of ``phrase`` blanked, so a phrase inside it is not found."""
    kept = list(tokens)
    for start in find_phrase(tokens, phrase):
        kept[start:start + len(phrase)] = [""] * len(phrase)
    return kept


def states_answer(prediction: str, references: Sequence[str], distractors: Sequence[str] = ()) -> bool:
    """The answer states a reference and names no distractor.

    A distractor that is part of the reference ("anabolic" in "catabolic and anabolic") counts only
    where it occurs outside the stated reference.
    """
    tokens = normalize_answer(prediction).split()
    for reference in references:
        phrase = normalize_answer(reference).split()
        if not find_phrase(tokens, phrase):
            continue
        rest = _without(tokens, phrase)
        if not any(find_phrase(rest, normalize_answer(d).split()) for d in distractors):
            return True
    return False


@dataclass(frozen=True)
class PageSpan:
    """Pages ``page``..``page_end`` of one file: where a chunk sits, or where the answer is."""

    source: str
    page: int
    page_end: int

    def overlaps(self, other: PageSpan) -> bool:
        same_file = self.source.rsplit("/", 1)[-1] == other.source.rsplit("/", 1)[-1]
        return same_file and self.page <= other.page_end and other.page <= self.page_end


@dataclass
class CitationScore:
    """How an answer's ``[n]`` markers relate to its sources and the gold pages.

    ``precision`` and ``recall`` are None when they cannot be judged: no valid citation, or no
    gold pages known.
    """

    cited: list[int]
    malformed: list[int]
    precision: float | None
    recall: float | None
    gold_retrieved: bool | None


def score_citations(answer: str, sources: Sequence[PageSpan], gold: PageSpan | None) -> CitationScore:
    """Check each cited number against the sources (1-based) and the gold pages.

    Precision: the share of valid citations whose chunk overlaps the gold pages. Recall: 1 when a
    chunk overlapping the gold pages was retrieved and cited, else 0.
    """
    cited = cited_numbers(answer)
    valid = [n for n in cited if 1 <= n <= len(sources)]
    malformed = [n for n in cited if n not in valid]
    if gold is None:
        return CitationScore(cited, malformed, None, None, None)
    on_gold = {n for n, span in enumerate(sources, start=1) if span.overlaps(gold)}
    precision = sum(n in on_gold for n in valid) / len(valid) if valid else None
    return CitationScore(cited, malformed, precision, float(bool(on_gold & set(valid))), bool(on_gold))


def percentile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank q-th percentile of ``values`` (None when empty)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-q * len(ordered) // 100))
    return ordered[int(rank) - 1]


def mean(values: Sequence[float | None]) -> float | None:
    """The mean of the values that are not None (None when there are none)."""
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None
