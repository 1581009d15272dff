"""GPTQModel and torchao load only for a GPTQ folder: importing the packages, `tutor --help` and
a command that loads a plain model leave them out (they cost seconds and print kernel warnings)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT

ABSENT = "assert 'gptqmodel' not in sys.modules and sys.modules.get('torchao') is None, sorted(sys.modules)"
MODULES = ["engine.runtime", "engine.runtime.hf", "engine.runtime.gptq", "engine.runtime.batching",
           "engine.mcq.engine", "training.evaluate", "training.metrics", "training.quantize",
           "training.modeling", "training.pipeline", "cli.main", "cli.quant_commands", "cli.train_commands",
           "app.main"]


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=300)


def test_importing_the_packages_imports_neither_gptqmodel_nor_torchao():
    imports = "; ".join(f"import {name}" for name in MODULES)
    result = run_python(f"import sys; {imports}; {ABSENT}")
    assert result.returncode == 0, result.stderr[-2000:]


def test_tutor_help_imports_neither():
    result = run_python(f"import sys; from typer.testing import CliRunner; from cli.main import app; "
                        f"assert CliRunner().invoke(app, ['--help']).exit_code == 0; {ABSENT}")
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.integration
@pytest.mark.skipif(importlib.util.find_spec("gptqmodel") is None, reason="the quant extra is not installed")
def test_a_command_loading_a_plain_model_defers_torchao_until_gptqmodel_is_imported(models_data_dir):
    code = f"""
import sys
from cli.main import main
from engine.runtime import load_runtime
from engine.runtime.gptq import import_gptqmodel

main(verbose=False)  # the tutor callback, as before every command
load_runtime(None, data_dir={str(models_data_dir)!r}, device="cpu")
{ABSENT}
import_gptqmodel()
import torchao
assert sys.modules["torchao"] is not None
"""
    result = run_python(code)
    assert result.returncode == 0, result.stderr[-2000:]
