"""`tutor build-model` and TUTOR_MODEL=tutor without a shipped adapter: clear errors, nothing written.
(No adapter ships yet: the first full CPU run answered worse than the stock model; see the README.)"""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from cli.main import app as tutor
from engine.runtime.models import ModelNotFoundError, resolve_llm_folder
from training.errors import TrainingError
from training.shipped import build_shipped_model


def test_the_tutor_model_not_built_yet_says_how_to_build_it(tmp_path):
    with pytest.raises(ModelNotFoundError, match="models/tutor-lora"):
        resolve_llm_folder("tutor", tmp_path)


def test_building_from_a_folder_without_an_adapter_is_refused_and_writes_nothing(tmp_path):
    with pytest.raises(TrainingError, match="holds no LoRA adapter"):
        build_shipped_model(tmp_path / "data", adapter=tmp_path)
    arguments = ["build-model", "--adapter", str(tmp_path), "--out", str(tmp_path / "m")]
    result = CliRunner().invoke(tutor, arguments, env={"TUTOR_DATA_DIR": str(tmp_path / "data")})
    assert result.exit_code == 2 and not (tmp_path / "m").exists() and not (tmp_path / "data").exists()
