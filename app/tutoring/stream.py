"""POST /v1/ask/stream: the /v1/ask answer as server-sent events, token by token.

Events, each ``data: <json>``: first ``{"type": "citations", "citations": [...], "model": ...}``,
then ``{"type": "delta", "text": ...}`` per piece of the answer, then
``{"type": "done", "answer": ..., "timings": {...}}``; a failure after the stream started
ends it with ``{"type": "error", "detail": ...}``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from app.deps import RetrieverDep, RuntimeDep, SettingsDep
from app.settings import Settings
from app.tutoring.routes import ERROR_RESPONSES
from app.tutoring.schemas import AskRequest, Citation
from app.tutoring.service import check_limits, citations_for
from engine.runtime import GenerationRequest, Runtime
from engine.runtime.streaming import stream_text
from retrieval import NO_CONTEXT_ANSWER, Retriever, build_grounded_prompt

logger = logging.getLogger(__name__)

router = APIRouter(tags=["tutoring"])


@dataclass
class PreparedAnswer:
    """The retrieval's outcome: what to generate (None: nothing relevant) and the numbered sources."""

    generation: GenerationRequest | None
    citations: list[Citation] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)
    retrieval_s: float = 0.0


def prepare_answer(request: AskRequest, *, retriever: Retriever, settings: Settings) -> PreparedAnswer:
    """Retrieve and build the grounded prompt, as /v1/ask does, without generating."""
    check_limits(request, settings)
    prepared = PreparedAnswer(None)
    hits = retriever.search(request.course, request.question, k=request.top_k or settings.top_k,
                            min_score=settings.min_score)
    if hits:
        prompt = build_grounded_prompt(request.question, hits)
        budget = request.max_new_tokens or settings.max_new_tokens
        prepared.generation = GenerationRequest(messages=prompt.messages, temperature=request.temperature,
                                                max_new_tokens=budget)
        prepared.citations = citations_for(prompt.sources)
    prepared.retrieval_s = time.perf_counter() - prepared.started
    return prepared


def event(payload: dict) -> str:
    return f"data: {json.dumps(payload)}\n\n"


def answer_events(prepared: PreparedAnswer, runtime: Runtime) -> Iterator[str]:
    """Citations first, then the answer piece by piece, then the whole answer with timings."""
    yield event({"type": "citations", "citations": [c.model_dump() for c in prepared.citations],
                 "model": runtime.model_name})
    pieces: list[str] = []
    try:
        if prepared.generation is None:
            pieces.append(NO_CONTEXT_ANSWER)
            yield event({"type": "delta", "text": NO_CONTEXT_ANSWER})
        else:
            for piece in stream_text(runtime, prepared.generation):
                pieces.append(piece)
                yield event({"type": "delta", "text": piece})
    except Exception as error:  # the status line is sent already: report in the stream
        logger.exception("Streaming an answer failed.")
        yield event({"type": "error", "detail": f"Generating the answer failed: {error}"})
        return
    total = time.perf_counter() - prepared.started
    timings = {"retrieval_s": round(prepared.retrieval_s, 4),
               "generation_s": round(total - prepared.retrieval_s, 4), "total_s": round(total, 4)}
    yield event({"type": "done", "answer": "".join(pieces).strip(), "timings": timings})


@router.post("/v1/ask/stream", responses={
    **ERROR_RESPONSES, 200: {"description": "Server-sent events: citations, delta..., done."}})
async def ask_stream(request: AskRequest, retriever: RetrieverDep, runtime: RuntimeDep,
                     settings: SettingsDep) -> StreamingResponse:
    """Answer like /v1/ask, streaming the answer as it is generated."""
    prepared = await run_in_threadpool(prepare_answer, request, retriever=retriever, settings=settings)
    return StreamingResponse(answer_events(prepared, runtime), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache"})
