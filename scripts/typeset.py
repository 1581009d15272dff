"""Typesetting shared by the scripts that turn a QA set into a course PDF with gold pages.

``make_squad_course.py`` and ``make_coqa_course.py`` both write passages as numbered sections of
one A4 PDF with a fixed creation date (so the same rows give the same bytes) and a TrueType font
(PDF core fonts stop at Latin-1); the page span each section ends up on is its gold pages.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fpdf import FPDF

FIXED_DATE = datetime(2025, 1, 6, 9, 0, 0, tzinfo=UTC)
FONTS = [Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")]
FONT_NAME = "DejaVu"


def find_font(given: Path | None) -> Path:
    """A TrueType font covering the sets' accents and symbols: ``given``, else DejaVu Sans."""
    candidates = [given] if given else list(FONTS)
    try:
        import matplotlib

        candidates.append(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf")
    except ImportError:
        pass
    for candidate in candidates:
        if candidate and candidate.is_file():
            return candidate
    raise FileNotFoundError("No DejaVuSans.ttf found; install fonts-dejavu or pass --font PATH to a .ttf.")


def new_pdf(font: Path) -> FPDF:
    """An empty A4 document with ``font`` registered and a reproducible creation date."""
    from fpdf import FPDF

    logging.getLogger("fontTools").setLevel(logging.WARNING)  # one line per subset table otherwise
    pdf = FPDF(format="A4")
    pdf.set_creation_date(FIXED_DATE)
    pdf.add_font(FONT_NAME, fname=str(font))
    pdf.set_auto_page_break(True, margin=18)
    return pdf


def write_title(pdf: FPDF, title: str) -> None:
    """A chapter title at the top of a new page."""
    pdf.add_page()
    pdf.set_font(FONT_NAME, size=16)
    pdf.multi_cell(0, 9, title, new_x="LMARGIN", new_y="NEXT")


def write_section(pdf: FPDF, heading: str, text: str) -> tuple[int, int]:
    """A heading and its passage where the document stands; returns the (first, last) 1-based pages."""
    start = pdf.page_no()
    pdf.set_font(FONT_NAME, size=12)
    pdf.multi_cell(0, 7, heading, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FONT_NAME, size=10.5)
    pdf.multi_cell(0, 5.5, text, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    return start, pdf.page_no()
