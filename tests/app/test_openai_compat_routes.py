"""The OpenAI-compatible routes and /v1/ask/stream with fakes: no model loads."""

from __future__ import annotations

import json

import pytest

from app.settings import Settings
from retrieval import NO_CONTEXT_ANSWER, SourceInfo
from retrieval.prompt import ECHO_STOPS
from tests.utils.deploy import StreamingFakeRuntime
from tests.utils.fakes import FakeRetriever, FakeRuntime, FakeStore, fake_client, make_hit

COURSE = "physics-101"


@pytest.fixture
def fakes():
    store = FakeStore({COURSE: [SourceInfo("mechanics.pdf", "abc", chunks=7, pages=3)], "chemistry": []})
    hits = [make_hit("An object stays at rest unless a force acts on it.", score=0.9, page=2),
            make_hit("Acceleration is proportional to force.", score=0.5, page=3)]
    return StreamingFakeRuntime(), store, FakeRetriever(store, hits)


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(data_dir=tmp_path, short_answers=False,
                    max_new_tokens=64, answer_tokens=24, top_k=3, min_score=0.3, max_question_chars=200)


def server_events(text: str) -> list:
    """The data payloads of a server-sent event stream, JSON-decoded (except [DONE])."""
    payloads = [block.removeprefix("data: ") for block in text.split("\n\n") if block.startswith("data: ")]
    return [payload if payload == "[DONE]" else json.loads(payload) for payload in payloads]


def test_models_lists_the_bare_model_then_one_model_per_course(client):
    ids = [model["id"] for model in client.get("/v1/models").json()["data"]]
    assert ids == ["fake-model", "tutor/chemistry", "tutor/physics-101"]


