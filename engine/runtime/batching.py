"""Batch concurrent requests into one model call, with a bounded queue and a timeout.

Each HTTP request asks the runtime for one generation (or one question's option scores). On
its own, the model then runs one sequence at a time while the others wait for its lock. This
wrapper collects the calls that arrive within a short window into one batched call, which costs
little more than a single one, so throughput grows with the number of clients.

It also bounds the work a server accepts: at most ``max_queue`` calls wait or run at once; one
more raises ``RuntimeBusyError`` (HTTP 503 with Retry-After) instead of queueing without limit.
A caller waits at most ``timeout_s``; work still queued when its caller gave up is skipped.

>>> runtime = BatchingRuntime(HFRuntime(None, data_dir=d), BatchSettings(window_s=0.01))  # doctest: +SKIP
>>> runtime.generate([request])   # from many threads at once: one batched model call   # doctest: +SKIP
>>> runtime.close()               # finish queued work, then stop the worker            # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeoutError
from dataclasses import dataclass, field
from typing import Any

from engine.runtime.base import (
    GenerationRequest,
    GenerationResult,
    LoglikelihoodRequest,
    PairRequest,
    RollingRequest,
    Runtime,
)
from engine.runtime.streaming import stream_text

logger = logging.getLogger(__name__)


class RuntimeBusyError(RuntimeError):
    """The server's queue of model work is full, or it is shutting down (503 with Retry-After)."""

    def __init__(self, message: str, retry_after_s: int):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class GenerationTimeoutError(TimeoutError):
    """A generation or scoring call took longer than the server's timeout (504)."""


@dataclass(frozen=True)
class BatchSettings:
    """How calls are grouped and bounded.

    Args:
        max_queue: calls waiting or running at once; one more is refused with RuntimeBusyError.
        window_s: how long the worker waits for more calls after the first one arrives, at least.
        window_share: when a call comes in right after a batch that merged several callers,
            the worker waits up to this share of that batch's run time (at most ``max_window_s``)
            for as many new calls as that batch had callers, and stops waiting once they came. Their answers
            came back together, but their next calls arrive spread by their own work (retrieval,
            HTTP): with a fixed short window a batch of one caller would alternate with a batch
            of the rest. After a single caller's batch (one student, or an MCQ batch job), or
            once that long window has passed, the wait is ``window_s``.
        max_batch: the most calls merged into one model call.
        timeout_s: the longest a caller waits for its result, per ``max_batch`` requests it sends
            (an MCQ batch job sends many at once, a student's question one).
        retry_after_s: what a refused caller is told to wait before retrying.
    """

    max_queue: int = 64
    window_s: float = 0.01
    window_share: float = 0.5
    max_window_s: float = 0.5
    max_batch: int = 16
    timeout_s: float = 300.0
    retry_after_s: int = 2


@dataclass
class _Call:
    """One caller's requests, waiting for the worker."""

    kind: str  # the runtime's batch method: "generate", "loglikelihood", "loglikelihood_rolling"...
    requests: list[Any]
    future: Future = field(default_factory=Future)
    queued_at: float = field(default_factory=time.monotonic)


