"""The lexical index follows the store through ingest, re-ingest, remove and crashes; search modes.

A real embedded Chroma with the hashing embedder (no model), so each test takes well under a second.
"""

from __future__ import annotations

import pytest

from retrieval import Chunk, CourseStore, LexicalSettings, Retriever, UnknownRetrievalModeError
from retrieval.lexical import LexicalIndex
from retrieval.search import fuse_convex, fuse_rrf
from retrieval.store import LEXICAL_FOLDER
from tests.utils.embedding import HashingEmbedder

COURSE = "physics"
TEXTS = {
    "mechanics.pdf": ["inertia keeps a body moving in a straight line",
                      "force equals mass times acceleration"],
    "heat.pdf": ["entropy of an isolated system never decreases", "heat flows from hot bodies to cold ones"],
}


def add_source(store: CourseStore, source: str, texts: list[str], file_hash: str = "h1") -> None:
    chunks = [Chunk(text=text, source=source, page_start=n + 1, page_end=n + 1, index=n, file_hash=file_hash)
              for n, text in enumerate(texts)]
    store.replace_source(COURSE, source, chunks, HashingEmbedder().embed(texts), pages=len(texts))


def lexical_view(index: LexicalIndex) -> list[tuple]:
    return sorted((c.source, c.index, c.file_hash, c.text) for c in index.chunks)


def store_view(store: CourseStore, course: str = COURSE) -> list[tuple]:
    return sorted((c.source, c.index, c.file_hash, c.text) for c in store.chunks(course))


def assert_consistent(path, course: str = COURSE) -> None:
    """A freshly opened store (as after a restart) searches lexically over exactly its live chunks."""
    store = CourseStore(path=path)
    assert lexical_view(store.lexical_index(course)) == store_view(store, course)


def texts_store(path) -> CourseStore:
    """An embedded store at ``path`` holding TEXTS as the course COURSE."""
    store = CourseStore(path=path)
    for source, texts in TEXTS.items():
        add_source(store, source, texts)
    return store


@pytest.fixture
def store(tmp_path) -> CourseStore:
    return texts_store(tmp_path / "chroma")


def test_lexical_search_finds_the_chunk_sharing_the_rare_words(store):
    [(chunk, score)] = store.lexical_query(COURSE, "What does entropy do?", 1)
    assert chunk.text == TEXTS["heat.pdf"][0] and score > 0


def test_lexical_search_of_words_the_course_lacks_finds_nothing(store):
    assert store.lexical_query(COURSE, "photosynthesis chlorophyll", 5) == []
    assert store.lexical_query(COURSE, "the of and", 5) == []  # stop words only


def test_words_that_frame_a_question_do_not_match_chunks():
    chunks = [Chunk(text=text, source="notes.pdf", page_start=n + 1, page_end=n + 1, index=n, file_hash="h")
              for n, text in enumerate(["What does it mean? What does it do, and what does it mean here?",
                                        "integer: a type that represents whole numbers"])]
    index = LexicalIndex.build(chunks, "f", LexicalSettings())
    assert [chunk.index for chunk, _ in index.search("What does integer mean?", 2)] == [1]
    assert index.search("What does it mean?", 2) == []  # nothing but framing words


def test_stemming_matches_word_forms_and_can_be_turned_off(tmp_path, store):
    [(chunk, _)] = store.lexical_query(COURSE, "decreasing", 1)
    assert chunk.text == TEXTS["heat.pdf"][0]
    plain = CourseStore(path=tmp_path / "chroma", lexical=LexicalSettings(stemmer=None))
    assert plain.lexical_query(COURSE, "decreasing", 1) == []


def test_reingest_of_a_changed_file_replaces_its_lexical_entries(tmp_path, store):
    store.lexical_index(COURSE)
    add_source(store, "heat.pdf", ["temperature measures the average kinetic energy"], file_hash="h2")
    [(chunk, _)] = store.lexical_query(COURSE, "kinetic temperature", 1)
    assert chunk.file_hash == "h2"
    assert store.lexical_query(COURSE, "entropy", 3) == []
    assert_consistent(tmp_path / "chroma")


