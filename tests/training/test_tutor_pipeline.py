"""The tutor model's recipe at CI size: grounded data -> SFT -> DPO -> merge -> GPTQ -> evaluation with
grounded answers from an ingested course -> report, through `tutor pipeline` on a 2-layer model."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from cli.main import app as tutor
from tests.conftest import REPO_ROOT
from tests.utils.grounded_rows import write_grounded_rows
from training.cleaning import CleaningConfig
from training.data.grounded import BuildConfig, build_grounded_data

pytest.importorskip("gptqmodel", reason="the quant extra (gptqmodel) is not installed")

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


@pytest.fixture
def tiny_recipe(tmp_path, tiny_model_dir):
    """configs/tiny_tutor_model.yaml with the tiny model, grounded rows built here and outputs in tmp_path."""
    squad, coqa = write_grounded_rows(tmp_path)
    grounded = build_grounded_data(tmp_path / "grounded", squad=squad, coqa=coqa,
                                   config=BuildConfig(passages=3, dev_fraction=0.3, chunk_words=12),
                                   cleaning=CleaningConfig())
    recipe = yaml.safe_load((REPO_ROOT / "configs" / "tiny_tutor_model.yaml").read_text())
    recipe["output_dir"], recipe["model"] = str(tmp_path / "run"), str(tiny_model_dir)
    recipe["sft"]["datasets"][0]["path"] = grounded.files["sft_train"]
    recipe["dpo"]["datasets"][0]["path"] = grounded.files["dpo_train"]
    for answer_set in recipe["evaluation"]["answers"]:
        answer_set["file"] = str(REPO_ROOT / answer_set["file"])
    path = tmp_path / "tiny_tutor_model.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_the_tutor_recipe_runs_end_to_end_and_reports_grounded_answers(tiny_recipe, tmp_path, monkeypatch):
    data_dir = tmp_path / "data"
    monkeypatch.setenv("TUTOR_DATA_DIR", str(data_dir))
    monkeypatch.setenv("TUTOR_MAX_NEW_TOKENS", "12")  # a 2-layer model rambles: keep its answers short
    runner = CliRunner()
    course = str(REPO_ROOT / "samples" / "course")
    ingested = runner.invoke(tutor, ["ingest", course, "--course", "sample-course"])
    assert ingested.exit_code == 0, ingested.output

    result = runner.invoke(tutor, ["pipeline", str(tiny_recipe)])
    assert result.exit_code == 0, result.output

    run = tmp_path / "run"
    rows = {row["name"]: row for row in json.loads((run / "evaluation.json").read_text())}
    assert list(rows) == ["base", "sft", "dpo", "quantized"]
    for row in rows.values():
        scores = row["answers"]["sample"]
        assert 0 <= scores["f1"] <= 1 and 0 <= scores["uncited"] <= 1
        # precision is undefined (None) when no answer cited anything, as a 2-layer model's rarely do
        assert scores["citation_precision"] is None or 0 <= scores["citation_precision"] <= 1
        assert scores["latency_p50_s"] > 0
    report = (run / "report.md").read_text()
    assert "| answer F1, sample |" in report and "| citation precision, sample |" in report
    assert (run / "plots" / "sample-f1.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((run / "quantized" / "quantize_config.json").read_text())["bits"] == 4

    # The one adapter that ships: merged into the base, it gives the DPO model's weights.
    from safetensors.torch import load_file

    from training.merge import merge_adapter

    stacked = merge_adapter(run / "adapter", tmp_path / "stacked-model", data_dir=data_dir)
    expected = load_file(run / "dpo-model" / "model.safetensors")
    got = load_file(stacked / "model.safetensors")
    assert expected.keys() == got.keys()
    assert max((expected[k] - got[k]).abs().max().item() for k in expected) < 1e-5
