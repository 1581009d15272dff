"""Integration: the compose topology as processes, on the real default models.

A Chroma server holds the index; one tutor generates in-process and serves the OpenAI-compatible
API; a second tutor generates on the first through that API and scores on its own copy of the model.
"""

from __future__ import annotations

import json

import httpx
import pytest

from engine.runtime import GenerationRequest, load_runtime
from tests.conftest import SAMPLE_COURSE
from tests.deploy.conftest import ADMIN_KEY
from tests.utils.server import SAMPLE_COURSE_NAME, LiveServer

pytestmark = pytest.mark.integration

FRICTION = "What is the coefficient of friction of rubber on dry concrete?"  # mechanics.pdf, page 3
SHORT = 24  # tokens: enough to compare answers, few enough to stay fast on a CPU


def ask(server: LiveServer, question: str, *, course: str = SAMPLE_COURSE_NAME, max_new_tokens: int = SHORT):
    with server.client() as http:
        response = http.post("/v1/ask", json={"course": course, "question": question,
                                              "max_new_tokens": max_new_tokens})
    assert response.status_code == 200, response.text
    return response.json()


def ask_stream_events(server: LiveServer, question: str) -> list[dict]:
    events = []
    with server.client() as http, http.stream("POST", "/v1/ask/stream", json={
            "course": SAMPLE_COURSE_NAME, "question": question, "max_new_tokens": SHORT}) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line.removeprefix("data: ")))
    return events


def test_ingestion_wrote_the_course_to_the_chroma_server(served_course, chroma_url):
    from retrieval import CourseStore

    store = CourseStore(url=chroma_url)  # a fresh HttpClient: the data lives in the server
    sources = store.sources(SAMPLE_COURSE_NAME)
    assert {s.source for s in sources} == {p.name for p in SAMPLE_COURSE.glob("*.pdf")}
    assert sum(s.chunks for s in sources) == served_course.chunks == store.count(SAMPLE_COURSE_NAME)


def test_ask_through_the_chroma_server_cites_the_page_with_the_answer(primary_tutor):
    body = ask(primary_tutor, FRICTION)
    assert body["answer"]
    assert body["citations"][0]["source"] == "mechanics.pdf"
    assert any(c["source"] == "mechanics.pdf" and c["page"] == 3 for c in body["citations"])


def test_a_cited_pdf_is_served_from_the_chroma_server_by_every_tutor(primary_tutor, remote_generation_tutor):
    """The file was stored by the ingesting process; both API processes read it from the Chroma server."""
    body = ask(primary_tutor, FRICTION, max_new_tokens=1)
    citation = next(c for c in body["citations"] if c["source"] == "mechanics.pdf")
    assert citation["file_url"] == f"/v1/courses/{SAMPLE_COURSE_NAME}/files/mechanics.pdf"
    for server in (primary_tutor, remote_generation_tutor):
        with server.client() as http:
            response = http.get(citation["file_url"])
            assert response.status_code == 200, response.text
            assert response.headers["content-type"] == "application/pdf"
            assert response.content == (SAMPLE_COURSE / "mechanics.pdf").read_bytes()
            missing = http.get(f"/v1/courses/{SAMPLE_COURSE_NAME}/files/nothing.pdf")
            assert missing.status_code == 404 and "has no source 'nothing.pdf'" in missing.json()["detail"]


def test_ask_stream_sends_the_answer_in_pieces_that_add_up_to_the_answer(primary_tutor):
    events = ask_stream_events(primary_tutor, FRICTION)
    kinds = [event["type"] for event in events]
    assert kinds[0] == "citations" and kinds[-1] == "done" and set(kinds[1:-1]) == {"delta"}
    assert len(kinds) - 2 > 1, "the answer came in one piece: generation did not stream"
    assert events[0]["citations"][0]["source"] == "mechanics.pdf"
    streamed = "".join(event["text"] for event in events[1:-1])
    assert streamed.strip() == events[-1]["answer"] == ask(primary_tutor, FRICTION)["answer"]


def test_openai_sdk_completes_and_streams_the_same_answer_with_citations(primary_tutor):
    from openai import OpenAI

    client = OpenAI(base_url=f"{primary_tutor.url}/v1", api_key="unused", max_retries=0, timeout=300)
    model = f"tutor/{SAMPLE_COURSE_NAME}"
    assert model in [m.id for m in client.models.list()]
    request = {"model": model, "messages": [{"role": "user", "content": FRICTION}], "max_tokens": SHORT,
               "temperature": 0}
    completion = client.chat.completions.create(**request)
    answer = completion.choices[0].message.content
    assert answer and 0 < completion.usage.completion_tokens <= SHORT
    citations = completion.model_extra["citations"]
    assert citations[0]["source"] == "mechanics.pdf"
    chunks = list(client.chat.completions.create(**request, stream=True))
    pieces = [c.choices[0].delta.content for c in chunks if c.choices[0].delta.content]
    assert len(pieces) > 1, "the answer came in one piece: generation did not stream"
    assert "".join(pieces).strip() == answer
    assert chunks[0].model_extra["citations"] == citations


