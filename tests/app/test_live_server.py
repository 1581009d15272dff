"""Integration: `tutor serve` on the real default models, answering about the ingested sample course."""

from __future__ import annotations

import threading
import time

import pytest

from retrieval import NO_CONTEXT_ANSWER
from tests.conftest import SAMPLE_COURSE
from tests.utils.server import SAMPLE_COURSE_NAME

pytestmark = pytest.mark.integration


def sample_questions() -> dict[str, tuple[str, int]]:
    """question -> (file, page) from the table in samples/course/QUESTIONS.md."""
    answered = {}
    for line in (SAMPLE_COURSE / "QUESTIONS.md").read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[2].isdigit():
            answered[cells[0]] = (cells[1], int(cells[2]))
    return answered


def ask(live_server, question: str, **options):
    with live_server.client() as http:
        return http.post("/v1/ask", json={"course": SAMPLE_COURSE_NAME, "question": question, **options})


@pytest.mark.parametrize("question", ["What is the specific heat capacity of water?",
                                      "Why is looking up a key in a Python dictionary fast?"])
def test_answer_cites_the_page_that_holds_the_answer(live_server, question):
    expected = sample_questions()[question]
    response = ask(live_server, question, max_new_tokens=32)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["answer"].strip() and body["answer"] != NO_CONTEXT_ANSWER
    assert body["model"].startswith("SmolLM2-135M-Instruct")
    top = body["citations"][0]
    assert (top["n"], top["source"], top["page"]) == (1, *expected)
    assert body["timings"]["generation_s"] > 0


def test_off_topic_question_gets_the_no_context_answer(live_server):
    response = ask(live_server, "Who painted the Mona Lisa?")
    assert response.status_code == 200
    assert response.json()["answer"] == NO_CONTEXT_ANSWER
    assert response.json()["citations"] == []


def test_unknown_course_is_404_listing_the_sample_course(live_server):
    with live_server.client() as http:
        response = http.post("/v1/ask", json={"course": "no-such-course", "question": "What is inertia?"})
    assert response.status_code == 404
    assert f"Known courses: {SAMPLE_COURSE_NAME}." in response.json()["detail"]


def test_courses_lists_the_ingested_sample_course(live_server):
    with live_server.client() as http:
        courses = http.get("/v1/courses").json()["courses"]
    assert courses == [{"name": SAMPLE_COURSE_NAME, "sources": 3, "chunks": courses[0]["chunks"]}]
    assert courses[0]["chunks"] >= 3


def test_health_answers_while_a_long_generation_is_in_flight(live_server):
    answers = []
    asking = threading.Thread(target=lambda: answers.append(
        ask(live_server, "What does Newton's first law say?", max_new_tokens=64)))
    asking.start()
    time.sleep(0.3)  # let the request reach the model
    during = []  # latencies of /health calls that finished while the answer was still being generated
    with live_server.client(timeout=10) as http:
        while asking.is_alive() and len(during) < 10:
            started = time.perf_counter()
            assert http.get("/health").status_code == 200
            if asking.is_alive():
                during.append(time.perf_counter() - started)
            time.sleep(0.2)
    asking.join(timeout=300)
    [answer] = answers
    assert answer.status_code == 200
    generation_s = answer.json()["timings"]["generation_s"]
    assert during, f"No /health call finished during a {generation_s} s generation."
    assert max(during) < 1.0, f"/health took {max(during):.2f} s during generation."
