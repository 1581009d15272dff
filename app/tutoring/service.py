"""Answer a question from a course: retrieve, build the grounded prompt, generate, cite."""

from __future__ import annotations

import logging
import time

from app.errors import InvalidRequestError
from app.settings import Settings
from app.tutoring.schemas import (
    AskRequest,
    AskResponse,
    Citation,
    CourseInfo,
    CoursesResponse,
    HealthResponse,
    Timings,
)
from engine.runtime import GenerationRequest, Runtime
from retrieval import NO_CONTEXT_ANSWER, CourseStore, Hit, Retriever, build_grounded_prompt

logger = logging.getLogger(__name__)

EXCERPT_CHARS = 300


def check_limits(request: AskRequest, settings: Settings) -> None:
    """Refuse requests beyond this server's limits, naming the limit and its setting."""
    if len(request.question) > settings.max_question_chars:
        raise InvalidRequestError(
            f"The question is {len(request.question)} characters long; the limit is "
            f"{settings.max_question_chars} (TUTOR_MAX_QUESTION_CHARS). Shorten the question."
        )
    if request.max_new_tokens is not None and request.max_new_tokens > settings.max_new_tokens:
        raise InvalidRequestError(
            f"max_new_tokens is {request.max_new_tokens}; this server allows at most "
            f"{settings.max_new_tokens} (TUTOR_MAX_NEW_TOKENS)."
        )


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """The start of a chunk on one line, cut at a word boundary."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    return flat[:limit].rsplit(" ", 1)[0] + " …"


def citations_for(hits: list[Hit]) -> list[Citation]:
    return [
        Citation(n=n, source=hit.source, page=hit.page, score=round(hit.score, 4), excerpt=excerpt(hit.text))
        for n, hit in enumerate(hits, start=1)
    ]


def answer_question(request: AskRequest, *, retriever: Retriever, runtime: Runtime,
                    settings: Settings) -> AskResponse:
    """Retrieve the course's best chunks and answer from them; with none relevant, say so."""
    check_limits(request, settings)
    started = time.perf_counter()
    hits = retriever.search(request.course, request.question, k=request.top_k or settings.top_k,
                            min_score=settings.min_score)
    retrieved = time.perf_counter()
    if not hits:
        logger.info("No chunk of %s scored above %.2f for the question.", request.course, settings.min_score)
        answer, citations = NO_CONTEXT_ANSWER, []
    else:
        prompt = build_grounded_prompt(request.question, hits)
        generation = GenerationRequest(messages=prompt.messages, temperature=request.temperature,
                                       max_new_tokens=request.max_new_tokens or settings.max_new_tokens)
        [result] = runtime.generate([generation])
        answer, citations = result.text, citations_for(prompt.sources)
    finished = time.perf_counter()
    timings = Timings(retrieval_s=round(retrieved - started, 4), generation_s=round(finished - retrieved, 4),
                      total_s=round(finished - started, 4))
    return AskResponse(answer=answer, citations=citations, model=runtime.model_name, timings=timings)


def list_courses(store: CourseStore) -> CoursesResponse:
    courses = []
    for name in store.courses():
        sources = store.sources(name)
        courses.append(CourseInfo(name=name, sources=len(sources), chunks=sum(s.chunks for s in sources)))
    return CoursesResponse(courses=courses)


def health(runtime: Runtime, store: CourseStore) -> HealthResponse:
    """Ready when the model is loaded and the index answers."""
    return HealthResponse(status="ok", model=runtime.model_name, courses=len(store.courses()))
