"""A `tutor serve` subprocess: a free port, waiting until it answers /health, stopping it.

Shared by the benchmarks (bench/load.py) and the tests' live servers (tests/utils/server.py). It lives
here, as plain code without pytest, because the benchmarks must not import test code (importing
tests/ would run its conftest's environment set-up), while tests may import a helper of the repo.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable

import httpx


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_ready(process: subprocess.Popen, url: str, *, timeout_s: float,
                     log_tail: Callable[[], str] = lambda: "see its log", health_path: str = "/health",
                     name: str = "`tutor serve`") -> None:
    """Return once ``url + health_path`` answers 200; raise if the process exits or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{log_tail()}")
        try:
            if httpx.get(f"{url}{health_path}", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{name} was not ready after {timeout_s:.0f} s:\n{log_tail()}")


def stop_process(process: subprocess.Popen, *, timeout_s: float) -> None:
    """Ask ``process`` to stop (SIGTERM), and kill it if it has not exited within ``timeout_s``."""
    process.terminate()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
