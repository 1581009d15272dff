"""The one direction of imports (README, "Architecture"): the core runs without the web service."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

# Which packages each package may import; everything is allowed to import nothing.
ALLOWED_IMPORTS = {
    "retrieval": set(),
    "insights": set(),
    "ingest": {"retrieval"},
    "engine": {"retrieval"},
    "training": {"engine", "retrieval"},
    "app": {"engine", "retrieval", "ingest", "insights"},
}
PACKAGES = {"ingest", "retrieval", "engine", "insights", "app", "training", "cli", "bench"}


def imported_packages(package: str) -> dict[str, set[str]]:
    """Our packages that ``package`` imports (lazy imports inside functions too), by importing file."""
    found: dict[str, set[str]] = {}
    for path in sorted((REPO_ROOT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            tops = {name.split(".")[0] for name in names} & PACKAGES - {package}
            if tops:
                found.setdefault(str(Path(path).relative_to(REPO_ROOT)), set()).update(tops)
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED_IMPORTS))
def test_imports_run_one_way(package):
    wrong = {file: sorted(tops - ALLOWED_IMPORTS[package])
             for file, tops in imported_packages(package).items() if tops - ALLOWED_IMPORTS[package]}
    assert not wrong, f"{package}/ may import only {sorted(ALLOWED_IMPORTS[package])}: {wrong}"


def test_the_model_core_loads_without_the_web_service():
    code = ("import sys, engine.mcq.engine, engine.mcq.evaluate, engine.grounded, engine.runtime.batching, "
            "engine.evaluation.answers; assert 'fastapi' not in sys.modules and 'app' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=True)
