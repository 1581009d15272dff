"""Search a course densely (embeddings in Chroma), lexically (BM25) or both fused.

Dense search finds paraphrases; BM25 finds the rare words a question shares with its page
(names, terms of art), which 128-token MiniLM chunks often miss. Hybrid search takes the best
candidates of each and ranks them by a convex combination of the two scores, each divided by its
best candidate's score (see ``fuse_convex``); RRF is kept for comparison (``tutor eval retrieval``).
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Literal, get_args

from retrieval.definitions import DEFINITION_CANDIDATES, definitions_first, term_asked
from retrieval.embedder import Embedder
from retrieval.store import Chunk, CourseStore, CourseView

RetrievalMode = Literal["dense", "lexical", "hybrid"]
MODES: tuple[str, ...] = get_args(RetrievalMode)
Fusion = Literal["convex", "rrf"]
# Shorter shared text between neighbouring chunks is taken for chance, not the splitter's overlap.
MIN_OVERLAP = 16


class UnknownRetrievalModeError(ValueError):
    """A retrieval mode that is not one of MODES; the message lists them."""

    def __init__(self, mode: str):
        self.mode = mode
        close = difflib.get_close_matches(mode, MODES, n=1)
        hint = f" Did you mean {close[0]}?" if close else ""
        super().__init__(f"Unknown retrieval mode {mode!r}.{hint} Use one of: {', '.join(MODES)}.")


@dataclass
class Hit:
    """A retrieved chunk, its score in the mode that found it, and where to find it.

    ``score`` is the cosine similarity in dense mode, the BM25 score in lexical mode and the
    fused score (0 to 1) in hybrid mode.
    """

    text: str
    score: float
    source: str
    page: int  # first page of the chunk
    page_end: int
    chunk_index: int


@dataclass(frozen=True)
class HybridSettings:
    """How hybrid search fuses dense and lexical candidates.

    Args:
        fusion: "convex" (a weighted sum of normalised scores) or "rrf" (reciprocal-rank fusion).
        weight: the dense share of the convex combination; the lexical share is 1 - weight.
        candidates: chunks taken from each side before fusing (at least k).
        rrf_k: RRF's rank offset (60 in the original paper).
    """

    # Convex beat RRF on sciq-dev and SQuAD (README, "Retrieval"). A dense share of 0.2 had the best mean
    # MRR@10 there, questions written from their passages; with questions sharing fewer words (Think Python's
    # glossary, the physics notes) 0.35 gains on four sets of five for 1.2 points on sciq-dev (README, "A
    # course of lecture notes").
    fusion: Fusion = "convex"
    weight: float = 0.35
    candidates: int = 30
    rrf_k: int = 60


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise UnknownRetrievalModeError(mode)
    return mode


def fuse_convex(dense: list[tuple[Hashable, float]], lexical: list[tuple[Hashable, float]],
                weight: float) -> dict[Hashable, float]:
    """``weight`` * dense + (1 - weight) * lexical, each score divided by its list's best score.

    Both scores are 0 for an unrelated text, so dividing by the best keeps that floor (unlike
    min-max, which zeroes the weakest candidate) and makes the two scales meet at 1.
    """
    fused: dict[Hashable, float] = {}
    for share, ranking in ((weight, dense), (1.0 - weight, lexical)):
        best = max((score for _, score in ranking), default=0.0)
        if best <= 0:
            continue
        for key, score in ranking:
            fused[key] = fused.get(key, 0.0) + share * max(score, 0.0) / best
    return fused


def fuse_rrf(rankings: list[list[Hashable]], k: int = 60) -> dict[Hashable, float]:
    """Reciprocal-rank fusion: each list adds 1 / (k + rank) to the keys it holds."""
    fused: dict[Hashable, float] = {}
    for ranking in rankings:
        for rank, key in enumerate(ranking, start=1):
            fused[key] = fused.get(key, 0.0) + 1.0 / (k + rank)
    return fused


def join_overlapping(first: str, second: str, least: int = MIN_OVERLAP) -> str:
    """``first`` then ``second``, the text that ends one and starts the other (``least`` characters or
    more) written once; without such an overlap they are joined by a line break."""
    for start in range(max(0, len(first) - len(second)), len(first) - least + 1):
        if second.startswith(first[start:]):
            return first + second[len(first) - start :]
    return f"{first}\n{second}"


def _hit(chunk: Chunk, score: float) -> Hit:
    return Hit(text=chunk.text, score=score, source=chunk.source, page=chunk.page_start,
               page_end=chunk.page_end, chunk_index=chunk.index)


class Retriever:
    """Top-k search over one course's chunks, in one of three modes.

    The "not covered" threshold ``min_score`` is a dense cosine in every mode: dense search drops
    each chunk below it; lexical and hybrid search return nothing when the best dense candidate is
    below it (BM25 scores are not comparable between questions, so they cannot carry it).

    >>> retriever = Retriever(store, embedder)                                   # doctest: +SKIP
    >>> retriever.search("physics", "What is inertia?", k=3, mode="hybrid")       # doctest: +SKIP
    """

    def __init__(self, store: CourseStore, embedder: Embedder, hybrid: HybridSettings | None = None):
        self.store = store
        self.embedder = embedder
        self.hybrid = hybrid or HybridSettings()

    def search(self, course: str, question: str, *, k: int = 4, min_score: float | None = None,
               mode: RetrievalMode = "dense") -> list[Hit]:
        """The ``k`` best chunks, best first; nothing (or fewer in dense mode) below ``min_score``."""
        return self.search_many(course, [question], k=k, min_score=min_score, mode=mode)[0]

    def search_many(self, course: str, questions: list[str], *, k: int = 4, min_score: float | None = None,
                    mode: RetrievalMode = "dense") -> list[list[Hit]]:
        """``search`` of each question, in order, against one state of the course.

        The questions are embedded in batches and sent to Chroma and BM25 in one call each, which on
        2 CPU cores answers many questions several times faster than one ``search`` per question.
        """
        check_mode(mode)
        view = self.store.view(course)
        if not questions:
            return []
        if mode == "dense":
            return [[_hit(chunk, score) for chunk, score in found if min_score is None or score >= min_score]
                    for found in view.dense(self.embedder.embed(questions), k)]
        candidates = k if mode == "lexical" else max(k, self.hybrid.candidates)
        dense = self._dense_side(view, questions, mode, candidates, min_score)
        covered = [min_score is None or self._covered(found, min_score) for found in dense]
        lexical = iter(view.lexical_search([q for q, ok in zip(questions, covered, strict=True) if ok],
                                           candidates))
        return [self._combine(found, next(lexical), k, mode, question) if ok else []
                for question, found, ok in zip(questions, dense, covered, strict=True)]

    def _dense_side(self, view: CourseView, questions: list[str], mode: RetrievalMode, candidates: int,
                    min_score: float | None) -> list[list[tuple[Chunk, float]]]:
        """Hybrid's dense candidates; in lexical mode only what the "not covered" check needs."""
        if mode == "lexical" and min_score is None:
            return [[] for _ in questions]
        return view.dense(self.embedder.embed(questions), candidates if mode == "hybrid" else 1)

    @staticmethod
    def _covered(dense: list[tuple[Chunk, float]], min_score: float) -> bool:
        return bool(dense) and dense[0][1] >= min_score

    def _combine(self, dense: list[tuple[Chunk, float]], lexical: list[tuple[Chunk, float]], k: int,
                 mode: RetrievalMode, question: str) -> list[Hit]:
        """Lexical mode's hits, or the ``k`` best of both candidate lists by their fused score; for a
        question asking what a term means, those of the best ``DEFINITION_CANDIDATES`` that define it
        first (``retrieval.definitions``)."""
        if mode == "lexical":
            return [_hit(chunk, score) for chunk, score in lexical]
        chunks = {(c.source, c.index): c for c, _ in [*dense, *lexical]}
        fused = self.fuse([((c.source, c.index), s) for c, s in dense],
                          [((c.source, c.index), s) for c, s in lexical])
        ranked = sorted(fused.items(), key=lambda item: item[1], reverse=True)
        term = term_asked(question)
        if term is None:
            return [_hit(chunks[key], score) for key, score in ranked[:k]]
        return definitions_first(term, [_hit(chunks[key], score) for key, score in
                                        ranked[:max(k, DEFINITION_CANDIDATES)]], k)

    def widen(self, course: str, hits: list[Hit], neighbours: int) -> list[Hit]:
        """Each hit joined with up to ``neighbours`` chunks of its file on each side, pages and score kept.

        A 128-token chunk often starts or ends mid-paragraph; its neighbours give back the rest of what
        it is part of (neighbouring chunks overlap, and the shared text is kept once).
        """
        if neighbours < 1 or not hits:
            return hits
        view = self.store.view(course)
        widened = []
        for hit in hits:
            chunks = view.around(hit.source, hit.chunk_index, neighbours)
            if not chunks:  # no longer live: keep the hit as it was found
                widened.append(hit)
                continue
            text = functools.reduce(join_overlapping, (chunk.text for chunk in chunks))
            widened.append(Hit(text=text, score=hit.score, source=hit.source, page=chunks[0].page_start,
                               page_end=chunks[-1].page_end, chunk_index=hit.chunk_index))
        return widened

    def fuse(self, dense: list[tuple[Hashable, float]], lexical: list[tuple[Hashable, float]]
             ) -> dict[Hashable, float]:
        """Fused scores of the candidates (each list best first), as ``self.hybrid`` says."""
        if self.hybrid.fusion == "rrf":
            return fuse_rrf([[key for key, _ in dense], [key for key, _ in lexical]], self.hybrid.rrf_k)
        return fuse_convex(dense, lexical, self.hybrid.weight)
