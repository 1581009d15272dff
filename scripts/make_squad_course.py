"""Typeset SQuAD passages as a course PDF and write each question's gold page, for retrieval tuning.

A second development course beside ``../shared/data/courses/sciq-dev`` (a default must hold on
both): each article of ``../shared/data/grounded/squad.jsonl`` becomes a chapter, each of its
passages a numbered section, and every question gets the pages its passage covers::

    .venv/bin/python scripts/make_squad_course.py --output out/squad-course
    tutor ingest out/squad-course/squad-course.pdf --course squad-dev
    tutor eval retrieval out/squad-course/squad-course-questions.jsonl --course squad-dev

The questions file follows ``tutor eval retrieval``'s schema: ``question``, ``source``, ``page``,
``page_end`` (and ``id``, ``answers``).
"""

from __future__ import annotations

import argparse
import json
import logging
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
SQUAD = REPO.parent / "shared" / "data" / "grounded" / "squad.jsonl"
PDF_NAME = "squad-course.pdf"
QUESTIONS_NAME = "squad-course-questions.jsonl"
FIXED_DATE = datetime(2025, 1, 6, 9, 0, 0, tzinfo=UTC)
FONTS = [Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")]


def read_articles(path: Path) -> dict[str, dict[str, list[dict]]]:
    """title -> passage text -> its questions, in the order of the file."""
    articles: dict[str, dict[str, list[dict]]] = defaultdict(dict)
    with path.open() as handle:
        for line in handle:
            row = json.loads(line)
            articles[row["title"]].setdefault(row["context"], []).append(row)
    return articles


def find_font(given: Path | None) -> Path:
    """A TrueType font covering SQuAD's accents and symbols (PDF core fonts stop at Latin-1)."""
    candidates = [given] if given else FONTS
    try:
        import matplotlib

        candidates.append(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf")
    except ImportError:
        pass
    for candidate in candidates:
        if candidate and candidate.is_file():
            return candidate
    raise FileNotFoundError("No DejaVuSans.ttf found; install fonts-dejavu or pass --font PATH to a .ttf.")


def typeset(articles: dict[str, dict[str, list[dict]]], font: Path):
    """The course PDF and one gold record per question (pages of its passage, 1-based)."""
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_creation_date(FIXED_DATE)
    pdf.add_font("DejaVu", fname=str(font))
    pdf.set_auto_page_break(True, margin=18)
    gold, section = [], 0
    for title, passages in articles.items():
        pdf.add_page()
        pdf.set_font("DejaVu", size=16)
        pdf.multi_cell(0, 9, title.replace("_", " "), new_x="LMARGIN", new_y="NEXT")
        for context, questions in passages.items():
            section += 1
            start = pdf.page_no()
            pdf.set_font("DejaVu", size=12)
            pdf.multi_cell(0, 7, f"Section {section}", new_x="LMARGIN", new_y="NEXT")
            pdf.set_font("DejaVu", size=10.5)
            pdf.multi_cell(0, 5.5, context, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(3)
            gold += [{"id": q["id"], "question": q["question"], "answers": q["answers"], "source": PDF_NAME,
                      "page": start, "page_end": pdf.page_no(), "section": section} for q in questions]
    return pdf, gold


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--squad", type=Path, default=SQUAD, help="SQuAD rows: title, context, question.")
    parser.add_argument("--output", type=Path, default=REPO / "out" / "squad-course")
    parser.add_argument("--font", type=Path, default=None, help="A .ttf font (default: DejaVu Sans).")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("fontTools").setLevel(logging.WARNING)  # one line per subset table otherwise
    pdf, gold = typeset(read_articles(args.squad), find_font(args.font))
    args.output.mkdir(parents=True, exist_ok=True)
    pdf.output(str(args.output / PDF_NAME))
    with (args.output / QUESTIONS_NAME).open("w") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in gold)
    logger.info("Wrote %s (%d pages) and %d questions with their gold pages to %s.", PDF_NAME, pdf.page_no(),
                len(gold), args.output)


if __name__ == "__main__":
    main()
