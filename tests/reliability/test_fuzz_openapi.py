"""Fuzz every operation of the OpenAPI schema with schemathesis: no 500, responses match the schema.

The ASGI app runs in process with a fake runtime and embedder and a real Chroma store, so a
few hundred generated requests take about a minute. Examples per operation are bounded
(FUZZ_EXAMPLES, env TUTOR_FUZZ_EXAMPLES to raise it locally) and the run is derandomised, so
CI sees the same requests each time.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402  (after the importorskip above)
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.main import build_app  # noqa: E402
from app.resources import open_question_log  # noqa: E402
from app.settings import Settings  # noqa: E402
from ingest.run import ingest_paths  # noqa: E402
from retrieval import CourseStore, Retriever  # noqa: E402
from tests.utils import pdfs  # noqa: E402
from tests.utils.embedding import HashingEmbedder  # noqa: E402
from tests.utils.fakes import FakeRuntime, fake_app  # noqa: E402
from tests.utils.store_snapshot import COURSE  # noqa: E402

ADMIN = "fuzz-admin-key"
FUZZ_EXAMPLES = int(os.environ.get("TUTOR_FUZZ_EXAMPLES", "25"))
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance, status_code_conformance]


@asynccontextmanager
async def no_models(app) -> AsyncIterator[None]:
    yield  # the dependency overrides below stand in for what the lifespan would load


def fuzzed_app(folder: Path):
    """The real app on a real one-course store, with a fake model and embedder."""
    store, embedder = CourseStore(path=folder / "chroma"), HashingEmbedder()
    lecture = pdfs.text_pdf(folder / "mechanics.pdf", ["Momentum is mass times velocity."])
    assert not ingest_paths([lecture], COURSE, store, embedder).failed
    settings = Settings(data_dir=folder, admin_api_key=ADMIN, max_question_chars=500, max_new_tokens=32)
    app = fake_app(settings, FakeRuntime(), store, Retriever(store, embedder))
    app.router.lifespan_context = no_models
    app.state.question_log = open_question_log(settings)  # the report pages read it
    return app


def fuzz_cases() -> list[tuple[str, str, GenerationMode]]:
    """Valid requests for every operation; invalid ones where a body can be invalid (a string path
    parameter cannot). Read from the app's schema, without loading anything."""
    spec = build_app(Settings(data_dir=Path("unused"))).openapi()
    cases = []
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            cases.append((method.upper(), path, GenerationMode.POSITIVE))
            if "requestBody" in operation:
                cases.append((method.upper(), path, GenerationMode.NEGATIVE))
    return cases


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory):
    return schemathesis.openapi.from_asgi("/openapi.json", fuzzed_app(tmp_path_factory.mktemp("fuzz")))


@pytest.mark.parametrize(("method", "path", "mode"), fuzz_cases(),
                         ids=[f"{m} {p} {mode.value}" for m, p, mode in fuzz_cases()])
def test_no_operation_fails_or_breaks_its_schema(api_schema, method, path, mode):
    strategy = api_schema[path][method].as_strategy(generation_mode=mode)

    @given(case=strategy)
    @settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def call(case):
        case.call_and_validate(headers={"X-API-Key": ADMIN}, checks=CHECKS)

    call()
