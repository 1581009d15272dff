"""The ingestion run: counts, idempotent re-runs, replaced files, bad files and interrupted runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.run import ingest_paths
from retrieval import Retriever
from tests.utils import pdfs
from tests.utils.embedding import HashingEmbedder

COURSE = "physics-101"
SETTINGS = {"chunk_tokens": 40, "chunk_overlap": 8}


def lecture(topic: str, pages: int = 3) -> list[str]:
    return [f"Lecture on {topic}, page {page}. " + f"The {topic} idea number {page} is explained here. " * 12
            for page in range(1, pages + 1)]


@pytest.fixture
def course_dir(tmp_path) -> Path:
    folder = tmp_path / "course"
    pdfs.text_pdf(folder / "inertia.pdf", lecture("inertia"))
    pdfs.text_pdf(folder / "week2" / "entropy.pdf", lecture("entropy", pages=2))
    (folder / "README.txt").write_text("not a course file")  # folders are searched for *.pdf only
    return folder


def run(paths, store, embedder):
    return ingest_paths(paths if isinstance(paths, list) else [paths], COURSE, store, embedder, **SETTINGS)


def snapshot(store) -> tuple:
    """Everything a reader of the course can see, plus the raw chunk count."""
    return store.sources(COURSE), store.chunks(COURSE), store.count(COURSE)


def test_ingest_folder_stores_each_pdf_with_relative_source_names(course_dir, store, fake_embedder):
    report = run(course_dir, store, fake_embedder)
    assert (report.files, report.pages, report.unchanged, report.failed) == (2, 5, 0, [])
    assert report.chunks == store.count(COURSE) == len(fake_embedder.embedded) > 5
    infos = {info.source: info for info in store.sources(COURSE)}
    assert sorted(infos) == ["inertia.pdf", "week2/entropy.pdf"]
    assert infos["inertia.pdf"].pages == 3
    chunk = store.chunks(COURSE, "week2/entropy.pdf")[0]
    assert (chunk.page_start, chunk.index, len(chunk.file_hash)) == (1, 0, 64)


def test_second_run_of_unchanged_files_writes_and_embeds_nothing(course_dir, store, fake_embedder):
    run(course_dir, store, fake_embedder)
    before, embedded = snapshot(store), len(fake_embedder.embedded)
    report = run(course_dir, store, fake_embedder)
    assert (report.unchanged, report.chunks, report.pages, report.ingested) == (2, 0, 0, 0)
    assert len(fake_embedder.embedded) == embedded
    assert snapshot(store) == before


def test_forced_run_ingests_unchanged_files_again_under_new_settings(course_dir, store, fake_embedder):
    run(course_dir, store, fake_embedder)
    chunks = store.count(COURSE)
    report = ingest_paths([course_dir], COURSE, store, fake_embedder, **{**SETTINGS, "chunk_tokens": 16},
                          force=True)
    assert (report.unchanged, report.ingested) == (0, 2)
    assert store.count(COURSE) > chunks and len(store.sources(COURSE)) == 2


def test_changed_file_is_replaced_without_stale_or_duplicate_chunks(course_dir, store, fake_embedder):
    run(course_dir, store, fake_embedder)
    old_hash = {i.source: i.file_hash for i in store.sources(COURSE)}["inertia.pdf"]
    pdfs.text_pdf(course_dir / "inertia.pdf", lecture("momentum", pages=2))
    report = run(course_dir, store, fake_embedder)
    assert (report.files, report.unchanged, report.pages) == (2, 1, 2)
    chunks = store.chunks(COURSE, "inertia.pdf")
    assert len(chunks) == report.chunks and store.count(COURSE) == len(store.chunks(COURSE))
    assert {c.file_hash for c in chunks} != {old_hash} and len({c.file_hash for c in chunks}) == 1
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert all("inertia" not in c.text and c.page_end <= 2 for c in chunks)
    hits = Retriever(store, fake_embedder).search(COURSE, "inertia idea explained", k=50)
    assert all("inertia" not in hit.text for hit in hits)


def test_bad_files_are_reported_per_file_while_good_ones_are_ingested(tmp_path, store, fake_embedder):
    folder = tmp_path / "mixed"
    pdfs.text_pdf(folder / "good.pdf", lecture("waves"))
    makers = [pdfs.empty_pdf, pdfs.not_a_pdf, pdfs.truncated_pdf, pdfs.corrupt_pdf, pdfs.encrypted_pdf,
              pdfs.image_only_pdf]
    for make in makers:
        make(folder / f"{make.__name__}.pdf")
    report = run([folder, tmp_path / "missing.pdf"], store, fake_embedder)
    failed = {failure.path.name: failure.reason for failure in report.failed}
    assert sorted(failed) == sorted([f"{make.__name__}.pdf" for make in makers] + ["missing.pdf"])
    assert "encrypted" in failed["encrypted_pdf.pdf"] and "truncated" in failed["truncated_pdf.pdf"]
    assert "does not exist" in failed["missing.pdf"]
    assert (report.files, report.ingested) == (8, 1)
    assert [info.source for info in store.sources(COURSE)] == ["good.pdf"]


def test_a_stored_file_overwritten_by_a_broken_copy_keeps_its_stored_version(
        course_dir, store, fake_embedder):
    run(course_dir, store, fake_embedder)
    before = snapshot(store)
    pdfs.truncated_pdf(course_dir / "inertia.pdf")
    report = run(course_dir, store, fake_embedder)
    assert [f.path.name for f in report.failed] == ["inertia.pdf"] and report.unchanged == 1
    assert snapshot(store) == before


def test_two_files_with_the_same_source_name_fail_the_second(tmp_path, store, fake_embedder):
    first = pdfs.text_pdf(tmp_path / "a" / "notes.pdf", lecture("optics"))
    second = pdfs.text_pdf(tmp_path / "b" / "notes.pdf", lecture("sound"))
    report = run([first, second], store, fake_embedder)
    assert [f.path for f in report.failed] == [second] and "also named 'notes.pdf'" in report.failed[0].reason
    assert all("optics" in c.text for c in store.chunks(COURSE))


def test_run_killed_before_the_commit_leaves_nothing_visible_and_next_run_completes(
        course_dir, store, fake_embedder, monkeypatch):
    from retrieval.store import CourseStore

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("simulated kill after the chunks were written")

    monkeypatch.setattr(CourseStore, "_write_manifest", crash)
    with pytest.raises(KeyboardInterrupt):
        run(course_dir, store, fake_embedder)
    assert store.count(COURSE) > 0  # the uncommitted chunks are there ...
    assert store.sources(COURSE) == [] and store.chunks(COURSE) == []  # ... but no reader sees them
    assert Retriever(store, fake_embedder).search(COURSE, "inertia", k=5) == []
    monkeypatch.undo()
    report = run(course_dir, store, fake_embedder)
    assert report.repaired > 0 and report.ingested == 2
    assert store.count(COURSE) == len(store.chunks(COURSE)) == report.chunks


def test_changed_file_killed_mid_replace_keeps_the_old_version_until_the_next_run(
        course_dir, store, fake_embedder, monkeypatch):
    from retrieval.store import CourseStore

    run(course_dir, store, fake_embedder)
    before = snapshot(store)[:2]
    pdfs.text_pdf(course_dir / "inertia.pdf", lecture("momentum"))
    monkeypatch.setattr(CourseStore, "_write_manifest", lambda *a, **k: (_ for _ in ()).throw(SystemExit(9)))
    with pytest.raises(SystemExit):
        run(course_dir, store, fake_embedder)
    assert snapshot(store)[:2] == before  # readers still see exactly the old version
    monkeypatch.undo()
    report = run(course_dir, store, fake_embedder)
    assert (report.ingested, report.unchanged) == (1, 1)
    assert all("momentum" in c.text for c in store.chunks(COURSE, "inertia.pdf"))
    assert store.count(COURSE) == len(store.chunks(COURSE))


def test_run_killed_after_the_commit_hides_old_chunks_and_next_run_removes_them(
        course_dir, store, fake_embedder, monkeypatch):
    from chromadb.api.models.Collection import Collection

    run(course_dir, store, fake_embedder)
    pdfs.text_pdf(course_dir / "inertia.pdf", lecture("momentum"))
    monkeypatch.setattr(Collection, "delete", lambda *a, **k: (_ for _ in ()).throw(SystemExit(9)))
    with pytest.raises(SystemExit):
        run(course_dir, store, fake_embedder)
    monkeypatch.undo()
    assert store.count(COURSE) > len(store.chunks(COURSE))  # old chunks left behind ...
    hits = Retriever(store, fake_embedder).search(COURSE, "inertia idea explained", k=50)
    assert hits and all("inertia" not in hit.text for hit in hits)  # ... never served
    report = run(course_dir, store, fake_embedder)
    assert report.repaired > 0 and report.unchanged == 2
    assert store.count(COURSE) == len(store.chunks(COURSE))


def test_ingesting_with_another_embedding_model_is_refused_before_any_write(course_dir, store, fake_embedder):
    from retrieval import EmbedderMismatchError

    run(course_dir, store, fake_embedder)
    before = snapshot(store)
    other = HashingEmbedder()
    other.name = "another-model"
    pdfs.text_pdf(course_dir / "new.pdf", lecture("optics"))
    with pytest.raises(EmbedderMismatchError, match="indexed with the embedding model 'hashing-fake'"):
        run(course_dir, store, other)
    assert snapshot(store) == before and other.embedded == []


def test_embed_in_batches_returns_each_texts_vector_in_input_order(fake_embedder, monkeypatch):
    import ingest.run
    from ingest.progress import IngestProgress
    from ingest.run import IngestContext, embed_in_batches

    monkeypatch.setattr(ingest.run, "EMBED_BATCH", 3)
    texts = [f"text {'long ' * (n % 4)}number {n}" for n in range(10)]
    context = IngestContext("c-1", None, fake_embedder, None, IngestProgress(1, enabled=False), None)
    assert embed_in_batches(context, texts) == HashingEmbedder().embed(texts)


def test_contents_pages_are_left_out_and_other_pages_keep_their_numbers(tmp_path, store, fake_embedder):
    entries = [f"{n} Topic number {n} . . . . . . . . . . . {n * 3}" for n in range(1, 9)]
    contents = "\n".join(["Contents", *entries])
    pdf = pdfs.text_pdf(tmp_path / "notes.pdf", [contents, "Entropy of an isolated system never decreases."])
    ingest_paths([pdf], "physics", store, fake_embedder)
    chunks = store.chunks("physics")
    assert [(c.text, c.page_start) for c in chunks] == [("Entropy of an isolated system never decreases.", 2)]
