"""kill -9 during ingestion and during an upload, graceful shutdown, restarts: nothing half-written
is ever visible, rerunning completes the work, and every course survives a restart.

Real processes and a real Chroma index, fake models (tests/utils/fake_server.py), so each test
takes seconds. tests/ingest/test_kill.py kills the real `tutor ingest` while it embeds a new
file; these kill at the riskiest moment instead: a file's new chunks written, not yet committed.
"""

from __future__ import annotations

import hashlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from ingest.run import ingest_paths
from tests.conftest import REPO_ROOT
from tests.utils import pdfs
from tests.utils.embedding import HashingEmbedder
from tests.utils.fake_server import ADMIN_KEY, CHUNKS
from tests.utils.server import free_port, stop_process
from tests.utils.store_snapshot import COURSE, snapshot

pytestmark = pytest.mark.integration  # live server and ingestion processes (with fake models)

OTHER_COURSE = "chemistry-201"
MARKER_TIMEOUT_S = 60


@dataclass
class Child:
    """A fake_server subprocess whose stdout lines arrive on a queue."""

    process: subprocess.Popen
    lines: queue.Queue
    url: str = ""

    def wait_for(self, prefix: str, timeout_s: float = MARKER_TIMEOUT_S) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            if line.startswith(prefix):
                return line
        raise AssertionError(f"no {prefix!r} from the child (exit code {self.process.poll()})")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        assert self.process.wait(timeout=30) == -signal.SIGKILL


def start_child(*args: str) -> Child:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    command = [sys.executable, "-m", "tests.utils.fake_server", *args]
    process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue = queue.Queue()

    def pump() -> None:
        for line in process.stdout:
            lines.put(line.strip())

    threading.Thread(target=pump, daemon=True).start()
    return Child(process, lines)


@contextmanager
def fake_server(index: Path, **delays: float) -> Iterator[Child]:
    """A fake-model server on ``index``; stopped (SIGTERM, then SIGKILL) when the block ends."""
    port = free_port()
    options = [f"--{name.replace('_', '-')}={value}" for name, value in delays.items()]
    child = start_child("serve", "--index", str(index), "--port", str(port), *options)
    child.url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + MARKER_TIMEOUT_S
    while time.monotonic() < deadline and child.process.poll() is None:
        try:
            if httpx.get(f"{child.url}/health", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.2)
    try:
        yield child
    finally:
        if child.process.poll() is None:
            stop_process(child.process, timeout_s=30)


def upload(url: str, course: str, path: Path) -> httpx.Response:
    with path.open("rb") as handle:
        return httpx.post(f"{url}/v1/courses/{course}/documents", headers={"X-API-Key": ADMIN_KEY},
                          files={"file": (path.name, handle, "application/pdf")}, timeout=60)


def lecture(folder: Path, name: str, topic: str, pages: int = 3) -> Path:
    return pdfs.text_pdf(folder / name, [f"{topic}, page {p}: " + f"{topic} is explained here. " * 8
                                         for p in range(1, pages + 1)])


def courses(url: str) -> dict[str, tuple[int, int]]:
    body = httpx.get(f"{url}/v1/courses", timeout=10).json()
    return {c["name"]: (c["sources"], c["chunks"]) for c in body["courses"]}


def assert_whole_and_unique(store, course: str) -> None:
    """Every live source has all its chunks, of one version, and its file; no other chunk or file is kept."""
    from retrieval.store import files_collection_name

    for info in store.sources(course):
        chunks = store.chunks(course, info.source)
        assert [c.index for c in chunks] == list(range(info.chunks)), info.source
        assert {c.file_hash for c in chunks} == {info.file_hash}, info.source
        assert hashlib.sha256(store.source_file(course, info.source).content).hexdigest() == info.file_hash
    assert store.count(course) == len(store.chunks(course))
    files = store.client.get_collection(files_collection_name(course))
    pieces = files.get(include=["metadatas"])["metadatas"]
    assert {piece["sha256"] for piece in pieces} == {info.file_hash for info in store.sources(course)}


def test_ingestion_killed_while_replacing_a_changed_file_keeps_the_old_version_whole(tmp_path):
    from retrieval import CourseStore

    folder, index = tmp_path / "course", tmp_path / "chroma"
    lecture(folder, "a-kinematics.pdf", "Kinematics")
    lecture(folder, "b-dynamics.pdf", "Dynamics")
    first = start_child("ingest", str(folder), "--index", str(index), "--course", COURSE)
    assert first.wait_for("DONE", timeout_s=120).endswith(" 0 failed")
    assert first.process.wait(timeout=30) == 0

    old_file = (folder / "b-dynamics.pdf").read_bytes()
    lecture(folder, "b-dynamics.pdf", "Rotational dynamics", pages=5)  # changed: more chunks
    killed = start_child("ingest", str(folder), "--index", str(index), "--course", COURSE,
                         "--commit-delay", "60")
    killed.wait_for("COMMITTING b-dynamics.pdf")  # its new chunks are written, not yet live
    killed.kill()

    store = CourseStore(path=index)
    [old] = [s for s in store.sources(COURSE) if s.source == "b-dynamics.pdf"]
    assert old.pages == 3 and all("Rotational" not in c.text for c in store.chunks(COURSE, old.source))
    assert store.count(COURSE) > len(store.chunks(COURSE))  # the orphaned new chunks, invisible
    assert store.source_file(COURSE, "b-dynamics.pdf").content == old_file  # and the new file is unseen

    report = ingest_paths([folder], COURSE, store, HashingEmbedder(), **CHUNKS)
    assert report.failed == [] and report.unchanged == 1 and report.repaired > 0
    [new] = [s for s in store.sources(COURSE) if s.source == "b-dynamics.pdf"]
    assert new.pages == 5
    assert store.source_file(COURSE, "b-dynamics.pdf").content == (folder / "b-dynamics.pdf").read_bytes()
    assert_whole_and_unique(store, COURSE)


