"""The ingestion run: find the PDFs, skip unchanged ones, replace changed ones, report bad ones.

>>> report = ingest_paths([Path("notes/")], "physics", store, embedder)  # doctest: +SKIP
>>> report.chunks, [f.reason for f in report.failed]                    # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path

from ingest.chunk import ChunkSettings, ChunkSplitter, chunk_pages, make_splitter
from ingest.clean import clean_text
from ingest.navigation import is_navigation, prose_lines
from ingest.pdf import NoTextLayerError, PDFError, page_reader_pool, read_pages
from ingest.progress import IngestProgress
from retrieval.embedder import Embedder
from retrieval.store import CourseStore, FileTooLargeError, check_course_name, check_file_size

logger = logging.getLogger(__name__)

EMBED_BATCH = 128  # chunks embedded between progress updates


@dataclass
class FileFailure:
    """A file that was not ingested, and why."""

    path: Path
    reason: str


@dataclass
class IngestReport:
    """What one ingestion run did; ``pages`` and ``chunks`` count what was written."""

    course: str
    files: int = 0  # PDF files found, whatever happened to them
    pages: int = 0
    chunks: int = 0
    unchanged: int = 0
    failed: list[FileFailure] = field(default_factory=list)
    seconds: float = 0.0
    repaired: int = 0  # chunks of killed earlier runs that were cleaned up

    @property
    def ingested(self) -> int:
        return self.files - self.unchanged - len(self.failed)


@dataclass
class CourseFile:
    """A file to ingest and the name it is stored under."""

    path: Path
    source: str


def find_pdfs(paths: Iterable[str | Path]) -> tuple[list[CourseFile], list[FileFailure]]:
    """Files given directly (whatever their suffix) and ``*.pdf`` files under folders, recursively.

    A file's source name is its path relative to the folder given, or its bare name when given directly.
    """
    found: dict[str, CourseFile] = {}
    failures = []
    for given in map(Path, paths):
        if given.is_dir():
            files = sorted(p for p in given.rglob("*") if p.is_file() and p.suffix.lower() == ".pdf")
            candidates = [CourseFile(p, p.relative_to(given).as_posix()) for p in files]
        elif given.is_file():
            candidates = [CourseFile(given, given.name)]
        else:
            failures.append(FileFailure(given, "the path does not exist; check its spelling."))
            continue
        for candidate in candidates:
            other = found.setdefault(candidate.source, candidate)
            if other.path.resolve() != candidate.path.resolve():
                failures.append(FileFailure(candidate.path, f"another file, {other.path}, is also named "
                                            f"{candidate.source!r} in this run; rename one of them."))
    return list(found.values()), failures


def read_course_file(item: CourseFile) -> bytes:
    """The file's bytes, read once: they are hashed, and stored for students to open, as one content.

    A file larger than the store keeps is refused from its size, before it is read.
    """
    check_file_size(item.source, item.path.stat().st_size)
    return item.path.read_bytes()


@dataclass
class IngestContext:
    """What every file of a run shares."""

    course: str
    store: CourseStore
    embedder: Embedder
    splitter: ChunkSplitter
    progress: IngestProgress
    pool: Executor | None
    force: bool = False  # read, chunk and embed files whose content is already live too


def embed_in_batches(context: IngestContext, texts: list[str]) -> list[list[float]]:
    """Embeddings of ``texts`` in order, computed shortest first so each batch pads little."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    embeddings: list[list[float]] = [[] for _ in texts]
    for start in range(0, len(order), EMBED_BATCH):
        batch = order[start : start + EMBED_BATCH]
        for i, vector in zip(batch, context.embedder.embed([texts[i] for i in batch]), strict=True):
            embeddings[i] = vector
        context.progress.advance_chunks(len(batch))
    return embeddings


