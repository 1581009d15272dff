"""Test helpers of the deployment: Chroma and llama.cpp server processes, and a runtime fake that streams."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bench.serving import free_port, stop_process, wait_until_ready
from engine.runtime import GenerationRequest
from tests.utils.fakes import FakeRuntime


@dataclass
class StreamingFakeRuntime(FakeRuntime):
    """A FakeRuntime that also streams its answer word by word."""

    streamed: list[GenerationRequest] = field(default_factory=list)

    def stream(self, request: GenerationRequest) -> Iterator[str]:
        self.streamed.append(request)
        words = self.answer.split(" ")
        yield from (word if i == 0 else " " + word for i, word in enumerate(words))


def chroma_cli() -> str | None:
    """The `chroma` command that ships with chromadb, beside this Python, or on PATH."""
    beside = Path(sys.executable).with_name("chroma")
    return str(beside) if beside.exists() else shutil.which("chroma")


@contextmanager
def chroma_server(path: Path, *, startup_timeout_s: float = 60) -> Iterator[str]:
    """`chroma run --path PATH --port P` on loopback until the block ends; yields its URL."""
    command = chroma_cli()
    if command is None:
        raise FileNotFoundError("The `chroma` command is missing: install chromadb.")
    port = free_port()
    with server_process([command, "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
                        port, path.parent / f"chroma-{port}.log", health_path="/api/v2/heartbeat",
                        name="chroma run", startup_timeout_s=startup_timeout_s) as url:
        yield url


def llama_server_cli() -> str | None:
    """llama.cpp's `llama-server` (README, Deployment): LLAMA_SERVER, or on PATH."""
    return os.environ.get("LLAMA_SERVER") or shutil.which("llama-server")


@contextmanager
def llama_server(model: Path, log_dir: Path, *, startup_timeout_s: float = 120) -> Iterator[str]:
    """`llama-server` serving the GGUF file ``model`` on loopback with one slot (so that a request queues
    behind any answer still generating), as the README's dev-set figures were measured; yields its URL."""
    command = llama_server_cli()
    if command is None:
        raise FileNotFoundError("`llama-server` is missing: build it (README, Deployment) and set "
                                "LLAMA_SERVER.")
    port = free_port()
    arguments = ["-m", str(model), "--host", "127.0.0.1", "--port", str(port), "-c", "4096",
                 "--parallel", "1"]
    log_path = log_dir / f"llama-server-{port}.log"
    with server_process([command, *arguments], port, log_path, health_path="/health", name="llama-server",
                        startup_timeout_s=startup_timeout_s) as url:
        yield url


@contextmanager
def server_process(command: list[str], port: int, log_path: Path, *, health_path: str, name: str,
                   startup_timeout_s: float) -> Iterator[str]:
    """Run ``command``, a server on loopback ``port``, until the block ends; yields its URL once ready."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(process, url, timeout_s=startup_timeout_s, log_tail=log_path.read_text,
                         health_path=health_path, name=name)
        yield url
    finally:
        stop_process(process, timeout_s=20)
