"""Definition questions on Think Python, each with its glossary definition and the book page holding it.

Students ask "What is a tuple?" far more than the factoid questions of SQuAD, CoQA and SciQ, and a short
span ("values") is no answer to them. ``../shared/data/pdfs/Think_Python_Glossary_by_Chapter.pdf`` lists
the book's terms with their definitions, which the chapters of ``thinkpython2.pdf`` print word for word;
each term becomes a question ("What is a tuple?" or "What does tuple mean?", alternating) whose reference
answer is the definition and whose gold page is the book page where the definition is printed::

    .venv/bin/python -m scripts.make_glossary_questions --output out/glossary
    tutor ingest ../shared/data/pdfs/thinkpython2.pdf --course thinkpython
    tutor eval answers out/glossary/thinkpython-definitions.jsonl --course thinkpython

Terms whose definition is found on no page (or on several) are left out and counted in the log.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
from pathlib import Path

from ingest.clean import clean_text
from ingest.pdf import read_pages

logger = logging.getLogger(__name__)

PDFS = Path(__file__).resolve().parents[2] / "shared" / "data" / "pdfs"
GLOSSARY = PDFS / "Think_Python_Glossary_by_Chapter.pdf"
BOOK = PDFS / "thinkpython2.pdf"
QUESTIONS_NAME = "thinkpython-definitions.jsonl"
# An entry: a term, a colon, then its definition up to the next entry (a chapter's heading is one, left out).
ENTRY = re.compile(r"^(?!Chapter \d)([A-Za-z][\w .'()-]{0,40}):\s+(.+?)(?=^[A-Za-z][\w .'()-]{0,40}:\s|\Z)",
                   re.MULTILINE | re.DOTALL)
WORDS_MATCHED = 8  # a definition is found on a page holding its first words in a row


def glossary_entries(pages: list[str]) -> list[tuple[str, str]]:
    """(term, definition) pairs of the glossary's pages, in order, definitions on one line."""
    text = "\n".join(re.sub(r"^\s*\d+\s*$", "", page, flags=re.MULTILINE) for page in pages)
    return [(term.strip(), " ".join(definition.replace("``", '"').replace("''", '"').split()))
            for term, definition in ENTRY.findall(text)]


def squeezed(text: str) -> str:
    """Letters and digits only, lower-cased: the book's line breaks, hyphens and quotes do not matter."""
    return re.sub(r"[^a-z0-9]", "", text.lower())


def gold_page(definition: str, book_pages: list[str]) -> int | None:
    """The one page (1-based) holding the definition's first words, or None (on none or several)."""
    opening = squeezed(" ".join(definition.split()[:WORDS_MATCHED]))
    found = [number for number, page in enumerate(book_pages, start=1) if opening in page]
    return found[0] if len(found) == 1 else None


def question_for(term: str, index: int) -> str:
    """Alternately "What is a(n) TERM?" ("What is TERM?" for a process: "problem solving", "analysis of
    algorithms") and "What does TERM mean?", as students ask."""
    if index % 2:
        return f"What does {term} mean?"
    if term.endswith("ing") or " of " in term:
        return f"What is {term}?"
    return f"What is {'an' if term[0].lower() in 'aeiou' else 'a'} {term}?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, required=True, help="folder for the questions file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    entries = glossary_entries(read_pages(GLOSSARY))
    book_pages = [squeezed(clean_text(page)) for page in read_pages(BOOK)]
    rows, unplaced = [], 0
    for index, (term, definition) in enumerate(entries):
        page = gold_page(definition, book_pages)
        if page is None:
            unplaced += 1
            continue
        rows.append({"id": f"glossary-{index}", "question": question_for(term, index), "term": term,
                     "answers": [definition], "source": BOOK.name, "page": page, "page_end": page})
    args.output.mkdir(parents=True, exist_ok=True)
    path = args.output / QUESTIONS_NAME
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    logger.info("%d glossary terms: %d questions written to %s, %d left out (definition on no single page).",
                len(entries), len(rows), path, unplaced)


if __name__ == "__main__":
    main()
