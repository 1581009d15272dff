"""Integration: llama.cpp's `llama-server` as the tutor's generation server (README, Deployment).

Skipped unless `llama-server` is built (LLAMA_SERVER=path, or on PATH): it is a native build that
the set-up does not make.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from engine.runtime import GenerationRequest
from engine.runtime.openai import OpenAIRuntime
from engine.runtime.streaming import ends_in_loop
from tests.deploy.conftest import tutor_generating_at
from tests.deploy.test_topology import FRICTION, ask, option_logliks
from tests.utils.deploy import llama_server, llama_server_cli
from tests.utils.server import LiveServer

pytestmark = pytest.mark.integration

LOOP = [{"role": "user", "content": "Write the words 'banana split' fifty times."}]


@pytest.fixture(scope="module")
def llama_url(tmp_path_factory) -> Iterator[str]:
    from engine.runtime.models import default_gguf_path

    if llama_server_cli() is None:
        pytest.skip("llama.cpp's `llama-server` is not built (README, Deployment; LLAMA_SERVER=path).")
    with llama_server(default_gguf_path(), tmp_path_factory.mktemp("llama")) as url:
        yield url


@pytest.fixture(scope="module")
def llama_tutor(llama_url, served_course, chroma_url, models_data_dir,
                tmp_path_factory) -> Iterator[LiveServer]:
    """`tutor serve` generating on llama-server and scoring on the in-process model: the llamacpp profile."""
    with tutor_generating_at(llama_url, chroma_url=chroma_url, models_data_dir=models_data_dir,
                             data_dir=tmp_path_factory.mktemp("llama-data")) as server:
        yield server


def test_an_answer_that_loops_is_cut_and_llama_server_stops_generating_it(llama_url):
    remote = OpenAIRuntime(None, base_url=llama_url)
    started = time.monotonic()
    [whole] = remote.generate([GenerationRequest(messages=LOOP, max_new_tokens=120)])
    whole_s = time.monotonic() - started
    assert whole.finish_reason == "length" and whole.completion_tokens == 120
    [cut] = remote.generate([GenerationRequest(messages=LOOP, max_new_tokens=120, stop_loops=True)])
    assert ends_in_loop(cut.text) and cut.completion_tokens < 60 and cut.finish_reason == "stop"
    assert whole.text.startswith(cut.text)
    streamed = "".join(remote.stream(GenerationRequest(messages=LOOP, max_new_tokens=120, stop_loops=True)))
    assert streamed.strip() == cut.text
    # One slot (--parallel 1): had the server gone on with the cut answer, this would wait for it.
    started = time.monotonic()
    [short] = remote.generate([GenerationRequest(messages=[{"role": "user", "content": "Say hi."}],
                                                 max_new_tokens=8)])
    assert short.text and time.monotonic() - started < whole_s / 2


def test_the_tutor_answers_from_llama_server_and_scores_mcq_options_in_process(llama_tutor, primary_tutor):
    body = ask(llama_tutor, FRICTION)
    assert body["answer"] and body["citations"][0]["source"] == "mechanics.pdf"
    assert option_logliks(llama_tutor) == pytest.approx(option_logliks(primary_tutor), abs=1e-3)
