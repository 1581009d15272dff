"""Session-wide course stores built with the real default embedder, each ingested once."""

from __future__ import annotations

import pytest

from tests.conftest import shared_data


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
