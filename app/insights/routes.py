"""GET /admin/report and /admin/report.csv: a course's questions, behind the admin key."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from app.deps import ActiveQuestionLogDep, RetrieverDep
from app.insights import service
from app.security import require_admin_key

router = APIRouter(tags=["administration"], dependencies=[Depends(require_admin_key)])

ERROR_RESPONSES = {
    401: {"description": "No admin key was sent."},
    403: {"description": "The key is wrong, or administration is switched off (no TUTOR_ADMIN_API_KEY)."},
    404: {"description": "This server logs no questions (TUTOR_QUESTION_LOG=false): there is no report."},
    422: {"description": "A bad course name or number of days."},
    503: {"description": "The index is not loaded."},
}
COURSE = Query(..., description="The course to report on.")
SINCE = Query(None, ge=1, le=36500, description="Only the questions of the last N days (default: all kept).")


@router.get("/admin/report", response_class=HTMLResponse, responses=ERROR_RESPONSES)
async def report_page(retriever: RetrieverDep, log: ActiveQuestionLogDep, course: str = COURSE,
                      since: int | None = SINCE) -> HTMLResponse:
    """Most asked topics, questions the material does not cover, pages cited most, latency, as a page."""
    report = await run_in_threadpool(service.course_report, course, log, retriever.embedder, since)
    return HTMLResponse(await run_in_threadpool(service.report_html, report))


CSV_RESPONSE = {"description": "The logged questions, one per row.", "content": {"text/csv": {}}}


@router.get("/admin/report.csv", response_class=Response, responses={**ERROR_RESPONSES, 200: CSV_RESPONSE})
async def report_csv(log: ActiveQuestionLogDep, course: str = COURSE, since: int | None = SINCE) -> Response:
    """The course's logged questions as CSV: time (UTC), route, model, question, covered, latency, sources."""
    text = await run_in_threadpool(service.course_csv, course, log, since)
    return Response(text, media_type="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{course}-questions.csv"'})