def test_removing_a_file_or_the_course_removes_its_lexical_entries(tmp_path, store):
    store.remove_source(COURSE, "heat.pdf")
    assert store.lexical_query(COURSE, "entropy heat", 3) == []
    assert_consistent(tmp_path / "chroma")
    store.remove_course(COURSE)
    assert not (tmp_path / "chroma" / LEXICAL_FOLDER / COURSE).exists()


def test_an_index_on_disk_is_reused_after_a_restart_and_rebuilt_when_stale(tmp_path, store):
    built = store.lexical_index(COURSE)
    reopened = CourseStore(path=tmp_path / "chroma")
    assert reopened.lexical_index(COURSE).fingerprint == built.fingerprint
    # Another process commits a file: the reopened store's index no longer matches and is rebuilt.
    add_source(store, "optics.pdf", ["lenses refract light"])
    [(chunk, _)] = reopened.lexical_query(COURSE, "lenses", 1)
    assert chunk.source == "optics.pdf"
    versions = list((tmp_path / "chroma" / LEXICAL_FOLDER / COURSE).iterdir())
    assert len(versions) == 1  # the stale version was deleted


def test_a_half_written_index_folder_is_ignored(tmp_path, store):
    """What a process killed while saving the index leaves: a temporary folder, never a live one."""
    folder = tmp_path / "chroma" / LEXICAL_FOLDER / COURSE
    store.lexical_index(COURSE)
    [live] = list(folder.iterdir())
    half = folder / ".tmp-1-deadbeef"
    half.mkdir()
    (half / "chunks.jsonl").write_text('{"text": "trunc')
    (live / "meta.json").unlink()  # and a damaged live one is rebuilt, not trusted
    assert_consistent(tmp_path / "chroma")


def test_the_three_modes_return_the_matching_chunk(store):
    retriever = Retriever(store, HashingEmbedder())
    for mode in ("dense", "lexical", "hybrid"):
        hits = retriever.search(COURSE, "which way does heat flow, hot or cold", k=2, mode=mode)
        assert hits[0].text == TEXTS["heat.pdf"][1], mode
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True), mode


def test_hybrid_and_lexical_say_not_covered_below_the_dense_threshold(store):
    retriever = Retriever(store, HashingEmbedder())
    for mode in ("lexical", "hybrid"):
        assert retriever.search(COURSE, "entropy", k=2, mode=mode, min_score=1.01) == [], mode
        assert retriever.search(COURSE, "entropy", k=2, mode=mode, min_score=0.0) != [], mode


def test_an_unknown_mode_is_refused_with_the_allowed_ones(store):
    with pytest.raises(UnknownRetrievalModeError, match="Did you mean hybrid.*dense, lexical, hybrid"):
        Retriever(store, HashingEmbedder()).search(COURSE, "entropy", mode="hybird")


def test_convex_fusion_divides_each_side_by_its_best_score():
    fused = fuse_convex([("a", 0.8), ("b", 0.4)], [("b", 10.0), ("c", 5.0)], weight=0.5)
    assert fused == pytest.approx({"a": 0.5, "b": 0.75, "c": 0.25})


def test_rrf_adds_reciprocal_ranks():
    fused = fuse_rrf([["a", "b"], ["b"]], k=1)
    assert fused == pytest.approx({"a": 0.5, "b": 1 / 3 + 1 / 2})


def test_live_chunks_are_read_in_pages_of_max_batch(store):
    """A 100,000-chunk course cannot be read in one get (SQLite's variable limit); pages add up to it."""
    whole = store_view(store)
    store.max_batch = 1
    assert store_view(store) == whole and len(whole) == 4
