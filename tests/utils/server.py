"""A live tutor server for integration tests: `tutor serve` in a subprocess on a free loopback port.

Use the session fixtures by importing them into a conftest.py::

    from tests.utils.server import live_server, sample_course_index  # noqa: F401

or start a server of your own with ``running_server({"TUTOR_...": ...})``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from bench.serving import free_port, stop_process, wait_until_ready
from tests.conftest import REPO_ROOT, SAMPLE_COURSE

SAMPLE_COURSE_NAME = "sample-course"
STARTUP_TIMEOUT_S = 300


@dataclass
class LiveServer:
    """A running `tutor serve` process and how to reach it."""

    url: str
    process: subprocess.Popen
    log_path: Path

    def client(self, timeout: float = 300.0) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout)

    @property
    def question_log(self) -> Path:
        """The SQLite question log the server writes (in its working directory, unless the test set one)."""
        return self.log_path.parent / "questions.db"

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def server_environment(settings_env: dict[str, str]) -> dict[str, str]:
    """This process's environment without any TUTOR_* setting, plus ``settings_env``."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("TUTOR_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return {**env, **settings_env}


@contextmanager
def running_server(settings_env: dict[str, str], *, extra_args: tuple[str, ...] = (),
                   startup_timeout_s: float = STARTUP_TIMEOUT_S) -> Iterator[LiveServer]:
    """Run `tutor serve` with ``settings_env`` (TUTOR_* variables) until the block ends.

    It runs in an empty working directory, so no developer's .env leaks in.
    """
    workdir = Path(tempfile.mkdtemp(prefix="tutor-server-"))
    port = free_port()
    command = [sys.executable, "-m", "cli.main", "serve", "--host", "127.0.0.1", "--port", str(port),
               "--log-level", "warning", *extra_args]
    log_path = workdir / "server.log"
    with log_path.open("wb") as log:
        # The question log goes to the server's own folder (LiveServer.question_log), not the data directory.
        env = server_environment({"TUTOR_QUESTION_LOG_URL": f"sqlite:///{workdir / 'questions.db'}",
                                  **settings_env})
        process = subprocess.Popen(command, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
    server = LiveServer(url=f"http://127.0.0.1:{port}", process=process, log_path=log_path)
    try:
        wait_until_ready(process, server.url, timeout_s=startup_timeout_s, log_tail=server.log_tail)
        yield server
    finally:
        stop_process(process, timeout_s=30)


@pytest.fixture(scope="session")
def sample_course_index(tmp_path_factory, embedder) -> Path:
    """An embedded Chroma folder holding the sample course, ingested once per session."""
    from ingest.run import ingest_paths
    from retrieval import CourseStore

    path = tmp_path_factory.mktemp("sample-index")
    report = ingest_paths([SAMPLE_COURSE], SAMPLE_COURSE_NAME, CourseStore(path=path), embedder)
    assert not report.failed, report.failed
    assert report.chunks > 0
    return path


@pytest.fixture(scope="session")
def live_server(sample_course_index, models_data_dir) -> Iterator[LiveServer]:
    """`tutor serve` on the real default models and the sample course, shared by the session."""
    from engine.runtime.models import resolve_llm_folder

    model_folder = resolve_llm_folder(None, models_data_dir)  # converted once, not again by the server
    env = {"TUTOR_DATA_DIR": str(models_data_dir), "TUTOR_MODEL": str(model_folder),
           "TUTOR_CHROMA_PATH": str(sample_course_index), "TUTOR_DEVICE": "cpu"}
    with running_server(env) as server:
        yield server
