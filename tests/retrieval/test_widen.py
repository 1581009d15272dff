"""Widening a hit with its neighbouring chunks: the text around a 128-token chunk, its overlaps kept once."""

from __future__ import annotations

from retrieval import Chunk, CourseStore, Retriever
from retrieval.search import join_overlapping
from tests.utils.embedding import HashingEmbedder

COURSE = "optics"
# Neighbouring chunks share their boundary text, as the splitter's overlap makes them.
PIECES = ["Light travels in straight lines through a uniform medium.",
          "a uniform medium. At a boundary it bends: refraction.",
          "it bends: refraction. Snell's law relates the two angles.",
          "relates the two angles. Lenses use refraction to focus light."]


def test_join_overlapping_writes_the_shared_text_once():
    assert join_overlapping(PIECES[0], PIECES[1]) == (
        "Light travels in straight lines through a uniform medium. At a boundary it bends: refraction.")
    assert join_overlapping("first part", "second part") == "first part\nsecond part"
    assert join_overlapping("ends with a", "a starts", least=4) == "ends with a\na starts"  # chance overlap


def store_with_pieces(path) -> CourseStore:
    store = CourseStore(path=path)
    chunks = [Chunk(text=text, source="light.pdf", page_start=n + 1, page_end=n + 1, index=n, file_hash="h1")
              for n, text in enumerate(PIECES)]
    store.replace_source(COURSE, "light.pdf", chunks, HashingEmbedder().embed(PIECES), pages=len(PIECES))
    return store


def test_a_hit_is_widened_with_its_neighbours_within_its_file(tmp_path):
    store = store_with_pieces(tmp_path / "chroma")
    retriever = Retriever(store, HashingEmbedder())
    [hit] = retriever.search(COURSE, "Snell's law angles", k=1, mode="lexical")
    assert hit.chunk_index == 2
    [wide] = retriever.widen(COURSE, [hit], neighbours=1)
    assert wide.text == ("a uniform medium. At a boundary it bends: refraction. Snell's law relates the two "
                         "angles. Lenses use refraction to focus light.")
    assert (wide.page, wide.page_end, wide.score, wide.chunk_index) == (2, 4, hit.score, 2)
    [whole] = retriever.widen(COURSE, [hit], neighbours=5)
    assert whole.text.startswith("Light travels") and whole.text.endswith("focus light.")
    assert retriever.widen(COURSE, [hit], neighbours=0) == [hit]


def test_a_hit_no_longer_live_is_kept_as_found(tmp_path):
    store = store_with_pieces(tmp_path / "chroma")
    retriever = Retriever(store, HashingEmbedder())
    [hit] = retriever.search(COURSE, "Snell's law angles", k=1, mode="lexical")
    other = Chunk(text="Mirrors reflect.", source="mirrors.pdf", page_start=1, page_end=1, index=0,
                  file_hash="h1")
    store.replace_source(COURSE, "mirrors.pdf", [other], HashingEmbedder().embed([other.text]), pages=1)
    store.remove_source(COURSE, "light.pdf")
    assert retriever.widen(COURSE, [hit], neighbours=1) == [hit]


def test_the_answer_quotes_a_hit_cut_mid_sentence_whole_from_its_neighbours(tmp_path):
    from engine.grounded import AnswerOptions, prepare_answer

    store = store_with_pieces(tmp_path / "chroma")
    retriever = Retriever(store, HashingEmbedder())
    options = AnswerOptions(top_k=1, retrieval="lexical", source_sentences=0)
    prepared = prepare_answer(retriever, COURSE, "Where does light bend?", options=options)
    [hit] = prepared.sources
    assert hit.chunk_index == 1 and hit.text.startswith("a uniform medium.")  # found as it was cut
    assert prepared.notes == [
        "Light travels in straight lines through a uniform medium. At a boundary it bends: refraction."]
    prompt = prepared.generation.messages[-1]["content"]
    assert "[1] a uniform medium. At a boundary it bends: refraction.\n" in prompt  # the chunk as found
