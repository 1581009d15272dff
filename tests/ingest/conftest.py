"""Fixtures for ingestion tests: a fresh embedded Chroma per test and the fake embedder."""

from __future__ import annotations

import pytest

from tests.utils.embedding import HashingEmbedder


@pytest.fixture
def store(tmp_path):
    from retrieval import CourseStore

    return CourseStore(path=tmp_path / "chroma")


@pytest.fixture
def fake_embedder() -> HashingEmbedder:
    return HashingEmbedder()