def ingest_file(context: IngestContext, item: CourseFile, report: IngestReport) -> None:
    """Ingest one file unless its content is already live (and ``context.force`` is off); raises PDFError
    for a bad file.

    An unchanged file ingested before the store kept files gets its file stored, its chunks untouched.
    """
    content = read_course_file(item)
    file_hash = hashlib.sha256(content).hexdigest()
    if not context.force and context.store.source_hash(context.course, item.source) == file_hash:
        report.unchanged += 1
        if not context.store.keeps_file(context.course, item.source, file_hash):
            context.store.keep_file(context.course, item.source, content)
            logger.info("Stored the file of %s, ingested before files were kept.", item.source)
        logger.debug("%s is unchanged; skipped.", item.source)
        return
    pages = [clean_text(text) for text in read_pages(item.path, pool=context.pool)]
    navigation = [number for number, text in enumerate(pages, start=1) if is_navigation(text)]
    if navigation:
        logger.info("%s: pages of contents or index left out of search: %s.", item.source,
                    ", ".join(map(str, navigation)))
        pages = [prose_lines(text) if number in navigation else text
                 for number, text in enumerate(pages, start=1)]
    chunks = chunk_pages(pages, source=item.source, file_hash=file_hash, splitter=context.splitter)
    if not chunks:
        raise NoTextLayerError(item.path, "its pages hold no text after clean-up; run OCR on it and ingest "
                                          "the result.")
    context.progress.start_chunks(item.source, len(chunks))
    embeddings = embed_in_batches(context, [chunk.text for chunk in chunks])
    context.store.replace_source(context.course, item.source, chunks, embeddings, pages=len(pages),
                                 embedder=context.embedder.name, content=content)
    report.pages += len(pages)
    report.chunks += len(chunks)


def ingest_files(context: IngestContext, files: list[CourseFile], report: IngestReport) -> None:
    """Ingest each file in turn; a bad file is recorded in ``report.failed`` and the run goes on."""
    for item in files:
        context.progress.start_file(item.source)
        try:
            ingest_file(context, item, report)
        except (PDFError, FileTooLargeError, OSError) as error:
            reason = error.reason if isinstance(error, PDFError | FileTooLargeError) else (
                f"it cannot be read ({error}).")
            report.failed.append(FileFailure(item.path, reason))
            logger.debug("Skipped %s: %s", item.path, reason)
        context.progress.finish_file()


def ingest_paths(
    paths: Iterable[str | Path],
    course: str,
    store: CourseStore,
    embedder: Embedder,
    *,
    chunk_tokens: int = 128,
    chunk_overlap: int = 24,
    at_headings: bool = False,
    progress: bool = False,
    pool: Executor | None = None,
    force: bool = False,
) -> IngestReport:
    """Ingest PDF files and folders into ``course``; one bad file never stops the others.

    Args:
        paths: PDF files and folders (searched recursively for ``*.pdf``).
        course: the course (a Chroma collection), created on first use.
        chunk_tokens, chunk_overlap: chunk size and overlap in tokens of ``embedder``.
        at_headings: no chunk runs across a heading ("Section 12", "3.2 Kinetic energy").
        progress: show a progress bar on the terminal.
        pool: a process pool for reading large PDFs; by default one is started when a file needs it.
        force: ingest unchanged files again too (after new chunk settings, or a version of the tutor that
            reads pages differently); each is replaced as a changed file is.

    Returns:
        An IngestReport; ``failed`` lists each file that was not ingested, with the reason.
    """
    started = time.perf_counter()
    check_course_name(course)
    settings = ChunkSettings(chunk_tokens, chunk_overlap, at_headings)
    settings.check(embedder.max_tokens)
    report = IngestReport(course=course)
    store.check_embedder(course, embedder.name)
    report.repaired = store.repair(course)  # completes the clean-up of a killed earlier run
    files, report.failed = find_pdfs(paths)
    report.files = len(files) + len(report.failed)
    own_pool = pool is None and len(files) > 0
    pool = page_reader_pool() if own_pool else pool
    try:
        with IngestProgress(len(files), enabled=progress) as bar:
            context = IngestContext(course, store, embedder, make_splitter(settings, embedder.count_tokens),
                                    bar, pool, force)
            ingest_files(context, files, report)
    finally:
        if own_pool and pool is not None:
            pool.shutdown(cancel_futures=True)
    if course in store.courses():  # the lexical index follows what this run committed
        store.lexical_index(course)
    report.seconds = time.perf_counter() - started
    return report
