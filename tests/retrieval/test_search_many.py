"""Searching many questions at once, and dense search without Chroma's filter: same answers as one by one,
and never a chunk that is not live.

A real embedded Chroma with the hashing embedder (no model).
"""

from __future__ import annotations

import pytest

from retrieval import CourseStore, Retriever
from retrieval.store import STALE_MARGIN
from tests.retrieval.test_lexical_and_modes import COURSE, TEXTS, add_source, texts_store
from tests.utils.embedding import HashingEmbedder

QUESTIONS = ["which way does heat flow, hot or cold", "what does entropy do", "force and acceleration",
             "photosynthesis in leaves", "inertia of a moving body"]


class KilledBeforeCommit(CourseStore):
    """A store whose ingestion dies after writing a file's new chunks, before making them live."""

    def _write_manifest(self, collection, source: str, entry: dict | None) -> None:
        raise RuntimeError(f"killed before committing {source}")


@pytest.fixture
def store(tmp_path) -> CourseStore:
    return texts_store(tmp_path / "chroma")


@pytest.mark.parametrize("mode", ["dense", "lexical", "hybrid"])
@pytest.mark.parametrize("min_score", [None, 0.3])
def test_search_many_answers_each_question_as_search_does(store, mode, min_score):
    retriever = Retriever(store, HashingEmbedder())
    many = retriever.search_many(COURSE, QUESTIONS, k=3, min_score=min_score, mode=mode)
    one_by_one = [retriever.search(COURSE, q, k=3, min_score=min_score, mode=mode) for q in QUESTIONS]
    assert many == one_by_one
    assert any(many) and (min_score is None or not all(many))  # some covered, some not, with the cut


@pytest.mark.parametrize("stale", [3, STALE_MARGIN + 8])
def test_dense_search_never_returns_chunks_of_an_uncommitted_version(tmp_path, store, stale):
    """Chunks written but never committed are the nearest ones; dense search returns only live chunks,
    k of them even when the stale ones fill all the extra neighbours it asks Chroma for."""
    question = QUESTIONS[0]
    with pytest.raises(RuntimeError, match="killed"):
        add_source(KilledBeforeCommit(path=tmp_path / "chroma"), "heat.pdf", [question] * stale,
                   file_hash="h2")
    assert store.count(COURSE) == 4 + stale
    for mode in ("dense", "hybrid"):
        hits = Retriever(store, HashingEmbedder()).search(COURSE, question, k=3, mode=mode)
        assert len(hits) == 3, mode
        assert all(hit.text != question for hit in hits), mode
        assert hits[0].text == TEXTS["heat.pdf"][1], mode


def test_an_open_store_searches_densely_over_another_process_s_commit(tmp_path, store):
    searcher = Retriever(CourseStore(path=tmp_path / "chroma"), HashingEmbedder())
    assert searcher.search(COURSE, "lenses refract light", k=1)[0].source != "optics.pdf"
    add_source(store, "optics.pdf", ["lenses refract light"])
    [hit] = searcher.search(COURSE, "lenses refract light", k=1)
    assert (hit.source, hit.text) == ("optics.pdf", "lenses refract light")
    add_source(store, "optics.pdf", ["mirrors reflect light"], file_hash="h2")
    [hit] = searcher.search(COURSE, "lenses refract light", k=1, mode="dense")
    assert hit.text != "lenses refract light"


def test_lexical_search_many_keeps_the_order_and_finds_nothing_for_unknown_words(store):
    index = store.lexical_index(COURSE)
    found = index.search_many(["entropy", "photosynthesis chlorophyll", "force mass"], 1)
    assert [[chunk.text for chunk, _ in hits] for hits in found] == [
        [TEXTS["heat.pdf"][0]], [], [TEXTS["mechanics.pdf"][1]]]
    assert index.search_many([], 3) == []
