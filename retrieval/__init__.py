"""Retrieval: the embedder, the course store (the only code that talks to Chroma),
search, and grounded prompt building with numbered citations."""

from retrieval.embedder import Embedder
from retrieval.prompt import NO_CONTEXT_ANSWER, GroundedPrompt, build_grounded_prompt
from retrieval.search import Hit, Retriever
from retrieval.store import (
    Chunk,
    CourseNotFoundError,
    CourseStore,
    EmbedderMismatchError,
    InvalidCourseNameError,
    SourceInfo,
    SourceNotFoundError,
)

__all__ = [
    "NO_CONTEXT_ANSWER",
    "Chunk",
    "CourseNotFoundError",
    "CourseStore",
    "Embedder",
    "EmbedderMismatchError",
    "GroundedPrompt",
    "Hit",
    "InvalidCourseNameError",
    "Retriever",
    "SourceInfo",
    "SourceNotFoundError",
    "build_grounded_prompt",
]
