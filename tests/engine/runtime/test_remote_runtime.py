"""The openai backend and the official OpenAI SDK against a live uvicorn serving fakes (no model loads)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from app.deps import get_retriever, get_runtime, get_store
from app.main import build_app
from app.settings import Settings
from engine.runtime import GenerationRequest, LoglikelihoodRequest, load_runtime
from engine.runtime.openai import (
    GenerationServerError,
    OpenAIRuntime,
    RemoteScoringUnsupportedError,
    normalise_base_url,
)
from engine.runtime.split import SplitRuntime
from engine.runtime.streaming import cut_at_stop, ends_in_loop
from tests.utils.deploy import StreamingFakeRuntime
from tests.utils.fakes import FakeRetriever, FakeRuntime, FakeStore, make_hit
from tests.utils.server import free_port

COURSE = "physics-101"


@pytest.mark.parametrize(("pieces", "stops", "expected"), [
    (["Hello", " world"], [], "Hello world"),
    (["Answer [1].", "\nQuestion:", " more"], ["\nQuestion:"], "Answer [1]."),
    (["Answer", "\nQue", "stion: more"], ["\nQuestion:"], "Answer"),
    (["a<", "/s", "> tail"], ["</s>", "END"], "a"),
    (["keep <", "b> this"], ["</s>"], "keep <b> this"),
])
def test_cut_at_stop_ends_before_a_stop_string_split_across_pieces(pieces, stops, expected):
    assert "".join(cut_at_stop(pieces, stops)) == expected


def test_base_url_gets_v1_and_non_http_urls_are_refused():
    assert normalise_base_url("http://vllm:8000") == "http://vllm:8000/v1"
    assert normalise_base_url("https://host/v1/") == "https://host/v1"
    with pytest.raises(GenerationServerError, match="TUTOR_GENERATION_URL"):
        normalise_base_url("vllm:8000")


def test_unreachable_server_is_a_clear_error_naming_the_url():
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(GenerationServerError, match=f"{url} did not answer"):
        load_runtime(None, data_dir=None, backend="openai", base_url=url, timeout=5)


@pytest.fixture(scope="module")
def fake_server() -> Iterator[tuple[str, StreamingFakeRuntime]]:
    """This project's app on uvicorn, on fakes (no lifespan: nothing loads), in a thread."""
    import uvicorn

    store = FakeStore({COURSE: []})
    runtime = StreamingFakeRuntime(answer="Inertia keeps a body at rest [1].")
    app = build_app(Settings(min_score=0.3, short_answers=False))
    app.dependency_overrides[get_runtime] = lambda: runtime
    app.dependency_overrides[get_store] = lambda: store
    hits = [make_hit("Inertia keeps a body at rest.", page=4)]  # the notes the fake answer keeps to
    app.dependency_overrides[get_retriever] = lambda: FakeRetriever(store, hits)
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start in 20 s"
    yield f"http://127.0.0.1:{port}", runtime
    server.should_exit = True
    thread.join(timeout=10)


def test_openai_backend_generates_and_streams_through_chat_completions(fake_server):
    url, fake = fake_server
    remote = load_runtime(None, data_dir=None, backend="openai", base_url=url)
    assert isinstance(remote, OpenAIRuntime)
    assert remote.model_name == "fake-model"  # the first model the server lists: the bare one
    request = GenerationRequest(messages=[{"role": "user", "content": "What is inertia?"}], max_new_tokens=20)
    [result] = remote.generate([request])
    assert result.text == fake.answer and result.completion_tokens == 5
    assert "".join(remote.stream(request)) == fake.answer
    results = remote.generate([request] * 3)
    assert [r.text for r in results] == [fake.answer] * 3
    with pytest.raises(RemoteScoringUnsupportedError, match="MCQ generation mode"):
        remote.loglikelihood([LoglikelihoodRequest("Q: 1+1=", " 2")])


