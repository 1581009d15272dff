"""Oversized and odd requests on every endpoint: a 4xx with a readable sentence, never a 500.

A fake runtime and embedder, a real Chroma store and retriever: each request takes milliseconds.
"""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from app.settings import Settings
from ingest.run import ingest_paths
from retrieval import CourseStore, Retriever
from tests.utils import pdfs
from tests.utils.embedding import HashingEmbedder
from tests.utils.fakes import FakeRuntime, fake_client
from tests.utils.store_snapshot import COURSE

ADMIN = "admin-secret"
QUESTION_100KB = "Why does the moon orbit the earth? " * 3000
TEN_THOUSAND_CHOICES = [f"option {n}" for n in range(10_000)]
MODEL = f"tutor/{COURSE}"
# 30 exchanges, each turn within the question limit, 120,000 characters in all.
EXCHANGE = [{"role": "user", "content": "Why? " * 399}, {"role": "assistant", "content": "Because. " * 222}]
LONG_CONVERSATION = EXCHANGE * 30 + [{"role": "user", "content": "So?"}]


def ask(question) -> dict:
    return {"course": COURSE, "question": question}


def mcq(question="Which is a vector?", choices=("speed", "velocity"), **extra) -> dict:
    return {"question": question, "choices": list(choices), **extra}


def chat(content, **extra) -> dict:
    return {"model": MODEL, "messages": [{"role": "user", "content": content}], **extra}


def batch(*items) -> dict:
    return {"items": [{"id": str(n), **item} for n, item in enumerate(items)]}


@pytest.fixture(scope="module")
def client(tmp_path_factory) -> TestClient:
    folder = tmp_path_factory.mktemp("odd-requests")
    settings = Settings(data_dir=folder, max_question_chars=2000, max_new_tokens=64, admin_api_key=ADMIN,
                        max_request_mb=1, max_upload_mb=1, min_score=0.0)
    store, embedder = CourseStore(path=folder / "chroma"), HashingEmbedder()
    lecture = pdfs.text_pdf(folder / "mechanics.pdf", ["Velocity has a direction; speed does not. "
                                                       "Momentum is mass times velocity."])
    assert not ingest_paths([lecture], COURSE, store, embedder).failed
    retriever = Retriever(store, embedder)
    return fake_client(settings, FakeRuntime(), store, retriever)


# (endpoint, JSON body, expected status, words the detail must contain)
ODD_JSON = [
    ("/v1/ask", ask(QUESTION_100KB), 422, "TUTOR_MAX_QUESTION_CHARS"),
    ("/v1/ask/stream", ask(QUESTION_100KB), 422, "TUTOR_MAX_QUESTION_CHARS"),
    ("/v1/chat/completions", chat(QUESTION_100KB), 422, "TUTOR_MAX_QUESTION_CHARS"),
    ("/v1/mcq", mcq(QUESTION_100KB), 422, "TUTOR_MAX_QUESTION_CHARS"),
    ("/v1/mcq", mcq(choices=["short", QUESTION_100KB]), 422, "an option"),
    ("/v1/mcq/batch", batch(mcq(QUESTION_100KB)), 422, "item '0'"),
    ("/v1/mcq", mcq(choices=TEN_THOUSAND_CHOICES), 422, "choices"),
    ("/v1/mcq/batch", batch(mcq(choices=TEN_THOUSAND_CHOICES)), 422, "choices"),
    ("/v1/mcq", mcq(choices=[]), 422, "choices"),
    ("/v1/mcq", mcq(choices=["", "  "]), 422, "empty choice"),
    ("/v1/mcq/batch", {"items": []}, 422, "items"),
    ("/v1/ask", ask(""), 422, "empty"),
    ("/v1/ask", ask(123), 422, "question"),
    ("/v1/ask", {"course": COURSE}, 422, "question: Field required"),
    ("/v1/ask", {**ask("Why?"), "top_k": "many"}, 422, "top_k"),
    ("/v1/ask", {**ask("Why?"), "temperature": -1}, 422, "temperature"),
    ("/v1/ask", {**ask("Why?"), "max_new_tokens": 10**9}, 422, "TUTOR_MAX_NEW_TOKENS"),
    ("/v1/ask", {"course": ["physics-101"], "question": "Why?"}, 422, "course"),
    ("/v1/ask", {"course": "../../etc", "question": "Why?"}, 422, "course name"),
    ("/v1/ask", {"course": "no-such-course", "question": "Why?"}, 404, COURSE),
    ("/v1/ask", [ask("Why?")], 422, "body"),
    ("/v1/ask", None, 422, "body"),
    ("/v1/mcq", mcq(choices="speed, velocity"), 422, "choices"),
    ("/v1/mcq", mcq(method="guess"), 422, "method"),
    ("/v1/mcq", mcq(use_context=True), 422, "course"),
    ("/v1/mcq", mcq(prompt_format="nonsense"), 422, "prompt_format"),
    ("/v1/mcq/batch", batch(mcq(answer="Z")), 422, "answer"),
    ("/v1/chat/completions", {"model": MODEL, "messages": LONG_CONVERSATION}, 422, "Drop its oldest"),
    ("/v1/chat/completions", {"model": MODEL, "messages": []}, 422, "messages"),
    ("/v1/chat/completions", chat("Hi", max_tokens=0), 422, "max_tokens"),
    ("/v1/chat/completions", {"model": "tutor/unknown", "messages": [{"role": "user", "content": "Hi"}]},
     404, "Unknown"),
    ("/v1/chat/completions", {"model": MODEL, "messages": [{"role": "wizard", "content": "Hi"}]},
     422, "role"),
]


