"""What a reader of the index can see, to check that a failed or killed operation changed nothing."""

from __future__ import annotations

COURSE = "physics-101"


def snapshot(store, course: str = COURSE) -> tuple:
    """Everything a reader of the index can see of ``course``: sources, live chunks, raw count."""
    sources = [(s.source, s.file_hash, s.chunks, s.pages) for s in store.sources(course)]
    chunks = [(c.source, c.index, c.file_hash, c.page_start, c.text) for c in store.chunks(course)]
    return store.courses(), sources, chunks, store.count(course)
