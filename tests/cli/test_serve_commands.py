"""`tutor serve` builds its settings from TUTOR_* variables with the flags on top; no server starts."""

from __future__ import annotations

import logging
import os

import pytest
from typer.testing import CliRunner

import app.main
import app.resources
from app.settings import Settings
from cli.main import app as tutor
from engine.runtime import ModelNotFoundError

REAL_MODEL_CHECK = app.resources.check_model_paths


@pytest.fixture
def served(monkeypatch, tmp_path) -> list:
    """Run `tutor serve` with the model check and uvicorn replaced; collects the settings it served."""
    calls = []
    for name in list(os.environ):
        if name.startswith("TUTOR_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no developer .env
    monkeypatch.setattr(app.resources, "check_model_paths", lambda settings: (tmp_path, tmp_path))
    monkeypatch.setattr(app.main, "run_server", lambda settings, log_level: calls.append(settings))
    return calls


def test_flags_override_environment_settings(served, monkeypatch):
    monkeypatch.setenv("TUTOR_PORT", "9000")
    monkeypatch.setenv("TUTOR_HOST", "0.0.0.0")
    monkeypatch.setenv("TUTOR_MODEL", "/env/model")
    result = CliRunner().invoke(tutor, ["serve", "--port", "9100", "--model", "/flag/model",
                                        "--chroma-url", "http://127.0.0.1:8001"])
    assert result.exit_code == 0, result.output
    [settings] = served
    assert (settings.host, settings.port, settings.model) == ("0.0.0.0", 9100, "/flag/model")
    assert settings.chroma_url == "http://127.0.0.1:8001"


def test_missing_model_path_stops_with_one_clear_line(served, monkeypatch, caplog):
    monkeypatch.setattr(app.resources, "check_model_paths", REAL_MODEL_CHECK)
    caplog.set_level(logging.ERROR)
    result = CliRunner().invoke(tutor, ["serve", "--model", "/no/such/model"])
    assert result.exit_code == 2
    assert "Model path /no/such/model does not exist" in caplog.text
    assert served == []


def test_conflicting_settings_stop_with_a_message_naming_both(served, monkeypatch, caplog):
    monkeypatch.setenv("TUTOR_CHROMA_PATH", "/tmp/index")
    caplog.set_level(logging.ERROR)
    result = CliRunner().invoke(tutor, ["serve", "--chroma-url", "http://127.0.0.1:8001"])
    assert result.exit_code == 2
    assert "TUTOR_CHROMA_PATH and TUTOR_CHROMA_URL" in caplog.text
    assert served == []


def test_a_lora_adapter_folder_is_served_on_its_base_which_must_exist(served, monkeypatch, tmp_path, caplog):
    monkeypatch.setattr(app.resources, "check_model_paths", REAL_MODEL_CHECK)
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text('{"base_model_name_or_path": "stock"}')
    result = CliRunner().invoke(tutor, ["serve", "--model", str(adapter)])
    assert result.exit_code == 0, result.output
    assert app.resources.check_model_paths(served[0])[1] == adapter
    (adapter / "adapter_config.json").write_text('{"base_model_name_or_path": "/no/such/base"}')
    caplog.set_level(logging.ERROR)
    result = CliRunner().invoke(tutor, ["serve", "--model", str(adapter)])
    assert result.exit_code == 2 and "Model path /no/such/base does not exist" in caplog.text


def test_remote_generation_still_needs_the_local_model_for_scoring_unless_told_not_to(tmp_path):
    remote = {"generation_url": "http://127.0.0.1:9/v1", "model": "/no/such/model", "data_dir": tmp_path}
    with pytest.raises(ModelNotFoundError, match="/no/such/model"):
        REAL_MODEL_CHECK(Settings(**remote))
    assert REAL_MODEL_CHECK(Settings(**remote, score_locally=False))[1] is None
