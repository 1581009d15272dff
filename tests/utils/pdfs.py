"""PDF factories for ingestion tests: good PDFs with known page text, and each kind of bad one."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

# A fixed date: the same pages give the same bytes, so tests can reason about content hashes.
FIXED_DATE = datetime(2025, 1, 1, tzinfo=UTC)


def text_pdf(path: Path, pages: list[str]) -> Path:
    """A PDF with one page per string, each string set as wrapped body text."""
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_creation_date(FIXED_DATE)
    pdf.set_font("Helvetica", size=11)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 6, text)
    path.parent.mkdir(parents=True, exist_ok=True)
    pdf.output(str(path))
    return path


def truncated_pdf(path: Path) -> Path:
    """A real PDF cut off in the middle, as an interrupted download leaves it."""
    full = text_pdf(path.with_suffix(".full.pdf"), ["A page that will be cut off. " * 20] * 3)
    data = full.read_bytes()
    full.unlink()
    path.write_bytes(data[: len(data) // 2])
    return path


def encrypted_pdf(path: Path, password: str = "secret") -> Path:
    """A PDF that needs a user password to open (RC4, which pypdf writes without extra packages)."""
    from pypdf import PdfReader, PdfWriter

    plain = text_pdf(path.with_suffix(".plain.pdf"), ["Confidential lecture notes on entropy."])
    writer = PdfWriter(clone_from=PdfReader(plain))
    writer.encrypt(user_password=password, owner_password=password + "-owner", algorithm="RC4-128")
    with path.open("wb") as handle:
        writer.write(handle)
    plain.unlink()
    return path


def image_only_pdf(path: Path, pages: int = 2) -> Path:
    """A 'scanned' PDF: each page is a picture of text lines, with no text layer."""
    from fpdf import FPDF
    from PIL import Image, ImageDraw

    pdf = FPDF(format="A4")
    pdf.set_creation_date(FIXED_DATE)
    for _ in range(pages):
        scan = Image.new("L", (400, 560), color=245)
        draw = ImageDraw.Draw(scan)
        for row in range(40, 520, 24):
            draw.rectangle((30, row, 370, row + 8), fill=40)  # lines of 'ink' where text would be
        pdf.add_page()
        pdf.image(scan, x=0, y=0, w=210, h=297)
    pdf.output(str(path))
    return path


def not_a_pdf(path: Path) -> Path:
    """A text file with a .pdf name."""
    path.write_text("These are my notes, saved as plain text with the wrong extension.\n")
    return path


def empty_pdf(path: Path) -> Path:
    """A zero-byte .pdf file."""
    path.write_bytes(b"")
    return path


def corrupt_pdf(path: Path) -> Path:
    """A file with a PDF's first and last bytes but garbage in between."""
    path.write_bytes(b"%PDF-1.7\n" + bytes(range(256)) * 8 + b"\ntrailer\n<< /Root 99 0 R >>\n%%EOF\n")
    return path
