"""Training test fixtures: a 2-layer cut-down copy of the default model, built once per machine."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_model_dir(models_data_dir) -> Path:
    from tests.utils.tiny_models import make_cut_down_model
    from training.modeling import resolve_model_folder

    source = resolve_model_folder(None, models_data_dir)
    return make_cut_down_model(source, models_data_dir / "test-models" / f"{source.name}-2-layers", layers=2)
