"""The yes/no probes: every note asked both ways, and the tally of what a classifier said (no model)."""

from __future__ import annotations

from bench.yes_no_probes import PROBES, Tally, tally
from engine.reader import ShortAnswer


def test_every_probe_note_is_asked_for_yes_and_for_no():
    for note, questions in PROBES:
        assert {yes for _, yes in questions} == {True, False}, note


def test_a_classifier_that_says_yes_to_everything_is_right_only_on_the_questions_asked_for_yes():
    said = [(question, yes, ShortAnswer("Yes", 1, 2.0))
            for _, questions in PROBES for question, yes in questions]
    tallies, wrong = tally(said, gate=1.0)
    for_yes = sum(yes for _, yes, _ in said)
    for_no = len(said) - for_yes
    assert tallies == {"yes": Tally(for_yes, for_yes, for_yes), "no": Tally(for_no, for_no, 0)}
    assert len(wrong) == for_no and "Is mercury a gas at room temperature? -> Yes (margin 2.00)" in wrong


def test_answers_under_the_gate_or_missing_are_not_counted_as_answered():
    said = [("Is it wet?", True, ShortAnswer("Yes", 1, 0.5)), ("Is it dry?", False, None),
            ("Is it cold?", False, ShortAnswer("No", 1, 1.5))]
    tallies, wrong = tally(said, gate=1.0)
    assert tallies == {"yes": Tally(1, 0, 0), "no": Tally(2, 1, 1)} and wrong == []
    assert tally(said, gate=0.0)[0]["yes"] == Tally(1, 1, 1)


class NoteReadingRuntime:
    """Log-likelihoods favouring " No" everywhere, by more after the unrelated note than after a real one."""

    def loglikelihood(self, requests):
        unrelated = "library" in requests[0].context
        no = -0.5 if unrelated else -0.8
        return [(-1.0 if r.continuation == " Yes" else no, False) for r in requests]


def test_the_generator_says_what_it_finds_likelier_and_calibrated_what_the_note_changes():
    from bench.yes_no_probes import generator_says

    raw = generator_says(NoteReadingRuntime(), "Is ice cold?", "Ice is cold.", calibrated=False)
    assert (raw.text, round(raw.margin, 3)) == ("No", 0.2)
    calibrated = generator_says(NoteReadingRuntime(), "Is ice cold?", "Ice is cold.", calibrated=True)
    assert (calibrated.text, round(calibrated.margin, 3)) == ("Yes", 0.3)
