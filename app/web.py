"""The student page at ``/`` (plain files in ``app/static/``) and the CORS policy for browsers."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from app.settings import Settings

STATIC_DIR = Path(__file__).resolve().parent / "static"


def attach_page_and_cors(app: FastAPI, settings: Settings) -> None:
    """Serve the page and its assets; allow the configured browser origins (none by default)."""
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    async def student_page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "X-API-Key"],
        )
