"""`tutor eval answers` on the sample course with the real default models and a tiny questions file."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from cli.eval_retrieval_commands import read_off_topic
from cli.main import app
from tests.conftest import SAMPLE_COURSE

ROWS = [
    {"id": "inertia", "question": "What does Newton's first law say?",
     "answers": ["a body stays at rest or in uniform motion"], "source": "mechanics.pdf", "page": 1},
    {"id": "water", "question": "What is the specific heat capacity of water?",
     "choices": ["4186 J/(kg K)", "1000 J/(kg K)"], "answer_index": 0, "source": "thermodynamics.pdf",
     "page": 2},
    {"id": "unused", "question": "How does slicing a list work?", "answers": ["start:stop"]},
]


@pytest.fixture(scope="module")
def sample_course(tmp_path_factory, embedder):
    """The sample course ingested into a temporary Chroma, searched with the real embedder."""
    from ingest.run import ingest_paths
    from retrieval import CourseStore, Retriever

    store = CourseStore(path=tmp_path_factory.mktemp("answers-chroma"))
    assert ingest_paths([SAMPLE_COURSE], "sample-course", store, embedder).failed == []
    return Retriever(store, embedder)


@pytest.mark.integration
def test_eval_answers_scores_each_answer_and_prints_one_row_per_model(sample_course, runtime, tmp_path,
                                                                     monkeypatch):
    monkeypatch.setattr("cli.eval_answers_commands.build_resources",
                        lambda settings: (sample_course, runtime))
    questions = tmp_path / "questions.jsonl"
    questions.write_text("".join(json.dumps(row) + "\n" for row in ROWS))
    result = CliRunner().invoke(app, ["eval", "answers", str(questions), "--course", "sample-course",
                                      "--limit", "2", "--max-new-tokens", "24", "--out-dir", str(tmp_path)],
                                env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    results = tmp_path / "questions.default.answers.jsonl"
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    assert [row["id"] for row in rows] == ["inertia", "water"]
    for row in rows:
        assert row["answer"] and row["sources"] and 0 < row["answer_tokens"] <= 24
        assert isinstance(row["correct"], bool) and isinstance(row["uncited"], bool)
        assert 0.0 <= row["f1"] <= 1.0
        assert row["gold_retrieved"] is True  # the sample course's retrieval finds both pages
    for column in ("correct", "cite prec", "malformed", "uncited", "p50 s", runtime.model_name):
        assert column in result.output


def test_eval_answers_names_a_bad_questions_file(tmp_path):
    questions = tmp_path / "questions.jsonl"
    questions.write_text('{"answers": ["x"]}\n')
    result = CliRunner().invoke(app, ["eval", "answers", str(questions), "--course", "sample-course"],
                                env={"COLUMNS": "400"})  # no wrapped message
    assert result.exit_code != 0
    assert "questions.jsonl:1: each row needs a non-empty 'question' string" in result.output


@pytest.mark.parametrize(("written", "named"), [(None, "does not exist; check the path"),
                                                ('{"question": "q?"}\n', "line 1: missing source, page")])
def test_eval_retrieval_names_a_missing_or_bad_gold_file(tmp_path, written, named):
    gold = tmp_path / "gold.jsonl"
    if written is not None:
        gold.write_text(written)
    result = CliRunner().invoke(app, ["eval", "retrieval", str(gold), "--course", "sample-course"],
                                env={"COLUMNS": "400", "TUTOR_DATA_DIR": str(tmp_path / "data")})
    assert result.exit_code == 2, result.output
    assert named in result.output and "Traceback" not in result.output


def test_off_topic_questions_keep_a_next_line_character_inside_a_row(tmp_path):
    # MMLU's validation split holds a U+0085 inside a question: str.splitlines() cut the row in two.
    off_topic = tmp_path / "mmlu.jsonl"
    rows = [{"question": "Which clause\x85 applies?", "subject": "law"},
            {"question": "Who wrote it?", "subject": "history"}]
    written = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    off_topic.write_text(written, encoding="utf-8")
    assert read_off_topic(off_topic, []) == ["Which clause\x85 applies?", "Who wrote it?"]
    assert read_off_topic(off_topic, ["history"]) == ["Who wrote it?"]


def test_eval_retrieval_names_a_bad_off_topic_file(tmp_path):
    gold, off_topic = tmp_path / "gold.jsonl", tmp_path / "off.jsonl"
    gold.write_text('{"question": "q?", "source": "a.pdf", "page": 1}\n')
    off_topic.write_text('{"question": "fine?"}\n{"prompt": "no question"}\n')
    result = CliRunner().invoke(app, ["eval", "retrieval", str(gold), "--course", "sample-course",
                                      "--off-topic", str(off_topic)],
                                env={"COLUMNS": "400", "TUTOR_DATA_DIR": str(tmp_path / "data")})
    assert result.exit_code == 2, result.output
    assert "off.jsonl:2: an off-topic row needs a 'question' string" in result.output
    assert "Traceback" not in result.output
