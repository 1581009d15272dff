"""Reading PDFs: page text in order, and one clear error per kind of bad file."""

from __future__ import annotations

import pickle

import pytest

from ingest.pdf import (
    CorruptPDFError,
    EmptyPDFError,
    EncryptedPDFError,
    NotAPDFError,
    NoTextLayerError,
    PDFError,
    read_pages,
)
from tests.utils import pdfs

BAD_FILES = [
    (pdfs.empty_pdf, EmptyPDFError, "empty"),
    (pdfs.not_a_pdf, NotAPDFError, "not a PDF"),
    (pdfs.truncated_pdf, CorruptPDFError, "truncated"),
    (pdfs.corrupt_pdf, CorruptPDFError, "corrupt"),
    (pdfs.encrypted_pdf, EncryptedPDFError, "encrypted"),
    (pdfs.image_only_pdf, NoTextLayerError, "no text layer"),
]


def test_read_pages_returns_each_pages_text_in_order(tmp_path):
    path = pdfs.text_pdf(tmp_path / "notes.pdf", ["First page text.", "", "Third page text."])
    assert read_pages(path) == ["First page text.", "", "Third page text."]


@pytest.mark.parametrize(("make", "error", "words"), BAD_FILES, ids=[row[2] for row in BAD_FILES])
def test_bad_pdf_raises_an_error_naming_file_and_reason(tmp_path, make, error, words):
    path = make(tmp_path / "bad.pdf")
    with pytest.raises(error) as raised:
        read_pages(path)
    assert raised.value.path == path
    assert str(path) in str(raised.value) and words in raised.value.reason


def test_pdf_errors_survive_the_trip_back_from_a_worker_process(tmp_path):
    error = EncryptedPDFError(tmp_path / "x.pdf", "the PDF is encrypted.")
    copy = pickle.loads(pickle.dumps(error))
    assert isinstance(copy, PDFError) and (copy.path, copy.reason) == (error.path, error.reason)


def test_read_pages_with_a_process_pool_matches_a_single_process(tmp_path):
    from ingest.pdf import PAGES_PER_TASK, page_reader_pool

    texts = [f"Page {n} talks about topic number {n}." for n in range(1, 2 * PAGES_PER_TASK + 5)]
    path = pdfs.text_pdf(tmp_path / "book.pdf", texts)
    pool = page_reader_pool(workers=2)
    try:
        assert read_pages(path, pool=pool) == texts == read_pages(path)
    finally:
        pool.shutdown()
