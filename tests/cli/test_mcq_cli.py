"""`tutor eval mcq` on a small questions file, with the real default model."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from cli.main import app
from engine.mcq.engine import MCQEngine
from engine.mcq.evaluate import MCQFileError, read_mcq_jsonl

ROWS = [
    {"id": "p1", "question": "What do plants need to make food?", "choices": ["sunlight", "sand"],
     "labels": ["A", "B"], "answer_index": 0, "answer_key": "A"},
    {"id": "m1", "subject": "math", "question": "2 + 2 =", "choices": ["4", "5", "22"], "answer_key": "A"},
    {"id": "u1", "question": "Pick one.", "choices": ["red", "blue"]},
]


@pytest.fixture
def questions(tmp_path):
    path = tmp_path / "questions.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in ROWS) + "\n")
    return path


def test_reader_takes_labels_keys_and_mmlu_rows(questions):
    items = read_mcq_jsonl(questions)
    assert [(i.id, i.answer) for i in items] == [("p1", 0), ("m1", 0), ("u1", None)]
    assert len(read_mcq_jsonl(questions, limit=2)) == 2


def test_reader_names_the_bad_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n{not json\n")
    with pytest.raises(MCQFileError, match=r"bad.jsonl:2: not valid JSON"):
        read_mcq_jsonl(path)


@pytest.mark.integration
def test_eval_mcq_writes_results_and_prints_the_summary(questions, tmp_path, runtime, monkeypatch):
    monkeypatch.setattr("cli.mcq_commands.build_engine", lambda settings, use_context: MCQEngine(runtime))
    out = tmp_path / "results.jsonl"
    result = CliRunner().invoke(app, ["eval", "mcq", str(questions), "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [row["id"] for row in rows] == ["p1", "m1", "u1"]
    assert all(len(row["logliks"]) == len(source["choices"]) for row, source in zip(rows, ROWS, strict=True))
    assert rows[2]["correct"] is None
    for column in ("questions", "accuracy", "acc_norm", "no letter", "questions/s"):
        assert column in result.output


def test_eval_mcq_refuses_an_unknown_method(questions):
    result = CliRunner().invoke(app, ["eval", "mcq", str(questions), "--method", "vote"])
    assert result.exit_code != 0
    assert "Unknown method 'vote'" in result.output
