"""The deployment's topology as processes: a Chroma server, a tutor using it (in-process model,
admin key set), and a second tutor that generates on the first one through its OpenAI API and
scores MCQ options on its own in-process copy of the model."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.conftest import SAMPLE_COURSE
from tests.utils.deploy import chroma_cli, chroma_server
from tests.utils.server import SAMPLE_COURSE_NAME, LiveServer, running_server

ADMIN_KEY = "test-admin-key"
MAX_NEW_TOKENS = "40"


@pytest.fixture(scope="session")
def chroma_url(tmp_path_factory) -> Iterator[str]:
    """`chroma run` on loopback, persisting to a temporary folder."""
    if chroma_cli() is None:
        pytest.skip("The `chroma` command (shipped with chromadb) is missing.")
    with chroma_server(tmp_path_factory.mktemp("chroma-server") / "data") as url:
        yield url


@pytest.fixture(scope="session")
def served_course(chroma_url, embedder):
    """The sample course ingested through chromadb's HttpClient into the Chroma server."""
    from ingest.run import ingest_paths
    from retrieval import CourseStore

    report = ingest_paths([SAMPLE_COURSE], SAMPLE_COURSE_NAME, CourseStore(url=chroma_url), embedder)
    assert not report.failed, report.failed
    assert report.chunks > 0
    return report


@pytest.fixture(scope="session")
def primary_tutor(served_course, chroma_url, models_data_dir) -> Iterator[LiveServer]:
    """`tutor serve` on the default model, its index on the Chroma server, administration on."""
    from engine.runtime.models import resolve_llm_folder

    model_folder = resolve_llm_folder(None, models_data_dir)  # converted once, not by the server
    env = {"TUTOR_DATA_DIR": str(models_data_dir), "TUTOR_MODEL": str(model_folder),
           "TUTOR_CHROMA_URL": chroma_url, "TUTOR_DEVICE": "cpu", "TUTOR_ADMIN_API_KEY": ADMIN_KEY,
           "TUTOR_MAX_NEW_TOKENS": MAX_NEW_TOKENS}
    with running_server(env) as server:
        yield server


@contextmanager
def tutor_generating_at(generation_url: str, *, chroma_url: str, models_data_dir: Path, data_dir: Path,
                        **env: str) -> Iterator[LiveServer]:
    """`tutor serve` whose generation goes to ``generation_url``; it loads the default model in-process
    only to score text (TUTOR_SCORE_LOCALLY, the default). ``env``: more TUTOR_* settings."""
    from engine.runtime.models import resolve_llm_folder

    settings = {"TUTOR_DATA_DIR": str(data_dir), "TUTOR_CHROMA_URL": chroma_url,
                "TUTOR_MODEL": str(resolve_llm_folder(None, models_data_dir)), "TUTOR_DEVICE": "cpu",
                "TUTOR_GENERATION_URL": generation_url, **env}
    with running_server(settings) as server:
        yield server


@pytest.fixture(scope="session")
def remote_generation_tutor(primary_tutor, chroma_url, models_data_dir,
                            tmp_path_factory) -> Iterator[LiveServer]:
    """A second tutor whose generation goes to the primary's /v1/chat/completions."""
    model = httpx.get(f"{primary_tutor.url}/health", timeout=10).json()["model"]
    with tutor_generating_at(f"{primary_tutor.url}/v1", chroma_url=chroma_url,
                             models_data_dir=models_data_dir, data_dir=tmp_path_factory.mktemp("remote-data"),
                             TUTOR_GENERATION_MODEL=model, TUTOR_MAX_NEW_TOKENS=MAX_NEW_TOKENS) as server:
        yield server
