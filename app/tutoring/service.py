"""Answer a question from a course: retrieve, build the grounded prompt, generate, cite."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from app.request_limits import check_conversation, check_new_tokens, check_question
from app.resources import open_reader
from app.settings import Settings
from app.tutoring.files import file_url
from app.tutoring.schemas import (
    AskRequest,
    AskResponse,
    Citation,
    CourseInfo,
    CoursesResponse,
    HealthResponse,
    ShortAnswerOut,
    Timings,
)
from engine.grounded import AnswerOptions, GroundedAnswer, PreparedAnswer, answer_question, prepare_answer
from engine.reader import ShortAnswer
from engine.runtime import Runtime
from insights import QuestionLog, record_answer
from retrieval import CourseStore, Hit, Retriever

logger = logging.getLogger(__name__)

EXCERPT_CHARS = 300
OPTION_NAMES = frozenset(option.name for option in fields(AnswerOptions))


def answer_options(settings: Settings, asked: Mapping[str, Any] | None = None) -> AnswerOptions:
    """The server's defaults, overridden by the options a request set (its fields named as AnswerOptions').

    A new option (a field of AnswerOptions and of the request schema) passes through without changes here.
    """
    defaults = {"top_k": settings.top_k, "min_score": settings.min_score, "retrieval": settings.retrieval,
                "max_new_tokens": min(settings.answer_tokens, settings.max_new_tokens),
                "source_sentences": settings.source_sentences, "quote_notes": settings.quote_notes,
                "only_supported": settings.only_supported, "short_in_prompt": settings.short_in_prompt,
                "reader": open_reader(settings)}
    given = {name: value for name, value in (asked or {}).items()
             if name in OPTION_NAMES and value is not None}
    return AnswerOptions(**{**defaults, **given})


def check_ask(request: AskRequest, settings: Settings) -> None:
    """Refuse a question, conversation or token budget beyond this server's limits, naming the limit."""
    check_question(request.question, settings)
    check_conversation([turn.content for turn in request.history] + [request.question], settings)
    check_new_tokens(request.max_new_tokens, settings)


def conversation_of(request: AskRequest) -> list[dict[str, str]]:
    """The request's earlier turns as {role, content} messages, oldest first."""
    return [{"role": turn.role, "content": turn.content} for turn in request.history]


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """The start of a chunk on one line, cut at a word boundary."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    return flat[:limit].rsplit(" ", 1)[0] + " …"


def citations_for(course: str | None, hits: list[Hit]) -> list[Citation]:
    """The numbered citations of ``hits``, found in ``course`` (None only for a plain chat: it has none)."""
    return [
        Citation(n=n, source=hit.source, page=hit.page, page_end=hit.page_end, score=round(hit.score, 4),
                 excerpt=excerpt(hit.text), file_url=file_url(course or "", hit.source))
        for n, hit in enumerate(hits, start=1)
    ]


def timings_of(retrieval_s: float, generation_s: float) -> Timings:
    return Timings(retrieval_s=round(retrieval_s, 4), generation_s=round(generation_s, 4),
                   total_s=round(retrieval_s + generation_s, 4))


def prepare_ask(request: AskRequest, *, retriever: Retriever, settings: Settings) -> PreparedAnswer:
    """Check the limits, then retrieve and build the grounded request, as /v1/ask does, without generating."""
    check_ask(request, settings)
    return prepare_answer(retriever, request.course, request.question, conversation=conversation_of(request),
                          options=answer_options(settings, request.model_dump()))


def ask(request: AskRequest, *, retriever: Retriever, runtime: Runtime, settings: Settings,
        question_log: QuestionLog | None = None) -> AskResponse:
    """Answer from the course's best chunks with numbered citations; with none relevant, say so."""
    check_ask(request, settings)
    answer: GroundedAnswer = answer_question(retriever, runtime, request.course, request.question,
                                             conversation=conversation_of(request),
                                             options=answer_options(settings, request.model_dump()))
    if answer.not_covered:
        logger.info("No chunk of %s scored above %.2f for the question.", request.course, settings.min_score)
    record_answer(question_log, course=request.course, question=request.question, route="ask",
                  model=runtime.model_name, sources=answer.sources, not_covered=answer.not_covered,
                  latency_s=answer.retrieval_s + answer.generation_s)
    return AskResponse(answer=answer.text, citations=citations_for(request.course, answer.sources),
                       short_answer=short_answer_of(answer.short),
                       model=runtime.model_name, timings=timings_of(answer.retrieval_s, answer.generation_s))


def short_answer_of(short: ShortAnswer | None) -> ShortAnswerOut | None:
    """The reader's short answer as the API sends it."""
    return None if short is None else ShortAnswerOut(text=short.text, citation=short.note)


def list_courses(store: CourseStore) -> CoursesResponse:
    courses = []
    for name in store.courses():
        sources = store.sources(name)
        courses.append(CourseInfo(name=name, sources=len(sources), chunks=sum(s.chunks for s in sources)))
    return CoursesResponse(courses=courses)


def health(runtime: Runtime, store: CourseStore) -> HealthResponse:
    """Ready when the model is loaded and the index answers."""
    return HealthResponse(status="ok", model=runtime.model_name, courses=len(store.courses()))
