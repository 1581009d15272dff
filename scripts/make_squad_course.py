"""Typeset SQuAD passages as a course PDF and write each question's gold page, for retrieval tuning.

A second development course beside ``../shared/data/courses/sciq-dev`` (a default must hold on
both): each article of ``../shared/data/grounded/squad.jsonl`` becomes a chapter, each of its
passages a numbered section, and every question gets the pages its passage covers::

    .venv/bin/python -m scripts.make_squad_course --output out/squad-course
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
from pathlib import Path

from scripts.typeset import find_font, new_pdf, write_section, write_title

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
SQUAD = REPO.parent / "shared" / "data" / "grounded" / "squad.jsonl"
PDF_NAME = "squad-course.pdf"
QUESTIONS_NAME = "squad-course-questions.jsonl"
DEV_QUESTIONS_NAME = "squad-course-dev-questions.jsonl"


def read_articles(path: Path) -> dict[str, dict[str, list[dict]]]:
    """title -> passage text -> its questions, in the order of the file."""
    articles: dict[str, dict[str, list[dict]]] = defaultdict(dict)
    with path.open() as handle:
        for line in handle:
            row = json.loads(line)
            articles[row["title"]].setdefault(row["context"], []).append(row)
    return articles


def typeset(articles: dict[str, dict[str, list[dict]]], font: Path):
    """The course PDF and one gold record per question (pages of its passage, 1-based)."""
    pdf = new_pdf(font)
    gold, section = [], 0
    for title, passages in articles.items():
        write_title(pdf, title.replace("_", " "))
        for context, questions in passages.items():
            section += 1
            start, end = write_section(pdf, f"Section {section}", context)
            gold += [{"id": q["id"], "question": q["question"], "answers": q["answers"], "source": PDF_NAME,
                      "page": start, "page_end": end, "section": section} for q in questions]
    return pdf, gold


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--squad", type=Path, default=SQUAD, help="SQuAD rows: title, context, question.")
    parser.add_argument("--output", type=Path, default=REPO / "out" / "squad-course")
    parser.add_argument("--font", type=Path, default=None, help="A .ttf font (default: DejaVu Sans).")
    parser.add_argument("--dev-split", type=Path, default=None,
                        help="The grounded data builder's sft_dev.jsonl: also write the questions of its dev "
                        f"articles to {DEV_QUESTIONS_NAME}, for measuring a model trained on the others.")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    pdf, gold = typeset(read_articles(args.squad), find_font(args.font))
    args.output.mkdir(parents=True, exist_ok=True)
    pdf.output(str(args.output / PDF_NAME))
    with (args.output / QUESTIONS_NAME).open("w") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in gold)
    logger.info("Wrote %s (%d pages) and %d questions with their gold pages to %s.", PDF_NAME, pdf.page_no(),
                len(gold), args.output)
    if args.dev_split is not None:
        dev_ids = {json.loads(line)["id"] for line in args.dev_split.open() if line.strip()}
        dev = [row for row in gold if row["id"] in dev_ids]
        with (args.output / DEV_QUESTIONS_NAME).open("w") as handle:
            handle.writelines(json.dumps(row) + "\n" for row in dev)
        logger.info("Wrote the %d questions of the dev split's articles to %s.", len(dev), DEV_QUESTIONS_NAME)


if __name__ == "__main__":
    main()
