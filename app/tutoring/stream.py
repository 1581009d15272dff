"""POST /v1/ask/stream: the /v1/ask answer as server-sent events, token by token.

Events, each ``data: <json>``: first ``{"type": "citations", "citations": [...], "model": ...}``,
then ``{"type": "delta", "text": ...}`` per piece of the answer, then
``{"type": "done", "answer": ..., "timings": {...}}``; a failure after the stream started
ends it with ``{"type": "error", "detail": ...}``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from app.deps import QuestionLogDep, RetrieverDep, RuntimeDep, SettingsDep
from app.sse import event_stream, sse_event
from app.tutoring.routes import ERROR_RESPONSES
from app.tutoring.schemas import AskRequest
from app.tutoring.service import citations_for, prepare_ask, short_answer_of, timings_of
from engine.grounded import PreparedAnswer, stream_answer
from engine.runtime import Runtime
from insights import QuestionLog, record_answer

logger = logging.getLogger(__name__)

router = APIRouter(tags=["tutoring"])


def answer_events(prepared: PreparedAnswer, runtime: Runtime, request: AskRequest,
                  question_log: QuestionLog | None = None) -> Iterator[str]:
    """Citations (and the short answer, which also opens the answer) first, then the answer piece by
    piece, then the whole answer with timings (and the question logged, once the answer is complete)."""
    citations = [c.model_dump() for c in citations_for(request.course, prepared.sources)]
    short = short_answer_of(prepared.short)
    yield sse_event({"type": "citations", "citations": citations, "model": runtime.model_name,
                     "short_answer": short and short.model_dump()})
    started, pieces = time.perf_counter(), []
    try:
        for piece in stream_answer(runtime, prepared):
            pieces.append(piece)
            yield sse_event({"type": "delta", "text": piece})
    except Exception as error:  # the status line is sent already: report in the stream
        logger.exception("Streaming an answer failed.")
        yield sse_event({"type": "error", "detail": f"Generating the answer failed: {error}"})
        return
    timings = timings_of(prepared.retrieval_s, time.perf_counter() - started)
    record_answer(question_log, course=request.course, question=request.question, route="ask/stream",
                  model=runtime.model_name, sources=prepared.sources,
                  not_covered=prepared.generation is None, latency_s=timings.total_s)
    yield sse_event({"type": "done", "answer": "".join(pieces).strip(), "timings": timings.model_dump()})


@router.post("/v1/ask/stream", responses={
    **ERROR_RESPONSES, 200: {"description": "Server-sent events: citations, delta..., done."}})
async def ask_stream(request: AskRequest, retriever: RetrieverDep, runtime: RuntimeDep,
                     settings: SettingsDep, question_log: QuestionLogDep) -> StreamingResponse:
    """Answer like /v1/ask, streaming the answer as it is generated."""
    prepared = await run_in_threadpool(prepare_ask, request, retriever=retriever, settings=settings)
    return event_stream(answer_events(prepared, runtime, request, question_log))
