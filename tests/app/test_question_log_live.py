"""The question log of a real `tutor serve` (lifespan, uvicorn, real models): an asked question is a row."""

from __future__ import annotations

import time

import pytest

from insights import QuestionStore
from tests.utils.server import SAMPLE_COURSE_NAME

pytestmark = pytest.mark.integration


def test_a_question_asked_over_http_is_logged_with_its_sources(live_server):
    question = "What does Newton's first law say? (question-log check)"
    with live_server.client() as client:
        response = client.post("/v1/ask", json={"course": SAMPLE_COURSE_NAME, "question": question,
                                                "max_new_tokens": 8})
    assert response.status_code == 200, response.text
    store, deadline, rows = QuestionStore(f"sqlite:///{live_server.question_log}"), time.monotonic() + 30, []
    while not rows and time.monotonic() < deadline:  # the server writes in the background
        rows = [row for row in store.entries(SAMPLE_COURSE_NAME) if row.question == question]
        time.sleep(0.2)
    [row] = rows
    assert row.route == "ask" and not row.not_covered and row.latency_s > 0
    cited = [(c["source"], c["page"]) for c in response.json()["citations"]]
    assert [(s["source"], s["page"]) for s in row.sources] == cited
