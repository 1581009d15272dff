"""Test helpers of the deployment: a Chroma server process and a runtime fake that streams."""

from __future__ import annotations

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
    log_path = path.parent / f"chroma-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([command, "run", "--path", str(path), "--host", "127.0.0.1",
                                    "--port", str(port)], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(process, url, timeout_s=startup_timeout_s, log_tail=log_path.read_text,
                         health_path="/api/v2/heartbeat", name="chroma run")
        yield url
    finally:
        stop_process(process, timeout_s=20)
