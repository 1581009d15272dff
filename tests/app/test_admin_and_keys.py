"""API keys, document administration limits, CORS and the student page, with fakes: no model loads."""

from __future__ import annotations

import io
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from app.settings import Settings
from retrieval import SourceInfo
from retrieval.store import SourceNotFoundError
from tests.utils.fakes import FakeRetriever, FakeRuntime, FakeStore, fake_client

COURSE = "physics-101"
ADMIN, STUDENT = "admin-secret", "student-secret"


@dataclass
class AdminFakeStore(FakeStore):
    """A FakeStore that can also remove a source."""

    def remove_source(self, course: str, source: str) -> int:
        self.require_course(course)
        stored = {info.source: info for info in self.sources_by_course[course]}
        if source not in stored:
            raise SourceNotFoundError(course, source, sorted(stored))
        self.sources_by_course[course].remove(stored[source])
        return stored[source].chunks


def make_client(tmp_path, **settings) -> tuple[TestClient, AdminFakeStore]:
    store = AdminFakeStore({COURSE: [SourceInfo("mechanics.pdf", "abc", chunks=7, pages=3)]})
    retriever = FakeRetriever(store)
    retriever.embedder = None  # uploads that pass the checks would need a real one (integration tests)
    return fake_client(Settings(data_dir=tmp_path, **settings), FakeRuntime(), store, retriever), store


def pdf_upload(content: bytes = b"%PDF-1.4\n%%EOF\n", name: str = "notes.pdf") -> dict:
    return {"file": (name, io.BytesIO(content), "application/pdf")}


def test_admin_is_switched_off_without_a_configured_key(tmp_path):
    client, _ = make_client(tmp_path)
    response = client.delete(f"/v1/courses/{COURSE}/documents/mechanics.pdf",
                             headers={"X-API-Key": "anything"})
    assert response.status_code == 403
    assert "TUTOR_ADMIN_API_KEY" in response.json()["detail"]


def test_admin_needs_the_key_401_without_403_wrong(tmp_path):
    client, store = make_client(tmp_path, admin_api_key=ADMIN)
    url = f"/v1/courses/{COURSE}/documents/mechanics.pdf"
    assert client.delete(url).status_code == 401
    assert client.post(f"/v1/courses/{COURSE}/documents", files=pdf_upload()).status_code == 401
    assert client.delete(url, headers={"X-API-Key": "wrong"}).status_code == 403
    assert client.delete(url, headers={"Authorization": "Bearer wrong"}).status_code == 403
    assert store.sources_by_course[COURSE], "a refused request must not remove anything"
    response = client.delete(url, headers={"Authorization": f"Bearer {ADMIN}"})
    assert response.status_code == 200, response.text
    assert response.json() == {"course": COURSE, "source": "mechanics.pdf", "removed_chunks": 7}
    assert store.sources_by_course[COURSE] == []


def test_admin_lists_documents_and_removing_an_unknown_one_is_404(tmp_path):
    client, _ = make_client(tmp_path, admin_api_key=ADMIN)
    listing = client.get(f"/v1/courses/{COURSE}/documents", headers={"X-API-Key": ADMIN}).json()
    assert listing["documents"] == [{"source": "mechanics.pdf", "pages": 3, "chunks": 7, "sha256": "abc"}]
    response = client.delete(f"/v1/courses/{COURSE}/documents/mechanic.pdf", headers={"X-API-Key": ADMIN})
    assert response.status_code == 404
    assert "Did you mean mechanics.pdf?" in response.json()["detail"]


@pytest.mark.parametrize(("upload", "status", "expected"), [
    (pdf_upload(b"hello, not a pdf"), 422, "does not start with %PDF-"),
    (pdf_upload(name="../../etc/passwd"), 422, "not a plain PDF file name"),
    (pdf_upload(name="notes.exe"), 422, "not a plain PDF file name"),
    (pdf_upload(b"%PDF-" + b"x" * 3_000_000), 413, "TUTOR_MAX_UPLOAD_MB"),
])
def test_upload_refuses_non_pdfs_bad_names_and_oversized_files(tmp_path, upload, status, expected):
    client, _ = make_client(tmp_path, admin_api_key=ADMIN, max_upload_mb=1)
    response = client.post(f"/v1/courses/{COURSE}/documents", files=upload, headers={"X-API-Key": ADMIN})
    assert response.status_code == status, response.text
    assert expected in response.json()["detail"]


def test_upload_to_an_invalid_course_name_is_422(tmp_path):
    client, _ = make_client(tmp_path, admin_api_key=ADMIN)
    response = client.post("/v1/courses/a/documents", files=pdf_upload(), headers={"X-API-Key": ADMIN})
    assert response.status_code == 422
    assert "Invalid course name" in response.json()["detail"]


def test_student_key_guards_student_endpoints_but_not_health_or_the_page(tmp_path):
    client, _ = make_client(tmp_path, student_api_key=STUDENT, admin_api_key=ADMIN)
    ask = {"course": COURSE, "question": "What is inertia?"}
    assert client.get("/v1/courses").status_code == 401
    assert client.post("/v1/ask", json=ask).status_code == 401
    assert client.get("/v1/models", headers={"X-API-Key": "wrong"}).status_code == 403
    assert client.post("/v1/ask/stream", json=ask, headers={"X-API-Key": "nope"}).status_code == 403
    assert client.get("/v1/courses", headers={"X-API-Key": STUDENT}).status_code == 200
    assert client.get("/v1/models", headers={"Authorization": f"Bearer {STUDENT}"}).status_code == 200
    assert client.get("/v1/courses", headers={"X-API-Key": ADMIN}).status_code == 200
    assert client.get("/health").status_code == 200
    assert client.get("/").status_code == 200


def test_student_endpoints_are_open_without_a_student_key(tmp_path):
    client, _ = make_client(tmp_path)
    assert client.get("/v1/courses").status_code == 200


def test_cors_allows_only_configured_origins(tmp_path):
    preflight = {"Origin": "https://lms.example.edu", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "content-type,x-api-key"}
    client, _ = make_client(tmp_path, cors_origins="https://lms.example.edu")
    response = client.options("/v1/ask", headers=preflight)
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "https://lms.example.edu"
    other = client.options("/v1/ask", headers={**preflight, "Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers
    closed, _ = make_client(tmp_path)
    assert "access-control-allow-origin" not in closed.get("/v1/courses", headers=preflight).headers


def test_the_student_page_and_its_assets_are_served(tmp_path):
    client, _ = make_client(tmp_path)
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for asset in ("/static/app.js", "/static/style.css"):
        assert asset in page.text
        assert client.get(asset).status_code == 200
    assert "/v1/ask/stream" in client.get("/static/app.js").text
