"""The original files kept with their chunks: stored by ingestion, replaced, removed, repaired."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.run import ingest_paths
from retrieval import CourseStore, InvalidCourseNameError
from retrieval.store import (
    FILES_PREFIX,
    SourceFileMissingError,
    SourceNotFoundError,
    files_collection_name,
)
from tests.utils import pdfs
from tests.utils.embedding import HashingEmbedder

COURSE = "optics-101"
SETTINGS = {"chunk_tokens": 40, "chunk_overlap": 8}


def lecture(topic: str, pages: int = 2) -> list[str]:
    return [f"Lecture on {topic}, page {page}. " + f"The {topic} idea number {page} is shown. " * 10
            for page in range(1, pages + 1)]


def run(paths: list[Path], store: CourseStore, embedder: HashingEmbedder):
    return ingest_paths(paths, COURSE, store, embedder, **SETTINGS)


def file_pieces(store: CourseStore, course: str = COURSE) -> list[dict]:
    """Every stored piece of every file of ``course``, live or not."""
    files = store.client.get_collection(files_collection_name(course))
    return files.get(include=["metadatas"])["metadatas"]


def test_ingested_file_is_kept_byte_for_byte_in_its_subfolder_name(tmp_path, store, fake_embedder):
    pdf = pdfs.text_pdf(tmp_path / "course" / "week1" / "lenses.pdf", lecture("lenses"))
    assert run([tmp_path / "course"], store, fake_embedder).failed == []
    kept = store.source_file(COURSE, "week1/lenses.pdf")
    assert kept.content == pdf.read_bytes()
    assert kept.file_hash == store.source_hash(COURSE, "week1/lenses.pdf")
    assert store.courses() == [COURSE]  # the file collection is no course


def test_reingesting_a_changed_file_replaces_the_kept_file_and_drops_the_old_one(tmp_path, store,
                                                                                 fake_embedder):
    pdf = pdfs.text_pdf(tmp_path / "mirrors.pdf", lecture("mirrors"))
    run([pdf], store, fake_embedder)
    old_hash = store.source_hash(COURSE, "mirrors.pdf")
    pdfs.text_pdf(pdf, lecture("concave mirrors", pages=3))
    run([pdf], store, fake_embedder)
    assert store.source_file(COURSE, "mirrors.pdf").content == pdf.read_bytes()
    assert store.source_hash(COURSE, "mirrors.pdf") != old_hash
    assert {piece["sha256"] for piece in file_pieces(store)} == {store.source_hash(COURSE, "mirrors.pdf")}


def test_a_file_of_many_pieces_comes_back_whole(tmp_path, store, fake_embedder, monkeypatch):
    import retrieval.store

    monkeypatch.setattr(retrieval.store, "FILE_PIECE_BYTES", 300)  # real pieces are 512 KiB
    monkeypatch.setattr(retrieval.store, "PIECES_PER_WRITE", 3)
    pdf = pdfs.text_pdf(tmp_path / "reader.pdf", lecture("interference", pages=3))
    run([pdf], store, fake_embedder)
    pieces = file_pieces(store)
    assert len(pieces) == -(-pdf.stat().st_size // 300) > 3
    assert store.source_file(COURSE, "reader.pdf").content == pdf.read_bytes()


def test_removing_a_source_or_the_course_removes_its_files(tmp_path, store, fake_embedder):
    first = pdfs.text_pdf(tmp_path / "prisms.pdf", lecture("prisms"))
    second = pdfs.text_pdf(tmp_path / "lasers.pdf", lecture("lasers"))
    run([first, second], store, fake_embedder)
    store.remove_source(COURSE, "prisms.pdf")
    assert {piece["source"] for piece in file_pieces(store)} == {"lasers.pdf"}
    with pytest.raises(SourceNotFoundError, match="Did you mean lasers.pdf"):
        store.source_file(COURSE, "laser.pdf")
    store.remove_course(COURSE)
    assert [c.name for c in store.client.list_collections()] == []


def test_an_oversized_file_is_reported_and_nothing_is_written(tmp_path, store, fake_embedder, monkeypatch):
    import retrieval.store

    pdf = pdfs.text_pdf(tmp_path / "atlas.pdf", lecture("atlas"))
    monkeypatch.setattr(retrieval.store, "MAX_FILE_BYTES", pdf.stat().st_size - 1)
    report = run([pdf], store, fake_embedder)
    [failure] = report.failed
    assert failure.reason.startswith("it is 0.0 MiB; the course store keeps files of up to 0 MiB")
    assert "Split the PDF" in failure.reason and store.courses() == [] and fake_embedder.embedded == []


def test_a_source_ingested_before_files_were_kept_gets_its_file_on_the_next_run(tmp_path, store,
                                                                                 fake_embedder):
    pdf = pdfs.text_pdf(tmp_path / "optics.pdf", lecture("optics"))
    run([pdf], store, fake_embedder)
    store.client.delete_collection(files_collection_name(COURSE))  # as a store from before kept it
    with pytest.raises(SourceFileMissingError, match="Ingest it again"):
        store.source_file(COURSE, "optics.pdf")
    chunks, embedded = store.chunks(COURSE), len(fake_embedder.embedded)
    report = run([pdf], store, fake_embedder)
    assert report.unchanged == 1 and len(fake_embedder.embedded) == embedded
    assert store.chunks(COURSE) == chunks
    assert store.source_file(COURSE, "optics.pdf").content == pdf.read_bytes()


def test_repair_deletes_the_file_of_a_version_that_was_never_committed(tmp_path, store, fake_embedder,
                                                                       monkeypatch):
    pdf = pdfs.text_pdf(tmp_path / "waves.pdf", lecture("waves"))
    run([pdf], store, fake_embedder)
    committed = store.source_file(COURSE, "waves.pdf")
    pdfs.text_pdf(pdf, lecture("standing waves", pages=3))

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # the run dies at the commit, after the new chunks and file are written

    monkeypatch.setattr(store, "_write_manifest", killed)
    with pytest.raises(KeyboardInterrupt):
        run([pdf], store, fake_embedder)
    monkeypatch.undo()
    assert store.source_file(COURSE, "waves.pdf") == committed  # the old version is what readers see
    assert len({piece["version"] for piece in file_pieces(store)}) == 2
    store.repair(COURSE)
    assert {piece["sha256"] for piece in file_pieces(store)} == {committed.file_hash}


def test_repair_drops_the_files_of_a_course_whose_removal_was_killed(tmp_path, store, fake_embedder):
    run([pdfs.text_pdf(tmp_path / "colour.pdf", lecture("colour"))], store, fake_embedder)
    store.client.delete_collection(COURSE)  # killed between deleting the chunks and the files
    assert store.repair(COURSE) == 0
    assert [c.name for c in store.client.list_collections()] == []


def test_course_names_of_the_file_collections_are_refused(store, fake_embedder, tmp_path):
    with pytest.raises(InvalidCourseNameError, match="kept for the course files"):
        ingest_paths([tmp_path], f"{FILES_PREFIX}mine", store, fake_embedder)
