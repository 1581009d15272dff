"""What counts as an answer that loops: the same piece of 8 characters or more, three times at its end."""

from __future__ import annotations

from engine.runtime.streaming import ends_in_loop


def test_a_repeated_phrase_or_citation_is_a_loop():
    assert ends_in_loop("It is due to the note-taker of the note-taker of the note-taker of the note-taker")
    assert ends_in_loop("The answer is: the movement [2] to [4] to [1] to [1] to [1] to [1] to [1] to [1]")
    assert ends_in_loop("Durex makes a range of products, a range of products, a range of products,")


def test_a_note_listed_back_under_new_numbers_is_a_loop():
    note = " The Assembly is a devolved assembly with power to make legislation in Wales."
    assert ends_in_loop(f"The notes are: [1]{note} [2]{note} [3]{note}")
    assert not ends_in_loop(f"The notes are: [1]{note} [2]{note}")  # twice is no loop
    assert not ends_in_loop("Wales has an assembly [1]. It makes laws [2]. Its members are elected [3].")


def test_short_repeats_tables_numbers_and_twice_said_things_are_not():
    assert not ends_in_loop("1,000,000,000")
    assert not ends_in_loop("| a | b | c |\n| --- | --- | --- |")
    assert not ends_in_loop("Ha ha ha ha ha")
    assert not ends_in_loop("It is not alone. It is not alone.")
    assert not ends_in_loop("")
