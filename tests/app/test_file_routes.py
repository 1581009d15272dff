"""GET /v1/courses/{course}/files/{source}: the cited PDF, on a real embedded store and fake models."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from urllib.parse import unquote

import pytest

from app.settings import Settings
from ingest.run import ingest_paths
from retrieval import CourseStore
from tests.utils import pdfs
from tests.utils.embedding import HashingEmbedder
from tests.utils.fakes import FakeRetriever, FakeRuntime, fake_app, fake_client, make_hit

COURSE = "optics-101"
STUDENT, ADMIN = "student-secret", "admin-secret"


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> tuple[CourseStore, dict[str, Path]]:
    """Two PDFs, one in a subfolder, ingested with the fake embedder."""
    folder = tmp_path_factory.mktemp("course")
    files = {"lenses.pdf": pdfs.text_pdf(folder / "lenses.pdf", ["Lenses focus light. " * 20] * 2),
             "week 2/prisms é.pdf": pdfs.text_pdf(folder / "week 2" / "prisms é.pdf",
                                                 ["Prisms split light. " * 20] * 3)}
    store = CourseStore(path=tmp_path_factory.mktemp("chroma"))
    report = ingest_paths([folder], COURSE, store, HashingEmbedder(), chunk_tokens=40, chunk_overlap=8)
    assert report.failed == [] and report.ingested == 2
    return store, files


def fakes_for(tmp_path, store: CourseStore, **keys) -> tuple:
    settings = Settings(data_dir=tmp_path, min_score=0.0, **keys)
    retriever = FakeRetriever(store, [make_hit("Lenses focus light.", source="week 2/prisms é.pdf", page=2)])
    return settings, FakeRuntime(), store, retriever


def client_for(tmp_path, store: CourseStore, **keys):
    return fake_client(*fakes_for(tmp_path, store, **keys))


def raw_get(app, raw_path: str) -> tuple[int, dict]:
    """GET ``raw_path`` exactly as written, as a server receives it: HTTP clients (httpx, browsers) remove
    '..' segments before sending, attackers' tools do not."""
    messages = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        messages.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
             "scheme": "http", "path": unquote(raw_path), "raw_path": raw_path.encode(), "query_string": b"",
             "root_path": "", "headers": [(b"host", b"testserver")], "server": ("testserver", 80),
             "client": ("127.0.0.1", 1234)}
    asyncio.run(app(scope, receive, send))
    start = next(m for m in messages if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    return start["status"], json.loads(body)


def test_a_course_file_is_served_inline_as_the_pdf_that_was_ingested(tmp_path, course):
    store, files = course
    client = client_for(tmp_path, store)
    response = client.get(f"/v1/courses/{COURSE}/files/lenses.pdf")
    assert response.status_code == 200, response.text
    assert response.content == files["lenses.pdf"].read_bytes()
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["content-disposition"].startswith('inline; filename="lenses.pdf"')
    assert response.headers["etag"] == f'"{store.source_hash(COURSE, "lenses.pdf")}"'


def test_citations_carry_the_url_that_serves_their_file(tmp_path, course):
    store, files = course
    client = client_for(tmp_path, store)
    [citation] = client.post("/v1/ask", json={"course": COURSE, "question": "What do prisms do?"}).json()[
        "citations"]
    assert citation["file_url"] == f"/v1/courses/{COURSE}/files/week%202/prisms%20%C3%A9.pdf"
    assert (citation["page"], citation["page_end"]) == (2, 2)
    response = client.get(citation["file_url"])
    assert response.content == files["week 2/prisms é.pdf"].read_bytes()
    assert "filename*=UTF-8''prisms%20%C3%A9.pdf" in response.headers["content-disposition"]


@pytest.mark.parametrize(("path", "detail"), [
    ("/v1/courses/no-such-course/files/lenses.pdf", "Unknown course 'no-such-course'"),
    ("/v1/courses/optics-10/files/lenses.pdf", "Did you mean optics-101?"),
    (f"/v1/courses/{COURSE}/files/lense.pdf", "has no source 'lense.pdf'. Did you mean lenses.pdf?"),
    (f"/v1/courses/{COURSE}/files/week%202/../lenses.pdf", "No course file is named 'week 2/../lenses.pdf'"),
    (f"/v1/courses/{COURSE}/files/%2E%2E/%2E%2E/etc/passwd", "no '..' or '.' parts"),
    (f"/v1/courses/{COURSE}/files//etc/passwd", "no leading '/'"),
    (f"/v1/courses/{COURSE}/files/week%202%2Fprisms%20%C3%A9.pdf", "no encoded slashes"),
    (f"/v1/courses/{COURSE}/files/week%202%5Cprisms%20%C3%A9.pdf", "no backslashes"),
    (f"/v1/courses/{COURSE}/files/./lenses.pdf", "No course file is named './lenses.pdf'"),
    ("/v1/courses/../files/lenses.pdf", "Unknown course '..'"),
])
def test_unknown_files_and_paths_that_try_to_escape_get_a_404_saying_why(tmp_path, course, path, detail):
    status, body = raw_get(fake_app(*fakes_for(tmp_path, course[0])), path)
    assert status == 404, body
    assert detail in body["detail"]


def test_a_source_ingested_before_files_were_kept_gets_a_404_saying_to_ingest_it_again(tmp_path):
    from retrieval import Chunk

    store = CourseStore(path=tmp_path / "chroma")
    chunk = Chunk(text="Old notes.", source="old.pdf", page_start=1, page_end=1, index=0, file_hash="h1")
    store.replace_source(COURSE, "old.pdf", [chunk], HashingEmbedder().embed([chunk.text]), pages=1)
    response = client_for(tmp_path, store).get(f"/v1/courses/{COURSE}/files/old.pdf")
    assert response.status_code == 404
    assert "Ingest it again (`tutor ingest PATH --course optics-101`)" in response.json()["detail"]


def test_with_a_student_key_the_file_needs_it_as_a_header(tmp_path, course):
    store, files = course
    client = client_for(tmp_path, store, student_api_key=STUDENT, admin_api_key=ADMIN)
    url = f"/v1/courses/{COURSE}/files/lenses.pdf"
    assert client.get(url).status_code == 401
    assert client.get(url, headers={"X-API-Key": "wrong"}).status_code == 403
    for key in (STUDENT, ADMIN):
        response = client.get(url, headers={"X-API-Key": key})
        assert response.status_code == 200 and response.content == files["lenses.pdf"].read_bytes()
    assert client.get(url, headers={"Authorization": f"Bearer {STUDENT}"}).status_code == 200
