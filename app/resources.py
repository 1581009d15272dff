"""The one factory of long-lived objects from settings: `tutor serve` and every `tutor` command build
their store, embedder and model runtime here, so `tutor eval ...` runs exactly what the server serves.

Only the edges (app/ and cli/) import it; engine/, retrieval/ and training/ take the objects it builds.
Heavy libraries load inside the functions.
"""

from __future__ import annotations

import functools
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from engine.runtime.model_files import resolve_device

if TYPE_CHECKING:
    from app.settings import Settings
    from engine.reader import ExtractiveReader
    from engine.runtime import Runtime
    from engine.runtime.batching import BatchingRuntime
    from engine.runtime.split import SplitRuntime
    from insights import QuestionLog, QuestionStore
    from retrieval import CourseStore, Embedder, Retriever

logger = logging.getLogger(__name__)


@dataclass
class Resources:
    """The objects loaded once per process and shared by every request."""

    runtime: Runtime
    store: CourseStore
    retriever: Retriever


def check_model_paths(settings: Settings) -> tuple[Path, Path | None]:
    """The embedder and LLM folders to load (a LoRA adapter folder as is: the runtime stacks it on its base);
    raises ModelNotFoundError before anything heavy loads."""
    from engine.runtime.models import check_embedder_path, resolve_llm

    embedder_folder = check_embedder_path(settings.embedder)
    if settings.short_answers and settings.reader:
        from engine.reader import check_reader_folder

        check_reader_folder(settings.reader)
    if settings.generation_url and not settings.score_locally:  # a remote server does all: no local LLM
        return embedder_folder, None
    folder, adapter = resolve_llm(settings.model, settings.data_dir)
    return embedder_folder, adapter or folder


def generation_dtype(settings: Settings, device: str) -> str | None:
    """The dtype of the LLM's generation copy, or None to generate with the loaded weights."""
    from retrieval.embedder import native_bf16

    if settings.generation_precision in ("bfloat16", "packed"):
        return "bfloat16"
    auto = settings.generation_precision == "auto" and settings.load_in_bits is None
    return "bfloat16" if auto and settings.dtype == "float32" and native_bf16(device) else None


def packed_decoding(settings: Settings, device: str) -> bool:
    """Whether the bfloat16 generation copy decodes on packed weights (``engine.runtime.decoding``): on a
    CPU, asked for or auto."""
    return (device == "cpu" and settings.generation_precision in ("auto", "packed")
            and generation_dtype(settings, device) == "bfloat16")


def open_store(settings: Settings) -> CourseStore:
    """The Chroma server at TUTOR_CHROMA_URL, or the embedded index under the data directory."""
    from retrieval import CourseStore

    if settings.chroma_url:
        return CourseStore(url=settings.chroma_url)
    return CourseStore(path=settings.index_path)


def open_embedder(settings: Settings) -> Embedder:
    """The embedding model of TUTOR_EMBEDDER (or the packaged one) at its configured precision, embedding
    questions with ONNX Runtime unless TUTOR_QUERY_EMBEDDER is torch."""
    from engine.runtime.models import check_embedder_path
    from retrieval import Embedder

    onnx_dir = settings.data_dir / "models" if settings.query_embedder == "onnx" else None
    return Embedder(check_embedder_path(settings.embedder), device=resolve_device(settings.device),
                    precision=settings.embed_precision, onnx_dir=onnx_dir)


def open_runtime(settings: Settings) -> Runtime:
    """The LLM as the server loads it: local with TUTOR_LOAD_IN_BITS, TUTOR_DTYPE, the device and the
    generation precision; or remote (TUTOR_GENERATION_URL), with the local one scoring beside it
    (TUTOR_SCORE_LOCALLY)."""
    from engine.runtime import load_runtime

    _, llm_folder = check_model_paths(settings)
    remote = None
    if settings.generation_url:  # first, so an unreachable server fails before a model loads
        remote = load_runtime(settings.generation_model, data_dir=settings.data_dir, backend="openai",
                              base_url=settings.generation_url, api_key=settings.generation_api_key)
    if llm_folder is None:
        return remote
    device = resolve_device(settings.device)
    local = load_runtime(str(llm_folder), data_dir=settings.data_dir, device=device, dtype=settings.dtype,
                         load_in_bits=settings.load_in_bits,
                         generation_dtype=None if remote else generation_dtype(settings, device),
                         packed_decoding=remote is None and packed_decoding(settings, device),
                         decode_threads=settings.decode_threads or None)
    if remote is None:
        return local
    from engine.runtime.split import SplitRuntime

    logger.info("Generating at %s; scoring text (MCQ options, perplexity) with %s in-process "
                "(TUTOR_SCORE_LOCALLY).", settings.generation_url, llm_folder)
    return SplitRuntime(remote, local)


