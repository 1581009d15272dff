"""The question log behind the routes, with fakes: every answering route logs one row, the report pages
need the admin key, and the off switch logs nothing."""

from __future__ import annotations

import csv
import io

import pytest
from fastapi.testclient import TestClient

from app.main import build_app
from app.resources import Resources, open_question_log, open_question_store
from app.settings import Settings
from insights.report import CSV_COLUMNS
from retrieval import SourceInfo
from tests.utils.embedding import HashingEmbedder
from tests.utils.fakes import FakeRetriever, FakeRuntime, FakeStore, fake_app, make_hit

COURSE = "physics-101"
ADMIN = "admin-secret"
QUESTION = "What is inertia?"


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(data_dir=tmp_path, short_answers=False, admin_api_key=ADMIN, min_score=0.3)


@pytest.fixture
def fakes():
    store = FakeStore({COURSE: [SourceInfo("mechanics.pdf", "abc", chunks=7, pages=3)]})
    retriever = FakeRetriever(store, [make_hit("An object stays at rest.", score=0.9, page=2),
                                      make_hit("Force is mass times acceleration.", score=0.5, page=3)])
    retriever.embedder = HashingEmbedder()
    return FakeRuntime(), store, retriever


@pytest.fixture
def logging_app(settings, fakes):
    """The app on fakes with the question log open, as the lifespan opens it."""
    app = fake_app(settings, *fakes)
    app.state.question_log = open_question_log(settings)
    yield app
    if app.state.question_log is not None:
        app.state.question_log.close()


def logged(app, settings) -> list:
    """Close the app's log (writing what is queued), then read the course's rows."""
    app.state.question_log.close()
    app.state.question_log = None
    return open_question_store(settings).entries(COURSE)


def chat(model: str, stream: bool = False) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": QUESTION}], "stream": stream}


def test_every_answering_route_logs_one_row(logging_app, settings, fakes):
    client = TestClient(logging_app)
    assert client.post("/v1/ask", json={"course": COURSE, "question": QUESTION}).status_code == 200
    assert client.post("/v1/ask/stream", json={"course": COURSE, "question": QUESTION}).status_code == 200
    assert client.post("/v1/chat/completions", json=chat(f"tutor/{COURSE}")).status_code == 200
    assert client.post("/v1/chat/completions", json=chat(f"tutor/{COURSE}", stream=True)).status_code == 200
    assert client.post("/v1/chat/completions", json=chat("fake-model")).status_code == 200  # no course
    fakes[2].hits = [make_hit("Lunch is at noon.", score=0.1)]
    assert client.post("/v1/ask", json={"course": COURSE, "question": "Where is lunch?"}).status_code == 200
    rows = logged(logging_app, settings)
    assert [(row.route, row.question, row.not_covered) for row in rows] == [
        ("ask", QUESTION, False), ("ask/stream", QUESTION, False), ("chat", QUESTION, False),
        ("chat/stream", QUESTION, False), ("ask", "Where is lunch?", True)]
    assert rows[0].sources == [{"source": "notes.pdf", "page": 2, "score": 0.9},
                               {"source": "notes.pdf", "page": 3, "score": 0.5}]
    assert rows[-1].sources == [] and all(row.model == "fake-model" for row in rows)


def test_report_pages_need_the_admin_key(logging_app):
    client = TestClient(logging_app)
    for url in (f"/admin/report?course={COURSE}", f"/admin/report.csv?course={COURSE}"):
        assert client.get(url).status_code == 401
        assert client.get(url, headers={"X-API-Key": "wrong"}).status_code == 403


def test_report_page_shows_the_tables_and_the_chart(logging_app, settings):
    client = TestClient(logging_app)
    for question in (QUESTION, "what is inertia", "Where is lunch?"):
        client.post("/v1/ask", json={"course": COURSE, "question": question})
    logging_app.state.question_log.close()
    logging_app.state.question_log = open_question_log(settings)  # reopened: the rows are written
    response = client.get(f"/admin/report?course={COURSE}&since=7", headers={"X-API-Key": ADMIN})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    page = response.text
    assert "3 questions over the last 7 days" in page
    for heading in ("Most asked topics", "does not cover", "Pages cited most", "Latency per day"):
        assert heading in page
    assert "What is inertia?" in page and "data:image/png;base64,iVBOR" in page
    csv_response = client.get(f"/admin/report.csv?course={COURSE}", headers={"X-API-Key": ADMIN})
    assert csv_response.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(csv_response.text)))
    assert tuple(rows[0]) == CSV_COLUMNS and [row[4] for row in rows[1:]] == [QUESTION, "what is inertia",
                                                                                "Where is lunch?"]


def test_report_is_404_naming_the_setting_while_the_log_is_off(settings, fakes):
    client = TestClient(fake_app(settings, *fakes))  # no lifespan: no log
    response = client.get(f"/admin/report?course={COURSE}", headers={"X-API-Key": ADMIN})
    assert response.status_code == 404 and "TUTOR_QUESTION_LOG" in response.json()["detail"]


def test_report_refuses_a_bad_course_name(logging_app):
    response = TestClient(logging_app).get("/admin/report.csv?course=../x", headers={"X-API-Key": ADMIN})
    assert response.status_code == 422


class ClosableRuntime(FakeRuntime):
    def close(self) -> None:
        """The lifespan closes the runtime when the server stops."""


@pytest.mark.parametrize("enabled", [True, False])
def test_the_lifespan_opens_the_log_from_settings_and_the_off_switch_logs_nothing(tmp_path, fakes,
                                                                                 monkeypatch, enabled):
    _, store, retriever = fakes
    resources = Resources(ClosableRuntime(), store, retriever)
    monkeypatch.setattr("app.main.load_resources", lambda settings: resources)
    monkeypatch.setattr("app.main.batching", lambda runtime, settings: runtime)
    settings = Settings(data_dir=tmp_path, short_answers=False, question_log=enabled)
    with TestClient(build_app(settings)) as client:
        assert client.post("/v1/ask", json={"course": COURSE, "question": QUESTION}).status_code == 200
    database = tmp_path / "questions.db"
    assert database.exists() is enabled
    if enabled:
        assert [row.question for row in open_question_store(settings).entries(COURSE)] == [QUESTION]
