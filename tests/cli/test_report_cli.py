"""`tutor report` on a seeded question log, with a fake embedder: tables, report.png, CSV."""

from __future__ import annotations

import csv
from dataclasses import replace

import pytest
from typer.testing import CliRunner

from app.resources import open_question_store
from app.settings import Settings, get_settings
from cli.main import app
from insights.log import utc_now
from tests.insights.test_report import SEEDED, KeywordEmbedder


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """TUTOR_DATA_DIR in a temporary folder (the cached settings re-read), the keyword embedder."""
    monkeypatch.setenv("TUTOR_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr("cli.ingest_commands.open_embedder", lambda settings: KeywordEmbedder())
    get_settings.cache_clear()
    yield tmp_path / "data"
    get_settings.cache_clear()


def test_report_prints_the_tables_and_writes_the_chart_and_csv(data_dir, tmp_path):
    open_question_store(Settings(data_dir=data_dir)).add(SEEDED)
    result = CliRunner().invoke(app, ["report", "--course", "physics-101", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    for text in ("8 questions over the whole log, 3 not covered", "Most asked topics", "What is inertia?",
                 "does not cover", "Pages cited most", "mechanics.pdf", "Latency per day", "2026-03-03"):
        assert text in result.output
    assert (tmp_path / "out" / "report.png").read_bytes().startswith(b"\x89PNG")
    with (tmp_path / "out" / "questions.csv").open() as rows:
        assert len(list(csv.reader(rows))) == len(SEEDED) + 1


def test_report_with_csv_path_and_since(data_dir, tmp_path):
    today = replace(SEEDED[0], question="What is momentum today?", asked_at=utc_now())
    open_question_store(Settings(data_dir=data_dir)).add([*SEEDED, today])
    target = tmp_path / "export" / "recent.csv"
    result = CliRunner().invoke(app, ["report", "-c", "physics-101", "--since", "2", "--csv", str(target),
                                      "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "1 questions over the last 2 days" in result.output
    assert [row[4] for row in csv.reader(target.open())][1:] == ["What is momentum today?"]


def test_report_of_a_course_without_questions_exits_1(data_dir, tmp_path):
    result = CliRunner().invoke(app, ["report", "--course", "chemistry", "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert not (tmp_path / "out").exists()


def test_report_names_a_bad_course(data_dir):
    result = CliRunner().invoke(app, ["report", "--course", "../etc"])
    assert result.exit_code == 2 and "--course" in result.output

