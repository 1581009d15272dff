"""Pages of contents and index are left out of search; prose pages, code and number tables stay."""

from __future__ import annotations

from ingest.navigation import is_navigation, prose_lines

CONTENTS = """xiv Contents
3.8. Variables and parameters are local . . . . . . . . . . . . . . 27
3.9. Stack diagrams . . . . . . . . . . . . . . . . . . . . . . . . . 28
3.10. Fruitful functions and void functions . . . . . . . . . . . . 29
4 Case study: interface design 31
4.1. The turtle module . . . . . . . . . . . . . . . . . . . . . . . . 31
A Some useful results . . . . . . . . . . . . . . . . . . . . . . . a
P.S. These notes are updated now and then, so check the website for the latest version."""

INDEX = """256 Index
dictionary methods, 245
dbm module, 168
dispatch
type-based, 201
docstring, 43, 44, 176
debugging, 7, 8, 16, 43, 55, 71, 93, 104, 118,
133, 145, 159, 172, 181, 190, 202, 214,
Elkner, Jeff, v, vi"""

PROSE = """3.9. Stack diagrams 28
To keep track of which variables can be used where, it is sometimes useful to draw a stack diagram.
Like state diagrams, stack diagrams show the value of each variable, but they also show the function
each variable belongs to, as in 1, 2, 3.
Each function is represented by a frame."""

REPL = """>>> 1,000,000
(1, 0, 0)
>>> a, b = 1, 2
>>> 6 * 7
42
>>> 2 ** 10
1024
>>> 17 // 3
5"""


def test_a_contents_page_keeps_only_its_prose():
    assert is_navigation(CONTENTS)
    assert prose_lines(CONTENTS) == ("P.S. These notes are updated now and then, so check the website for "
                                     "the latest version.")


def test_an_index_page_keeps_nothing():
    assert is_navigation(INDEX)
    assert prose_lines(INDEX) == ""


def test_prose_with_a_heading_and_a_number_list_is_no_navigation():
    assert not is_navigation(PROSE)


def test_a_page_of_interpreter_output_is_no_navigation():
    assert not is_navigation(REPL)
