"""OpenAI-compatible routes: GET /v1/models and POST /v1/chat/completions (streamed or not)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from app.deps import QuestionLogDep, RetrieverDep, RuntimeDep, SettingsDep, StoreDep
from app.openai_compat import service
from app.openai_compat.schemas import ChatCompletion, ChatCompletionRequest, ModelList
from app.sse import event_stream

router = APIRouter(tags=["openai-compatible"])

ERROR_RESPONSES = {
    401: {"description": "A student key is configured and none was sent."},
    403: {"description": "The key sent is wrong."},
    404: {"description": "Unknown model or course; the detail lists what exists."},
    422: {"description": "Invalid request; the detail names the field and the limit."},
    503: {"description": "The model or the index is not loaded."},
}


@router.get("/v1/models", response_model=ModelList, responses=ERROR_RESPONSES)
async def models(store: StoreDep, runtime: RuntimeDep) -> ModelList:
    """The bare model (plain generation), then one model per course (``tutor/<course>``)."""
    return await run_in_threadpool(service.list_models, store, runtime)


@router.post("/v1/chat/completions", response_model=ChatCompletion, responses={
    **ERROR_RESPONSES, 200: {"description": "A completion, or with stream: true server-sent chunk events."}})
async def chat_completions(request: ChatCompletionRequest, retriever: RetrieverDep, runtime: RuntimeDep,
                           settings: SettingsDep, question_log: QuestionLogDep):
    """Answer the last user message from the course named by ``model``; citations in ``citations``."""
    prepared = await run_in_threadpool(service.prepare_chat, request, retriever=retriever, runtime=runtime,
                                       settings=settings)
    if request.stream:
        return event_stream(service.stream_events(request, prepared, runtime, question_log))
    return await run_in_threadpool(service.complete, request, prepared, runtime, question_log)