def batching(runtime: Runtime, settings: Settings) -> BatchingRuntime | SplitRuntime:
    """The runtime behind a bounded queue that merges concurrent requests into batches; a split runtime's
    two sides each behind their own, so scoring in-process and generating remotely do not wait for each
    other."""
    from engine.runtime.batching import BatchingRuntime, BatchSettings
    from engine.runtime.split import SplitRuntime

    if isinstance(runtime, SplitRuntime):
        return SplitRuntime(batching(runtime.generator, settings), batching(runtime.scorer, settings))
    return BatchingRuntime(runtime, BatchSettings(max_queue=settings.max_queue, max_batch=settings.max_batch,
                                                  window_s=settings.batch_window_ms / 1000,
                                                  timeout_s=settings.generation_timeout_s))


def serving_runtime(settings: Settings) -> BatchingRuntime | SplitRuntime:
    """The runtime exactly as the server answers with it: loaded from the settings, behind batching."""
    return batching(open_runtime(settings), settings)


def open_retriever(settings: Settings, store: CourseStore | None = None) -> Retriever:
    """Search over the configured store (or ``store``) with the configured embedder."""
    from retrieval import Retriever

    return Retriever(store or open_store(settings), open_embedder(settings))


_READER_LOCK = threading.Lock()


def open_reader(settings: Settings) -> ExtractiveReader | None:
    """The short-answer reader (None when TUTOR_SHORT_ANSWERS is off), loaded once per folder."""
    if not settings.short_answers:
        return None
    from engine.reader import SHIPPED_READER

    with _READER_LOCK:  # requests in worker threads: the first loads it, the others wait for it
        return _load_reader(str(settings.reader or SHIPPED_READER))


@functools.cache
def _load_reader(folder: str) -> ExtractiveReader:
    from engine.reader import ExtractiveReader

    reader = ExtractiveReader.load(folder)
    logger.info("Short answers: reader %s.", folder)
    return reader


def load_resources(settings: Settings) -> Resources:
    """Load the embedder, the index and the LLM named by ``settings`` (the runtime without batching)."""
    check_model_paths(settings)  # a missing model fails before anything heavy loads
    store = open_store(settings)
    retriever = open_retriever(settings, store)
    runtime = open_runtime(settings)
    open_reader(settings)  # cached: the first question does not wait for it
    logger.info("Ready: model %s, embedder %s, index %s.", runtime.model_name, retriever.embedder.name,
                store.location)
    return Resources(runtime=runtime, store=store, retriever=retriever)


def open_question_store(settings: Settings) -> QuestionStore:
    """The question log's database (TUTOR_QUESTION_LOG_URL, or SQLite under the data directory), for reading.

    Raises QuestionLogUnavailableError, naming the setting, when the database cannot be opened.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from insights import QuestionLogUnavailableError, QuestionStore

    try:
        return QuestionStore(settings.question_log_location,
                             retention_days=settings.question_log_retention_days)
    except (SQLAlchemyError, ImportError, OSError) as error:
        raise QuestionLogUnavailableError(
            f"The question log at TUTOR_QUESTION_LOG_URL={settings.question_log_location!r} cannot be opened "
            f"({error}). Fix the URL (and install its database driver), or set TUTOR_QUESTION_LOG=false."
        ) from error


def open_question_log(settings: Settings) -> QuestionLog | None:
    """The server's question log, writing in the background; None when TUTOR_QUESTION_LOG is off."""
    from insights import QuestionLog

    if not settings.question_log:
        logger.info("The question log is off (TUTOR_QUESTION_LOG=false): no question is recorded.")
        return None
    log = QuestionLog(open_question_store(settings))
    logger.info("Logging questions to %s (kept %d days).", log.store.location,
                settings.question_log_retention_days)
    return log
