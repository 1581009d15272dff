"""`tutor train`, `tutor merge`, `tutor eval preferences`: wiring and clear errors, no model needed."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from cli.main import app


@pytest.fixture
def tutor(caplog):
    runner = CliRunner()

    def invoke(*args: str):
        result = runner.invoke(app, list(args), env={"COLUMNS": "400"})
        return result.exit_code, result.output + caplog.text

    return invoke


def test_train_group_lists_its_commands(tutor):
    code, out = tutor("train", "--help")
    names = ("sft", "dpo", "sweep", "reader", "reader-soup", "yes-no")
    assert code == 0 and all(name in out for name in names)


def test_training_the_reader_on_a_missing_file_names_it_and_writes_nothing(tutor, tmp_path):
    code, out = tutor("train", "reader", "--squad", str(tmp_path / "nope.jsonl"),
                      "--out", str(tmp_path / "r"))
    assert code == 2 and "nope.jsonl does not exist" in out and not (tmp_path / "r").exists()


def test_a_reader_soup_of_a_folder_that_is_no_reader_names_it_and_writes_nothing(tutor, tmp_path):
    (tmp_path / "empty").mkdir()
    code, out = tutor("train", "reader-soup", str(tmp_path / "empty"), str(tmp_path / "empty"),
                      "--out", str(tmp_path / "soup"))
    assert code == 2 and f"Reader folder {tmp_path / 'empty'} has no reader.safetensors" in out
    assert not (tmp_path / "soup").exists()
    code, out = tutor("train", "reader-soup", str(tmp_path / "empty"), "--out", str(tmp_path / "soup"))
    assert code == 2 and "at least two readers" in out


def test_training_yes_no_on_a_missing_boolq_file_names_it_and_leaves_the_reader_as_it_was(tutor, tmp_path):
    reader = tmp_path / "reader"
    reader.mkdir()
    (reader / "reader.json").write_text("{}", encoding="utf-8")
    code, out = tutor("train", "yes-no", "--boolq", str(tmp_path / "nope.jsonl"), "--reader", str(reader))
    assert code == 2 and "nope.jsonl does not exist" in out
    assert [p.name for p in reader.iterdir()] == ["reader.json"]


def test_a_misspelt_recipe_key_exits_2_with_a_suggestion(tutor, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("datasets: [{path: x.jsonl}]\nlerning_rate: 1\n", encoding="utf-8")
    code, out = tutor("train", "dpo", str(recipe))
    assert code == 2 and "Did you mean 'learning_rate'" in out


def test_a_flag_and_a_set_for_the_same_key_is_refused(tutor, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("datasets: [{path: x.jsonl}]\n", encoding="utf-8")
    code, out = tutor("train", "sft", str(recipe), "--set", "max_steps=3", "--max-steps", "4")
    assert code == 2 and "max_steps is given twice" in out


def test_recipe_task_and_command_must_agree(tutor, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("task: sft\ndatasets: [{path: x.jsonl}]\n", encoding="utf-8")
    code, out = tutor("train", "dpo", str(recipe))
    assert code == 2 and "use `tutor train sft`" in out


def test_merge_refuses_a_folder_that_is_not_an_adapter(tutor, tmp_path):
    code, out = tutor("merge", str(tmp_path), "--out", str(tmp_path / "merged"))
    assert code == 2 and "not an adapter folder" in out


def test_eval_preferences_is_registered(tutor):
    code, out = tutor("eval", "preferences", "--help")
    assert code == 0 and "--reference" in out
