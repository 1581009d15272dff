"""The model's sentences stand only when the notes, the question or the conversation hold every word."""

from __future__ import annotations

from engine.support import sentences, stems, supported, supported_sentences

NOTE = "Gonzalo de Cordoba landed in Calabria with an army in 1495, sent by Ferdinand and Isabella."
QUESTION = "Where did Cordoba land?"


def kept(answer: str, pieces: list[str] | None = None) -> str:
    known = stems(f"{NOTE} {QUESTION}")
    return "".join(supported_sentences(pieces or [answer], known, stems(QUESTION)))


def test_a_sentence_with_a_word_of_no_note_goes_and_the_others_stay_with_their_citations():
    answer = "Cordoba landed in Calabria [1]. The great captain was Dan Baxter. He had an army. [1] "
    assert kept(answer) == "Cordoba landed in Calabria [1]. He had an army. [1]"
    # Word forms count as the same word: "lands" and "landing" are supported by "landed".
    assert kept("Cordoba's landing was in Calabria.") == "Cordoba's landing was in Calabria."


def test_streamed_pieces_cut_anywhere_give_what_the_whole_answer_gives():
    answer = "Cordoba landed in Calabria [1]. He was a poet in 1789. Ferdinand sent him"
    whole = kept(answer)
    assert whole == "Cordoba landed in Calabria [1]. Ferdinand sent him"
    for cut in range(1, len(answer)):
        assert kept(answer, [answer[:cut], answer[cut:]]) == whole
    assert kept(answer, list(answer)) == whole


def test_an_echo_of_the_question_or_a_question_goes_and_a_refusal_stays():
    assert kept("Cordoba did land. Where did Cordoba land? In Calabria.") == "In Calabria."
    refusal = "The notes do not cover where he landed."
    assert supported(refusal, stems(NOTE), stems(QUESTION))
    assert kept(refusal) == refusal


def test_sentences_end_after_their_citations_and_the_rest_is_what_follows_the_last_end():
    assert sentences("He landed. [1] Then he left! Why") == ["He landed. [1] ", "Then he left! ", "Why"]
    assert sentences("He landed. ") == ["He landed. ", ""]


def test_a_last_sentence_the_token_budget_cut_goes_and_one_ending_without_a_stop_stays():
    for cut in ["Ferdinand sent Cordoba in 1495 with", "Cordoba landed in Calabria,",
                "Cordoba landed in Calabria [1] and", "Cordoba landed (with an army [1]"]:
        assert kept(f"Cordoba landed in Calabria [1]. {cut}") == "Cordoba landed in Calabria [1]."
    assert kept("Cordoba landed in Calabria [1]") == "Cordoba landed in Calabria [1]"
