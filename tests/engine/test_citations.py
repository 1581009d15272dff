"""Reading an answer's citations, and the citation the server adds when the model cited nothing."""

from __future__ import annotations

from engine.citations import answer_ending, cited_numbers, is_refusal, supporting_note
from retrieval import NO_CONTEXT_ANSWER

NOTES = [
    "Land that is wet for all or part of the year is studied by ecologists. Water covers much of it.",
    "A wetland is an area of land that is saturated with water. Marshes and swamps are wetlands.",
    "Deserts are dry areas of land with little rain.",
]
QUESTION = "What is an area of land called that is wet for all or part of the year?"


def test_cited_numbers_reads_single_grouped_and_repeated_markers():
    assert cited_numbers("Wetland [2]. Also [1, 3] and [2][4].") == [2, 1, 3, 4]
    assert cited_numbers('The source n="1" is cited as [n].') == []


def test_refusals_are_recognised_in_the_fixed_and_the_model_wording():
    assert is_refusal(NO_CONTEXT_ANSWER)
    assert is_refusal("The course material doesn't cover this.")
    assert not is_refusal("Wetland [1].")


def test_the_supporting_note_holds_the_answers_own_words_not_the_questions():
    # Note 1 shares more of the question's words ("land", "wet", "part", "year"); only note 2 says "wetland".
    assert supporting_note("An area of land that is wet all year is called a wetland.", QUESTION, NOTES) == 2
    assert supporting_note("It is a desert.", QUESTION, NOTES) == 3
    assert supporting_note("An area of land that is wet.", QUESTION, NOTES) is None
    assert supporting_note("Volcanoes erupt.", QUESTION, NOTES) is None


def test_the_best_ranked_note_the_answer_draws_on_is_cited():
    assert supporting_note("Water.", "What?", ["Water is wet.", "Water is blue."]) == 1
    notes = ["Ice melts.", "Water boils at 100 degrees.", "Water boils at 100 degrees at sea level."]
    assert supporting_note("Water boils at 100 degrees at sea level.", "When does it boil?", notes) == 2
    # The prompt's own words ("The answer to the question is") tie the answer to no note.
    assert supporting_note("The answer to the question is unknown.", "What?", ["The answer is 4."]) is None


QUOTE = ' The notes say: "Land that is wet for all or part of the year is studied by ecologists." [1]'


def test_an_answer_that_cites_no_note_gets_its_notes_citation_and_the_best_notes_key_sentence():
    # [2]: the note holding "wetland"; the quote: note 1's sentence sharing most words with the question.
    assert answer_ending("It is called a wetland.", QUESTION, NOTES) == " [2]" + QUOTE
    # A number beyond the notes is not a citation a student can open: the right one is added.
    assert answer_ending("It is called a wetland [7].", QUESTION, NOTES) == " [2]" + QUOTE
    # An answer that draws on no note gets the quote alone.
    assert answer_ending("Volcanoes erupt.", QUESTION, NOTES) == QUOTE
    assert answer_ending("The notes are cited as [n].", QUESTION, NOTES) == QUOTE


def test_nothing_is_added_to_a_cited_or_refusing_answer_and_no_quote_to_one_that_says_it():
    assert answer_ending("It is called a wetland [1].", QUESTION, NOTES) == ""
    assert answer_ending("The course material does not cover wetlands.", QUESTION, NOTES) == ""
    assert answer_ending("Wetland.", QUESTION, []) == ""
    said = "Ecologists study wet land all year."  # holds half of the quote's words or more
    assert answer_ending(said, QUESTION, NOTES) == " [1]"


def test_a_quote_is_one_line_cut_short_and_holds_no_citation():
    long_note = "Wet land " + " ".join(f"w{n}" for n in range(60)) + " see [12]."
    ending = answer_ending("Volcanoes erupt.", QUESTION, [long_note])
    assert ending.endswith(' …" [1]') and len(ending.split()) == 3 + 40 + 2 and "[12]" not in ending


def test_the_quotes_citation_stands_for_an_answer_drawing_on_the_same_note():
    notes = ["Deserts are dry and get little rain.", "Wetlands are wet."]
    assert answer_ending("A desert is dry.", "What is a desert like?", notes) == (
        ' The notes say: "Deserts are dry and get little rain." [1]')
