"""Split a file's cleaned pages into chunks sized in tokens of the embedding model.

The pages are joined into one text so a chunk may run across a page break; each chunk
keeps its first and last page, found from where it starts and ends in that text. With
``at_headings`` a chunk never runs across a heading: each section is split on its own, so a
chunk (and what it cites) holds one topic, not the end of one section and the start of the next.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise

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
        at_headings: cut at every heading: no chunk holds the end of one section and the start of the next.
    """

    chunk_tokens: int = 128
    chunk_overlap: int = 24
    at_headings: bool = False

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


def make_splitter(settings: ChunkSettings, count_tokens: Callable[[str], int]) -> ChunkSplitter:
    """LangChain's RecursiveCharacterTextSplitter measuring length with ``count_tokens``, in the
    ChunkSplitter that runs it section by section when ``settings.at_headings`` is on."""
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    splitter = RecursiveCharacterTextSplitter(
        chunk_size=settings.chunk_tokens,
        chunk_overlap=settings.chunk_overlap,
        length_function=count_tokens,
        separators=SEPARATORS,
        keep_separator="end",
        strip_whitespace=True,
    )
    return ChunkSplitter(splitter.split_text, settings.at_headings)


def join_pages(pages: list[str]) -> tuple[str, list[int]]:
    """The pages as one text, and the offset where each page starts in it."""
    starts, offset = [], 0
    for text in pages:
        starts.append(offset)
        offset += len(text) + len(PAGE_BREAK)
    return PAGE_BREAK.join(pages), starts


# A heading is a short line that is mostly letters, ends without punctuation or a word that leads on
# ("We now have"), and follows the end of a sentence, a blank line or another heading.
MAX_HEADING_WORDS, MAX_HEADING_CHARS, MAX_WORD_CHARS = 8, 60, 24
SENTENCE_END = tuple('.!?:"\u201d)')
LEADS_ON = frozenset("a an the and or of to in on for with by as at from that is are was were be have has "
                     "had we which where then thus becomes gives get".split())


def is_heading(line: str) -> bool:
    """A line that can be a heading on its own ("Section 12", "3 Kinetic energy", "Chapter 4")."""
    words = line.split()
    if not words or len(words) > MAX_HEADING_WORDS or len(line) > MAX_HEADING_CHARS:
        return False
    letters = sum(char.isalpha() for char in line)
    return (
        (line[0].isupper() or line[0].isdigit())
        and letters >= 3 and letters >= len(line.replace(" ", "")) / 2  # not a formula
        and line[-1].isalnum() and not any(mark in line for mark in ",;=")  # not a sentence cut short
        and max(map(len, words)) <= MAX_WORD_CHARS  # not a line whose spaces were lost in extraction
        and words[-1].lower() not in LEADS_ON  # not a line leading into a formula
    )


def section_starts(text: str) -> list[int]:
    """Where each section of ``text`` starts: at the first of one or more heading lines."""
    starts, offset, previous, previous_heading = [], 0, "", False
    lines = text.split("\n")
    for number, line in enumerate(lines):
        following = lines[number + 1] if number + 1 < len(lines) else ""
        heading = (is_heading(line) and following[:1].isalnum()
                   and (not previous or previous.endswith(SENTENCE_END) or previous_heading))
        if heading and not previous_heading:
            starts.append(offset)
        offset += len(line) + 1
        previous, previous_heading = line, heading
    return starts


@dataclass(frozen=True)
class ChunkSplitter:
    """Cuts a file's text into chunk texts with ``split`` (LangChain's splitter), section by section
    when ``at_headings`` is on, else the whole text at once."""

    split: Callable[[str], list[str]]
    at_headings: bool = False

    def split_text(self, text: str) -> list[str]:
        headings = section_starts(text) if self.at_headings else []
        bounds = [0, *[start for start in headings if start > 0], len(text)]
        return [piece for begin, end in pairwise(bounds) for piece in self.split(text[begin:end])]


def chunk_pages(pages: list[str], *, source: str, file_hash: str, splitter: ChunkSplitter) -> list[Chunk]:
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
