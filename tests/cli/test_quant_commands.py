"""`tutor quantize` maps a refused model to exit 3 and bad input to exit 2; no quantisation runs here."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import training.quantize
from cli.main import app as tutor

TEXT = "Energy is the capacity of a physical system to do work; it is conserved in a closed system."


@pytest.fixture
def notes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no developer .env
    monkeypatch.setenv("TUTOR_DATA_DIR", str(tmp_path / "data"))
    path = tmp_path / "notes.txt"
    path.write_text("\n\n".join(f"{TEXT} ({i})" for i in range(6)))
    return path


def test_quantize_exits_3_with_the_report_when_the_gate_refuses(notes, tmp_path, monkeypatch):
    seen = {}

    def refuse(model, out, calibration, heldout, recipe, **kwargs):
        seen.update(model=model, calibration=calibration, heldout=heldout, recipe=recipe)
        report = training.quantize.QuantizeReport(
            source="m", output=str(out), bits=4, group_size=64, seconds=1.0, source_perplexity=10.0,
            quantized_perplexity=20.0, perplexity_increase_pct=100.0, failures=["perplexity grew 100.00%"])
        raise training.quantize.QualityGateError(report)

    monkeypatch.setattr(training.quantize, "quantize_model", refuse)
    result = CliRunner().invoke(tutor, ["quantize", "default", "--out", str(tmp_path / "q"), "--calibration",
                                        str(notes), "--max-perplexity-increase", "5"])
    assert result.exit_code == 3, result.output
    assert json.loads(result.stdout)["passed"] is False
    assert seen["model"] is None and len(seen["calibration"]) == 3 and len(seen["heldout"]) == 3
    assert seen["recipe"].gate.max_perplexity_increase_pct == 5


def test_quantize_exits_2_for_a_missing_model(notes, tmp_path):
    result = CliRunner().invoke(tutor, ["quantize", str(tmp_path / "nope"), "--out", str(tmp_path / "q"),
                                        "--calibration", str(notes)])
    assert result.exit_code == 2
    assert not (tmp_path / "q").exists()
