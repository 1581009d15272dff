"""Letter extraction, table-driven: what models really write -> one letter, or None with a reason."""

from __future__ import annotations

import pytest

from engine.mcq.letters import extract_letter

CITIES = ["Paris", "London", "Berlin", "Madrid"]
ANIMALS = ["fish", "Deep sea animals", "Long Sea Fish", "Far Sea Animals"]
TWO = ["true", "false"]
SIX = ["one", "two", "three", "four", "five", "six"]

# (reply, choices, expected letter). Written by hand from replies models commonly give.
HAND_WRITTEN = [
    ("B", CITIES, "B"),
    ("b", CITIES, "B"),
    ("(B)", CITIES, "B"),
    ("B)", CITIES, "B"),
    ("b.", CITIES, "B"),
    ("[C]", CITIES, "C"),
    ("  D  ", CITIES, "D"),
    ("**B**", CITIES, "B"),
    ("B: London", CITIES, "B"),
    ("B) London", CITIES, "B"),
    ("(C) Berlin", CITIES, "C"),
    ("C. Berlin is the capital of Germany.", CITIES, "C"),
    ("Answer: B", CITIES, "B"),
    ("Answer: (b)", CITIES, "B"),
    ("answer: d", CITIES, "D"),
    ("The answer is C", CITIES, "C"),
    ("The correct answer is B.", CITIES, "B"),
    ("The correct answer is (D) Madrid.", CITIES, "D"),
    ("The answer is: A", CITIES, "A"),
    ("The correct option would be d", CITIES, "D"),
    ("option b", CITIES, "B"),
    ("Option C is correct.", CITIES, "C"),
    ("I would choose option B.", CITIES, "B"),
    ("The best choice is choice A.", CITIES, "A"),
    ("Correct letter: C", CITIES, "C"),
    ("Final answer: A", CITIES, "A"),
    ("London", CITIES, "B"),
    ("madrid", CITIES, "D"),
    ("The capital of England is London.", CITIES, "B"),
    ("Deep sea animals", ANIMALS, "B"),  # "fish" is not named alone, "Deep sea animals" is
    ("They are known as long sea fish.", ANIMALS, "C"),  # the longer option containing "fish" wins
    ("I think it is Berlin because it is large.\nSo the answer is C.", CITIES, "C"),
    ("Paris is in France, London in England. Madrid is the capital of Spain, so: Answer: D", CITIES, "D"),
    ("A... no wait, the answer is C", CITIES, "C"),
    ("The answer is B. Actually, the answer is D.", CITIES, "D"),
    ("A is wrong, B is wrong, C is correct.", CITIES, "C"),
    ("C is correct.", CITIES, "C"),
    ("I pick (C).", CITIES, "C"),
    ("A", TWO, "A"),
    ("Answer: B", TWO, "B"),
    ("false", TWO, "B"),
    ("The answer is F.", SIX, "F"),
    ("f)", SIX, "F"),
    ("A cat sat on a mat. The answer is B.", CITIES, "B"),  # "A cat" is an article, not option A
    ("I think the answer is B", CITIES, "B"),  # "I" is a pronoun, not option I
]

# (reply, choices, words the reason must contain): replies with nothing usable.
NO_LETTER = [
    ("", CITIES, "empty"),
    ("   \n ", CITIES, "empty"),
    ("I don't know.", CITIES, "no option"),
    ("answer choices are hard", CITIES, "no option"),
    ("E", CITIES, "letter E"),
    ("The answer is E.", CITIES, "letter E"),
    ("The answer is a city in Italy.", CITIES, "no option"),
]

# Replies CAPTURED from the real default model (SmolLM2-135M-Instruct, greedy, prompt format
# chat-letter of engine.mcq.engine) on the first 16 ARC-Easy validation questions,
# saved verbatim; the expected letter is what a reader takes the reply to say.
# "B. excrete waste" names letter B with option D's text: the stated letter wins. Replies that
# list options line by line without choosing give None.
CAPTURED: list[tuple[str, list[str], str | None]] = [
    ("B. television", ["cellular telephone", "television", "refrigerator", "airplane"], "B"),
    (
        "B. Which organisms consume algae?",
        [
            "Do algae consume other organisms?",
            "Which organisms consume algae?",
            "Do algae use sunlight to make food?",
            "Could an ecosystem survive without algae?",
        ],
        "B",
    ),
    (
        "B. The endocrine system",
        ["The nervous system", "The endocrine system", "The respiratory system", "The circulatory system"],
        "B",
    ),
    (
        "A. the size of the planets\nB. gravitational pull of the Sun",
        [
            "the size of the planets",
            "gravitational pull of the Sun",
            "the composition of the planets",
            "electromagnetic radiation from the Sun",
        ],
        None,
    ),
    (
        "A. Ponds have moving water.",
        [
            "Ponds have moving water.",
            "Ponds are smaller and shallower.",
            "Ponds are not surrounded by land.",
            "Ponds have a different amount of salt.",
        ],
        "A",
    ),
    (
        "A. heat transfer\nB. physical change\nC. law of conservation of",
        ["heat transfer", "physical change", "law of conservation of mass", "law of conservation of energy"],
        None,
    ),
    (
        "B. stop producing mucus.",
        ["close to prevent further damage.", "stop producing mucus.", "become clogged.", "become efficient."],
        "B",
    ),
    (
        "B. gills and feet",
        ["fur and wings", "gills and feet", "feathers and wings", "moist skin and feet"],
        "B",
    ),
    ("B. excrete waste", ["obtain energy", "escape predators", "produce offspring", "excrete waste"], "B"),
    (
        "C. the breeding of plants\n\nThe correct answer is D. The breeding",
        [
            "the invention of the telescope",
            "the building of submarines",
            "the generation of electricity",
            "the breeding of plants",
        ],
        "D",
    ),
    (
        "B. hygrometer\n\nThe correct answer is D. magnetometer.",
        ["barometer", "hygrometer", "thermometer", "magnetometer"],
        "D",
    ),
    ("C. oxygen", ["carbon dioxide", "sodium chloride", "oxygen", "sugar"], "C"),
    ("B. wind speed.", ["wind direction.", "wind speed.", "air pressure.", "air temperature."], "B"),
    ("B. CsCl_{2}\n\nThe correct answer is D.", ["CsCl", "CsCl_{2}", "CsO", "CsO_{2}"], "D"),
    ("B. cytoplasm", ["chloroplast", "cytoplasm", "mitochondria", "nucleus"], "B"),
    ("B. evaporates.", ["melts.", "freezes.", "evaporates.", "condenses."], "B"),
]


@pytest.mark.parametrize(("reply", "choices", "expected"), HAND_WRITTEN + CAPTURED)
def test_extracts_the_stated_letter(reply, choices, expected):
    result = extract_letter(reply, choices)
    assert result.letter == expected, (reply, result)
    if expected is not None:
        assert result.index == "ABCDEFGHIJ".index(expected)
        assert result.reason is None


@pytest.mark.parametrize(("reply", "choices", "reason_words"), NO_LETTER)
def test_nothing_usable_gives_none_and_the_reason(reply, choices, reason_words):
    result = extract_letter(reply, choices)
    assert result.letter is None and result.index is None
    assert reason_words in result.reason


def test_table_has_at_least_fifty_cases():
    assert len(HAND_WRITTEN) + len(NO_LETTER) + len(CAPTURED) >= 50
