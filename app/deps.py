"""Dependencies for routes: the long-lived objects the lifespan put on ``app.state``.

Routes use only these aliases, so tests swap in fakes with ``app.dependency_overrides``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from app.errors import ServiceNotReadyError
from app.settings import Settings
from engine.runtime import Runtime
from insights import QuestionLog, QuestionLogOffError
from retrieval import CourseStore, Retriever


def _loaded(request: Request, name: str) -> Any:
    value = getattr(request.app.state, name, None)
    if value is None:
        raise ServiceNotReadyError(
            f"The server is not ready: its {name} is not loaded. Wait for start-up to finish and retry."
        )
    return value


def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_runtime(request: Request) -> Runtime:
    return _loaded(request, "runtime")


def get_store(request: Request) -> CourseStore:
    return _loaded(request, "store")


def get_retriever(request: Request) -> Retriever:
    return _loaded(request, "retriever")


def get_question_log(request: Request) -> QuestionLog | None:
    """The question log; None (nothing is logged) while it is off (TUTOR_QUESTION_LOG=false) or not open."""
    return getattr(request.app.state, "question_log", None)


def get_active_question_log(request: Request) -> QuestionLog:
    """The question log, for the report routes, which have nothing to show without one."""
    log = get_question_log(request)
    if log is None:
        raise QuestionLogOffError(
            "This server logs no questions (TUTOR_QUESTION_LOG=false), so there is no report; set "
            "TUTOR_QUESTION_LOG=true and restart, or read an existing log with `tutor report`."
        )
    return log


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
StoreDep = Annotated[CourseStore, Depends(get_store)]
RetrieverDep = Annotated[Retriever, Depends(get_retriever)]
QuestionLogDep = Annotated[QuestionLog | None, Depends(get_question_log)]
ActiveQuestionLogDep = Annotated[QuestionLog, Depends(get_active_question_log)]
