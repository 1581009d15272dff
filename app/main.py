"""Build the FastAPI app: settings, long-lived objects in a lifespan, routers, error handlers."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from app.admin.routes import router as admin_router
from app.errors import register_error_handlers
from app.mcq.routes import router as mcq_router
from app.openai_compat.routes import router as openai_router
from app.request_limits import RequestLimitMiddleware
from app.security import StudentKey
from app.settings import Settings, get_settings
from app.tutoring.routes import router as tutoring_router
from app.tutoring.stream import router as ask_stream_router
from app.web import attach_page_and_cors
from engine.runtime import Runtime
from engine.runtime.batching import BatchingRuntime, BatchSettings
from retrieval import CourseStore, Retriever

logger = logging.getLogger(__name__)

STATE_OBJECTS = ("runtime", "store", "retriever")


@dataclass
class Resources:
    """The objects loaded once per process and shared by every request."""

    runtime: Runtime
    store: CourseStore
    retriever: Retriever


def check_model_paths(settings: Settings) -> tuple[Path, Path | None]:
    """The embedder and LLM folders to load; raises ModelNotFoundError before anything heavy loads."""
    from engine.runtime.models import check_embedder_path, resolve_llm_folder

    embedder_folder = check_embedder_path(settings.embedder)
    if settings.generation_url:  # a remote server generates: no local LLM to resolve
        return embedder_folder, None
    return embedder_folder, resolve_llm_folder(settings.model, settings.data_dir)


def load_resources(settings: Settings) -> Resources:
    """Load the embedder, the index and the LLM named by ``settings``."""
    from engine.runtime import load_runtime
    from engine.runtime.model_files import resolve_device
    from retrieval import Embedder

    embedder_folder, llm_folder = check_model_paths(settings)
    device = resolve_device(settings.device)
    embedder = Embedder(embedder_folder, device=device, precision=settings.embed_precision)
    if settings.chroma_url:
        store = CourseStore(url=settings.chroma_url)
    else:
        store = CourseStore(path=settings.index_path)
    if llm_folder is None:
        runtime = load_runtime(settings.generation_model, data_dir=settings.data_dir, backend="openai",
                               base_url=settings.generation_url, api_key=settings.generation_api_key)
    else:
        runtime = load_runtime(str(llm_folder), data_dir=settings.data_dir, device=device,
                               dtype=settings.dtype, load_in_bits=settings.load_in_bits,
                               generation_dtype=generation_dtype(settings, device))
    logger.info("Ready: model %s, embedder %s, index %s.", runtime.model_name, embedder.name, store.location)
    return Resources(runtime=runtime, store=store, retriever=Retriever(store, embedder))


def generation_dtype(settings: Settings, device: str) -> str | None:
    """The dtype of the LLM's generation copy, or None to generate with the loaded weights."""
    from retrieval.embedder import native_bf16

    if settings.generation_precision == "bfloat16":
        return "bfloat16"
    auto = settings.generation_precision == "auto" and settings.load_in_bits is None
    return "bfloat16" if auto and settings.dtype == "float32" and native_bf16(device) else None


def batching(runtime: Runtime, settings: Settings) -> BatchingRuntime:
    """The runtime behind a bounded queue that merges concurrent requests into batches."""
    return BatchingRuntime(runtime, BatchSettings(max_queue=settings.max_queue, max_batch=settings.max_batch,
                                                  window_s=settings.batch_window_ms / 1000,
                                                  timeout_s=settings.generation_timeout_s))


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Load the models and the index once; drop them when the server stops."""
    resources = await run_in_threadpool(load_resources, app.state.settings)
    resources.runtime = batching(resources.runtime, app.state.settings)
    for name in STATE_OBJECTS:
        setattr(app.state, name, getattr(resources, name))
    try:
        yield
    finally:
        for name in STATE_OBJECTS:
            setattr(app.state, name, None)  # routes answer 503 from here on
        await run_in_threadpool(resources.runtime.close)  # lets queued model work finish first
        logger.info("Released the model and the index.")


def build_app(settings: Settings | None = None) -> FastAPI:
    """The tutor's API. Models load when the server starts (the lifespan), not here."""
    app = FastAPI(
        title="Course tutor",
        version="0.1.0",
        description="Answers students' questions from their course PDFs, citing the pages used.",
        lifespan=lifespan,
    )
    app.state.settings = settings or get_settings()
    for name in STATE_OBJECTS:
        setattr(app.state, name, None)
    register_error_handlers(app)
    mib = 1024 * 1024
    app.add_middleware(RequestLimitMiddleware, max_body_bytes=int(app.state.settings.max_request_mb * mib),
                       max_upload_bytes=int(app.state.settings.max_upload_mb * mib))
    app.include_router(tutoring_router, dependencies=[StudentKey])
    app.include_router(ask_stream_router, dependencies=[StudentKey])
    app.include_router(openai_router, dependencies=[StudentKey])
    app.include_router(mcq_router, dependencies=[StudentKey])
    app.include_router(admin_router)
    attach_page_and_cors(app, app.state.settings)
    return app


def run_server(settings: Settings, *, log_level: str = "info") -> None:
    """Serve ``build_app(settings)`` on uvicorn at ``settings.host:settings.port``."""
    import uvicorn

    uvicorn.run(build_app(settings), host=settings.host, port=settings.port, log_level=log_level)
