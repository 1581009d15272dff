"""Administration routes, all behind the admin API key (401 without it, 403 with a wrong one)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, File, Request, UploadFile
from starlette.concurrency import run_in_threadpool

from app.admin import service
from app.admin.schemas import DocumentList, DocumentRemoved, DocumentUploaded
from app.deps import RetrieverDep, SettingsDep, StoreDep
from app.security import require_admin_key

router = APIRouter(tags=["administration"], dependencies=[Depends(require_admin_key)])

ERROR_RESPONSES = {
    401: {"description": "No admin key was sent."},
    403: {"description": "The key is wrong, or administration is switched off (no TUTOR_ADMIN_API_KEY)."},
    404: {"description": "Unknown course or file."},
    413: {"description": "The upload is larger than TUTOR_MAX_UPLOAD_MB."},
    422: {"description": "Not a PDF, a PDF that cannot be ingested, or a bad course or file name."},
}


@router.post("/v1/courses/{course}/documents", response_model=DocumentUploaded, responses=ERROR_RESPONSES)
async def upload_document(course: str, request: Request, retriever: RetrieverDep, store: StoreDep,
                          settings: SettingsDep,
                          file: UploadFile = File(..., description="The PDF (multipart field `file`).")
                          ) -> DocumentUploaded:
    """Add a PDF to a course (created if new); the same file uploaded again writes nothing."""
    declared = int(request.headers.get("content-length") or 0)
    if declared > service.max_upload_bytes(settings) + 64 * 1024:  # multipart framing is small
        raise service.too_large(declared, settings)
    return await run_in_threadpool(service.ingest_upload, course, file.filename, file.file, store=store,
                                   embedder=retriever.embedder, settings=settings)


@router.get("/v1/courses/{course}/documents", response_model=DocumentList, responses=ERROR_RESPONSES)
async def list_documents(course: str, store: StoreDep) -> DocumentList:
    """The files of a course with their pages, chunks and content hash."""
    return await run_in_threadpool(service.list_documents, course, store)


@router.delete("/v1/courses/{course}/documents/{source:path}", response_model=DocumentRemoved,
               responses=ERROR_RESPONSES)
async def remove_document(course: str, source: str, store: StoreDep) -> DocumentRemoved:
    """Remove one file's chunks from a course."""
    return await run_in_threadpool(service.remove_document, course, source, store)
