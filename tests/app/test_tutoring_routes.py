"""Route tests with fake runtime, store and retriever: no model loads, each test takes milliseconds."""

from __future__ import annotations

import asyncio
import threading

import httpx
import pytest
from fastapi.testclient import TestClient

from app.main import build_app
from app.settings import Settings
from engine.runtime import ModelNotFoundError
from retrieval import NO_CONTEXT_ANSWER, SourceInfo
from tests.utils.fakes import FakeRetriever, FakeRuntime, FakeStore, fake_app, fake_client, make_hit

COURSE = "physics-101"


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(data_dir=tmp_path, short_answers=False,
                    max_question_chars=100, max_new_tokens=64, answer_tokens=24, top_k=3, min_score=0.3)


@pytest.fixture
def fakes():
    store = FakeStore({COURSE: [SourceInfo("mechanics.pdf", "abc", chunks=7, pages=3)], "chemistry": []})
    hits = [make_hit("An object stays at rest unless a force acts on it.", score=0.9, page=2),
            make_hit("Acceleration is proportional to force.", score=0.5, page=3),
            make_hit("Unrelated text about lunch breaks.", score=0.1, page=9)]
    return FakeRuntime(), store, FakeRetriever(store, hits)


def test_ask_returns_answer_with_numbered_citations_above_min_score(client, fakes):
    response = client.post("/v1/ask", json={"course": COURSE, "question": "What is inertia?"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["answer"] == "Inertia: an object stays at rest unless a force acts on it [1]."
    assert body["model"] == "fake-model"
    cited = [(c["n"], c["page"], c["source"]) for c in body["citations"]]
    assert cited == [(1, 2, "notes.pdf"), (2, 3, "notes.pdf")]
    assert body["citations"][0]["excerpt"].startswith("An object stays at rest")
    assert set(body["timings"]) == {"retrieval_s", "generation_s", "total_s"}


def test_ask_uses_settings_defaults_and_request_options(client, fakes):
    runtime, _, retriever = fakes
    client.post("/v1/ask", json={"course": COURSE, "question": "What is inertia?"})
    client.post("/v1/ask", json={"course": COURSE, "question": "What is force?", "top_k": 2,
                                 "max_new_tokens": 60, "temperature": 0.7})
    assert [s["k"] for s in retriever.searches] == [3, 2]
    assert {s["min_score"] for s in retriever.searches} == {0.3}
    # TUTOR_ANSWER_TOKENS by default; a request may ask for more, up to TUTOR_MAX_NEW_TOKENS
    assert [(r.max_new_tokens, r.temperature) for r in runtime.requests] == [(24, 0.0), (60, 0.7)]
    assert "What is force?" in runtime.requests[1].messages[-1]["content"]


def test_ask_answers_no_context_without_generating(client, fakes):
    runtime, _, retriever = fakes
    retriever.hits = [make_hit("Lunch is at noon.", score=0.05)]
    response = client.post("/v1/ask", json={"course": COURSE, "question": "Who won the 1998 World Cup?"})
    assert response.status_code == 200
    assert response.json()["answer"] == NO_CONTEXT_ANSWER
    assert response.json()["citations"] == []
    assert runtime.requests == []


def test_ask_returns_404_listing_known_courses(client):
    response = client.post("/v1/ask", json={"course": "physics-102", "question": "What is inertia?"})
    assert response.status_code == 404
    detail = response.json()["detail"]
    assert "Unknown course 'physics-102'" in detail
    assert "Known courses: chemistry, physics-101." in detail


def test_ask_returns_422_for_a_course_name_chroma_cannot_hold(client):
    response = client.post("/v1/ask", json={"course": "a", "question": "What is inertia?"})
    assert response.status_code == 422
    assert response.json()["detail"].startswith("Invalid course name 'a': use 3 to 63 letters")


@pytest.mark.parametrize("question", ["", "   \n\t "])
def test_ask_returns_422_for_empty_question(client, question):
    response = client.post("/v1/ask", json={"course": COURSE, "question": question})
    assert response.status_code == 422
    assert response.json() == {"detail": "The request is invalid. question: The question is empty; "
                                         "write the question you want answered."}


def test_ask_returns_422_for_oversized_question(client, fakes):
    response = client.post("/v1/ask", json={"course": COURSE, "question": "why " * 26})
    assert response.status_code == 422
    assert "limit is 100 (TUTOR_MAX_QUESTION_CHARS)" in response.json()["detail"]
    assert fakes[2].searches == []


def test_ask_returns_422_when_max_new_tokens_exceeds_setting(client):
    response = client.post("/v1/ask", json={"course": COURSE, "question": "What?", "max_new_tokens": 65})
    assert response.status_code == 422
    assert "at most 64 (TUTOR_MAX_NEW_TOKENS)" in response.json()["detail"]


@pytest.mark.parametrize(("field", "value", "message"), [
    ("top_k", 0, "top_k: Input should be greater than or equal to 1"),
    ("top_k", 21, "top_k: Input should be less than or equal to 20"),
    ("max_new_tokens", 0, "max_new_tokens: Input should be greater than or equal to 1"),
    ("temperature", -0.1, "temperature: Input should be greater than or equal to 0"),
    ("temperature", 2.5, "temperature: Input should be less than or equal to 2"),
])
def test_ask_returns_422_naming_out_of_range_field(client, field, value, message):
    response = client.post("/v1/ask", json={"course": COURSE, "question": "What?", field: value})
    assert response.status_code == 422
    assert message in response.json()["detail"]


FOLLOW_UP = {"course": COURSE, "question": "Who named it?", "history": [
    {"role": "user", "content": "What is inertia?"},
    {"role": "assistant", "content": "It keeps a body moving [1]."}]}


def test_ask_searches_a_follow_up_with_its_history_and_the_model_reads_the_history(client, fakes):
    runtime, _, retriever = fakes
    response = client.post("/v1/ask", json=FOLLOW_UP)
    assert response.status_code == 200, response.text
    searched = [s["question"] for s in retriever.searches]
    assert any(q.startswith("Who named it?") and "What is inertia?" in q for q in searched)
    assert {s["min_score"] for s in retriever.searches} <= {0.3, None}
    [sent] = runtime.requests
    assert [m["role"] for m in sent.messages] == ["system", "user", "assistant", "user"]
    # The earlier answer as the tutor answered it: that turn's citation numbers named other notes.
    assert sent.messages[2]["content"] == "It keeps a body moving."
    assert "Who named it?" in sent.messages[-1]["content"]


def test_ask_without_history_searches_the_question_alone_as_before(client, fakes):
    client.post("/v1/ask", json={"course": COURSE, "question": "What is inertia?", "history": []})
    assert [(s["question"], s["min_score"]) for s in fakes[2].searches] == [("What is inertia?", 0.3)]


@pytest.mark.parametrize(("history", "message"), [
    ([{"role": "system", "content": "Obey."}], "history.0.role: Input should be 'user' or 'assistant'"),
    ([{"role": "user"}], "history.0.content: Field required"),
    ("What is inertia?", "history: Input should be a valid list"),
])
def test_ask_returns_422_naming_a_malformed_history_turn(client, fakes, history, message):
    response = client.post("/v1/ask", json={"course": COURSE, "question": "Who?", "history": history})
    assert response.status_code == 422
    assert message in response.json()["detail"]
    assert fakes[2].searches == []


def test_ask_counts_the_history_towards_the_conversation_limit(client, fakes):
    turn = {"role": "user", "content": "why " * 24}
    response = client.post("/v1/ask", json={"course": COURSE, "question": "Who?", "history": [turn] * 11})
    assert response.status_code == 422
    assert "The conversation is 1060 characters long; the limit is 1000" in response.json()["detail"]
    assert fakes[2].searches == []
    accepted = client.post("/v1/ask", json={"course": COURSE, "question": "Who?", "history": [turn] * 10})
    assert accepted.status_code == 200


def test_malformed_and_incomplete_bodies_get_readable_json_errors(client):
    broken = client.post("/v1/ask", content=b"{not json", headers={"content-type": "application/json"})
    assert broken.status_code == 422
    assert broken.json()["detail"].startswith("The request is invalid.")
    missing = client.post("/v1/ask", json={"question": "What?"})
    assert missing.status_code == 422
    assert missing.json() == {"detail": "The request is invalid. course: Field required."}


def test_courses_lists_each_course_with_its_size(client):
    response = client.get("/v1/courses")
    assert response.status_code == 200
    assert response.json() == {"courses": [{"name": "chemistry", "sources": 0, "chunks": 0},
                                           {"name": COURSE, "sources": 1, "chunks": 7}]}


def test_health_reports_model_and_courses(client):
    response = client.get("/health")
    assert response.json() == {"status": "ok", "model": "fake-model", "courses": 2}


def test_routes_answer_503_json_before_models_load(settings):
    client = TestClient(build_app(settings))  # no lifespan ran, nothing is loaded
    for response in (client.get("/health"), client.get("/v1/courses"),
                     client.post("/v1/ask", json={"course": COURSE, "question": "What?"})):
        assert response.status_code == 503
        assert "not ready" in response.json()["detail"]


def test_unexpected_error_is_json_500(settings, fakes):
    runtime, store, retriever = fakes
    runtime.generate = lambda requests: 1 / 0
    client = fake_client(settings, runtime, store, retriever)
    response = client.post("/v1/ask", json={"course": COURSE, "question": "What is inertia?"})
    assert response.status_code == 500
    assert "server log" in response.json()["detail"]


def test_unknown_route_is_json_404(client):
    assert client.get("/v1/nothing-here").json() == {"detail": "Not Found"}


def test_openapi_documents_the_tutoring_routes(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/ask", "/v1/courses", "/health"} <= set(paths)
    assert client.get("/docs").status_code == 200


def test_health_answers_while_generation_is_in_flight(settings, fakes):
    runtime, store, retriever = fakes
    runtime.release = threading.Event()  # generation blocks until health has answered
    app = fake_app(settings, runtime, store, retriever)

    async def scenario():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://tutor") as http:
            ask = asyncio.create_task(http.post("/v1/ask", json={"course": COURSE, "question": "What?"}))
            while not runtime.started.is_set():
                await asyncio.sleep(0.01)
            health = await asyncio.wait_for(http.get("/health"), timeout=3)
            runtime.release.set()
            return health, await ask

    health, answer = asyncio.run(scenario())
    assert health.status_code == 200
    assert answer.status_code == 200
    assert runtime.released_in_time is True


@pytest.mark.parametrize("bad", [{"model": "/no/such/model"}, {"embedder": "/no/such/embedder"}])
def test_startup_fails_clearly_when_a_model_path_is_missing(tmp_path, bad):
    app = build_app(Settings(data_dir=tmp_path, short_answers=False,
                             **bad))
    with pytest.raises(ModelNotFoundError, match="/no/such/"), TestClient(app):
        pass


def test_the_short_answer_opens_the_answer_and_comes_as_a_field(tmp_path, fakes):
    client = fake_client(Settings(data_dir=tmp_path, top_k=3, min_score=0.3), *fakes)  # the shipped reader
    body = client.post("/v1/ask", json={"course": COURSE, "question": "What keeps an object at rest?"}).json()
    short = body["short_answer"]
    assert short["citation"] == 1 and short["text"] in "An object stays at rest unless a force acts on it."
    assert body["answer"].startswith(f"{short['text'].rstrip('.')} [1].\n\n")
    off = fake_client(Settings(data_dir=tmp_path, top_k=3, min_score=0.3, short_answers=False), *fakes)
    body = off.post("/v1/ask", json={"course": COURSE, "question": "What keeps an object at rest?"}).json()
    assert body["short_answer"] is None and "\n\n" not in body["answer"]


def test_a_missing_reader_folder_stops_the_start_naming_the_setting(tmp_path):
    from app.resources import check_model_paths

    with pytest.raises(FileNotFoundError, match="TUTOR_SHORT_ANSWERS=false"):
        check_model_paths(Settings(data_dir=tmp_path, reader=str(tmp_path / "no-reader")))
