"""Split a file's cleaned pages into chunks sized in tokens of the embedding model.

The pages are joined into one text so a chunk may run across a page break; each chunk
keeps its first and last page, found from where it starts and ends in that text.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass

from retrieval.store import Chunk

PAGE_BREAK = "\n\n"
# Paragraphs first, then lines, then sentences, then words: the splitter keeps the largest unit that fits.
SEPARATORS = ["\n\n", "\n", ". ", " ", ""]


class ChunkSettingsError(ValueError):
    """Chunk size or overlap that the embedding model cannot honour."""


@dataclass(frozen=True)
class ChunkSettings:
    """How to cut text into chunks.

    Args:
        chunk_tokens: largest chunk, in tokens of the embedding model (special tokens excluded).
        chunk_overlap: tokens shared by neighbouring chunks, so a sentence cut at a boundary is whole in one.
    """

    chunk_tokens: int = 128
    chunk_overlap: int = 24

    def check(self, max_tokens: int) -> None:
        """Refuse settings the model would silently truncate."""
        if not 0 <= self.chunk_overlap < self.chunk_tokens:
            raise ChunkSettingsError(
                f"Chunk overlap {self.chunk_overlap} must be at least 0 and smaller than the chunk size "
                f"{self.chunk_tokens}: lower --chunk-overlap."
            )
        # Two tokens of the model's window go to [CLS] and [SEP].
        if self.chunk_tokens > max_tokens - 2:
            raise ChunkSettingsError(
                f"Chunk size {self.chunk_tokens} tokens exceeds what the embedding model reads "
                f"({max_tokens - 2} tokens plus 2 special ones): lower --chunk-tokens."
            )


def make_splitter(settings: ChunkSettings, count_tokens: Callable[[str], int]):
    """LangChain's RecursiveCharacterTextSplitter measuring length with ``count_tokens``."""
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    return RecursiveCharacterTextSplitter(
        chunk_size=settings.chunk_tokens,
        chunk_overlap=settings.chunk_overlap,
        length_function=count_tokens,
        separators=SEPARATORS,
        keep_separator="end",
        strip_whitespace=True,
    )


def join_pages(pages: list[str]) -> tuple[str, list[int]]:
    """The pages as one text, and the offset where each page starts in it."""
    starts, offset = [], 0
    for text in pages:
        starts.append(offset)
        offset += len(text) + len(PAGE_BREAK)
    return PAGE_BREAK.join(pages), starts


def chunk_pages(pages: list[str], *, source: str, file_hash: str, splitter) -> list[Chunk]:
    """Chunks of ``pages`` (index 0 is page 1) with their 1-based first and last page."""
    text, starts = join_pages(pages)
    chunks, cursor = [], 0
    for index, piece in enumerate(splitter.split_text(text)):
        # Each chunk starts after the previous one's start; search from there to place it.
        found = text.find(piece, cursor)
        start = found if found >= 0 else cursor
        end = start + max(len(piece) - 1, 0)
        chunks.append(Chunk(
            text=piece,
            source=source,
            page_start=bisect.bisect_right(starts, start),
            page_end=bisect.bisect_right(starts, end),
            index=index,
            file_hash=file_hash,
        ))
        cursor = start + 1
    return chunks
