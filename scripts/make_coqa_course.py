"""Typeset CoQA stories as a course PDF and write a conversation file, for follow-up questions.

Each story of ``../shared/data/grounded/coqa.jsonl`` starts a new page (and runs over as many as
it needs); every turn of its conversation becomes one line of the conversation file, with the
story's pages as gold pages and the earlier turns, with their true answers, as ``history``::

    .venv/bin/python -m scripts.make_coqa_course --output out/coqa-course --stories 80
    # or only the stories of the grounded data builder's dev split (never trained on):
    .venv/bin/python -m scripts.make_coqa_course --output out/coqa-dev --dev-split runs/grounded/sft_dev.jsonl
    tutor ingest out/coqa-course/coqa-course.pdf --course coqa-dev
    tutor eval retrieval out/coqa-course/coqa-course-conversations.jsonl --course coqa-dev

A line follows ``tutor eval retrieval``'s and ``tutor eval answers``' schema: ``question``,
``source``, ``page``, ``page_end``, ``id``, ``turn`` (1-based), ``history`` (``[{"role": "user",
"content": ...}, {"role": "assistant", "content": ...}, ...]``) and ``answers``.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from scripts.typeset import find_font, new_pdf, write_section, write_title

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
COQA = REPO.parent / "shared" / "data" / "grounded" / "coqa.jsonl"
PDF_NAME = "coqa-course.pdf"
CONVERSATIONS_NAME = "coqa-course-conversations.jsonl"


def read_stories(path: Path, limit: int | None = None) -> list[dict]:
    """The first ``limit`` stories (all when None): ``{id, source, story, turns: [{question, answers}]}``."""
    stories = []
    with path.open() as handle:
        for line in handle:
            if line.strip():
                stories.append(json.loads(line))
            if limit is not None and len(stories) >= limit:
                break
    return stories


def conversation_lines(story: dict, source: str, pages: tuple[int, int]) -> list[dict]:
    """One line per turn; each turn's history holds the earlier questions and their first reference answer."""
    lines, history = [], []
    for turn, item in enumerate(story["turns"], start=1):
        answers = [a for a in item["answers"] if a.strip()]
        lines.append({"id": f"{story['id']}-{turn}", "question": item["question"], "answers": answers,
                      "source": source, "page": pages[0], "page_end": pages[1], "turn": turn,
                      "history": list(history)})
        history += [{"role": "user", "content": item["question"]},
                    {"role": "assistant", "content": answers[0] if answers else ""}]
    return lines


def typeset(stories: list[dict], font: Path):
    """The course PDF (a new page per story) and the conversation lines of every story."""
    pdf = new_pdf(font)
    lines = []
    for number, story in enumerate(stories, start=1):
        write_title(pdf, f"Reading {number}")
        pages = write_section(pdf, f"Source: {story['source']}", story["story"])
        lines += conversation_lines(story, PDF_NAME, pages)
    return pdf, lines


def write_outputs(pdf, lines: list[dict], folder: Path) -> None:
    """The PDF and the conversation file (one JSON line per turn) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    pdf.output(str(folder / PDF_NAME))
    with (folder / CONVERSATIONS_NAME).open("w") as handle:
        handle.writelines(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--coqa", type=Path, default=COQA, help="CoQA rows: id, source, story, turns.")
    parser.add_argument("--output", type=Path, default=REPO / "out" / "coqa-course")
    parser.add_argument("--stories", type=int, default=None, help="Only the first N stories (default all).")
    parser.add_argument("--font", type=Path, default=None, help="A .ttf font (default: DejaVu Sans).")
    parser.add_argument("--dev-split", type=Path, default=None,
                        help="The grounded data builder's sft_dev.jsonl: only its stories, never trained on "
                             "(the tutor model's CoQA dev set).")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    stories = read_stories(args.coqa, None if args.dev_split else args.stories)
    if args.dev_split is not None:
        dev = {json.loads(line)["group"] for line in args.dev_split.open() if line.strip()}
        stories = [story for story in stories if f"coqa:{story['id']}" in dev][:args.stories]
    pdf, lines = typeset(stories, find_font(args.font))
    write_outputs(pdf, lines, args.output)
    logger.info("Wrote %s (%d pages) and %d turns with their gold pages and history to %s.", PDF_NAME,
                pdf.page_no(), len(lines), args.output)


if __name__ == "__main__":
    main()
