"""Fakes of the runtime, store and retriever, for route tests that must not load a model."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from engine.reader import ShortAnswer
from engine.runtime import GenerationRequest, GenerationResult, LoglikelihoodRequest
from retrieval import CourseNotFoundError, Hit, SourceInfo
from retrieval.store import check_course_name

if TYPE_CHECKING:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from app.settings import Settings


def make_hit(text: str, *, score: float = 0.8, source: str = "notes.pdf", page: int = 1) -> Hit:
    return Hit(text=text, score=score, source=source, page=page, page_end=page, chunk_index=0)


@dataclass
class FakeRuntime:
    """Answers with a fixed text and records each request.

    ``release``, when set, makes ``generate`` wait for it (up to ``wait_s``) before answering,
    to hold a generation in flight; ``released_in_time`` says whether it was set in time.
    """

    answer: str = "Inertia: an object stays at rest unless a force acts on it [1]."
    model_name: str = "fake-model"
    release: threading.Event | None = None
    wait_s: float = 5.0
    requests: list[GenerationRequest] = field(default_factory=list)
    started: threading.Event = field(default_factory=threading.Event)
    released_in_time: bool | None = None

    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        self.requests.extend(requests)
        self.started.set()
        if self.release is not None:
            self.released_in_time = self.release.wait(self.wait_s)
        return [GenerationResult(text=self.answer, prompt_tokens=10, completion_tokens=5) for _ in requests]

    def loglikelihood(self, requests: list[LoglikelihoodRequest]) -> list[tuple[float, bool]]:
        return [(-float(len(r.continuation)), False) for r in requests]

    def format_chat(self, messages: list[dict[str, str]]) -> str:
        return "\n".join(f"{m['role']}: {m['content']}" for m in messages)


@dataclass
class FakeStore:
    """Courses mapped to their sources."""

    sources_by_course: dict[str, list[SourceInfo]] = field(default_factory=dict)

    def courses(self) -> list[str]:
        return sorted(self.sources_by_course)

    def require_course(self, course: str) -> None:
        if check_course_name(course) not in self.sources_by_course:
            raise CourseNotFoundError(course, self.courses())

    def sources(self, course: str) -> list[SourceInfo]:
        self.require_course(course)
        return self.sources_by_course[course]


@dataclass
class FakeRetriever:
    """Returns ``hits`` for any question on a known course, filtered by ``min_score`` as the real one."""

    store: FakeStore
    hits: list[Hit] = field(default_factory=list)
    searches: list[dict] = field(default_factory=list)
    widened: list[int] = field(default_factory=list)  # the neighbours asked for, per widened question

    def search(self, course: str, question: str, *, k: int = 4, min_score: float | None = None,
               mode: str = "dense") -> list[Hit]:
        self.store.require_course(course)
        self.searches.append({"course": course, "question": question, "k": k, "min_score": min_score,
                              "mode": mode})
        hits = self.hits[:k]
        return [hit for hit in hits if min_score is None or hit.score >= min_score]

    def search_many(self, course: str, questions: list[str], *, k: int = 4, min_score: float | None = None,
                    mode: str = "dense") -> list[list[Hit]]:
        return [self.search(course, question, k=k, min_score=min_score, mode=mode) for question in questions]

    def widen(self, course: str, hits: list[Hit], neighbours: int) -> list[Hit]:
        self.widened.append(neighbours)
        return hits


def fake_app(settings: Settings, runtime, store, retriever) -> FastAPI:
    """The real app (routes, limits, errors) with fakes, or real stores, in place of what the lifespan
    loads; the one way route tests build an app."""
    from app.deps import get_retriever, get_runtime, get_store
    from app.main import build_app

    app = build_app(settings)
    app.dependency_overrides[get_runtime] = lambda: runtime
    app.dependency_overrides[get_store] = lambda: store
    app.dependency_overrides[get_retriever] = lambda: retriever
    return app


def fake_client(settings: Settings, runtime, store, retriever) -> TestClient:
    """A test client of ``fake_app``; server errors come back as 500 responses, as a client sees them."""
    from fastapi.testclient import TestClient

    return TestClient(fake_app(settings, runtime, store, retriever), raise_server_exceptions=False)


class FakeReader:
    """Returns a fixed short answer (``yes_no`` for a question asked for yes or no) and records what it
    was asked to read."""

    def __init__(self, short: ShortAnswer | None, yes_no: ShortAnswer | None = None):
        self.short, self.yes_no, self.read_calls = short, yes_no, []

    def read(self, question: str, notes: list[str], *, rank_penalty: float = 0.0, asked: str = "",
             key_sentence_bonus: float = 0.0, not_said: str = "") -> ShortAnswer | None:
        self.read_calls.append((question, list(notes), rank_penalty, asked, key_sentence_bonus, not_said))
        return self.short

    def yes_or_no(self, question: str, note: str, *, asked: str = "") -> ShortAnswer | None:
        self.read_calls.append((question, [note]))
        return self.yes_no