@pytest.mark.parametrize(("path", "body", "status", "words"), ODD_JSON,
                         ids=[f"{n}-{row[0]}" for n, row in enumerate(ODD_JSON)])
def test_odd_json_gets_a_4xx_with_a_readable_detail(client, path, body, status, words):
    response = client.post(path, content=json.dumps(body), headers={"content-type": "application/json"})
    assert response.status_code == status, response.text[:500]
    detail = response.json()["detail"]
    assert isinstance(detail, str) and words in detail
    assert len(detail) < 2000, "a detail should not echo a huge request back"


# Text a student may really send: right-to-left, zero-width, combining marks, emoji, a NUL.
ODD_UNICODE = [
    "\u05de\u05d4\u05d9 \u05ea\u05e0\u05d5\u05e2\u05d4? What is momentum?",  # Hebrew, RTL
    "\u202eWhat is momentum?\u202c",  # right-to-left override
    "What\u200b is\u200d mo\u200cmentum?\ufeff",  # zero-width characters
    "What is mo\u0301mentum\u0327?",  # combining accents
    "What is momentum? \U0001f680\U0001f468\u200d\U0001f469\u200d\U0001f467",  # emoji, joined
    "What is\x00 momentum?",  # NUL
]


@pytest.mark.parametrize("question", ODD_UNICODE, ids=range(len(ODD_UNICODE)))
@pytest.mark.parametrize("endpoint", ["/v1/ask", "/v1/mcq", "/v1/chat/completions"])
def test_odd_unicode_is_answered(client, endpoint, question):
    body = {"/v1/ask": ask(question), "/v1/mcq": mcq(question, [question, "velocity"]),
            "/v1/chat/completions": chat(question)}[endpoint]
    response = client.post(endpoint, json=body)
    assert response.status_code == 200, response.text[:500]


@pytest.mark.parametrize("endpoint", ["/v1/ask", "/v1/mcq", "/v1/chat/completions", "/v1/mcq/batch"])
def test_a_lone_surrogate_is_refused_with_422_before_reaching_the_model(client, endpoint):
    body = {"/v1/ask": ask("What is \ud800 momentum?"), "/v1/mcq": mcq(choices=["speed", "vel\udfffocity"]),
            "/v1/chat/completions": chat("Hi \ud83d"), "/v1/mcq/batch": batch(mcq("\udc00?"))}[endpoint]
    raw = json.dumps(body)  # ASCII JSON with \\ud800 escapes: valid JSON, invalid Unicode
    response = client.post(endpoint, content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text[:500]
    assert "surrogate" in response.json()["detail"]


def test_a_surrogate_pair_and_an_escaped_backslash_are_fine(client):
    raw = json.dumps(ask("What is \U0001f680 momentum? C:\\ud800 is a path."))
    assert "\\ud83d\\ude80" in raw and "\\\\ud800" in raw
    response = client.post("/v1/ask", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 200, response.text[:500]


@pytest.mark.parametrize("body", [b"{not json", b'{"course": "physics-101", "question": "Why?"',
                                  b"\xff\xfe\x00garbage", b"[" * 50_000 + b"]" * 50_000])
def test_a_body_that_is_not_json_gets_a_4xx(client, body):
    response = client.post("/v1/ask", content=body, headers={"content-type": "application/json"})
    assert 400 <= response.status_code < 500, response.text[:500]
    assert isinstance(response.json()["detail"], str | list)


def test_a_body_over_the_limit_is_refused_with_413(client):
    huge = json.dumps(batch(*[mcq(f"Question {n} " + "x" * 500) for n in range(3000)]))
    assert len(huge) > 1024 * 1024
    response = client.post("/v1/mcq/batch", content=huge, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert "TUTOR_MAX_REQUEST_MB" in response.json()["detail"]


def test_a_chunked_body_over_the_limit_is_cut_off_with_413(client):
    def chunks():
        yield b'{"course": "physics-101", "question": "'
        for _ in range(200):
            yield b"x" * 8192
        yield b'"}'

    response = client.post("/v1/ask", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413, response.text[:300]
    assert "TUTOR_MAX_REQUEST_MB" in response.json()["detail"]


@pytest.mark.parametrize(("filename", "content", "status", "words"), [
    ("../../x.pdf", b"not a pdf at all", 422, "not a PDF"),
    ("../../etc/passwd", b"%PDF-1.4\n%%EOF\n", 422, "not a plain PDF file name"),
    ("notes.pdf", b"%PDF-1.4\n" + b"0" * (2 * 1024 * 1024), 413, "TUTOR_MAX_UPLOAD_MB"),
    ("", b"%PDF-1.4\n%%EOF\n", 422, ""),
])
def test_odd_uploads_get_a_4xx(client, filename, content, status, words):
    response = client.post(f"/v1/courses/{COURSE}/documents", headers={"X-API-Key": ADMIN},
                           files={"file": (filename, content, "application/pdf")})
    assert response.status_code == status, response.text[:500]
    assert words in response.json()["detail"]


@pytest.mark.parametrize("path", ["/v1/mcq/batch/%ED%A0%80", "/v1/mcq/batch/" + "x" * 4000,
                                  f"/v1/courses/{COURSE}/documents/..%2F..%2Fx.pdf"])
def test_odd_paths_get_a_4xx(client, path):
    method = client.delete if "documents" in path else client.get
    response = method(path, headers={"X-API-Key": ADMIN})
    assert 400 <= response.status_code < 500, response.text[:300]
