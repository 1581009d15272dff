"""Repair what PDF text extraction breaks, where the repair is cheap and cannot lose words.

- Control characters (NUL included), soft hyphens and lone surrogates are dropped; ligatures such as "ﬁ"
  become plain letters (Unicode NFKC).
- A word hyphenated across a line break ("math-\\nematicians") is joined when the next line
  goes on in lower case; "Python-\\nBased" keeps its hyphen.
- Runs of spaces, tabs and odd Unicode spaces become one space; lines are trimmed and more
  than one blank line becomes one.
- Letter-spaced small-caps runs ("S PAC E T I M E", as in the physics notes) are closed
  up ("SPACETIME"); numbers and words around them keep their spaces.
"""

from __future__ import annotations

import re
import unicodedata

# C0 controls except tab and newline, DEL, C1 controls, the soft hyphen, and what UTF-8 cannot
# encode: lone surrogates (a hostile ToUnicode map yields them, and Chroma refuses them) and the
# noncharacters U+FFFE and U+FFFF.
CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u00ad\ufeff\u200b\ud800-\udfff\ufffe\uffff]")
LINE_BREAK_HYPHEN = re.compile(r"(?<=[^\W\d_])-[ \t]*\n[ \t]*(?=[a-z])")
SPACES = re.compile(r"[^\S\n]+")
BLANK_LINES = re.compile(r"\n{3,}")
# A run of pieces counts as letter-spaced when it is this long and nearly all one letter per piece.
MIN_SPACED_PIECES, MIN_SINGLE_LETTER_SHARE, MAX_PIECE_LENGTH = 5, 0.7, 3


def _is_letter_spaced(run: list[str]) -> bool:
    single = sum(len(piece) == 1 for piece in run)
    return len(run) >= MIN_SPACED_PIECES and single / len(run) >= MIN_SINGLE_LETTER_SHARE


def close_letter_spacing(line: str) -> str:
    """Close up letter-spaced runs: "S PAC E T I M E" -> "SPACETIME", "2 l o r e n t z" -> "2 lorentz".

    A run is a stretch of short all-letter pieces; other pieces (numbers, dashes, words) stay as they are.
    """
    pieces, out, run = line.split(" "), [], []
    for piece in [*line.split(" "), ""]:  # the empty piece ends the last run
        if piece and piece.isalpha() and len(piece) <= MAX_PIECE_LENGTH:
            run.append(piece)
            continue
        out.extend(["".join(run)] if _is_letter_spaced(run) else run)
        run = []
        if piece:
            out.append(piece)
    return " ".join(out) if len(out) != len(pieces) else line


def clean_text(text: str) -> str:
    """Clean one page's extracted text (see the module docstring for what changes)."""
    text = unicodedata.normalize("NFKC", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = CONTROL_CHARS.sub("", text)
    text = LINE_BREAK_HYPHEN.sub("", text)
    lines = [close_letter_spacing(SPACES.sub(" ", line).strip()) for line in text.split("\n")]
    return BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()