def test_chat_completion_answers_from_the_course_with_citations(client, fakes):
    runtime, _, retriever = fakes
    response = client.post("/v1/chat/completions", json={"model": f"tutor/{COURSE}", "messages": [
        {"role": "user", "content": "What is a force?"},
        {"role": "assistant", "content": "A push or a pull."},
        {"role": "user", "content": [{"type": "text", "text": "What is inertia?"}]},
    ]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "chat.completion" and body["model"] == f"tutor/{COURSE}"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": runtime.answer}
    assert [(c["n"], c["page"]) for c in body["citations"]] == [(1, 2), (2, 3)]
    assert body["usage"] == {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    # the follow-up is searched with its earlier exchange (retrieval/history.py), the question leading
    searched = {s["question"] for s in retriever.searches}
    assert "What is inertia? A push or a pull. What is a force?" in searched
    [sent] = runtime.requests
    assert [m["role"] for m in sent.messages] == ["system", "user", "assistant", "user"]
    assert sent.messages[1]["content"] == "What is a force?"
    assert "An object stays at rest" in sent.messages[-1]["content"]


def test_chat_completion_caps_max_tokens_and_passes_stop(client, fakes):
    runtime, _, _ = fakes
    response = client.post("/v1/chat/completions", json={
        "model": f"tutor/{COURSE}", "max_tokens": 5000, "stop": "\n\n", "temperature": 0.5,
        "messages": [{"role": "user", "content": "What is inertia?"}]})
    assert response.status_code == 200, response.text
    [sent] = runtime.requests
    # The client's stop first, then where a course answer would start reading the prompt back.
    assert (sent.max_new_tokens, sent.stop, sent.temperature) == (64, ["\n\n", *ECHO_STOPS], 0.5)


def test_bare_model_generates_from_the_messages_without_retrieval(client, fakes):
    runtime, _, retriever = fakes
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hi."}]
    response = client.post("/v1/chat/completions", json={"model": "fake-model", "messages": messages})
    assert response.status_code == 200, response.text
    assert response.json()["citations"] == []
    assert runtime.requests[0].messages == messages
    assert retriever.searches == []
    # a plain chat's budget is TUTOR_MAX_NEW_TOKENS; a course's answer's, TUTOR_ANSWER_TOKENS (one sentence)
    client.post("/v1/chat/completions", json={"model": f"tutor/{COURSE}", "messages": messages})
    assert [r.max_new_tokens for r in runtime.requests] == [64, 24]


def test_a_long_prompt_is_a_question_limit_for_a_course_but_not_for_the_bare_model(client, fakes):
    """Another tutor sends its sources in the last message to the bare model; a student's question to a
    course model stays within TUTOR_MAX_QUESTION_CHARS (200 here)."""
    runtime, _, _ = fakes
    prompt = [{"role": "user", "content": "Course sources: " + "text " * 80}]
    bare = client.post("/v1/chat/completions", json={"model": "fake-model", "messages": prompt})
    assert bare.status_code == 200, bare.text
    course = client.post("/v1/chat/completions", json={"model": f"tutor/{COURSE}", "messages": prompt})
    assert course.status_code == 422
    assert "TUTOR_MAX_QUESTION_CHARS" in course.json()["detail"]


def test_chat_completion_without_relevant_material_answers_no_context(tmp_path, fakes):
    runtime, store, retriever = fakes
    client = fake_client(Settings(data_dir=tmp_path, short_answers=False,
                                  min_score=0.95), runtime, store, retriever)
    response = client.post("/v1/chat/completions", json={
        "model": f"tutor/{COURSE}", "messages": [{"role": "user", "content": "Who won the cup?"}]})
    assert response.json()["choices"][0]["message"]["content"] == NO_CONTEXT_ANSWER
    assert runtime.requests == []


@pytest.mark.parametrize(("model", "expected"), [("gpt-4o", "Unknown model 'gpt-4o'"),
                                                 ("tutor/physics-10", "Did you mean physics-101?")])
def test_chat_completion_with_unknown_model_or_course_is_404(client, model, expected):
    response = client.post("/v1/chat/completions", json={
        "model": model, "messages": [{"role": "user", "content": "What is inertia?"}]})
    assert response.status_code == 404
    assert expected in response.json()["detail"]


def test_chat_completion_without_user_message_is_422(client):
    response = client.post("/v1/chat/completions", json={
        "model": f"tutor/{COURSE}", "messages": [{"role": "system", "content": "Hello."}]})
    assert response.status_code == 422
    assert "no user message" in response.json()["detail"]


def test_streamed_chat_completion_sends_citations_then_deltas_then_done(client, fakes):
    runtime, _, _ = fakes
    response = client.post("/v1/chat/completions", json={
        "model": f"tutor/{COURSE}", "stream": True,
        "messages": [{"role": "user", "content": "What is inertia?"}]})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = server_events(response.text)
    assert events[-1] == "[DONE]"
    first, *middle, last = events[:-1]
    assert first["choices"][0]["delta"]["role"] == "assistant"
    assert [c["page"] for c in first["citations"]] == [2, 3]
    # Each sentence arrives whole, once the notes are seen to support it (engine.support).
    assert [e["choices"][0]["delta"]["content"] for e in middle] == [runtime.answer]
    assert last["choices"][0]["finish_reason"] == "stop"
    assert len(runtime.streamed) == 1 and runtime.requests == []


def test_ask_stream_sends_citations_deltas_and_the_whole_answer(client, fakes):
    runtime, _, _ = fakes
    response = client.post("/v1/ask/stream", json={"course": COURSE, "question": "What is inertia?"})
    assert response.status_code == 200, response.text
    events = server_events(response.text)
    assert [e["type"] for e in events] == ["citations", "delta", "done"]  # the one sentence, whole
    assert events[0]["model"] == "fake-model"
    assert [c["n"] for c in events[0]["citations"]] == [1, 2]
    assert "".join(e["text"] for e in events[1:-1]) == runtime.answer
    assert events[-1]["answer"] == runtime.answer
    assert set(events[-1]["timings"]) == {"retrieval_s", "generation_s", "total_s"}


def test_ask_stream_searches_with_the_history_and_the_model_reads_it(client, fakes):
    runtime, _, retriever = fakes
    history = [{"role": "user", "content": "What is inertia?"},
               {"role": "assistant", "content": "A tendency."}]
    response = client.post("/v1/ask/stream", json={"course": COURSE, "question": "Who named it?",
                                                   "history": history})
    assert response.status_code == 200, response.text
    assert server_events(response.text)[-1]["type"] == "done"
    assert "Who named it? A tendency. What is inertia?" in {s["question"] for s in retriever.searches}
    [sent] = runtime.streamed
    assert [m["role"] for m in sent.messages] == ["system", "user", "assistant", "user"]
    too_long = client.post("/v1/ask/stream", json={"course": COURSE, "question": "Who?",
                                                   "history": [{"role": "user", "content": "x" * 1999}]})
    assert too_long.status_code == 422 and "The conversation is" in too_long.json()["detail"]


def test_ask_stream_errors_before_streaming_are_json(client):
    response = client.post("/v1/ask/stream", json={"course": "nope", "question": "What is inertia?"})
    assert response.status_code == 404
    assert "Known courses" in response.json()["detail"]
    response = client.post("/v1/ask/stream", json={"course": COURSE, "question": "x" * 201})
    assert response.status_code == 422


def test_ask_stream_falls_back_to_generate_for_a_runtime_that_cannot_stream(tmp_path):
    store = FakeStore({COURSE: []})
    runtime = FakeRuntime(answer="Whole answer about inertia, text [1].")
    client = fake_client(Settings(data_dir=tmp_path, short_answers=False), runtime, store,
                         FakeRetriever(store, [make_hit("The whole answer about inertia: text.", score=0.9)]))
    response = client.post("/v1/ask/stream", json={"course": COURSE, "question": "Inertia?"})
    events = server_events(response.text)
    assert [e["type"] for e in events] == ["citations", "delta", "done"]
    assert events[-1]["answer"] == "Whole answer about inertia, text [1]."
