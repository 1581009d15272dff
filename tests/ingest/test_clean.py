"""Text clean-up: what PDF extraction breaks, and what must stay as it is."""

from __future__ import annotations

from ingest.clean import clean_text, close_letter_spacing


def test_clean_text_joins_words_hyphenated_across_lines():
    text = "Like math-\nematicians, computer scientists"
    assert clean_text(text) == "Like mathematicians, computer scientists"


def test_clean_text_joins_hyphenation_with_spaces_around_the_break():
    assert clean_text("thermo- \n  dynamics") == "thermodynamics"


def test_clean_text_keeps_hyphen_before_a_capitalised_line():
    assert clean_text("a Python-\nBased course") == "a Python-\nBased course"


def test_clean_text_keeps_minus_signs_and_hyphenated_words_within_a_line():
    assert clean_text("x - y and well-known results") == "x - y and well-known results"


def test_clean_text_removes_nul_and_control_characters():
    assert clean_text("en\x00tropy\x07 is\x1b state\u00ad function\x7f") == "entropy is state function"


def test_clean_text_collapses_broken_whitespace_and_blank_lines():
    text = "  The\tfirst   law\u00a0says\n\n\n\n  energy  is conserved.  \r\n"
    assert clean_text(text) == "The first law says\n\nenergy is conserved."


def test_clean_text_replaces_ligatures_with_letters():
    assert clean_text("the ﬁnal ﬂoor is diﬀerent") == "the final floor is different"


def test_close_letter_spacing_closes_small_caps_headings():
    assert close_letter_spacing("S PAC E T I M E") == "SPACETIME"
    assert close_letter_spacing("2 l o r e n t z t r a n s f o r m at i o n s") == "2 lorentztransformations"


def test_close_letter_spacing_leaves_prose_and_short_lines_alone():
    lines = ["A is a vector in frame S", "x y z", "a b c, d e f", "I am a B student", "1.2 Running Python"]
    for line in lines:
        assert close_letter_spacing(line) == line


def test_clean_text_closes_letter_spaced_heading_lines_only():
    page = "S PAC E T I M E\nIn relativity we talk about events.\n1 m i n o w s k i s pa c e t i m e"
    assert clean_text(page) == "SPACETIME\nIn relativity we talk about events.\n1 minowskispacetime"


def test_close_letter_spacing_closes_runs_inside_a_longer_line():
    line = "16MSPAH101 — A DVA N C E D C L A S S I CA L M E C H A N I C S"
    assert close_letter_spacing(line) == "16MSPAH101 — ADVANCEDCLASSICALMECHANICS"
