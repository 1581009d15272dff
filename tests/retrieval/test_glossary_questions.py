"""The definition questions of scripts/make_glossary_questions.py: entries, questions and gold pages."""

from __future__ import annotations

from retrieval.definitions import defined_term
from scripts.make_glossary_questions import glossary_entries, gold_page, question_for, squeezed
from tests.conftest import shared_data

GLOSSARY_PAGE = """ 3
Chapter 2: Variables, expressions and statements

variable:   A name that refers to a value.

assignment:  A statement that assigns a value to a
variable.

IS-A relationship:  A relationship between a child class and its parent class.
"""


def test_entries_run_to_the_next_term_on_one_line_without_page_numbers_or_chapters():
    assert glossary_entries([GLOSSARY_PAGE]) == [
        ("variable", "A name that refers to a value."),
        ("assignment", "A statement that assigns a value to a variable."),
        ("IS-A relationship", "A relationship between a child class and its parent class."),
    ]


def test_questions_ask_what_the_term_means_in_two_ways_the_tutor_reads_as_definitions():
    asked = [question_for(term, n) for n, term in enumerate(["tuple", "aliasing", "interpreter",
                                                             "problem solving", "analysis of algorithms"])]
    assert asked == ["What is a tuple?", "What does aliasing mean?", "What is an interpreter?",
                     "What does problem solving mean?", "What is analysis of algorithms?"]
    assert [defined_term(question) for question in asked] == ["tuple", "aliasing", "interpreter",
                                                              "problem solving", "analysis of algorithms"]


def test_the_gold_page_is_the_one_page_printing_the_definition_however_it_is_wrapped():
    pages = [squeezed(text) for text in ["Variables hold values.",
                                         "variable: A name that\nrefers to a val-\nue. assignment: ...",
                                         "A variable names a value."]]
    assert gold_page("A name that refers to a value.", pages) == 2
    assert gold_page("A statement that assigns a value.", pages) is None     # on no page
    assert gold_page("Variables hold values.", pages * 2) is None           # on several


def test_the_shared_glossary_holds_the_books_terms():
    from ingest.pdf import read_pages

    entries = dict(glossary_entries(read_pages(shared_data("pdfs/Think_Python_Glossary_by_Chapter.pdf"))))
    assert len(entries) > 200
    assert entries["tuple"] == "An immutable sequence of elements."
