"""`tutor ingest`, `courses`, `sources`, `remove` through the real CLI, with a fake embedder."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from retrieval import CourseStore
from retrieval.store import SourceNotFoundError
from tests.utils import pdfs
from tests.utils.embedding import HashingEmbedder


@pytest.fixture
def tutor(tmp_path, monkeypatch):
    """Invoke `tutor ...` against an index in tmp_path; returns (exit code, stdout, stderr)."""
    import cli.ingest_commands
    from app.settings import get_settings
    from cli.main import app

    for name in ("TUTOR_CHROMA_PATH", "TUTOR_CHROMA_URL", "TUTOR_EMBEDDER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TUTOR_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(cli.ingest_commands, "open_embedder", lambda settings: HashingEmbedder())
    get_settings.cache_clear()
    runner = CliRunner()

    def invoke(*args: str):
        result = runner.invoke(app, list(args), env={"COLUMNS": "400"})  # no wrapped messages
        return result.exit_code, result.stdout, result.stderr

    yield invoke
    get_settings.cache_clear()


def test_ingest_reports_a_summary_and_courses_lists_the_course(tutor, tmp_path):
    pdfs.text_pdf(tmp_path / "c" / "waves.pdf", ["Waves carry energy. " * 30, "Sound is a wave. " * 30])
    code, out, _ = tutor("ingest", str(tmp_path / "c"), "--course", "waves-101", "--no-progress")
    assert code == 0, out
    assert "files" in out and "chunks" in out
    code, out, _ = tutor("courses")
    assert code == 0 and out.startswith("waves-101\t1 files\t")
    assert "\tlexical index " in out and " MiB, built in " in out
    code, out, _ = tutor("sources", "--course", "waves-101")
    assert code == 0 and out.startswith("waves.pdf\t2 pages\t")


def test_ingest_exits_non_zero_with_one_line_per_failed_file(tutor, tmp_path):
    folder = tmp_path / "c"
    pdfs.text_pdf(folder / "good.pdf", ["Optics is about light. " * 20])
    pdfs.encrypted_pdf(folder / "locked.pdf")
    pdfs.empty_pdf(folder / "empty.pdf")
    code, out, err = tutor("ingest", str(folder), "--course", "optics", "--no-progress")
    assert code == 1
    failed = [line for line in err.splitlines() if line.startswith("FAILED ")]
    assert len(failed) == 2
    assert any("locked.pdf: the PDF is encrypted" in line for line in failed)
    assert any("empty.pdf: the file is empty" in line for line in failed)
    assert tutor("sources", "--course", "optics")[1].startswith("good.pdf\t")


def test_ingest_refuses_bad_chunk_settings_and_course_names(tutor, tmp_path):
    path = pdfs.text_pdf(tmp_path / "a.pdf", ["text"])
    code, out, err = tutor("ingest", str(path), "--course", "c1x", "--chunk-tokens", "50",
                           "--chunk-overlap", "60")
    assert code == 2 and "TUTOR_CHUNK_OVERLAP must be smaller" in out + err
    code, out, err = tutor("ingest", str(path), "--course", "c1x", "--chunk-tokens", "400")
    assert code == 2 and "exceeds what the embedding model reads" in out + err
    code, out, err = tutor("ingest", str(path), "--course", "no spaces allowed")
    assert code == 2 and "Invalid course name" in out + err


def test_remove_a_source_then_the_course(tutor, tmp_path):
    pdfs.text_pdf(tmp_path / "c" / "a.pdf", ["Alpha decay. " * 20])
    pdfs.text_pdf(tmp_path / "c" / "b.pdf", ["Beta decay. " * 20])
    assert tutor("ingest", str(tmp_path / "c"), "--course", "nuclear", "--no-progress")[0] == 0
    store = CourseStore(path=tmp_path / "data" / "chroma")
    assert store.source_file("nuclear", "a.pdf").content == (tmp_path / "c" / "a.pdf").read_bytes()
    code, out, _ = tutor("remove", "--course", "nuclear", "--source", "a.pdf")
    assert code == 0 and "Removed a.pdf" in out
    assert tutor("sources", "--course", "nuclear")[1].startswith("b.pdf\t")
    with pytest.raises(SourceNotFoundError):
        store.source_file("nuclear", "a.pdf")
    assert store.source_file("nuclear", "b.pdf").content == (tmp_path / "c" / "b.pdf").read_bytes()
    code, _, err = tutor("remove", "--course", "nuclear", "--source", "a.pdf")
    assert code == 1 and "has no source 'a.pdf'" in err
    assert tutor("remove", "--course", "nuclear")[0] == 0
    assert store.client.list_collections() == []  # the course's kept files went with it
    code, _, err = tutor("sources", "--course", "nuclear")
    assert code == 1 and "Unknown course 'nuclear'" in err
