"""Load test: N concurrent clients against /v1/ask and /v1/mcq on a live `tutor serve`.

It ingests the sample course into a temporary index, starts the server on a free loopback port
with the default models, and for each N (1, 4, 8, 16 by default) runs N client threads that
share ``--requests`` requests (at least 2 per client; by default 32 for /v1/ask and 128 for the
quicker /v1/mcq), so that every level asks the same questions. Answers are capped at
``--max-new-tokens`` (64, a short answer; the server's default cap is 256). It prints p50 and p95
latency, throughput and the error rate per endpoint and N, then throughput at 8 clients over
throughput at 1 (the target is at least 3x: concurrent requests are batched). Everything stops
by itself: every level stops issuing requests once ``--time-limit`` seconds have passed since
the server was ready (loading the models comes on top: about a minute on an idle 2-core
machine), and the server is stopped at the end.

    .venv/bin/python -m bench.load                       # defaults: at most 10 minutes of load
    .venv/bin/python -m bench.load --clients 1 8 --endpoints ask --max-new-tokens 16
    .venv/bin/python -m bench.load --max-batch 1         # batching off, for comparison
    .venv/bin/python -m bench.load --generation-precision weights   # generate with the float32 weights
    .venv/bin/python -m bench.load --generation-precision bfloat16 --decode-threads 0   # no packed decoding
    .venv/bin/python -m bench.load --generation-url http://127.0.0.1:8088   # on llama-server (README)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.serving import free_port, stop_process, wait_until_ready

logger = logging.getLogger("bench.load")

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_COURSE, COURSE = REPO_ROOT / "samples" / "course", "sample-course"
QUESTIONS = [
    "What does Newton's first law say?", "How is the newton defined as a unit of force?",
    "Why can a rocket accelerate in the vacuum of space?", "What does the zeroth law of thermodynamics say?",
    "What is the specific heat capacity of water?", "What does floor division do in Python?",
    "What is the difference between a list and a tuple?", "How does slicing a list work?",
]
MCQS = [
    ("What is the SI unit of force?", ["joule", "newton", "watt", "pascal"]),
    ("Which law says a body keeps its velocity unless a force acts?",
     ["first law", "second law", "third law"]),
    ("Water boils at sea level at about", ["50 °C", "100 °C", "150 °C", "200 °C"]),
    ("Which Python type is immutable?", ["list", "dict", "tuple", "set"]),
    ("The zeroth law of thermodynamics is about", ["thermal equilibrium", "entropy", "energy", "work"]),
    ("Floor division in Python is written", ["/", "//", "%", "**"]),
    ("A rocket in space accelerates by", ["pushing on air", "expelling exhaust", "gravity", "magnetism"]),
    ("Temperature in kelvin equals Celsius plus", ["100", "273.15", "32", "0"]),
]

# Requests per level: a few rounds of 16 clients on /v1/ask (seconds each), more on /v1/mcq (a
# round takes a fraction of a second, so that 32 would mostly time the clients' start).
DEFAULT_REQUESTS = {"ask": 32, "mcq": 128}


@dataclass
class Level:
    """The outcome of N clients on one endpoint."""

    endpoint: str
    clients: int
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict:
        ok = sorted(self.latencies)
        return {"endpoint": self.endpoint, "clients": self.clients, "requests": self.requests,
                "p50_s": round(statistics.median(ok), 3) if ok else None,
                "p95_s": round(ok[min(len(ok) - 1, int(0.95 * len(ok)))], 3) if ok else None,
                "throughput_rps": round(len(ok) / self.seconds, 3) if self.seconds else 0.0,
                "error_rate": round(self.errors / self.requests, 3) if self.requests else None,
                "statuses": self.statuses, "seconds": round(self.seconds, 1)}


def payload(endpoint: str, n: int, args: argparse.Namespace) -> dict:
    if endpoint == "ask":
        return {"course": COURSE, "question": QUESTIONS[n % len(QUESTIONS)],
                "max_new_tokens": args.max_new_tokens, "top_k": args.top_k}
    question, choices = MCQS[n % len(MCQS)]
    return {"question": question, "choices": choices, "method": "loglik"}


def drive(url: str, endpoint: str, clients: int, args: argparse.Namespace, deadline: float) -> Level:
    """``clients`` threads, each sending its requests one after another; none starts after ``deadline``."""
    level, lock = Level(endpoint, clients), threading.Lock()

    total = max(args.requests or DEFAULT_REQUESTS[endpoint], 2 * clients)

    def client(number: int) -> None:
        with httpx.Client(base_url=url, timeout=args.request_timeout) as http:
            for n in range(number, total, clients):  # every level asks the same questions in turn
                if time.monotonic() > deadline:
                    return
                started = time.perf_counter()
                try:
                    status = str(http.post(f"/v1/{endpoint}", json=payload(endpoint, n, args)).status_code)
                except httpx.HTTPError as error:
                    status = type(error).__name__
                elapsed = time.perf_counter() - started
                with lock:
                    level.requests += 1
                    level.statuses[status] = level.statuses.get(status, 0) + 1
                    if status == "200":
                        level.latencies.append(elapsed)
                    else:
                        level.errors += 1

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    level.seconds = time.perf_counter() - started
    return level


def ingest_sample_course(index: Path) -> None:
    from engine.runtime.models import default_embedder_path
    from ingest.run import ingest_paths
    from retrieval import CourseStore, Embedder

    report = ingest_paths([SAMPLE_COURSE], COURSE, CourseStore(path=index), Embedder(default_embedder_path()))
    if report.failed or not report.chunks:
        raise RuntimeError(f"The sample course did not ingest: {report.failed}")


@contextmanager
def live_server(index: Path, args: argparse.Namespace, workdir: Path) -> Iterator[str]:
    """`tutor serve` on the default models and ``index``, on loopback; stopped when the block ends."""
    from app.settings import default_data_dir
    from engine.runtime.models import resolve_llm_folder

    data_dir = Path(os.environ.get("TUTOR_DATA_DIR", default_data_dir()))
    env = {name: value for name, value in os.environ.items() if not name.startswith("TUTOR_")}
    env.update(PYTHONPATH=str(REPO_ROOT), OMP_WAIT_POLICY="PASSIVE", TUTOR_DATA_DIR=str(data_dir),
               TUTOR_MODEL=str(resolve_llm_folder(None, data_dir)), TUTOR_CHROMA_PATH=str(index),
               TUTOR_DEVICE="cpu", TUTOR_MAX_BATCH=str(args.max_batch), TUTOR_MAX_QUEUE=str(args.max_queue),
               TUTOR_DTYPE=args.dtype, TUTOR_GENERATION_PRECISION=args.generation_precision,
               TUTOR_DECODE_THREADS=str(args.decode_threads))
    if args.generation_url:
        env["TUTOR_GENERATION_URL"] = args.generation_url
    port = free_port()
    log = (workdir / "server.log").open("wb")
    server = subprocess.Popen([sys.executable, "-m", "cli.main", "serve", "--host", "127.0.0.1", "--port",
                               str(port), "--log-level", "warning"], cwd=workdir, env=env, stdout=log,
                              stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(server, url, timeout_s=240)
        yield url
    finally:
        stop_process(server, timeout_s=30)
        log.close()


def report(levels: list[Level]) -> dict:
    """Log the table and the speed-up, and return both."""
    rows = [level.summary() for level in levels]
    logger.info("%-5s %7s %8s %8s %8s %10s %7s", "path", "clients", "requests", "p50 s", "p95 s", "req/s",
                "errors")
    for row in rows:
        logger.info("%-5s %7d %8d %8s %8s %10.3f %7s", row["endpoint"], row["clients"], row["requests"],
                    row["p50_s"], row["p95_s"], row["throughput_rps"], row["error_rate"])
    ratios = {}
    for endpoint in sorted({row["endpoint"] for row in rows}):
        by_clients = {row["clients"]: row["throughput_rps"] for row in rows if row["endpoint"] == endpoint}
        if by_clients.get(1) and 8 in by_clients:
            ratios[endpoint] = round(by_clients[8] / by_clients[1], 2)
            logger.info("%s: throughput@8 / throughput@1 = %.2fx (target >= 3x)", endpoint, ratios[endpoint])
    return {"levels": rows, "throughput_ratio_8_over_1": ratios}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--endpoints", nargs="+", choices=["ask", "mcq"], default=["ask", "mcq"])
    parser.add_argument("--requests", type=int,
                        help="Requests per level (at least 2 per client), spread over the clients; every "
                        f"level cycles through the same questions. Default: {DEFAULT_REQUESTS}.")
    parser.add_argument("--max-new-tokens", type=int, default=64, help="Tokens per /v1/ask answer.")
    parser.add_argument("--top-k", type=int, default=2, help="Chunks per /v1/ask prompt.")
    parser.add_argument("--max-batch", type=int, default=16, help="TUTOR_MAX_BATCH (1: batching off).")
    parser.add_argument("--max-queue", type=int, default=64, help="TUTOR_MAX_QUEUE.")
    parser.add_argument("--dtype", default="float32", help="TUTOR_DTYPE: the weights' precision.")
    parser.add_argument("--generation-precision", default="auto", help="TUTOR_GENERATION_PRECISION.")
    parser.add_argument("--decode-threads", type=int, default=1, help="TUTOR_DECODE_THREADS (0: all).")
    parser.add_argument("--generation-url", help="TUTOR_GENERATION_URL: generate on this OpenAI-compatible "
                        "server (e.g. llama-server) instead of in-process.")
    parser.add_argument("--time-limit", type=float, default=600, help="No request starts after this.")
    parser.add_argument("--request-timeout", type=float, default=180)
    parser.add_argument("--out", type=Path, help="Also write the figures as JSON here.")
    return parser.parse_args()


def main() -> None:
    from engine.runtime.gptq import defer_torchao

    defer_torchao()  # as `tutor` does: the sample course's ingest loads the embedder, not a GPTQ model
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    args = parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="tutor-load-") as folder:
        workdir = Path(folder)
        ingest_sample_course(workdir / "chroma")
        with live_server(workdir / "chroma", args, workdir) as url:
            logger.info("Server ready after %.0f s; load average %s.", time.monotonic() - started,
                        os.getloadavg())
            deadline, levels = time.monotonic() + args.time_limit, []
            for endpoint in args.endpoints:
                httpx.post(f"{url}/v1/{endpoint}", json=payload(endpoint, 0, args), timeout=180)  # warm-up
                for clients in args.clients:
                    levels.append(drive(url, endpoint, clients, args, deadline))
                    logger.info("%s", levels[-1].summary())
    figures = report(levels)
    figures.update(settings={k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                   load_average=os.getloadavg(), cpu_count=os.cpu_count())
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
