"""Document upload and removal, through the same ingestion path as `tutor ingest`."""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO

from app.admin.schemas import DocumentInfo, DocumentList, DocumentRemoved, DocumentUploaded
from app.errors import InvalidRequestError, PayloadTooLargeError
from app.settings import Settings
from retrieval import CourseStore, Embedder
from retrieval.store import check_course_name

logger = logging.getLogger(__name__)

PDF_MAGIC = b"%PDF-"
COPY_BLOCK = 1 << 20
SAFE_NAME = re.compile(r"^[\w][\w .()+-]{0,150}\.pdf$", re.IGNORECASE)


def upload_name(filename: str | None) -> str:
    """The stored source name: the upload's bare file name, which must be a plain ``*.pdf`` name."""
    name = Path((filename or "").replace("\\", "/")).name
    if not SAFE_NAME.match(name):
        raise InvalidRequestError(
            f"The uploaded file name {filename!r} is not a plain PDF file name: use letters, digits, "
            "spaces, '.', '_', '-', '(', ')' or '+', ending in .pdf."
        )
    return name


def max_upload_bytes(settings: Settings) -> int:
    return int(settings.max_upload_mb * 1024 * 1024)


def too_large(size: int, settings: Settings) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"The upload is {size / 1e6:.1f} MB; this server accepts PDFs up to {settings.max_upload_mb} MB "
        "(TUTOR_MAX_UPLOAD_MB)."
    )


def save_upload(data: BinaryIO, target: Path, settings: Settings) -> int:
    """Copy the upload to ``target`` within the size limit; check it starts like a PDF."""
    limit, size = max_upload_bytes(settings), 0
    with target.open("wb") as out:
        while block := data.read(COPY_BLOCK):
            size += len(block)
            if size > limit:
                raise too_large(size, settings)
            out.write(block)
    with target.open("rb") as saved:
        if saved.read(len(PDF_MAGIC)) != PDF_MAGIC:
            raise InvalidRequestError(
                f"{target.name} is not a PDF: its content does not start with %PDF-. Upload the PDF itself."
            )
    return size


def ingest_upload(course: str, filename: str | None, data: BinaryIO, *, store: CourseStore,
                  embedder: Embedder, settings: Settings) -> DocumentUploaded:
    """Save the upload to a temporary folder, then ingest it as `tutor ingest FILE --course C` would."""
    from ingest.run import ingest_paths

    check_course_name(course)
    source = upload_name(filename)
    folder = Path(tempfile.mkdtemp(prefix="tutor-upload-"))
    try:
        path = folder / source
        save_upload(data, path, settings)
        report = ingest_paths([path], course, store, embedder, chunk_tokens=settings.chunk_tokens,
                              chunk_overlap=settings.chunk_overlap, at_headings=settings.chunk_at_headings)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if report.failed:
        raise InvalidRequestError(f"{source} was not ingested: {report.failed[0].reason}")
    logger.info("Uploaded %s to %s: %d pages, %d chunks.", source, course, report.pages, report.chunks)
    return DocumentUploaded(course=course, source=source, unchanged=report.unchanged > 0, pages=report.pages,
                            chunks=report.chunks, seconds=round(report.seconds, 3))


def list_documents(course: str, store: CourseStore) -> DocumentList:
    documents = [DocumentInfo(source=s.source, pages=s.pages, chunks=s.chunks, sha256=s.file_hash)
                 for s in store.sources(course)]
    return DocumentList(course=course, documents=documents)


def remove_document(course: str, source: str, store: CourseStore) -> DocumentRemoved:
    removed = store.remove_source(course, source)
    logger.info("Removed %s (%d chunks) from %s.", source, removed, course)
    return DocumentRemoved(course=course, source=source, removed_chunks=removed)
