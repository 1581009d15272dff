"""Chunking: sizes in tokens, pages of each chunk, and refusing sizes the model cannot read."""

from __future__ import annotations

import pytest

from ingest.chunk import ChunkSettings, ChunkSettingsError, chunk_pages, is_heading, make_splitter
from tests.utils.embedding import HashingEmbedder

COUNTER = HashingEmbedder().count_tokens


def numbered_pages(pages: int, sentences: int) -> list[str]:
    """Pages whose sentences say which page they are on, e.g. 'p3s7 word word ...'."""
    return ["\n".join(f"p{page}s{n} is a sentence about topic {page} and item {n}."
                      for n in range(sentences)) for page in range(1, pages + 1)]


def test_chunks_stay_within_token_limit_and_cover_every_sentence():
    pages = numbered_pages(pages=4, sentences=30)
    splitter = make_splitter(ChunkSettings(chunk_tokens=60, chunk_overlap=12), COUNTER)
    chunks = chunk_pages(pages, source="notes.pdf", file_hash="abc", splitter=splitter)
    assert len(chunks) > 8
    assert max(COUNTER(chunk.text) for chunk in chunks) <= 60
    text = "\n".join(chunk.text for chunk in chunks)
    assert all(f"p{page}s{n} " in text for page in range(1, 5) for n in range(30))


def test_chunk_pages_are_the_pages_their_text_comes_from():
    pages = numbered_pages(pages=5, sentences=12)
    splitter = make_splitter(ChunkSettings(chunk_tokens=50, chunk_overlap=10), COUNTER)
    chunks = chunk_pages(pages, source="notes.pdf", file_hash="abc", splitter=splitter)
    for chunk in chunks:
        on_pages = {int(word[1:].split("s")[0]) for word in chunk.text.split() if word.startswith("p")
                    and "s" in word and word[1:].split("s")[0].isdigit()}
        assert chunk.page_start == min(on_pages) and chunk.page_end == max(on_pages), chunk


def test_chunk_metadata_is_numbered_in_order_with_source_and_hash():
    splitter = make_splitter(ChunkSettings(chunk_tokens=40, chunk_overlap=5), COUNTER)
    chunks = chunk_pages(numbered_pages(3, 10), source="dir/notes.pdf", file_hash="f00d", splitter=splitter)
    assert [chunk.index for chunk in chunks] == list(range(len(chunks)))
    assert {(chunk.source, chunk.file_hash) for chunk in chunks} == {("dir/notes.pdf", "f00d")}
    starts = [chunk.page_start for chunk in chunks]
    assert starts == sorted(starts) and starts[0] == 1 and chunks[-1].page_end == 3


def test_small_pages_can_share_a_chunk_spanning_the_page_break():
    splitter = make_splitter(ChunkSettings(chunk_tokens=100, chunk_overlap=0), COUNTER)
    chunks = chunk_pages(["Short page one.", "Short page two."], source="a.pdf", file_hash="h",
                         splitter=splitter)
    assert [(c.page_start, c.page_end) for c in chunks] == [(1, 2)]


def test_a_chunk_never_runs_across_a_heading():
    sections = [("Section 1", "Rivers carry water to the sea. Deltas form at their mouths."),
                ("Section 2", "Glaciers carve valleys. They move slowly downhill."),
                ("2.1 Ice ages", "The last ice age ended about twelve thousand years ago.")]
    page = "\n".join(f"{heading}\n{body}" for heading, body in sections)
    at_headings = make_splitter(ChunkSettings(chunk_tokens=100, chunk_overlap=10, at_headings=True), COUNTER)
    chunks = chunk_pages([page], source="a.pdf", file_hash="h", splitter=at_headings)
    assert [chunk.text for chunk in chunks] == [f"{heading}\n{body}" for heading, body in sections]
    # By default all three share one chunk of 100 tokens.
    across = make_splitter(ChunkSettings(chunk_tokens=100, chunk_overlap=10), COUNTER)
    chunks = chunk_pages([page], source="a.pdf", file_hash="h", splitter=across)
    assert [chunk.text for chunk in chunks] == [page]


def test_a_section_cut_by_a_page_break_stays_one_chunk_and_a_heading_after_a_title_joins_it():
    pages = ["Earth science\nSection 7\nSoil forms from rock. It takes a very long", "time to form."]
    splitter = make_splitter(ChunkSettings(chunk_tokens=100, chunk_overlap=10, at_headings=True), COUNTER)
    chunks = chunk_pages(pages, source="a.pdf", file_hash="h", splitter=splitter)
    assert [(chunk.page_start, chunk.page_end) for chunk in chunks] == [(1, 2)]
    assert chunks[0].text.startswith("Earth science\nSection 7\n")


@pytest.mark.parametrize("line", ["Section 12", "3 Kinetic and potential energies", "Chapter 4",
                                  "2.1 Time evolution of spin", "CHAPTER XVII"])
def test_headings(line):
    assert is_heading(line)


@pytest.mark.parametrize("line", [
    "E = m0c2",  # a formula
    "We now have",  # leads into a formula
    "4 \u03c0 \u222b 2 3 (31)",  # mostly symbols
    "seaweed broth, but it was not widely accepted",  # a sentence cut at a line break
    "Toapplyacompoundproceduretoargumentsevaluatethe",  # spaces lost in extraction
    "One two three four five six seven eight nine",  # too long for a heading
])
def test_lines_that_are_not_headings(line):
    assert not is_heading(line)


def test_a_short_line_inside_a_sentence_is_no_heading():
    pages = ["The force on the charge is given by\nNewton Law\nand it acts along the field line."]
    splitter = make_splitter(ChunkSettings(chunk_tokens=100, chunk_overlap=10, at_headings=True), COUNTER)
    assert len(chunk_pages(pages, source="a.pdf", file_hash="h", splitter=splitter)) == 1


def test_empty_pages_shift_no_page_numbers():
    splitter = make_splitter(ChunkSettings(chunk_tokens=8, chunk_overlap=0), COUNTER)
    chunks = chunk_pages(["", "alpha beta gamma delta epsilon zeta", "", "omega psi chi phi upsilon tau"],
                         source="a.pdf", file_hash="h", splitter=splitter)
    firsts = [(c.text.split()[0], c.page_start, c.page_end) for c in chunks]
    assert firsts == [("alpha", 2, 2), ("omega", 4, 4)]


@pytest.mark.parametrize(("tokens", "overlap"), [(300, 20), (100, 100), (100, -1)])
def test_chunk_settings_the_model_cannot_honour_are_refused(tokens, overlap):
    with pytest.raises(ChunkSettingsError, match="lower --chunk"):
        ChunkSettings(tokens, overlap).check(max_tokens=256)


@pytest.mark.integration
def test_chunks_fit_the_real_embedders_window(embedder):
    from ingest.clean import clean_text
    from ingest.pdf import read_pages
    from tests.conftest import SAMPLE_COURSE

    pages = [clean_text(text) for text in read_pages(SAMPLE_COURSE / "thermodynamics.pdf")]
    splitter = make_splitter(ChunkSettings(chunk_tokens=64, chunk_overlap=16), embedder.count_tokens)
    chunks = chunk_pages(pages, source="thermodynamics.pdf", file_hash="h", splitter=splitter)
    assert len(chunks) >= 6
    assert all(0 < embedder.count_tokens(chunk.text) <= 64 for chunk in chunks)
    specific_heat = next(chunk for chunk in chunks if "4186" in chunk.text)
    assert specific_heat.page_start == specific_heat.page_end == 2
