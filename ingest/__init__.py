"""Ingestion: PDF pages -> cleaned text -> token-sized chunks with page metadata -> the course store."""

from ingest.pdf import (
    CorruptPDFError,
    EmptyPDFError,
    EncryptedPDFError,
    NotAPDFError,
    NoTextLayerError,
    PDFError,
    PDFLimitError,
)
from ingest.run import FileFailure, IngestReport, ingest_paths

__all__ = [
    "CorruptPDFError",
    "EmptyPDFError",
    "EncryptedPDFError",
    "FileFailure",
    "IngestReport",
    "NoTextLayerError",
    "NotAPDFError",
    "PDFError",
    "PDFLimitError",
    "ingest_paths",
]
