"""MCQ routes: fakes for the contract (milliseconds), and the real default model end to end."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from app.settings import Settings
from retrieval import SourceInfo
from tests.utils.fakes import FakeRetriever, FakeRuntime, FakeStore, fake_client, make_hit

COURSE = "astro"
QUESTION = {"question": "Which planet is largest?", "choices": ["Mars", "Jupiter", "Venus"]}


def fakes_with(runtime) -> tuple:
    store = FakeStore({COURSE: [SourceInfo("planets.pdf", "h", chunks=1, pages=1)]})
    hits = [make_hit("Jupiter is the largest planet.", score=0.9, page=4)]
    return runtime, store, FakeRetriever(store, hits)


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(data_dir=tmp_path, short_answers=False,
                    top_k=2, min_score=0.3)


@pytest.fixture
def fakes() -> tuple:
    # The fake scores each option by minus its length: the shortest option wins.
    return fakes_with(FakeRuntime(answer="The correct answer is B) Jupiter."))


def wait_for_job(client: TestClient, location: str, timeout_s: float = 60) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        body = client.get(location).json()
        if body["status"] in ("done", "failed"):
            return body
        time.sleep(0.05)
    raise AssertionError(f"The job at {location} did not finish in {timeout_s} s.")


def test_mcq_loglik_returns_letter_scores_and_probabilities(client):
    response = client.post("/v1/mcq", json={**QUESTION, "method": "loglik"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["answer"] == "A"  # " Mars" is the shortest continuation
    assert [s["letter"] for s in body["scores"]] == ["A", "B", "C"]
    assert sum(s["prob"] for s in body["scores"]) == pytest.approx(1.0, abs=1e-5)
    assert body["citations"] == [] and body["raw_text"] is None


def test_mcq_generate_returns_raw_text_and_citations_with_context(client):
    response = client.post("/v1/mcq", json={**QUESTION, "method": "generate", "course": COURSE,
                                            "use_context": True})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["answer"] == "B"
    assert body["raw_text"] == "The correct answer is B) Jupiter."
    assert [(c["n"], c["page"]) for c in body["citations"]] == [(1, 4)]


def test_mcq_context_searches_tutor_mcq_context_chunks_in_the_configured_mode(tmp_path):
    runtime, store, retriever = fakes_with(FakeRuntime(answer="B"))
    settings = Settings(data_dir=tmp_path, short_answers=False,
                        top_k=4, mcq_context_chunks=1, mcq_context_neighbours=2,
                        retrieval="lexical")
    client = fake_client(settings, runtime, store, retriever)
    response = client.post("/v1/mcq", json={**QUESTION, "course": COURSE, "use_context": True})
    assert response.status_code == 200, response.text
    assert [(s["k"], s["mode"]) for s in retriever.searches] == [(1, "lexical")]
    assert retriever.widened == [2]


@pytest.mark.parametrize(("sentences", "quoted"), [(3, False), (0, True)])
def test_mcq_loglik_context_is_key_sentences_unless_tutor_mcq_context_sentences_is_0(tmp_path, sentences,
                                                                                      quoted):
    scored = []

    class RecordingRuntime(FakeRuntime):
        def loglikelihood(self, requests):
            scored.extend(requests)
            return super().loglikelihood(requests)

    runtime, store, retriever = fakes_with(RecordingRuntime())
    settings = Settings(data_dir=tmp_path, short_answers=False,
                        mcq_context_sentences=sentences)
    client = fake_client(settings, runtime, store, retriever)
    request = {**QUESTION, "method": "loglik", "course": COURSE, "use_context": True}
    response = client.post("/v1/mcq", json=request)
    assert response.status_code == 200, response.text
    assert len(scored) == 3 and "Jupiter is the largest planet." in scored[0].context
    assert ("[1] Jupiter" in scored[0].context) is quoted


@pytest.mark.parametrize(("payload", "status", "detail"), [
    ({"question": "q", "choices": ["only"]}, 422, "choices"),
    ({"question": "q", "choices": [str(i) for i in range(11)]}, 422, "choices"),
    ({"question": "  ", "choices": ["a", "b"]}, 422, "question is empty"),
    ({**QUESTION, "prompt_format": "letter"}, 422, "Did you mean letters"),
    ({**QUESTION, "method": "guess"}, 422, "method"),
    ({**QUESTION, "use_context": True}, 422, "no course is given"),
    ({**QUESTION, "use_context": True, "course": "biology"}, 404, "biology"),
])
def test_mcq_refuses_bad_requests_with_a_readable_detail(client, payload, status, detail):
    response = client.post("/v1/mcq", json=payload)
    assert response.status_code == status, response.text
    assert detail in response.json()["detail"]


def test_batch_runs_as_a_job_with_progress_and_accuracy(client):
    items = [{"id": "a", **QUESTION, "answer": "A"}, {"id": "b", **QUESTION, "answer": 1},
             {"id": "c", **QUESTION}]
    response = client.post("/v1/mcq/batch", json={"items": items, "method": "loglik"})
    assert response.status_code == 202, response.text
    assert response.json()["total"] == 3
    body = wait_for_job(client, response.headers["Location"])
    assert body["status"] == "done" and body["done"] == 3
    assert [r["id"] for r in body["results"]] == ["a", "b", "c"]
    assert [r["correct"] for r in body["results"]] == [True, False, None]
    assert body["accuracy"] == pytest.approx(0.5)


def test_batch_of_5000_items_answers_at_once_and_finishes(client):
    items = [{"id": str(i), "question": f"Question {i}?", "choices": ["yes", "no", "maybe"], "answer": "B"}
             for i in range(5000)]
    started = time.monotonic()
    response = client.post("/v1/mcq/batch", json={"items": items})
    assert response.status_code == 202
    assert time.monotonic() - started < 10  # queued, not answered inside the request
    body = wait_for_job(client, response.headers["Location"])
    assert body["done"] == 5000 and body["accuracy"] == 1.0  # " no" is the shortest option


def test_batch_refuses_bad_gold_and_unknown_jobs(client):
    bad = {"items": [{"id": "x", **QUESTION, "answer": "E"}]}
    response = client.post("/v1/mcq/batch", json=bad)
    assert response.status_code == 422 and "not one of its 3 options" in response.json()["detail"]
    response = client.get("/v1/mcq/batch/nope")
    assert response.status_code == 404 and "No MCQ batch job has id 'nope'" in response.json()["detail"]


@pytest.mark.integration
def test_mcq_routes_with_the_real_model(tmp_path, runtime):
    client = fake_client(Settings(data_dir=tmp_path, short_answers=False,
                                  top_k=2, min_score=0.3), *fakes_with(runtime))
    question = {"question": "What do plants need to make food?", "choices": ["sunlight", "sand", "plastic"]}
    body = client.post("/v1/mcq", json={**question, "method": "loglik"}).json()
    assert body["answer"] in "ABC" and len(body["scores"]) == 3
    generated = client.post("/v1/mcq", json={**question, "method": "generate"}).json()
    assert generated["raw_text"] is not None
    assert (generated["answer"] is None) == (generated["reason"] is not None)
    response = client.post("/v1/mcq/batch", json={"items": [{"id": "p", **question, "answer": 0}]})
    job = wait_for_job(client, response.headers["Location"], timeout_s=300)
    assert job["status"] == "done" and job["results"][0]["answer"] == body["answer"]
