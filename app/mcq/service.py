"""MCQ service logic: answer one question, and run batches as background jobs with progress.

A batch of thousands of questions takes minutes on a CPU, longer than HTTP clients wait, so
``POST /v1/mcq/batch`` queues a job and answers 202 at once; ``GET /v1/mcq/batch/{id}`` reports
progress and, when done, the per-item results and accuracy. One worker thread runs the jobs
one after another, since they share one model.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from app.errors import JobNotFoundError, ServiceNotReadyError
from app.mcq.schemas import (
    MCQBatchItem,
    MCQBatchRequest,
    MCQBatchResult,
    MCQJobStatus,
    MCQRequest,
    MCQResponse,
    MCQSettings,
    OptionScore,
)
from app.request_limits import check_question
from app.settings import Settings
from app.tutoring.service import citations_for
from engine.mcq.engine import MCQEngine, MCQItem, MCQOptions, MCQPrediction, check_options
from engine.mcq.letters import LETTERS
from engine.mcq.metrics import aggregate
from retrieval import RetrievalMode

logger = logging.getLogger(__name__)


class MCQJobNotFoundError(JobNotFoundError):
    """No batch job has this id, or it was dropped after finishing (404)."""


class MCQQueueFullError(ServiceNotReadyError):
    """Too many batch jobs are waiting (503)."""


@dataclass(frozen=True)
class RetrievalDefaults:
    """The server's retrieval settings, applied to MCQ requests that use course context."""

    top_k: int = 4
    min_score: float | None = None
    retrieval: RetrievalMode = "hybrid"
    context_neighbours: int = 0
    context_sentences: int = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> RetrievalDefaults:
        return cls(top_k=settings.mcq_context_chunks, min_score=settings.min_score,
                   retrieval=settings.retrieval, context_neighbours=settings.mcq_context_neighbours,
                   context_sentences=settings.mcq_context_sentences)

    def applied(self, options: MCQOptions) -> MCQOptions:
        """``options`` with these retrieval settings (the fields share their names)."""
        return dataclasses.replace(options, **dataclasses.asdict(self))


def options_from(request: MCQSettings, defaults: RetrievalDefaults) -> MCQOptions:
    return defaults.applied(MCQOptions(method=request.method, prompt_format=request.prompt_format,
                                       course=request.course, use_context=request.use_context))


def option_scores(prediction: MCQPrediction) -> list[OptionScore] | None:
    if prediction.logliks is None or prediction.probs is None:
        return None
    return [OptionScore(letter=LETTERS[i], loglik=round(ll, 6), prob=round(p, 6))
            for i, (ll, p) in enumerate(zip(prediction.logliks, prediction.probs, strict=True))]


def check_text_lengths(items: Sequence[MCQRequest | MCQBatchItem], settings: Settings) -> None:
    """Refuse a question or option longer than TUTOR_MAX_QUESTION_CHARS: the model's context is finite."""
    for number, item in enumerate(items):
        longest = max([item.question, *item.choices], key=len)
        name = f"item {getattr(item, 'id', number)!r}: " if isinstance(item, MCQBatchItem) else ""
        part = "the question" if longest is item.question else "an option"
        check_question(longest, settings, what=f"{name}{part}")


def answer_one(request: MCQRequest, engine: MCQEngine, defaults: RetrievalDefaults) -> MCQResponse:
    """Answer a single question with the requested method."""
    item = MCQItem(question=request.question, choices=request.choices)
    [prediction] = engine.answer([item], options_from(request, defaults))
    return MCQResponse(answer=prediction.letter, answer_norm=prediction.letter_norm,
                       scores=option_scores(prediction),
                       citations=citations_for(request.course, prediction.hits), raw_text=prediction.raw_text,
                       reason=prediction.reason)


def batch_result(prediction: MCQPrediction) -> MCQBatchResult:
    return MCQBatchResult(id=prediction.id or "", answer=prediction.letter,
                          answer_norm=prediction.letter_norm,
                          correct=prediction.correct, scores=option_scores(prediction),
                          raw_text=prediction.raw_text, reason=prediction.reason)


@dataclass
class MCQJob:
    """One batch: its questions, how to answer them, and how far it got."""

    id: str
    items: list[MCQItem]
    options: MCQOptions
    engine: MCQEngine
    status: str = "queued"
    done: int = 0
    started: float | None = None
    finished: float | None = None
    predictions: list[MCQPrediction] = field(default_factory=list)
    error: str | None = None

    def run(self) -> None:
        self.status, self.started = "running", time.perf_counter()
        try:
            self.predictions = self.engine.answer(self.items, self.options, progress=self._advance)
            self.status = "done"
        except Exception as error:  # the job reports it; the worker goes on with the next job
            logger.exception("MCQ batch job %s failed.", self.id)
            self.status, self.error = "failed", str(error)
        self.finished = time.perf_counter()

    def _advance(self, done: int) -> None:
        self.done = done

    def report(self) -> MCQJobStatus:
        status = MCQJobStatus(job_id=self.id, status=self.status, done=self.done, total=len(self.items),
                              error=self.error)
        if self.started is not None and self.done:
            elapsed = (self.finished or time.perf_counter()) - self.started
            status.questions_per_second = round(self.done / elapsed, 3) if elapsed > 0 else None
        if self.status == "done":
            metrics = aggregate([p.outcome() for p in self.predictions])
            status.accuracy, status.accuracy_norm = metrics["acc"], metrics["acc_norm"]
            status.no_letter_rate = metrics["no_letter_rate"]
            status.results = [batch_result(p) for p in self.predictions]
        return status


class MCQJobStore:
    """Queued and finished batch jobs, run one at a time by a daemon worker thread."""

    def __init__(self, *, max_waiting: int = 8, keep_finished: int = 32):
        self.max_waiting = max_waiting
        self.keep_finished = keep_finished
        self.jobs: OrderedDict[str, MCQJob] = OrderedDict()
        self.waiting: queue.Queue[MCQJob] = queue.Queue()
        self.lock = threading.Lock()
        self.worker = threading.Thread(target=self._work, name="mcq-batch-worker", daemon=True)
        self.worker.start()

    def submit(self, request: MCQBatchRequest, engine: MCQEngine, defaults: RetrievalDefaults) -> MCQJob:
        items = [MCQItem(question=i.question, choices=i.choices, id=i.id, answer=i.gold_index())
                 for i in request.items]
        options = options_from(request, defaults)
        check_options(options)  # a bad format or course is refused now, not a failed job later
        if options.use_context and engine.retriever is not None:
            engine.retriever.store.require_course(options.course)
        with self.lock:
            if self.waiting.qsize() >= self.max_waiting:
                raise MCQQueueFullError(f"{self.waiting.qsize()} MCQ batch jobs are already waiting; "
                                        "retry when one has finished.")
            job = MCQJob(id=uuid.uuid4().hex, items=items, options=options, engine=engine)
            self.jobs[job.id] = job
            self._forget_old()
        self.waiting.put(job)
        return job

    def get(self, job_id: str) -> MCQJob:
        with self.lock:
            job = self.jobs.get(job_id)
        if job is None:
            raise MCQJobNotFoundError(f"No MCQ batch job has id {job_id!r}; it may have finished long ago "
                                      f"and been dropped (only {self.keep_finished} finished jobs are kept).")
        return job

    def _forget_old(self) -> None:
        finished = [key for key, job in self.jobs.items() if job.status in ("done", "failed")]
        for key in finished[: max(0, len(finished) - self.keep_finished)]:
            del self.jobs[key]

    def _work(self) -> None:
        while True:
            self.waiting.get().run()
