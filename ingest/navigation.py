"""Leave out the pages that only point elsewhere: a table of contents, a back-of-book index.

Such a page holds no answer but every heading's words, so it wins searches for them: asked "What is
the Hall effect?", the physics notes' search ranked "2 Generic Hall effect and Hall coefficient . . . 2"
first and the tutor quoted it; 62 of 220 answers to Think Python's glossary questions cited its
contents or index pages. A page is one when most of its lines are entries: a title with dotted
leaders to a page number ("1.4 Arithmetic operators . . . . 3"), an index term with its pages
("docstring, 43, 44, 176"), or a numbered title ending in its page ("2 Fourier transforms 4").
Its entries and short lines go (`prose_lines`); a line of prose on it (eight words or more) stays.
The page itself stays, empty or not, so every other page keeps its number.
"""

from __future__ import annotations

import re

LEADER_ENTRY = re.compile(r"(?:\.\s?){5,}\s*[\w,–-][\w,– -]{0,23}$")  # ". . . . 3", ". . . .112, 120"
INDEX_PAGES = r"(?:\d+|[ivxlc]+)(?:[–-]\d+)?"  # "43", "xii", "212-214"
INDEX_ENTRY = re.compile(rf"^\D.*?,\s*{INDEX_PAGES}(?:,\s*{INDEX_PAGES})*,?$")  # "docstring, 43, 44, 176"
# An index entry's wrapped rest ("133, 145,").
INDEX_PAGE_LIST = re.compile(rf"^{INDEX_PAGES}(?:,\s*{INDEX_PAGES})*,$")
NUMBERED_ENTRY = re.compile(r"^(?:\d+(?:\.\d+)*\.?|[A-Z])\s+[^\W\d_][^=+<>]*\s(?:\d+|[ivxlc]+)$")
# A page is navigation when at least this many of its lines, and this share of them, are entries.
MIN_ENTRIES, MIN_ENTRY_SHARE = 4, 0.5
MIN_PROSE_WORDS = 8  # a line of this many words (with letters), no entry, is kept on a navigation page


def is_entry(line: str) -> bool:
    """Whether ``line`` is an entry of a table of contents or an index."""
    return bool(LEADER_ENTRY.search(line) or INDEX_ENTRY.match(line) or INDEX_PAGE_LIST.match(line)
                or NUMBERED_ENTRY.match(line))


def is_navigation(text: str) -> bool:
    """Whether a cleaned page is a table of contents or an index page (its first line, often a running
    header, not counted)."""
    lines = [line for line in text.split("\n")[1:] if line.strip()]
    entries = sum(map(is_entry, lines))
    return entries >= MIN_ENTRIES and entries >= MIN_ENTRY_SHARE * len(lines)


def prose_lines(text: str) -> str:
    """What is kept of a navigation page: its lines of prose, not its entries nor its short lines."""
    return "\n".join(line for line in text.split("\n") if not is_entry(line)
                     and sum(any(map(str.isalpha, word)) for word in line.split()) >= MIN_PROSE_WORDS)
