"""A live tutor server, or an ingestion run, with fake models, for crash and restart tests.

The real app, the real Chroma index and uvicorn run in a subprocess, as in production; only the
models are fakes, so it starts in seconds. The embedder, the runtime and the store's commit can
be slowed down, and each prints a marker to stdout first ("EMBEDDING <n>", "GENERATING",
"COMMITTING <source>"), so a test can kill the process at a known point::

    python -m tests.utils.fake_server serve --index DIR --port 8123 --commit-delay 30
    python -m tests.utils.fake_server ingest FOLDER --index DIR --course C --commit-delay 30
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from retrieval import CourseStore
from tests.utils.embedding import HashingEmbedder
from tests.utils.fakes import FakeRuntime

ADMIN_KEY = "crash-admin-key"
CHUNKS = {"chunk_tokens": 32, "chunk_overlap": 4}


def announce(marker: str) -> None:
    sys.stdout.write(marker + "\n")
    sys.stdout.flush()


class SlowCommitStore(CourseStore):
    """A real store that pauses between writing a file's chunks and committing them (the manifest
    write): the moment where a crash could leave a half-replaced file."""

    def __init__(self, path: Path, commit_delay_s: float):
        super().__init__(path=path)
        self.commit_delay_s = commit_delay_s

    def _write_manifest(self, collection, source: str, entry: dict | None) -> None:
        if entry is not None:
            announce(f"COMMITTING {source}")
            time.sleep(self.commit_delay_s)
        super()._write_manifest(collection, source, entry)


class SlowEmbedder(HashingEmbedder):
    """The hashing embedder, announcing each batch and taking ``delay_s`` over it."""

    def __init__(self, delay_s: float):
        super().__init__()
        self.delay_s = delay_s

    def embed(self, texts: list[str]) -> list[list[float]]:
        if len(texts) > 1:  # a document being ingested, not a question being searched
            announce(f"EMBEDDING {len(texts)}")
            time.sleep(self.delay_s)
        return super().embed(texts)


class SlowRuntime(FakeRuntime):
    """The fake runtime, announcing each generation and taking ``delay_s`` over it."""

    delay_s: float = 0.0

    def generate(self, requests):
        announce("GENERATING")
        time.sleep(self.delay_s)
        return super().generate(requests)


def build_fake_app(index: Path, *, embed_delay_s: float, generate_delay_s: float, commit_delay_s: float):
    """``build_app`` whose lifespan opens the real index but loads fake models."""
    from app.main import build_app
    from app.resources import batching
    from app.settings import Settings
    from retrieval import Retriever

    settings = Settings(data_dir=index.parent, chroma_path=index, admin_api_key=ADMIN_KEY, min_score=0.0,
                        **CHUNKS)
    app = build_app(settings)

    @asynccontextmanager
    async def fake_models(app) -> AsyncIterator[None]:
        store = SlowCommitStore(index, commit_delay_s)
        runtime = SlowRuntime()
        runtime.delay_s = generate_delay_s
        app.state.runtime = batching(runtime, settings)
        app.state.store, app.state.retriever = store, Retriever(store, SlowEmbedder(embed_delay_s))
        try:
            yield
        finally:
            app.state.runtime.close()
            announce("STOPPED")

    app.router.lifespan_context = fake_models
    return app


def serve(args: argparse.Namespace) -> None:
    import uvicorn

    app = build_fake_app(args.index, embed_delay_s=args.embed_delay, generate_delay_s=args.generate_delay,
                         commit_delay_s=args.commit_delay)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


def ingest(args: argparse.Namespace) -> None:
    from ingest.run import ingest_paths

    store = SlowCommitStore(args.index, args.commit_delay)
    report = ingest_paths([args.folder], args.course, store, SlowEmbedder(args.embed_delay), **CHUNKS)
    announce(f"DONE {report.chunks} chunks, {len(report.failed)} failed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("serve", "ingest"):
        command = commands.add_parser(name)
        command.add_argument("--index", type=Path, required=True)
        command.add_argument("--embed-delay", type=float, default=0.0)
        command.add_argument("--commit-delay", type=float, default=0.0)
    commands.choices["serve"].add_argument("--port", type=int, required=True)
    commands.choices["serve"].add_argument("--generate-delay", type=float, default=0.0)
    commands.choices["ingest"].add_argument("folder", type=Path)
    commands.choices["ingest"].add_argument("--course", required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    {"serve": serve, "ingest": ingest}[args.command](args)


if __name__ == "__main__":
    main()