def test_openai_backend_ends_an_answer_where_it_loops_when_asked(fake_server, monkeypatch):
    url, fake = fake_server
    monkeypatch.setattr(fake, "answer", "It is the taker of the taker of the taker of the taker of the end.")
    remote = OpenAIRuntime(None, base_url=url)
    loose = GenerationRequest(messages=[{"role": "user", "content": "Who?"}])
    looping = GenerationRequest(messages=[{"role": "user", "content": "Who?"}], stop_loops=True)
    assert remote.generate([loose])[0].text == fake.answer
    [cut] = remote.generate([looping])
    assert cut.text == "It is the taker of the taker of the taker of" and ends_in_loop(cut.text)
    assert cut.completion_tokens == 11 and cut.finish_reason == "stop"  # pieces received before hanging up
    assert "".join(remote.stream(looping)) == cut.text
    assert "".join(remote.stream(loose)) == fake.answer


def test_split_runtime_generates_remotely_and_scores_on_the_local_model(fake_server):
    url, fake = fake_server
    local = FakeRuntime(answer="never used")
    split = SplitRuntime(OpenAIRuntime(None, base_url=url), local)
    request = GenerationRequest(messages=[{"role": "user", "content": "What is inertia?"}])
    assert split.model_name == "fake-model"
    assert split.generate([request])[0].text == "".join(split.stream(request)) == fake.answer
    scored = [LoglikelihoodRequest("Q: 1+1=", " 2"), LoglikelihoodRequest("Q: 1+1=", " 11")]
    assert split.loglikelihood(scored) == local.loglikelihood(scored)
    split.close()


def test_openai_backend_reports_a_server_refusal(fake_server):
    url, _ = fake_server
    remote = OpenAIRuntime("tutor/no-such-course", base_url=url)  # the server answers 404
    with pytest.raises(GenerationServerError, match="answered 404"):
        remote.generate([GenerationRequest(messages=[{"role": "user", "content": "Hi?"}])])


def test_official_openai_sdk_reads_completions_streams_and_citations(fake_server):
    from openai import NotFoundError, OpenAI

    url, fake = fake_server
    client = OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
    assert [m.id for m in client.models.list()] == ["fake-model", f"tutor/{COURSE}"]
    messages = [{"role": "user", "content": "What is inertia?"}]
    completion = client.chat.completions.create(model=f"tutor/{COURSE}", messages=messages)
    assert completion.choices[0].message.content == fake.answer
    assert completion.model_extra["citations"][0]["page"] == 4
    chunks = list(client.chat.completions.create(model=f"tutor/{COURSE}", messages=messages, stream=True))
    assert chunks[0].model_extra["citations"][0]["page"] == 4
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == fake.answer
    assert chunks[-1].choices[0].finish_reason == "stop"
    with pytest.raises(NotFoundError):
        client.chat.completions.create(model="tutor/nope", messages=messages)


def sse_runtime(body: str) -> OpenAIRuntime:
    """An OpenAIRuntime whose server answers every stream with ``body`` (server-sent events)."""
    import httpx

    remote = OpenAIRuntime("m", base_url="http://generator.test/v1")
    remote.client = httpx.Client(base_url=remote.base_url, transport=httpx.MockTransport(
        lambda request: httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})))
    return remote


@pytest.mark.parametrize("failure", ['error: {"code": 500, "message": "slot unavailable"}',
                                     'data: {"error": {"message": "slot unavailable"}}'])
def test_a_server_failing_mid_answer_is_an_error_not_a_short_answer(failure):
    remote = sse_runtime(f'data: {{"choices": [{{"delta": {{"content": "Half"}}}}]}}\n\n{failure}\n\n')
    request = GenerationRequest(messages=[{"role": "user", "content": "Hi?"}], stop_loops=True)
    with pytest.raises(GenerationServerError, match="failed mid-answer: .*slot unavailable"):
        remote.generate([request])
    with pytest.raises(GenerationServerError, match="slot unavailable"):
        "".join(remote.stream(request))


def test_a_stream_without_usage_or_finish_reason_counts_pieces_and_reads_the_cap():
    pieces = "".join(f'data: {{"choices": [{{"delta": {{"content": "{w} "}}}}]}}\n\n' for w in "abc")
    remote = sse_runtime(pieces + "data: [DONE]\n\n")
    request = GenerationRequest(messages=[{"role": "user", "content": "Hi?"}], max_new_tokens=3,
                                stop_loops=True)
    [result] = remote.generate([request])
    assert (result.text, result.completion_tokens, result.finish_reason) == ("a b c", 3, "length")
    request.max_new_tokens = 8
    assert remote.generate([request])[0].finish_reason == "stop"
