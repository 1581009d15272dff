"""The pipeline's up-to-date checks and its report, with stand-in stage work (no models)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import REPO_ROOT
from training.errors import TrainingError
from training.pipeline import PipelineError, PipelineRecipe, load_pipeline_recipe, run_stage, write_report


def test_stage_runs_once_then_skips_until_an_input_or_setting_changes(tmp_path):
    data, output = tmp_path / "pairs.jsonl", tmp_path / "out" / "model"
    data.write_text("one\n")
    runs = []

    def work():
        runs.append(1)
        output.mkdir(parents=True)
        (output / "weights").write_text(str(len(runs)))

    def stage(settings):
        return run_stage(tmp_path / "out", "dpo", settings, [data], [output], work)

    assert stage({"beta": 0.1}) is True
    assert stage({"beta": 0.1}) is False
    data.write_text("two\n")
    assert stage({"beta": 0.1}) is True
    assert stage({"beta": 0.2}) is True
    assert (output / "weights").read_text() == "3"  # the old output was removed before rerunning


def test_stage_reruns_when_its_output_was_deleted_or_forced(tmp_path):
    output = tmp_path / "report.md"
    runs = []

    def work():
        runs.append(1)
        output.write_text("report")

    assert run_stage(tmp_path, "report", {}, [], [output], work)
    output.unlink()
    assert run_stage(tmp_path, "report", {}, [], [output], work)
    assert run_stage(tmp_path, "report", {}, [], [output], work, force=True)
    assert len(runs) == 3


def test_a_failed_stage_leaves_no_stamp_so_it_runs_again(tmp_path):
    output = tmp_path / "quantized"

    def fail():
        raise RuntimeError("gate")

    with pytest.raises(RuntimeError):
        run_stage(tmp_path, "quantize", {}, [], [output], fail)
    assert not (tmp_path / ".stamps" / "quantize.json").exists()


def test_report_has_the_comparison_table_and_one_plot_per_metric(tmp_path):
    rows = [
        {"name": "base", "model": "/m/base", "size_mb": 538.0, "load_seconds": 0.4, "tokens_per_second": 30.0,
         "perplexity": 12.0, "mcqa_accuracy": 0.6, "reward_accuracy": None},
        {"name": "quantized", "model": "/m/q", "size_mb": 120.0, "load_seconds": 3.0,
         "tokens_per_second": 28.0, "perplexity": 12.9, "mcqa_accuracy": 0.59, "reward_accuracy": 0.55},
    ]
    evaluation = tmp_path / "evaluation.json"
    evaluation.write_text(json.dumps(rows))
    write_report(evaluation, tmp_path / "report.md")
    report = (tmp_path / "report.md").read_text()
    assert "| metric | base | quantized |" in report and "| perplexity | 12 | 12.9 |" in report
    plots = sorted(p.name for p in (tmp_path / "plots").iterdir())
    metrics = ("size_mb", "load_seconds", "tokens_per_second", "perplexity", "mcqa_accuracy",
               "reward_accuracy")
    assert plots == sorted(f"{key}.png" for key in metrics)
    assert all((tmp_path / "plots" / p).read_bytes()[:4] == b"\x89PNG" for p in plots)
    assert "![perplexity](plots/perplexity.png)" in report


def test_recipe_needs_a_calibration_source_to_quantise(tmp_path):
    with pytest.raises(PipelineError, match="calibration"):
        PipelineRecipe(quantize={"bits": 4})
    path = tmp_path / "pipeline.yaml"
    path.write_text("output_dir: runs/p\nevaluation: {texts: notes.txt, text_limit: 8}\n")
    recipe = load_pipeline_recipe(path)
    assert recipe.evaluation.text_limit == 8 and recipe.sft is None
    path.write_text("outptu_dir: x\n")
    with pytest.raises(PipelineError, match="outptu_dir"):
        load_pipeline_recipe(path)


@pytest.mark.parametrize(
    "text, message",
    [
        ("outptu_dir: x\n", r"Pipeline recipe .*: unknown key 'outptu_dir'\. Did you mean 'output_dir'"),
        ("evaluation: {text: notes.txt}\n", r"key 'evaluation\.text'\. Did you mean 'evaluation\.texts'"),
        ("quantize: {calibration: notes.txt, bitz: 4}\n", r"section quantize: unknown key 'bitz'.*'bits'"),
        ("quantize: {calibration: notes.txt, bits: 5}\n", r"section quantize: bits is 5"),
        ("sft: {datasets: [{path: a.jsonl}], beta: 0.1}\n", r"section sft: 'beta' belongs to DPO recipes"),
        ("dpo: {datasets: [{path: a.jsonl}], los: ipo}\n", r"section dpo: .*'los'\. Did you mean 'loss'"),
        ("sft: missing.yaml\n", r"The sft section's recipe missing\.yaml does not exist"),
    ],
)
def test_a_bad_section_fails_when_the_pipeline_is_loaded(tmp_path, text, message):
    path = tmp_path / "pipeline.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(TrainingError, match=message):
        load_pipeline_recipe(path)


def test_the_shipped_pipeline_loads_with_its_sections():
    recipe = load_pipeline_recipe(REPO_ROOT / "configs" / "pipeline.yaml")
    assert recipe.sft["task"] == "sft" and recipe.dpo["task"] == "dpo"
    assert recipe.quantize["bits"] == 4 and recipe.evaluation.text_limit == 32


@pytest.mark.parametrize("name", ["tutor_model.yaml", "tiny_tutor_model.yaml"])
def test_the_tutor_model_pipelines_load_with_answer_sets_and_the_answer_gate(name):
    recipe = load_pipeline_recipe(REPO_ROOT / "configs" / name)
    assert recipe.sft["adapter"]["top_layers"] >= 1 and recipe.dpo["adapter"]["top_layers"] >= 1
    assert recipe.evaluation.answers and recipe.evaluation.max_answer_drop_points is not None


def test_the_answer_gate_refuses_a_quantised_model_that_answers_worse(tmp_path):
    from training.pipeline import AnswerGateError, EvaluationSpec, check_answer_gate

    def scores(f1, precision):
        return {"answers": {"sciq": {"f1": f1, "citation_precision": precision}}}

    evaluation = tmp_path / "evaluation.json"
    recipe = PipelineRecipe(evaluation=EvaluationSpec(max_answer_drop_points=2))
    evaluation.write_text(json.dumps([{"name": "dpo", **scores(0.60, 0.90)},
                                      {"name": "quantized", **scores(0.59, 0.89)}]))
    check_answer_gate(recipe, evaluation)  # within 2 points: passes
    evaluation.write_text(json.dumps([{"name": "dpo", **scores(0.60, 0.90)},
                                      {"name": "quantized", **scores(0.60, 0.85)}]))
    with pytest.raises(AnswerGateError, match="citation_precision on sciq: 0.850 against 0.900"):
        check_answer_gate(recipe, evaluation)


def test_the_report_has_a_row_and_a_plot_per_answer_metric_of_each_set(tmp_path):
    answers = {"sciq": {"correct": 0.3, "f1": 0.25, "citation_precision": 0.5}}
    rows = [{"name": name, "model": f"/m/{name}", "size_mb": 1.0, "load_seconds": 0.1, "answers": answers}
            for name in ("base", "sft")]
    evaluation = tmp_path / "evaluation.json"
    evaluation.write_text(json.dumps(rows))
    write_report(evaluation, tmp_path / "report.md")
    report = (tmp_path / "report.md").read_text()
    assert "| answer F1, sciq | 0.25 | 0.25 |" in report and "| uncited answers, sciq | — | — |" in report
    assert (tmp_path / "plots" / "sciq-citation_precision.png").read_bytes()[:4] == b"\x89PNG"
