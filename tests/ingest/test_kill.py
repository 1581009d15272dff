"""A real `tutor ingest` process killed with SIGKILL midway: no half file visible, next run completes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from ingest.run import ingest_paths
from tests.conftest import REPO_ROOT
from tests.utils import pdfs

COURSE = "killed-course"
FILES = [f"lecture{n}.pdf" for n in range(1, 7)]


def start_ingest(folder, data_dir) -> subprocess.Popen:
    env = {**os.environ, "TUTOR_DATA_DIR": str(data_dir), "TUTOR_CHROMA_PATH": "", "TUTOR_CHROMA_URL": ""}
    env = {key: value for key, value in env.items() if value != ""}
    command = [sys.executable, "-m", "cli.main", "ingest", str(folder), "--course", COURSE, "--no-progress",
               "--chunk-tokens", "48", "--chunk-overlap", "8"]
    return subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def kill_when_embedding(process: subprocess.Popen, source: str, timeout_s: float = 240) -> list[str]:
    """Read the log until ``source`` is being embedded (earlier files are committed), then SIGKILL."""
    lines, deadline = [], time.monotonic() + timeout_s
    for line in process.stdout:
        lines.append(line)
        if f"chunks of {source}" in line or time.monotonic() > deadline:
            break
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    return lines


@pytest.mark.integration
def test_sigkilled_ingest_leaves_no_half_file_and_the_next_run_completes(tmp_path, embedder):
    from retrieval import CourseStore

    folder = tmp_path / "course"
    for n, name in enumerate(FILES, start=1):
        pdfs.text_pdf(folder / name, [f"Lecture {n} page {p} on topic {n}. " * 6 for p in range(1, 4)])
    process = start_ingest(folder, tmp_path / "data")
    log = kill_when_embedding(process, FILES[3])
    assert process.returncode == -signal.SIGKILL, "".join(log)
    assert any(f"chunks of {FILES[3]}" in line for line in log), "".join(log)

    store = CourseStore(path=tmp_path / "data" / "chroma")
    committed = store.sources(COURSE)
    assert 3 <= len(committed) < len(FILES)  # the first three at least, never all six
    for info in committed:  # every visible file is whole: all its chunks, one version
        chunks = store.chunks(COURSE, info.source)
        assert [c.index for c in chunks] == list(range(info.chunks))
        assert {c.file_hash for c in chunks} == {info.file_hash}
        assert store.source_file(COURSE, info.source).content == (folder / info.source).read_bytes()

    report = ingest_paths([folder], COURSE, store, embedder, chunk_tokens=48, chunk_overlap=8)
    assert report.failed == [] and report.unchanged == len(committed)
    assert [info.source for info in store.sources(COURSE)] == FILES
    assert store.count(COURSE) == len(store.chunks(COURSE))
    assert all(store.source_file(COURSE, name).content == (folder / name).read_bytes() for name in FILES)
