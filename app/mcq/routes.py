"""MCQ routes: answer one question, or run a batch as a background job with progress.

``POST /v1/mcq/batch`` answers 202 with the job's status at once; poll
``GET /v1/mcq/batch/{job_id}`` until ``status`` is ``done`` (results and accuracy included).
"""

from __future__ import annotations

import threading
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from starlette.concurrency import run_in_threadpool

from app.deps import RetrieverDep, RuntimeDep, SettingsDep
from app.mcq import service
from app.mcq.schemas import MCQBatchRequest, MCQJobStatus, MCQRequest, MCQResponse
from app.mcq.service import MCQJobStore, RetrievalDefaults
from engine.mcq.engine import MCQEngine

router = APIRouter(tags=["mcq"])

ERROR_RESPONSES = {
    404: {"description": "Unknown course, or unknown batch job id."},
    422: {"description": "Invalid request; the detail names the field and the limit."},
    503: {"description": "The model is not loaded, or too many batch jobs are waiting."},
}
_store_lock = threading.Lock()


def get_mcq_engine(runtime: RuntimeDep, retriever: RetrieverDep) -> MCQEngine:
    return MCQEngine(runtime, retriever)


def get_job_store(request: Request) -> MCQJobStore:
    """The app's one job store, made on first use."""
    with _store_lock:
        store = getattr(request.app.state, "mcq_jobs", None)
        if store is None:
            store = request.app.state.mcq_jobs = MCQJobStore()
    return store


def get_retrieval_defaults(settings: SettingsDep) -> RetrievalDefaults:
    return RetrievalDefaults.from_settings(settings)


MCQEngineDep = Annotated[MCQEngine, Depends(get_mcq_engine)]
RetrievalDefaultsDep = Annotated[RetrievalDefaults, Depends(get_retrieval_defaults)]
MCQJobStoreDep = Annotated[MCQJobStore, Depends(get_job_store)]


@router.post("/v1/mcq", response_model=MCQResponse, responses=ERROR_RESPONSES)
async def answer_mcq(request: MCQRequest, engine: MCQEngineDep,
                     defaults: RetrievalDefaultsDep, settings: SettingsDep) -> MCQResponse:
    """Answer one multiple-choice question with a letter, by log-likelihood or by generation."""
    service.check_text_lengths([request], settings)
    return await run_in_threadpool(service.answer_one, request, engine, defaults)


@router.post("/v1/mcq/batch", response_model=MCQJobStatus, status_code=202, responses=ERROR_RESPONSES)
async def start_mcq_batch(request: MCQBatchRequest, engine: MCQEngineDep, jobs: MCQJobStoreDep,
                          defaults: RetrievalDefaultsDep, response: Response,
                          settings: SettingsDep) -> MCQJobStatus:
    """Queue a batch of questions; poll the Location for progress and results."""
    service.check_text_lengths(request.items, settings)
    job = await run_in_threadpool(jobs.submit, request, engine, defaults)
    response.headers["Location"] = f"/v1/mcq/batch/{job.id}"
    return job.report()


@router.get("/v1/mcq/batch/{job_id}", response_model=MCQJobStatus, responses=ERROR_RESPONSES)
async def mcq_batch_status(job_id: str, jobs: MCQJobStoreDep) -> MCQJobStatus:
    """A batch job's progress; per-item results, accuracy and questions/s once it is done."""
    return await run_in_threadpool(lambda: jobs.get(job_id).report())