def test_server_killed_during_an_upload_loses_nothing_and_the_upload_can_be_redone(tmp_path):
    from retrieval import CourseStore

    index, folder = tmp_path / "chroma", tmp_path / "uploads"
    kinematics = lecture(folder, "kinematics.pdf", "Kinematics")
    acids = lecture(folder, "acids.pdf", "Acids and bases")
    dynamics = lecture(folder, "dynamics.pdf", "Dynamics", pages=4)
    with fake_server(index) as server:
        assert upload(server.url, COURSE, kinematics).status_code == 200
        assert upload(server.url, OTHER_COURSE, acids).status_code == 200
        before = courses(server.url)

    with fake_server(index, commit_delay=60) as server:
        pending = threading.Thread(target=lambda: pytest.raises(httpx.TransportError, upload, server.url,
                                                                COURSE, dynamics), daemon=True)
        pending.start()
        server.wait_for("COMMITTING dynamics.pdf")
        server.kill()
        pending.join(timeout=30)

    with fake_server(index) as server:
        assert courses(server.url) == before  # every course, nothing of the killed upload
        redone = upload(server.url, COURSE, dynamics)
        assert redone.status_code == 200 and redone.json()["unchanged"] is False
        assert courses(server.url)[COURSE][0] == 2

    store = CourseStore(path=index)
    assert [s.source for s in store.sources(COURSE)] == ["dynamics.pdf", "kinematics.pdf"]
    for course in (COURSE, OTHER_COURSE):
        assert_whole_and_unique(store, course)


def test_graceful_shutdown_answers_the_request_in_flight_then_keeps_every_course(tmp_path):
    index = tmp_path / "chroma"
    with fake_server(index, generate_delay=2) as server:
        assert upload(server.url, COURSE, lecture(tmp_path, "optics.pdf", "Optics")).status_code == 200
        before = courses(server.url)
        answers: list[httpx.Response] = []
        asking = threading.Thread(target=lambda: answers.append(httpx.post(
            f"{server.url}/v1/ask", json={"course": COURSE, "question": "What is optics?"}, timeout=60)))
        asking.start()
        server.wait_for("GENERATING")
        server.process.send_signal(signal.SIGTERM)  # what `docker stop` and systemd send
        asking.join(timeout=30)
        assert answers and answers[0].status_code == 200, answers
        server.wait_for("STOPPED", timeout_s=30)  # the lifespan's shutdown ran, after the answer
        # uvicorn re-raises the signal once it has shut down cleanly, so the exit is "by SIGTERM".
        assert server.process.wait(timeout=30) == -signal.SIGTERM

    with fake_server(index) as server:
        assert courses(server.url) == before


def test_an_unchanged_index_survives_a_kill_without_any_write(tmp_path, fake_embedder):
    """A server killed while idle: the index is exactly what it was."""
    from retrieval import CourseStore

    index = tmp_path / "chroma"
    store = CourseStore(path=index)
    ingest_paths([lecture(tmp_path, "waves.pdf", "Waves")], COURSE, store, fake_embedder, **CHUNKS)
    before = snapshot(store)
    with fake_server(index) as server:
        assert courses(server.url)[COURSE][0] == 1
        server.kill()
    assert snapshot(CourseStore(path=index)) == before


def test_ingestion_killed_before_its_commit_leaves_the_lexical_index_matching_the_store(tmp_path):
    """kill -9 with a file's new chunks written, not committed: after a restart the lexical index holds
    exactly the live (old) chunks; the rerun's commit moves it to the new ones."""
    from retrieval import CourseStore

    folder, index = tmp_path / "course", tmp_path / "chroma"
    lecture(folder, "a-kinematics.pdf", "Kinematics")
    first = start_child("ingest", str(folder), "--index", str(index), "--course", COURSE)
    assert first.wait_for("DONE", timeout_s=120).endswith(" 0 failed")
    assert first.process.wait(timeout=30) == 0

    lecture(folder, "a-kinematics.pdf", "Rotational kinematics", pages=4)
    killed = start_child("ingest", str(folder), "--index", str(index), "--course", COURSE,
                         "--commit-delay", "60")
    killed.wait_for("COMMITTING a-kinematics.pdf")
    killed.kill()

    def lexical_matches_store() -> list[str]:
        store = CourseStore(path=index)
        lexical = sorted((c.source, c.index, c.text) for c in store.lexical_index(COURSE).chunks)
        assert lexical == sorted((c.source, c.index, c.text) for c in store.chunks(COURSE))
        return [c.text for c, _ in store.lexical_query(COURSE, "Rotational", 10)]

    assert lexical_matches_store() == []  # the uncommitted version is invisible lexically too
    report = ingest_paths([folder], COURSE, CourseStore(path=index), HashingEmbedder(), **CHUNKS)
    assert report.failed == [] and report.chunks > 0
    assert lexical_matches_store() != []
