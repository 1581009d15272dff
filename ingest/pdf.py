"""Read the text of each page of a PDF with pypdf, refusing files it cannot read honestly.

Each refusal is a ``PDFError`` subclass naming the file, the reason and the fix, so the
ingestion run can report it on one line and go on with the other files. Large files are
read by several processes at once: pypdf is pure Python and single-threaded, and text
extraction is most of the cost of ingesting a book.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

logger = logging.getLogger(__name__)

PDF_MAGIC = b"%PDF-"
# A complete PDF ends with %%EOF; some writers append a little padding after it.
EOF_MARKER, EOF_TAIL_BYTES = b"%%EOF", 4096
PAGES_PER_TASK = 16
# Resource limits for hostile files (a flate bomb, a huge page tree). pypdf raises LimitReachedError
# past them; they are set here, not left to pypdf's defaults, so they hold across pypdf versions.
MAX_PAGES = 10_000
MIB = 1 << 20
PYPDF_LIMITS = {
    "zlib_maximum_output_length": 64 * MIB,  # per stream; a 1,000-page book's largest is under 1 MiB
    "lzw_maximum_output_length": 64 * MIB,
    "run_length_maximum_output_length": 64 * MIB,
    "stream_decoding_work_maximum_length": 256 * MIB,
    "page_tree_maximum_entries": 4 * MAX_PAGES,
    "page_tree_maximum_depth": 100,
}


class PDFError(Exception):
    """A file that cannot be ingested; ``reason`` is one sentence saying why and what to do."""

    def __init__(self, path: str | Path, reason: str):
        self.path, self.reason = Path(path), reason
        super().__init__(f"{path}: {reason}")

    def __reduce__(self):
        # Rebuilt from (path, reason) when it crosses from a worker process.
        return type(self), (self.path, self.reason)


class EmptyPDFError(PDFError):
    """The file has zero bytes."""


class NotAPDFError(PDFError):
    """The file does not start with the PDF signature."""


class CorruptPDFError(PDFError):
    """The file is truncated or its structure cannot be parsed."""


class EncryptedPDFError(PDFError):
    """The file needs a password to be read."""


class NoTextLayerError(PDFError):
    """No page has extractable text: a scan or images only."""


class PDFLimitError(PDFError):
    """Reading the file would pass a resource limit: too many pages, a stream that inflates too far,
    objects nested too deep."""


@contextmanager
def pdf_limits() -> Iterator[None]:
    """pypdf runs with ``PYPDF_LIMITS`` inside this block (the setting is per thread and process)."""
    from pypdf import apply_configuration

    with apply_configuration(**PYPDF_LIMITS):
        yield


def limit_reason(what: str, error: BaseException) -> str:
    return (f"{what} passes a safety limit ({type(error).__name__}: {error}); the file may be damaged or "
            "malicious. Export or print it to a new PDF and ingest that.")


def check_signature(path: Path) -> None:
    """Refuse empty files, non-PDFs and truncated PDFs from their first and last bytes."""
    size = path.stat().st_size
    if size == 0:
        raise EmptyPDFError(path, "the file is empty (0 bytes); copy it again from its source.")
    with path.open("rb") as handle:
        head = handle.read(1024)
        handle.seek(max(0, size - EOF_TAIL_BYTES))
        tail = handle.read()
    if PDF_MAGIC not in head:
        raise NotAPDFError(path, "the file is not a PDF (it does not start with %PDF-); "
                                 "export it to PDF first.")
    if EOF_MARKER not in tail:
        raise CorruptPDFError(path, "the PDF is truncated (it has no %%EOF marker at its end); "
                                    "download or copy it again.")


@lru_cache(maxsize=4)
def _open_reader(path: str, size: int, mtime_ns: int):
    """A pypdf reader, cached per file version so page-range tasks reuse one parse."""
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError, LimitReachedError, PyPdfError

    try:
        reader = PdfReader(path, strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            raise EncryptedPDFError(path, "the PDF is encrypted with a password; save an unencrypted "
                                          "copy (e.g. `qpdf --decrypt`) and ingest that.")
        len(reader.pages)  # parses the page tree: a broken one fails here, not later
    except (LimitReachedError, RecursionError, MemoryError) as error:
        raise PDFLimitError(path, limit_reason("the PDF's structure", error)) from None
    except (FileNotDecryptedError, DependencyError) as error:
        raise EncryptedPDFError(path, f"the PDF is encrypted and cannot be opened ({error}); save an "
                                      "unencrypted copy (e.g. `qpdf --decrypt`) and ingest that.") from None
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError) as error:
        raise CorruptPDFError(path, f"the PDF is corrupt and pypdf cannot read it ({error}); "
                                    "repair it (e.g. `qpdf in.pdf out.pdf`) or export it again.") from None
    return reader


def open_reader(path: Path):
    stat = path.stat()
    with pdf_limits():
        return _open_reader(str(path), stat.st_size, stat.st_mtime_ns)


def extract_page_range(path: str, start: int, stop: int) -> list[str]:
    """Text of pages ``start`` to ``stop - 1`` (0-based); runs in worker processes too."""
    from pypdf.errors import LimitReachedError

    reader = open_reader(Path(path))
    texts = []
    for number in range(start, stop):
        try:
            with pdf_limits():
                texts.append(reader.pages[number].extract_text() or "")
        except (LimitReachedError, RecursionError, MemoryError) as error:
            raise PDFLimitError(path, limit_reason(f"page {number + 1}", error)) from None
        except Exception as error:  # pypdf raises many types on broken content streams
            raise CorruptPDFError(path, f"page {number + 1} cannot be read ({type(error).__name__}: "
                                        f"{error}); repair the PDF or export it again.") from None
    return texts


def page_count(path: Path) -> int:
    """Validate ``path`` as a readable PDF and return how many pages it has."""
    check_signature(path)
    pages = len(open_reader(path).pages)
    if pages > MAX_PAGES:
        raise PDFLimitError(path, f"the PDF has {pages} pages, more than the {MAX_PAGES} this tutor reads "
                                  "from one file; split it into parts (e.g. `qpdf --split-pages=1000`).")
    return pages


def read_pages(path: str | Path, *, pool: Executor | None = None) -> list[str]:
    """The text of every page of ``path``, in order (index 0 is page 1).

    Args:
        path: the PDF file.
        pool: optional process pool; files with more than ``PAGES_PER_TASK`` pages are
            then read in page ranges in parallel.

    Raises:
        PDFError: a subclass saying why the file cannot be ingested.
    """
    path = Path(path)
    pages = page_count(path)
    if pool is None or pages <= PAGES_PER_TASK:
        texts = extract_page_range(str(path), 0, pages)
    else:
        starts = range(0, pages, PAGES_PER_TASK)
        stops = [min(start + PAGES_PER_TASK, pages) for start in starts]
        ranges = pool.map(extract_page_range, [str(path)] * len(starts), starts, stops)
        texts = [text for block in ranges for text in block]
    if not any(text.strip() for text in texts):
        raise NoTextLayerError(path, f"the PDF has no text layer on any of its {pages} pages (it looks "
                                     "scanned or image-only); run OCR on it (e.g. `ocrmypdf`) and ingest "
                                     "the result.")
    return texts


def page_reader_pool(workers: int | None = None) -> ProcessPoolExecutor | None:
    """A process pool for reading large PDFs, or None on a single core.

    Workers are forked where the platform can (as PyTorch's DataLoader does): they only run pypdf,
    start in milliseconds, and, unlike spawned ones, do not re-run the caller's unguarded script.
    """
    workers = workers or min(4, os.cpu_count() or 1)
    if workers < 2:
        return None
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context(method))
