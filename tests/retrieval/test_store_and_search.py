"""The course store and search on a real embedded Chroma, with a fake embedder (no model)."""

from __future__ import annotations

import pytest

from retrieval import Chunk, CourseNotFoundError, CourseStore, InvalidCourseNameError, Retriever
from retrieval.store import SourceNotFoundError
from tests.utils.embedding import HashingEmbedder

TEXTS = {
    "mechanics.pdf": ["inertia keeps a body moving in a straight line",
                      "force equals mass times acceleration"],
    "heat.pdf": ["entropy of an isolated system never decreases", "heat flows from hot bodies to cold ones"],
}


def add_source(store: CourseStore, embedder: HashingEmbedder, course: str, source: str, texts: list[str],
               file_hash: str = "h1") -> None:
    chunks = [Chunk(text=text, source=source, page_start=n + 1, page_end=n + 1, index=n, file_hash=file_hash)
              for n, text in enumerate(texts)]
    store.replace_source(course, source, chunks, embedder.embed(texts), pages=len(texts))


@pytest.fixture
def embedder() -> HashingEmbedder:
    return HashingEmbedder()


@pytest.fixture
def store(tmp_path, embedder) -> CourseStore:
    store = CourseStore(path=tmp_path / "chroma")
    for source, texts in TEXTS.items():
        add_source(store, embedder, "physics", source, texts)
    add_source(store, embedder, "python-101", "lists.pdf", ["lists are mutable sequences"])
    return store


def test_search_ranks_the_matching_chunk_first_with_its_citation(store, embedder):
    hits = Retriever(store, embedder).search("physics", "which way does heat flow, hot or cold", k=3)
    assert len(hits) == 3 and hits[0].text == TEXTS["heat.pdf"][1]
    assert (hits[0].source, hits[0].page, hits[0].page_end) == ("heat.pdf", 2, 2)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert 0 < hits[0].score <= 1.0001


def test_search_drops_hits_below_min_score(store, embedder):
    retriever = Retriever(store, embedder)
    scores = [h.score for h in retriever.search("physics", "entropy isolated system", k=4)]
    threshold = (scores[0] + scores[1]) / 2
    kept = retriever.search("physics", "entropy isolated system", k=4, min_score=threshold)
    assert [h.score for h in kept] == [s for s in scores if s >= threshold] and len(kept) == 1
    assert retriever.search("physics", "entropy isolated system", k=4, min_score=1.01) == []


def test_search_asks_for_more_than_stored_returns_what_there_is(store, embedder):
    assert len(Retriever(store, embedder).search("python-101", "lists", k=10)) == 1


def test_search_stays_within_its_course(store, embedder):
    hits = Retriever(store, embedder).search("python-101", "inertia entropy force", k=5)
    assert {h.source for h in hits} == {"lists.pdf"}


def test_unknown_course_error_lists_the_known_ones_and_near_matches(store, embedder):
    with pytest.raises(CourseNotFoundError) as raised:
        Retriever(store, embedder).search("phisics", "inertia")
    assert "Did you mean physics?" in str(raised.value)
    assert "Known courses: physics, python-101." in str(raised.value)


def test_invalid_course_name_is_refused_with_the_rule(tmp_path, embedder):
    store = CourseStore(path=tmp_path / "chroma")
    with pytest.raises(InvalidCourseNameError, match="3 to 63 letters"):
        add_source(store, embedder, "a b", "x.pdf", ["text"])


def test_courses_and_sources_list_what_is_stored(store):
    assert store.courses() == ["physics", "python-101"]
    assert [(s.source, s.chunks, s.pages, s.file_hash) for s in store.sources("physics")] == [
        ("heat.pdf", 2, 2, "h1"), ("mechanics.pdf", 2, 2, "h1")]
    assert store.source_hash("physics", "heat.pdf") == "h1"
    assert store.source_hash("physics", "nope.pdf") is None and store.source_hash("no-course", "x") is None


def test_replacing_a_source_leaves_only_its_new_chunks(store, embedder):
    add_source(store, embedder, "physics", "heat.pdf", ["the zeroth law defines temperature"], file_hash="h2")
    assert [c.text for c in store.chunks("physics", "heat.pdf")] == ["the zeroth law defines temperature"]
    assert store.count("physics") == 3


def test_remove_source_deletes_its_chunks_and_suggests_names_when_missing(store, embedder):
    assert store.remove_source("physics", "heat.pdf") == 2
    assert [s.source for s in store.sources("physics")] == ["mechanics.pdf"] and store.count("physics") == 2
    with pytest.raises(SourceNotFoundError, match="Did you mean mechanics.pdf"):
        store.remove_source("physics", "mechanic.pdf")


def test_remove_course_deletes_it(store):
    store.remove_course("python-101")
    assert store.courses() == ["physics"]
    with pytest.raises(CourseNotFoundError):
        store.remove_course("python-101")
