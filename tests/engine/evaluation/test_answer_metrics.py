"""The pure scores of one answer, on hand-built answers, references and sources."""

from __future__ import annotations

import pytest

from engine.evaluation.answer_metrics import (
    PageSpan,
    exact_match,
    normalize_answer,
    percentile,
    score_citations,
    states_answer,
    token_f1,
)


def test_normalize_answer_drops_case_punctuation_articles_and_spaces():
    assert normalize_answer("  The Wetland, of  a marsh! ") == "wetland of marsh"


def test_exact_match_and_f1_take_the_best_reference():
    assert exact_match("The wetland.", ["swamp", "wetland"]) == 1.0
    assert exact_match("A wetland [2].", ["wetland"]) == 0.0  # the citation is extra text
    assert token_f1("blood vessels", ["vessels of blood", "blood vessels"]) == 1.0
    precision, recall = 1 / 3, 1 / 2  # "blood" of three tokens, of two reference tokens
    expected = 2 * precision * recall / (precision + recall)
    assert token_f1("red blood cells", ["blood vessels"]) == pytest.approx(expected)
    assert token_f1("nothing alike", ["blood vessels"]) == 0.0


def test_states_answer_needs_the_gold_text_and_no_distractor():
    distractors = ["grassland", "plains", "tundra"]
    assert states_answer("It is called a wetland [2].", ["wetland"], distractors)
    assert not states_answer("A wetland or a tundra.", ["wetland"], distractors)
    assert not states_answer("Wetlands are wet.", ["wetland"], distractors)  # whole words only
    assert not states_answer("The source n=1 is a section.", ["wetland"], distractors)


def test_a_distractor_inside_the_gold_answer_is_not_held_against_it():
    gold, distractors = ["catabolic and anabolic"], ["anabolic", "tellurium"]
    assert states_answer("Catabolic and anabolic reactions [1].", gold, distractors)
    assert not states_answer("Catabolic and anabolic, mostly anabolic.", gold, distractors)


def test_citation_scores_against_sources_and_gold_pages():
    sources = [PageSpan("course.pdf", 3, 3), PageSpan("course.pdf", 27, 28), PageSpan("other.pdf", 27, 27)]
    gold = PageSpan("sciq/course.pdf", 28, 28)
    right = score_citations("Wetland [2].", sources, gold)
    assert (right.precision, right.recall, right.gold_retrieved, right.malformed) == (1.0, 1.0, True, [])
    mixed = score_citations("Wetland [2][3] [7].", sources, gold)
    assert (mixed.precision, mixed.recall, mixed.malformed) == (0.5, 1.0, [7])
    wrong = score_citations("Wetland [1].", sources, gold)
    assert (wrong.precision, wrong.recall) == (0.0, 0.0)
    uncited = score_citations("Wetland.", sources, gold)
    assert (uncited.precision, uncited.recall) == (None, 0.0)
    assert score_citations("Wetland [1].", sources, None).precision is None


def test_percentile_is_nearest_rank():
    assert percentile([3.0, 1.0, 2.0, 4.0], 50) == 2.0
    assert percentile([3.0, 1.0, 2.0, 4.0], 95) == 4.0
    assert percentile([], 50) is None
