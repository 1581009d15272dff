"""Reading an answer's citations, and the quote and citation the server adds to an answer."""

from __future__ import annotations

from engine.citations import (
    answer_ending,
    cited_numbers,
    is_refusal,
    quoted,
    valid_citations,
    what_was_answered,
    without_filler_opening,
)
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


QUOTE = ' The notes say: "Land that is wet for all or part of the year is studied by ecologists." [1]'


def test_an_answer_that_does_not_say_the_best_notes_key_sentence_gets_it_quoted():
    # The quote: note 1's sentence sharing most words with the question, whatever the answer cites.
    for answer in ["It is called a wetland.", "It is called a wetland [2].", "The answer is [1].",
                   "It is called a wetland [7].", "Volcanoes erupt.", "The notes are cited as [n]."]:
        assert answer_ending(answer, QUESTION, NOTES) == QUOTE, answer


def test_an_answer_that_says_it_is_cited_with_the_quoted_note_unless_it_cites_one():
    said = "Ecologists study wet land all year"  # holds the quote's words beyond the question
    assert answer_ending(f"{said}.", QUESTION, NOTES) == " [1]"
    assert answer_ending(f"{said} [3].", QUESTION, NOTES) == ""
    assert answer_ending(f"{said} [7].", QUESTION, NOTES) == " [1]"  # [7] is no note a student can open
    # Words of the question and of the prompt ("The answer to the question is") say nothing of the notes.
    notes = ["The answer to the question is that water boils at 100 degrees."]
    assert answer_ending("The answer to the question is: water.", "When does water boil?", notes) == (
        ' The notes say: "The answer to the question is that water boils at 100 degrees." [1]')
    assert answer_ending("At 100 degrees.", "When does water boil?", notes) == " [1]"


def test_nothing_is_added_to_a_refusal_or_without_notes():
    assert answer_ending("The course material does not cover wetlands.", QUESTION, NOTES) == ""
    assert answer_ending("Wetland.", QUESTION, []) == ""


def test_a_quote_is_one_line_cut_short_and_holds_no_citation():
    long_note = "Wet land " + " ".join(f"w{n}" for n in range(60)) + " see [12]."
    ending = answer_ending("Volcanoes erupt.", QUESTION, [long_note])
    assert ending.endswith(' …" [1]') and len(ending.split()) == 3 + 40 + 2 and "[12]" not in ending


def test_a_sentence_cut_off_by_the_end_of_its_chunk_is_quoted_with_a_mark_that_more_follows():
    note = "Tuples are immutable. Because they are immutable, tuples can be used as dictionary keys"
    ending = answer_ending("Yes.", "Can a tuple be a dictionary key?", [note])
    assert ending.endswith('"Because they are immutable, tuples can be used as dictionary keys …" [1]')
    whole = answer_ending("Yes.", "Can a tuple be a dictionary key?", [note + " (in Python)."])
    assert whole.endswith('dictionary keys (in Python)." [1]')


def test_an_answer_saying_less_than_two_thirds_of_what_the_quote_adds_gets_the_quote():
    # The quote adds "dry", "get", "littl", "rain": two of four is not enough, three is.
    notes = ["Deserts are dry and get little rain.", "Wetlands are wet."]
    quote = ' The notes say: "Deserts are dry and get little rain." [1]'
    assert answer_ending("Deserts are dry with little water.", "What is a desert like?", notes) == quote
    assert answer_ending("Deserts are dry with little rain.", "What is a desert like?", notes) == " [1]"


def test_an_answer_saying_one_of_four_words_the_quote_adds_gets_the_quote():
    # "dry" is one of the four words the quote adds to the question.
    notes = ["Deserts are dry and get little rain.", "Wetlands are wet."]
    assert answer_ending("A desert is dry.", "What is a desert like?", notes) == (
        ' The notes say: "Deserts are dry and get little rain." [1]')


def test_citations_of_no_source_are_dropped_with_their_spaces_and_valid_ones_kept():
    answer = "It is inertia [5]. Newton said so [1, 7] and [2]; see [ 3 ]."
    assert "".join(valid_citations([answer], 4)) == "It is inertia. Newton said so [1] and [2]; see [ 3 ]."
    assert "".join(valid_citations(["Brackets [b] and [4] stay."], 4)) == "Brackets [b] and [4] stay."


