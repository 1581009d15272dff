"""Build the FastAPI app: settings, long-lived objects in a lifespan, routers, error handlers."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from app.admin.routes import router as admin_router
from app.errors import register_error_handlers
from app.insights.routes import router as report_router
from app.mcq.routes import router as mcq_router
from app.openai_compat.routes import router as openai_router
from app.request_limits import RequestLimitMiddleware
from app.resources import batching, load_resources, open_question_log
from app.security import StudentKey
from app.settings import Settings, get_settings
from app.tutoring.routes import router as tutoring_router
from app.tutoring.stream import router as ask_stream_router
from app.web import attach_page_and_cors

logger = logging.getLogger(__name__)

STATE_OBJECTS = ("runtime", "store", "retriever")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Load the models and the index once, open the question log; drop them when the server stops."""
    resources = await run_in_threadpool(load_resources, app.state.settings)
    resources.runtime = batching(resources.runtime, app.state.settings)
    for name in STATE_OBJECTS:
        setattr(app.state, name, getattr(resources, name))
    app.state.question_log = await run_in_threadpool(open_question_log, app.state.settings)
    try:
        yield
    finally:
        for name in STATE_OBJECTS:
            setattr(app.state, name, None)  # routes answer 503 from here on
        await run_in_threadpool(resources.runtime.close)  # lets queued model work finish first
        if app.state.question_log is not None:  # after the runtime: the last answers get logged too
            await run_in_threadpool(app.state.question_log.close)
        app.state.question_log = None
        logger.info("Released the model and the index.")


def build_app(settings: Settings | None = None) -> FastAPI:
    """The tutor's API. Models load when the server starts (the lifespan), not here."""
    app = FastAPI(
        title="Course tutor",
        version="0.1.0",
        description="Answers students' questions from their course PDFs, citing the pages used.",
        lifespan=lifespan,
    )
    app.state.settings = settings or get_settings()
    for name in STATE_OBJECTS:
        setattr(app.state, name, None)
    app.state.question_log = None  # questions are logged once the lifespan opens the log
    register_error_handlers(app)
    mib = 1024 * 1024
    app.add_middleware(RequestLimitMiddleware, max_body_bytes=int(app.state.settings.max_request_mb * mib),
                       max_upload_bytes=int(app.state.settings.max_upload_mb * mib))
    app.include_router(tutoring_router, dependencies=[StudentKey])
    app.include_router(ask_stream_router, dependencies=[StudentKey])
    app.include_router(openai_router, dependencies=[StudentKey])
    app.include_router(mcq_router, dependencies=[StudentKey])
    app.include_router(admin_router)
    app.include_router(report_router)
    attach_page_and_cors(app, app.state.settings)
    return app


def run_server(settings: Settings, *, log_level: str = "info") -> None:
    """Serve ``build_app(settings)`` on uvicorn at ``settings.host:settings.port``."""
    import uvicorn

    uvicorn.run(build_app(settings), host=settings.host, port=settings.port, log_level=log_level)