def test_openai_backend_generates_on_a_live_tutor(primary_tutor):
    remote = load_runtime(None, data_dir=None, backend="openai", base_url=primary_tutor.url)
    with primary_tutor.client() as http:
        assert remote.model_name == http.get("/health").json()["model"]  # the bare model is listed first
    request = GenerationRequest(messages=[{"role": "user", "content": "Name a primary colour."}],
                                max_new_tokens=12)
    [result] = remote.generate([request])
    assert result.text and 0 < result.completion_tokens <= 12
    assert "".join(remote.stream(request)).strip() == result.text


def test_a_tutor_generating_on_another_tutor_answers_as_the_other_would(primary_tutor,
                                                                        remote_generation_tutor):
    with remote_generation_tutor.client() as http:
        remote_model = http.get("/health").json()["model"]
    with primary_tutor.client() as http:
        assert remote_model == http.get("/health").json()["model"]
    remote, local = ask(remote_generation_tutor, FRICTION), ask(primary_tutor, FRICTION)
    assert remote["answer"] == local["answer"]  # greedy decoding on the same model and the same sources
    assert remote["citations"] == local["citations"]
    events = ask_stream_events(remote_generation_tutor, FRICTION)
    assert len(events) > 3 and events[-1]["answer"] == local["answer"]


def option_logliks(server: LiveServer) -> list[float]:
    """The MCQ endpoint's log-likelihood of each option of one question."""
    question = {"question": "What does friction oppose?", "choices": ["Motion", "Colour", "Sound"],
                "method": "loglik"}
    with server.client() as http:
        response = http.post("/v1/mcq", json=question)
    assert response.status_code == 200, response.text
    return [score["loglik"] for score in response.json()["scores"]]


def test_a_tutor_generating_on_another_tutor_scores_mcq_options_on_its_own_model(primary_tutor,
                                                                                remote_generation_tutor):
    assert option_logliks(remote_generation_tutor) == pytest.approx(option_logliks(primary_tutor), abs=1e-3)


def test_upload_and_remove_a_pdf_on_the_live_server(primary_tutor):
    pdf = SAMPLE_COURSE / "thermodynamics.pdf"
    url = "/v1/courses/uploaded-course/documents"

    def upload(headers: dict) -> httpx.Response:
        with primary_tutor.client() as http:
            files = {"file": (pdf.name, pdf.read_bytes(), "application/pdf")}
            return http.post(url, headers=headers, files=files)

    assert upload({}).status_code == 401
    assert upload({"X-API-Key": "wrong"}).status_code == 403
    first = upload({"X-API-Key": ADMIN_KEY})
    assert first.status_code == 200, first.text
    assert first.json()["chunks"] > 0 and not first.json()["unchanged"]
    again = upload({"Authorization": f"Bearer {ADMIN_KEY}"}).json()
    assert again["unchanged"] and again["chunks"] == 0
    body = ask(primary_tutor, "What is the specific heat capacity of water?", course="uploaded-course",
               max_new_tokens=1)
    assert body["citations"][0]["source"] == "thermodynamics.pdf" and body["citations"][0]["page"] == 2
    with primary_tutor.client() as http:
        assert http.get(body["citations"][0]["file_url"]).content == pdf.read_bytes()  # the upload, kept
        removed = http.delete(f"{url}/{pdf.name}", headers={"X-API-Key": ADMIN_KEY})
        assert removed.json()["removed_chunks"] == first.json()["chunks"]
        assert http.get(url, headers={"X-API-Key": ADMIN_KEY}).json()["documents"] == []
        assert http.get("/v1/courses/uploaded-course/files/thermodynamics.pdf").status_code == 404
        assert http.delete(f"{url}/{pdf.name}", headers={"X-API-Key": ADMIN_KEY}).status_code == 404


def test_hybrid_search_through_the_chroma_server_follows_another_process_s_ingestion(chroma_url, embedder,
                                                                                       tmp_path):
    """Two clients of one Chroma server (the CLI ingesting, an API process searching): the searcher
    builds its lexical index in memory from the server's chunks and rebuilds it after each commit."""
    from ingest.run import ingest_paths
    from retrieval import CourseStore, Retriever
    from tests.utils import pdfs

    course, pdf = "hybrid-topology", tmp_path / "optics.pdf"
    writer, searcher = CourseStore(url=chroma_url), CourseStore(url=chroma_url)
    retriever = Retriever(searcher, embedder)
    try:
        pdfs.text_pdf(pdf, ["Refraction bends light where it enters glass. " * 8, "Lenses focus light. " * 8])
        assert not ingest_paths([pdf], course, writer, embedder).failed
        hits = retriever.search(course, "Why does light bend entering glass?", k=2, mode="hybrid",
                                min_score=0.2)
        assert searcher.lexical.folder is None  # a server's clients keep the index in memory
        assert hits and (hits[0].source, hits[0].page) == ("optics.pdf", 1)

        pdfs.text_pdf(pdf, ["Diffraction spreads waves around an obstacle. " * 8])
        assert not ingest_paths([pdf], course, writer, embedder).failed
        lexical = searcher.lexical_index(course)
        assert sorted(c.text for c in lexical.chunks) == sorted(c.text for c in writer.chunks(course))
        [hit] = retriever.search(course, "diffraction obstacle", k=1, mode="lexical")
        assert "Diffraction" in hit.text
    finally:
        writer.remove_course(course)
