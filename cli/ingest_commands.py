"""`tutor ingest`, `tutor courses`, `tutor sources`, `tutor remove`: manage the course index."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from app.settings import Settings
    from ingest.run import IngestReport
    from retrieval import CourseStore, Embedder

logger = logging.getLogger(__name__)


def build_settings(**overrides) -> Settings:
    """Settings from TUTOR_* variables, with the command-line flags that were given on top."""
    from pydantic import ValidationError

    from app.settings import Settings, get_settings

    given = {name: value for name, value in overrides.items() if value is not None}
    try:
        return Settings(**given) if given else get_settings()
    except ValidationError as error:
        messages = "; ".join(str(e["msg"]) for e in error.errors())
        raise typer.BadParameter(messages) from None


def open_store(settings: Settings) -> CourseStore:
    """The store the server opens (app.resources)."""
    from app.resources import open_store as open_configured_store

    return open_configured_store(settings)


def open_embedder(settings: Settings) -> Embedder:
    """The embedder the server loads (app.resources); a missing one is a bad --embedder."""
    from app.resources import open_embedder as open_configured_embedder
    from engine.runtime.models import ModelNotFoundError

    try:
        return open_configured_embedder(settings)
    except ModelNotFoundError as error:
        raise typer.BadParameter(str(error), param_hint="--embedder / TUTOR_EMBEDDER") from None


def print_report(report: IngestReport) -> None:
    """The summary table, then one line per failed file."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Ingested into course {report.course!r}")
    for column in ("files", "pages", "chunks", "unchanged", "failed", "seconds"):
        table.add_column(column, justify="right")
    table.add_row(str(report.files), str(report.pages), str(report.chunks), str(report.unchanged),
                  str(len(report.failed)), f"{report.seconds:.1f}")
    Console().print(table)
    if report.repaired:
        typer.echo(f"Cleaned up {report.repaired} chunks left by an interrupted earlier run.")
    for failure in report.failed:  # plain lines, never wrapped, for people and for grep
        typer.echo(f"FAILED {failure.path}: {failure.reason}", err=True)


def ingest(
    paths: list[Path] = typer.Argument(..., help="PDF files or folders (searched recursively)."),
    course: str = typer.Option(..., "--course", "-c", help="Course to add the files to (created if new)."),
    chunk_tokens: int | None = typer.Option(None, help="Chunk size in embedder tokens (TUTOR_CHUNK_TOKENS)."),
    chunk_overlap: int | None = typer.Option(None, help="Chunk overlap in tokens (TUTOR_CHUNK_OVERLAP)."),
    at_headings: bool | None = typer.Option(None, "--at-headings/--across-headings",
                                            help="Cut chunks at headings (TUTOR_CHUNK_AT_HEADINGS)."),
    embedder: Path | None = typer.Option(None, help="A sentence-transformers folder (TUTOR_EMBEDDER)."),
    chroma_url: str | None = typer.Option(None, help="A Chroma server URL instead of the embedded index."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
    force: bool = typer.Option(False, "--force", help="Ingest unchanged files again too: after changing the "
                               "chunk settings, or after an upgrade that reads pages differently."),
) -> None:
    """Ingest course PDFs: unchanged files are skipped, changed files replaced, bad files reported."""
    from ingest.chunk import ChunkSettingsError
    from ingest.run import ingest_paths
    from retrieval.store import EmbedderMismatchError, InvalidCourseNameError, check_course_name

    settings = build_settings(chunk_tokens=chunk_tokens, chunk_overlap=chunk_overlap,
                              chunk_at_headings=at_headings, embedder=embedder, chroma_url=chroma_url)
    try:
        check_course_name(course)
    except InvalidCourseNameError as error:
        raise typer.BadParameter(str(error), param_hint="--course") from None
    try:
        report = ingest_paths(paths, course, open_store(settings), open_embedder(settings),
                              chunk_tokens=settings.chunk_tokens, chunk_overlap=settings.chunk_overlap,
                              at_headings=settings.chunk_at_headings, progress=progress, force=force)
    except ChunkSettingsError as error:
        raise typer.BadParameter(str(error), param_hint="--chunk-tokens / --chunk-overlap") from None
    except EmbedderMismatchError as error:
        raise typer.BadParameter(str(error), param_hint="--embedder / TUTOR_EMBEDDER") from None
    print_report(report)
    if report.failed:
        raise typer.Exit(code=1)


def courses(
    chroma_url: str | None = typer.Option(None, help="A Chroma server URL instead of the embedded index."),
) -> None:
    """List the courses in the index with their file and chunk counts and their lexical index."""
    store = open_store(build_settings(chroma_url=chroma_url))
    names = store.courses()
    if not names:
        typer.echo(f"No courses yet in {store.location}. Add one with `tutor ingest PATH --course NAME`.")
    for name in names:
        infos = store.sources(name)
        lexical = store.lexical_index(name)  # checked against the store, rebuilt if it differs
        typer.echo(f"{name}\t{len(infos)} files\t{sum(i.chunks for i in infos)} chunks\tlexical index "
                   f"{lexical.size_bytes / 2**20:.1f} MiB, built in {lexical.build_s:.2f} s")


def sources(
    course: str = typer.Option(..., "--course", "-c", help="The course whose files to list."),
    chroma_url: str | None = typer.Option(None, help="A Chroma server URL instead of the embedded index."),
) -> None:
    """List a course's files with their pages, chunks and content hash."""
    from retrieval import CourseNotFoundError

    store = open_store(build_settings(chroma_url=chroma_url))
    try:
        infos = store.sources(course)
    except CourseNotFoundError as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(code=1) from None
    for info in infos:
        typer.echo(f"{info.source}\t{info.pages} pages\t{info.chunks} chunks\tsha256:{info.file_hash[:12]}")


def remove(
    course: str = typer.Option(..., "--course", "-c", help="The course to remove, or to remove a file from."),
    source: str | None = typer.Option(None, "--source", "-s", help="Remove only this file of the course."),
    chroma_url: str | None = typer.Option(None, help="A Chroma server URL instead of the embedded index."),
) -> None:
    """Remove a whole course, or one file of it."""
    from retrieval import CourseNotFoundError
    from retrieval.store import SourceNotFoundError

    store = open_store(build_settings(chroma_url=chroma_url))
    try:
        if source is None:
            store.remove_course(course)
            typer.echo(f"Removed course {course}.")
        else:
            removed = store.remove_source(course, source)
            typer.echo(f"Removed {source} ({removed} chunks) from course {course}.")
    except (CourseNotFoundError, SourceNotFoundError) as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(code=1) from None


def register(app: typer.Typer, eval_app: typer.Typer) -> None:
    app.command("ingest")(ingest)
    app.command("courses")(courses)
    app.command("sources")(sources)
    app.command("remove")(remove)
