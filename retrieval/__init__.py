"""Retrieval: the embedder, the course store (the only code that talks to Chroma) with its
lexical index, dense/lexical/hybrid search, and grounded prompt building with numbered citations."""

from retrieval.embedder import Embedder
from retrieval.lexical import LexicalSettings
from retrieval.prompt import NO_CONTEXT_ANSWER, GroundedPrompt, build_grounded_prompt
from retrieval.search import MODES, Hit, HybridSettings, RetrievalMode, Retriever, UnknownRetrievalModeError
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
    "MODES",
    "NO_CONTEXT_ANSWER",
    "Chunk",
    "CourseNotFoundError",
    "CourseStore",
    "Embedder",
    "EmbedderMismatchError",
    "GroundedPrompt",
    "Hit",
    "HybridSettings",
    "InvalidCourseNameError",
    "LexicalSettings",
    "RetrievalMode",
    "Retriever",
    "SourceInfo",
    "SourceNotFoundError",
    "UnknownRetrievalModeError",
    "build_grounded_prompt",
]
