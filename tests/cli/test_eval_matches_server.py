"""`tutor eval mcq` measures what the server serves: the same settings give the same letters."""

from __future__ import annotations

import json
import os
import time

import pytest
from typer.testing import CliRunner

from tests.conftest import shared_data

QUESTIONS = 50


def first_questions(path, count: int) -> list[dict]:
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line, _ in zip(lines, range(count), strict=False)]


def batch_letters(client, rows: list[dict]) -> list[str | None]:
    """The letters POST /v1/mcq/batch answers for ``rows``, polled until the job is done."""
    items = [{"id": row["id"], "question": row["question"], "choices": row["choices"]} for row in rows]
    job = client.post("/v1/mcq/batch", json={"method": "generate", "items": items})
    assert job.status_code == 202, job.text
    deadline = time.monotonic() + 600
    while (status := client.get(job.headers["Location"]).json())["status"] not in ("done", "failed"):
        assert time.monotonic() < deadline, status
        time.sleep(0.5)
    assert status["status"] == "done", status
    return [result["answer"] for result in status["results"]]


@pytest.mark.integration
@pytest.mark.shared_data
def test_eval_mcq_generate_gives_the_letters_of_the_batch_route(tmp_path, monkeypatch, models_data_dir):
    from fastapi.testclient import TestClient

    from app.main import build_app
    from app.settings import Settings, get_settings
    from cli.main import app as tutor

    questions = shared_data("mcq/ARC-Easy-validation.jsonl")
    for name in [name for name in os.environ if name.startswith("TUTOR_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no developer .env
    served = {"TUTOR_LOAD_IN_BITS": "8", "TUTOR_DEVICE": "cpu", "TUTOR_DATA_DIR": str(models_data_dir),
              "TUTOR_CHROMA_PATH": str(tmp_path / "chroma")}
    for name, value in served.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    out = tmp_path / "cli.jsonl"
    result = CliRunner().invoke(tutor, ["eval", "mcq", str(questions), "--method", "generate",
                                        "--limit", str(QUESTIONS), "--out", str(out)])
    get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    cli_letters = [json.loads(line)["answer"] for line in out.read_text().splitlines()]
    with TestClient(build_app(Settings())) as client:
        served_letters = batch_letters(client, first_questions(questions, QUESTIONS))
    assert len(cli_letters) == QUESTIONS
    assert served_letters == cli_letters
