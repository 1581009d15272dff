"""Request and response models of the administration routes."""

from __future__ import annotations

from pydantic import BaseModel, Field


# What happened to one uploaded PDF.
class DocumentUploaded(BaseModel):
    course: str
    source: str = Field(..., description="The name the file is stored under (its upload file name).")
    unchanged: bool = Field(..., description="True when the same content was already stored "
                            "(nothing written).")
    pages: int = Field(..., description="Pages read (0 when unchanged).")
    chunks: int = Field(..., description="Chunks written (0 when unchanged).")
    seconds: float


# A file stored in a course.
class DocumentInfo(BaseModel):
    source: str
    pages: int
    chunks: int
    sha256: str


# The files of one course.
class DocumentList(BaseModel):
    course: str
    documents: list[DocumentInfo]


# What a removal deleted.
class DocumentRemoved(BaseModel):
    course: str
    source: str
    removed_chunks: int
