"""Tutoring routes: ask, list courses, open a course file, health. Model and index work runs in worker
threads, so the event loop stays free (``/health`` answers while an answer is being generated)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from app.deps import QuestionLogDep, RetrieverDep, RuntimeDep, SettingsDep, StoreDep
from app.tutoring import files, service
from app.tutoring.schemas import AskRequest, AskResponse, CoursesResponse, HealthResponse

router = APIRouter(tags=["tutoring"])

ERROR_RESPONSES = {
    404: {"description": "Unknown course; the detail lists the known ones."},
    422: {"description": "Invalid request; the detail names the field and the limit."},
    503: {"description": "The model or the index is not loaded."},
}


@router.post("/v1/ask", response_model=AskResponse, responses=ERROR_RESPONSES)
async def ask(request: AskRequest, retriever: RetrieverDep, runtime: RuntimeDep, settings: SettingsDep,
              question_log: QuestionLogDep) -> AskResponse:
    """Answer a question from a course's material, citing the pages used as [n]."""
    return await run_in_threadpool(service.ask, request, retriever=retriever, runtime=runtime,
                                   settings=settings, question_log=question_log)


@router.get("/v1/courses", response_model=CoursesResponse, responses={503: ERROR_RESPONSES[503]})
async def courses(store: StoreDep) -> CoursesResponse:
    """The courses the tutor can answer from, with their sizes."""
    return await run_in_threadpool(service.list_courses, store)


@router.get("/v1/courses/{course}/files/{source:path}", response_class=Response, responses={
    200: {"content": {"application/pdf": {}}, "description": "The PDF as it was ingested, shown inline."},
    404: {"description": "Unknown course or file, a file kept by no ingestion, or a path that tries to leave "
                         "the course's files."},
    503: ERROR_RESPONSES[503]})
async def course_file(course: str, source: str, request: Request, store: StoreDep) -> Response:
    """A cited file of a course (a citation's file_url); a browser opens it at a page with #page=N."""
    stored = await run_in_threadpool(files.course_file, course, source, store=store,
                                     raw_path=request.scope.get("raw_path") or b"")
    return Response(stored.content, media_type="application/pdf", headers=files.file_headers(stored))


@router.get("/health", response_model=HealthResponse, responses={503: ERROR_RESPONSES[503]})
async def health(runtime: RuntimeDep, store: StoreDep) -> HealthResponse:
    """200 once the model and the index are loaded, 503 before."""
    return await run_in_threadpool(service.health, runtime, store)
