"""Search a course: embed the question, take the nearest live chunks."""

from __future__ import annotations

from dataclasses import dataclass

from retrieval.embedder import Embedder
from retrieval.store import CourseStore


@dataclass
class Hit:
    """A retrieved chunk with its cosine similarity and where to find it."""

    text: str
    score: float
    source: str
    page: int  # first page of the chunk
    page_end: int
    chunk_index: int


class Retriever:
    """Top-k search over one course's chunks.

    >>> retriever = Retriever(store, embedder)            # doctest: +SKIP
    >>> retriever.search("physics", "What is inertia?", k=3)  # doctest: +SKIP
    """

    def __init__(self, store: CourseStore, embedder: Embedder):
        self.store = store
        self.embedder = embedder

    def search(self, course: str, question: str, *, k: int = 4, min_score: float | None = None) -> list[Hit]:
        """The ``k`` best chunks, best first, dropping those scored below ``min_score``."""
        self.store.require_course(course)
        [embedding] = self.embedder.embed([question])
        hits = [
            Hit(text=chunk.text, score=score, source=chunk.source, page=chunk.page_start,
                page_end=chunk.page_end, chunk_index=chunk.index)
            for chunk, score in self.store.query(course, embedding, k)
        ]
        if min_score is not None:
            hits = [hit for hit in hits if hit.score >= min_score]
        return hits
