"""Session-wide course stores built with the real default embedder, each ingested once."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from tests.conftest import SAMPLE_COURSE, shared_data


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


@pytest.fixture(scope="session")
def physics_store(tmp_path_factory, embedder):
    """V. H. Belvadi's lecture notes from ../shared/data ingested as `physics`; skips when absent."""
    from ingest.run import ingest_paths
    from retrieval import CourseStore

    folder = shared_data("pdfs/physics_belvadi")
    store = CourseStore(path=tmp_path_factory.mktemp("physics-chroma"))
    report = ingest_paths([folder], "physics", store, embedder)
    assert report.failed == [] and report.ingested == 11
    return store
