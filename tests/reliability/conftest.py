"""Fixtures of the reliability tests: a store that already holds a course, and the fake embedder."""

from __future__ import annotations

import pytest

from tests.utils import pdfs
from tests.utils.embedding import HashingEmbedder
from tests.utils.store_snapshot import COURSE


@pytest.fixture
def fake_embedder() -> HashingEmbedder:
    return HashingEmbedder()


@pytest.fixture
def stocked_store(tmp_path, fake_embedder):
    """An embedded Chroma holding COURSE with one good lecture, ingested before any hostile input."""
    from ingest.run import ingest_paths
    from retrieval import CourseStore

    store = CourseStore(path=tmp_path / "chroma")
    lecture = pdfs.text_pdf(tmp_path / "good" / "mechanics.pdf",
                            ["Newton's first law: a body stays at rest unless a force acts on it.",
                             "Momentum is mass times velocity, and it is conserved in collisions."])
    report = ingest_paths([lecture], COURSE, store, fake_embedder, chunk_tokens=32, chunk_overlap=4)
    assert report.failed == [] and report.chunks > 0
    return store