class BatchingRuntime:
    """A Runtime that merges concurrent calls of each batch method (see the module doc).

    It answers the whole ``Runtime`` contract and nothing more: the wrapped runtime's internals
    (its model, its tokenizer) stay inside it.
    """

    def __init__(self, runtime: Runtime, settings: BatchSettings | None = None):
        self.inner = runtime
        self.model_name = runtime.model_name
        self.settings = settings or BatchSettings()
        self._calls: queue.Queue[_Call | None] = queue.Queue()
        self._slots = threading.BoundedSemaphore(self.settings.max_queue)
        self._closing = threading.Event()
        # kind -> (callers, run seconds, end time) of the last batch of that kind
        self._last_batch: dict[str, tuple[int, float, float]] = {}
        self._worker = threading.Thread(target=self._work, name="runtime-batcher", daemon=True)
        self._worker.start()

    def format_chat(self, messages: list[dict[str, str]]) -> str:
        return self.inner.format_chat(messages)

    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        return self._run("generate", requests)

    def loglikelihood(self, requests: list[LoglikelihoodRequest]) -> list[tuple[float, bool]]:
        return self._run("loglikelihood", requests)

    def loglikelihood_rolling(self, requests: list[RollingRequest]) -> list[tuple[float, int]]:
        return self._run("loglikelihood_rolling", requests)

    def pair_logprobs(self, requests: list[PairRequest]) -> list[tuple[float, float]]:
        return self._run("pair_logprobs", requests)

    def stream(self, request: GenerationRequest) -> Iterator[str]:
        """The wrapped runtime's token stream (not batched), counted against the queue bound."""
        self._take_slot()
        try:
            yield from stream_text(self.inner, request)
        finally:
            self._slots.release()

    def close(self, drain_timeout_s: float = 60.0) -> None:
        """Refuse new calls, let queued and running ones finish (up to ``drain_timeout_s``), stop."""
        self._closing.set()
        self._calls.put(None)
        self._worker.join(drain_timeout_s)
        if self._worker.is_alive():
            logger.warning("The runtime batcher still had work after %.0f s; stopping anyway.",
                           drain_timeout_s)

    # -- the caller's side ---------------------------------------------------------------
    def timeout_for(self, requests: int) -> float:
        return self.settings.timeout_s * math.ceil(requests / self.settings.max_batch)

    def _take_slot(self) -> None:
        retry = self.settings.retry_after_s
        if self._closing.is_set():
            raise RuntimeBusyError("The server is shutting down and takes no new work; retry on another "
                                   "instance or after it restarts.", retry)
        if not self._slots.acquire(blocking=False):
            raise RuntimeBusyError(f"The server is busy: {self.settings.max_queue} requests are already "
                                   f"waiting for the model (TUTOR_MAX_QUEUE). Retry in {retry} s.", retry)

    def _run(self, kind: str, requests: list) -> list:
        if not requests:
            return []
        self._take_slot()
        call = _Call(kind, list(requests))
        try:
            self._calls.put(call)
            return call.future.result(timeout=self.timeout_for(len(call.requests)))
        except FutureTimeoutError:
            call.future.cancel()  # skipped by the worker if it has not started
            raise GenerationTimeoutError(
                f"The model did not answer within {self.timeout_for(len(call.requests)):.0f} s "
                "(TUTOR_GENERATION_TIMEOUT_S); the server is overloaded. Retry later, or ask for fewer "
                "tokens (max_new_tokens)."
            ) from None
        finally:
            self._slots.release()

    # -- the worker's side ---------------------------------------------------------------
    def _work(self) -> None:
        while (first := self._calls.get()) is not None:
            self._execute(self._gather(first))
        self._drain()

    def _gather(self, first: _Call) -> list[_Call]:
        """``first`` and the calls of the same kind that arrive within the window (others go back)."""
        batch, others = [first], []
        window = self.window_for(first.kind)
        returning, _, ended = self._last_batch.get(first.kind, (1, 0.0, 0.0))
        deadline = time.monotonic() + window
        while len(batch) < self.settings.max_batch:
            came_back = sum(call.queued_at >= ended for call in batch)
            if window > self.settings.window_s and came_back >= returning:
                break  # as many calls came as the last batch had callers: no need to wait longer
            try:
                call = self._calls.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if call is None:  # closing: run what is gathered, then drain the rest
                self._calls.put(None)
                break
            (batch if call.kind == first.kind else others).append(call)
        for call in others:
            self._calls.put(call)
        return batch

    def window_for(self, kind: str) -> float:
        """How long the worker waits for more calls of ``kind`` after the first (see BatchSettings)."""
        settings = self.settings
        callers, seconds, ended = self._last_batch.get(kind, (1, 0.0, 0.0))
        window = min(settings.max_window_s, settings.window_share * seconds)
        if callers < 2 or time.monotonic() - ended > window:  # nobody is coming back, or not soon
            return settings.window_s
        return max(settings.window_s, window)

    def _drain(self) -> None:
        """After close(): run every call still queued, so no accepted request is dropped."""
        while True:
            try:
                call = self._calls.get_nowait()
            except queue.Empty:
                return
            if call is not None:
                self._execute([call])

    def _execute(self, batch: list[_Call]) -> None:
        live = [call for call in batch if call.future.set_running_or_notify_cancel()]
        if not live:
            return
        method: Callable[[list], list] = getattr(self.inner, live[0].kind)
        requests = [request for call in live for request in call.requests]
        started = time.monotonic()
        try:
            results = method(requests)
            ended = time.monotonic()
            self._last_batch[live[0].kind] = (len(live), ended - started, ended)
        except Exception as error:
            self._fail_or_retry_alone(live, method, error)
            return
        start = 0
        for call in live:
            call.future.set_result(results[start : start + len(call.requests)])
            start += len(call.requests)

    def _fail_or_retry_alone(self, live: list[_Call], method: Callable[[list], list],
                             error: Exception) -> None:
        """A merged call failed: run each call alone, so one bad request fails only its own caller."""
        if len(live) == 1:
            live[0].future.set_exception(error)
            return
        logger.warning("A batch of %d calls failed (%s); retrying them one by one.", len(live), error)
        for call in live:
            try:
                call.future.set_result(method(call.requests))
            except Exception as single_error:
                call.future.set_exception(single_error)
