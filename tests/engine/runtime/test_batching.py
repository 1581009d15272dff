"""The batching runtime: concurrent calls merge, the queue is bounded, callers time out, shutdown
drains. A fake model that records its calls; the HTTP mapping through the real app."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from app.deps import get_retriever, get_runtime, get_store
from app.main import build_app
from app.settings import Settings
from engine.runtime import (
    GenerationRequest,
    GenerationResult,
    LoglikelihoodRequest,
    PairRequest,
    RollingRequest,
)
from engine.runtime.batching import BatchingRuntime, BatchSettings, GenerationTimeoutError, RuntimeBusyError
from retrieval import SourceInfo
from tests.utils.fakes import FakeRetriever, FakeStore, make_hit


class RecordingModel:
    """Answers each prompt with its own text after ``delay_s`` per call; records the batch sizes.

    A prompt containing "boom" makes the whole call fail, as a bad request can in a real model.
    """

    model_name = "recording-model"

    def __init__(self, delay_s: float = 0.05):
        self.delay_s = delay_s
        self.calls: list[tuple[str, int]] = []
        self.gate = threading.Event()
        self.gate.set()

    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        return self._answer("generate", requests, lambda r: GenerationResult(r.messages[-1]["content"], 1, 1))

    def loglikelihood(self, requests: list[LoglikelihoodRequest]) -> list[tuple[float, bool]]:
        return self._answer("loglikelihood", requests, lambda r: (-float(len(r.continuation)), False))

    def loglikelihood_rolling(self, requests: list[RollingRequest]) -> list[tuple[float, int]]:
        return self._answer("loglikelihood_rolling", requests, lambda r: (-float(len(r.text)), len(r.text)))

    def pair_logprobs(self, requests: list[PairRequest]) -> list[tuple[float, float]]:
        return self._answer("pair_logprobs", requests,
                            lambda r: (-float(len(r.chosen)), -float(len(r.rejected))))

    def _answer(self, kind, requests, answer):
        self.gate.wait(10)
        self.calls.append((kind, len(requests)))
        if any("boom" in str(r) for r in requests):
            raise ValueError("the model cannot take this input")
        time.sleep(self.delay_s)
        return [answer(r) for r in requests]

    def format_chat(self, messages):
        return "\n".join(m["content"] for m in messages)


def ask(text: str) -> list[GenerationRequest]:
    return [GenerationRequest(messages=[{"role": "user", "content": text}])]


@pytest.fixture
def model() -> RecordingModel:
    return RecordingModel()


def test_concurrent_generations_merge_into_few_model_calls_and_each_caller_gets_its_own(model):
    runtime = BatchingRuntime(model, BatchSettings(window_s=0.05, max_batch=16))
    try:
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda n: runtime.generate(ask(f"question {n}"))[0].text, range(8)))
    finally:
        runtime.close()
    assert answers == [f"question {n}" for n in range(8)]
    assert len(model.calls) <= 3 and sum(size for _, size in model.calls) == 8
    assert max(size for _, size in model.calls) >= 4


def test_after_a_merged_batch_the_window_waits_for_its_callers_to_come_back():
    model = RecordingModel(delay_s=0.4)
    runtime = BatchingRuntime(model, BatchSettings(window_s=0.05, window_share=0.5, max_window_s=1.0))

    def two_callers(spread_s: float) -> None:
        with ThreadPoolExecutor(2) as pool:
            first = pool.submit(runtime.generate, ask("first"))
            time.sleep(spread_s)  # the second caller's retrieval took this much longer
            second = pool.submit(runtime.generate, ask("second"))
            assert [first.result()[0].text, second.result()[0].text] == ["first", "second"]

    try:
        runtime.generate(ask("alone"))  # one caller: nobody comes back, the window stays short
        assert runtime.window_for("generate") == 0.05
        two_callers(0.0)  # merged within the short window; that batch ran 0.4 s
        assert runtime.window_for("generate") == pytest.approx(0.2, abs=0.05)
        assert runtime.window_for("loglikelihood") == 0.05  # each kind keeps its own
        two_callers(0.12)  # later than the short window, within the long one
        time.sleep(0.3)
        assert runtime.window_for("generate") == 0.05  # nobody came back in time: short again
    finally:
        runtime.close()
    assert model.calls == [("generate", 1), ("generate", 2), ("generate", 2)]


def test_multi_request_calls_keep_their_order_and_kinds_never_mix(model):
    runtime = BatchingRuntime(model, BatchSettings(window_s=0.05))
    options = [LoglikelihoodRequest("Q:", " a"), LoglikelihoodRequest("Q:", " bbb")]
    try:
        with ThreadPoolExecutor(4) as pool:
            scores = pool.submit(runtime.loglikelihood, options)
            texts = [pool.submit(runtime.generate, ask(f"q{n}")) for n in range(3)]
            assert scores.result() == [(-2.0, False), (-4.0, False)]
            assert [t.result()[0].text for t in texts] == ["q0", "q1", "q2"]
    finally:
        runtime.close()
    assert {kind for kind, _ in model.calls} == {"generate", "loglikelihood"}
    assert ("loglikelihood", 2) in model.calls


def test_a_full_queue_is_refused_with_retry_after(model):
    model.gate.clear()  # the model hangs until released
    runtime = BatchingRuntime(model, BatchSettings(max_queue=2, window_s=0.0, retry_after_s=3))
    with ThreadPoolExecutor(2) as pool:
        waiting = [pool.submit(runtime.generate, ask(f"q{n}")) for n in range(2)]
        time.sleep(0.2)
        with pytest.raises(RuntimeBusyError, match="TUTOR_MAX_QUEUE") as refused:
            runtime.generate(ask("one too many"))
        assert refused.value.retry_after_s == 3
        model.gate.set()
        assert [w.result(timeout=10)[0].text for w in waiting] == ["q0", "q1"]
    assert runtime.generate(ask("after"))[0].text == "after"  # slots are given back
    runtime.close()


def test_a_caller_times_out_and_its_queued_work_is_skipped(model):
    model.gate.clear()
    runtime = BatchingRuntime(model, BatchSettings(window_s=0.0, timeout_s=0.3))
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(runtime.generate, ask("running"))
        time.sleep(0.1)
        with pytest.raises(GenerationTimeoutError, match="TUTOR_GENERATION_TIMEOUT_S"):
            runtime.generate(ask("queued behind"))
        model.gate.set()
        with pytest.raises(GenerationTimeoutError):
            first.result(timeout=10)
    runtime.close()
    assert ("generate", 1) in model.calls and len(model.calls) == 1  # "queued behind" never ran


def test_a_call_of_many_requests_gets_a_longer_timeout(model):
    runtime = BatchingRuntime(model, BatchSettings(timeout_s=10, max_batch=16))
    try:
        assert [runtime.timeout_for(n) for n in (1, 16, 17, 64)] == [10, 10, 20, 40]
    finally:
        runtime.close()


def test_a_failing_request_fails_only_its_own_caller(model):
    runtime = BatchingRuntime(model, BatchSettings(window_s=0.1))
    try:
        with ThreadPoolExecutor(3) as pool:
            good = [pool.submit(runtime.generate, ask(f"fine {n}")) for n in range(2)]
            bad = pool.submit(runtime.generate, ask("boom"))
            assert [g.result()[0].text for g in good] == ["fine 0", "fine 1"]
            with pytest.raises(ValueError, match="cannot take"):
                bad.result()
    finally:
        runtime.close()


def test_close_finishes_accepted_work_then_refuses_new_work(model):
    model.delay_s = 0.2
    runtime = BatchingRuntime(model, BatchSettings(window_s=0.0, max_batch=1))
    with ThreadPoolExecutor(3) as pool:
        accepted = [pool.submit(runtime.generate, ask(f"q{n}")) for n in range(3)]
        time.sleep(0.05)
        runtime.close()
        assert [a.result(timeout=5)[0].text for a in accepted] == ["q0", "q1", "q2"]
    with pytest.raises(RuntimeBusyError, match="shutting down"):
        runtime.generate(ask("late"))


def test_the_wrapper_answers_the_runtime_contract_and_hides_the_rest(model):
    runtime = BatchingRuntime(model)
    try:
        assert runtime.model_name == "recording-model"
        assert runtime.format_chat([{"role": "user", "content": "hi"}]) == "hi"
        assert list(runtime.stream(ask("streamed")[0])) == ["streamed"]
        assert runtime.loglikelihood_rolling([RollingRequest("four")]) == [(-4.0, 4)]
        assert runtime.pair_logprobs([PairRequest("Q?", "yes", "no")]) == [(-3.0, -2.0)]
        assert ("loglikelihood_rolling", 1) in model.calls and ("pair_logprobs", 1) in model.calls
        with pytest.raises(AttributeError):
            _ = runtime.delay_s  # the wrapped runtime's own attributes stay inside it
    finally:
        runtime.close()


def test_the_api_answers_503_with_retry_after_when_the_queue_is_full(tmp_path, model):
    model.gate.clear()
    runtime = BatchingRuntime(model, BatchSettings(max_queue=1, window_s=0.0, retry_after_s=5))
    store = FakeStore({"physics-101": [SourceInfo("m.pdf", "abc", chunks=1, pages=1)]})
    app = build_app(Settings(data_dir=tmp_path, min_score=0.0, short_answers=False))
    app.dependency_overrides[get_runtime] = lambda: runtime
    app.dependency_overrides[get_store] = lambda: store
    app.dependency_overrides[get_retriever] = lambda: FakeRetriever(store, [make_hit("Momentum is p = mv.")])
    client = TestClient(app, raise_server_exceptions=False)
    body = {"course": "physics-101", "question": "What is momentum?"}
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(client.post, "/v1/ask", json=body)
        time.sleep(0.3)
        refused = client.post("/v1/ask", json=body)
        assert refused.status_code == 503 and refused.headers["retry-after"] == "5"
        assert "busy" in refused.json()["detail"]
        assert client.get("/health").status_code == 200  # the event loop stays free
        model.gate.set()
        assert held.result(timeout=10).status_code == 200
    runtime.close()


def test_a_split_runtime_scores_while_its_remote_side_is_still_generating(tmp_path):
    from app.resources import batching
    from engine.runtime.split import SplitRuntime
    from tests.utils.fakes import FakeRuntime

    release = threading.Event()
    generator, scorer = FakeRuntime(release=release, wait_s=10), FakeRuntime()
    split = batching(SplitRuntime(generator, scorer), Settings(data_dir=tmp_path))
    assert isinstance(split.generator, BatchingRuntime) and isinstance(split.scorer, BatchingRuntime)
    with ThreadPoolExecutor(1) as pool:
        hello = GenerationRequest(messages=[{"role": "user", "content": "Hi"}])
        answering = pool.submit(split.generate, [hello])
        time.sleep(0.2)  # the generation is in flight, held by the fake
        started = time.monotonic()
        assert split.loglikelihood([LoglikelihoodRequest("Q: 1+1=", " 2")]) == [(-2.0, False)]
        scored_s = time.monotonic() - started
        release.set()
        assert answering.result(timeout=10)[0].text == generator.answer
    assert scored_s < 2 and generator.released_in_time  # one shared queue would have waited for the answer
    split.close()
