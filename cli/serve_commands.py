"""`tutor serve`: run the tutoring API on uvicorn."""

from __future__ import annotations

import logging

import typer

logger = logging.getLogger(__name__)


def serve(
    host: str | None = typer.Option(None, help="Address to bind (default: TUTOR_HOST or 127.0.0.1)."),
    port: int | None = typer.Option(None, help="Port to bind (default: TUTOR_PORT or 8000)."),
    model: str | None = typer.Option(None, help="LLM: 'tutor', 'stock', an HF model folder or a .gguf file "
                                     "(default: TUTOR_MODEL, else the packaged model)."),
    embedder: str | None = typer.Option(None, help="A sentence-transformers folder (TUTOR_EMBEDDER)."),
    chroma_url: str | None = typer.Option(None, help="A Chroma server URL instead of the embedded index "
                                          "(TUTOR_CHROMA_URL)."),
    log_level: str = typer.Option("info", help="uvicorn's log level."),
) -> None:
    """Serve the tutor: POST /v1/ask, GET /v1/courses, GET /health, API docs at /docs."""
    from pydantic import ValidationError

    from app.main import run_server
    from app.resources import check_model_paths
    from app.settings import Settings
    from engine.runtime import ModelNotFoundError

    overrides = {"host": host, "port": port, "model": model, "embedder": embedder, "chroma_url": chroma_url}
    try:
        settings = Settings(**{name: value for name, value in overrides.items() if value is not None})
        check_model_paths(settings)  # fail here, in one line, rather than in a start-up traceback
    except (ValidationError, ModelNotFoundError) as error:
        logger.error("%s", error)
        raise typer.Exit(2) from None
    run_server(settings, log_level=log_level)


def register(app: typer.Typer, eval_app: typer.Typer) -> None:
    app.command("serve")(serve)
