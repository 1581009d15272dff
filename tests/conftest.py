"""Session-wide fixtures: the real default models are loaded once per test session."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# OpenMP threads that spin while waiting starve each other when the 2 cores are shared (the test
# process and a live server): measured 0.5 tok/s generating with spinning threads, 7.5 with passive.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
SAMPLE_COURSE = REPO_ROOT / "samples" / "course"


def shared_data(relative: str) -> Path:
    """A path under ../shared/data; the calling test skips when it is absent."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"{path} is not available on this machine.")
    return path


@pytest.fixture(scope="session")
def models_data_dir() -> Path:
    """Where the converted default LLM is cached: the user's data dir, so it converts once per machine."""
    from app.settings import default_data_dir

    return Path(os.environ.get("TUTOR_DATA_DIR", default_data_dir()))


@pytest.fixture(scope="session")
def embedder():
    from engine.runtime.models import default_embedder_path
    from retrieval import Embedder

    return Embedder(default_embedder_path(), device="cpu")


@pytest.fixture(scope="session")
def runtime(models_data_dir):
    from engine.runtime import load_runtime

    return load_runtime(None, data_dir=models_data_dir, device="cpu")


@pytest.fixture
def client(settings, fakes):
    """The app on fakes: each test module provides ``settings`` and ``fakes`` (runtime, store, retriever)."""
    from tests.utils.fakes import fake_client

    return fake_client(settings, *fakes)


@dataclass
class CourseQuestion:
    question: str
    source: str
    page: int


def sample_course_questions() -> tuple[list[CourseQuestion], list[str]]:
    """The answered questions (table rows) and the not-covered ones (list items) of QUESTIONS.md."""
    text = (SAMPLE_COURSE / "QUESTIONS.md").read_text()
    answered, not_covered = text.split("## Not covered")
    rows = re.findall(r"^\| ([^|]+\?) \| (\S+\.pdf) \| (\d+) \|$", answered, flags=re.MULTILINE)
    return ([CourseQuestion(q, source, int(page)) for q, source, page in rows],
            re.findall(r"^- (.+\?)$", not_covered, flags=re.MULTILINE))


@pytest.fixture(scope="session")
def sample_store(tmp_path_factory, embedder):
    """The sample course ingested as `sample-course` into a temporary Chroma."""
    from ingest.run import ingest_paths
    from retrieval import CourseStore

    store = CourseStore(path=tmp_path_factory.mktemp("sample-chroma"))
    report = ingest_paths([SAMPLE_COURSE], "sample-course", store, embedder)
    assert report.failed == [] and report.ingested == 3
    return store