def test_a_citation_split_across_streamed_pieces_is_judged_whole_and_nothing_is_lost():
    pieces = ["It is X", " [", "5", "]", " and Y [1", ",", " 6]", ".", " A [", "2"]
    streamed = list(valid_citations(pieces, 4))
    assert "".join(streamed) == "It is X and Y [1]. A [2"  # an unclosed bracket at the end is kept as written
    assert all(streamed) and "[5" not in "".join(streamed)


def test_an_opening_that_says_nothing_is_dropped_and_what_follows_it_kept():
    assert "".join(without_filler_opening(["The answer is [1]."])) == ""
    assert "".join(without_filler_opening(["The answer to this question is: [1]. Wetlands."])) == "Wetlands."
    assert "".join(without_filler_opening(["The answer is that the vast majority [2]."])) == (
        "The vast majority [2].")
    assert "".join(without_filler_opening(["the answer would be: marshes [2]."])) == "Marshes [2]."
    assert "".join(without_filler_opening(["The answer is mRNA [1]."])) == "mRNA [1]."  # not "MRNA"
    # A number after it may be the answer ("How many moons?"), what leans on it keeps it, and an answer
    # that only starts alike stays.
    for answer in ["The answer is 1.", "The answer is [1], which says marshes filter water.",
                   "The answer is [1] and [2]: marshes.", "The answers differ [1].", "Answering takes care.",
                   "The cell [1]."]:
        assert "".join(without_filler_opening([answer])) == answer


def test_a_filler_opening_split_across_streamed_pieces_is_judged_whole_and_other_answers_pass_at_once():
    for answer in ["The answer is [1].", "The answer to the question is: [1, 2] wetlands.",
                   "The answer is thermodynamics [1].", "The answer is 12.", "  The cell divides.",
                   "The answer is [1] and [2]: marshes.", "The answer is an organelle."]:
        whole = "".join(without_filler_opening([answer]))
        for size in (1, 2, 5):
            pieces = [answer[i:i + size] for i in range(0, len(answer), size)]
            assert "".join(without_filler_opening(pieces)) == whole, (answer, size)
    assert list(without_filler_opening(["Newton", " said"])) == ["Newton", " said"]  # nothing held back


def test_an_answer_with_no_word_of_its_own_gets_the_quote_even_when_the_quote_adds_nothing():
    # "Friction." adds no word to "What is friction?": an answer saying it would only get its [1], but an
    # empty one (a filler opening dropped) must not end as a bare "[1]".
    assert answer_ending("", "What is friction?", ["Friction."]) == ' The notes say: "Friction." [1]'
    assert answer_ending("Friction.", "What is friction?", ["Friction."]) == " [1]"


def test_a_long_sentence_is_quoted_around_the_words_the_question_asks_about():
    words = [f"w{n}" for n in range(30)] + "provinces are named after their principal town".split()
    sentence = " ".join([*words, *(f"v{n}" for n in range(30))]) + "."
    quote = quoted(sentence.split(), "What are the provinces named after?")
    assert quote.startswith("… ") and quote.endswith(" …") and len(quote.split()) == 40 + 2
    assert "provinces are named after their principal town" in quote
    assert quoted(sentence.split(), "Nothing shared?").startswith("w0 w1")  # none shared: the opening
    assert quoted("Tuples are immutable.".split(), "Are tuples immutable?") == "Tuples are immutable."


def test_an_earlier_answer_is_read_as_its_short_answer_without_the_quote_or_citations():
    answer = 'Naples [1].\n\nThe French lost it. The notes say: "The French lost Naples easily." [1]'
    assert what_was_answered(answer) == "Naples."
    assert what_was_answered('They lost Naples [2]. The notes say: "The French lost Naples." [1]') == (
        "They lost Naples.")
    assert what_was_answered(NO_CONTEXT_ANSWER) == NO_CONTEXT_ANSWER
    assert what_was_answered("Dennis Farina") == "Dennis Farina"  # a reference answer, as files give them
