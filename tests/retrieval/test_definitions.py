"""Definition questions: the term is read off the question, and chunks defining it lead the ranking."""

from __future__ import annotations

import pytest

from retrieval import Chunk, CourseStore, Retriever
from retrieval.definitions import defined_term, defines, definitions_first, named_term
from retrieval.prompt import key_sentences
from tests.utils.embedding import HashingEmbedder
from tests.utils.fakes import make_hit


@pytest.mark.parametrize(("question", "term"), [
    ("What is a tuple?", "tuple"),
    ("what's recursion", "recursion"),
    ("What are hash tables?", "hash tables"),
    ("What does aliasing mean?", "aliasing"),
    ("What does the GIL mean?", "GIL"),
    ("What is meant by an inertial frame?", "inertial frame"),
    ("Define polymorphism.", "polymorphism"),
    ("What is the definition of a base case?", "base case"),
    ("What does type mean?", "type"),
])
def test_a_question_asking_what_a_term_means_names_the_term(question, term):
    assert defined_term(question) == term


@pytest.mark.parametrize("question", [
    "What is the capital of France?",             # "the": one thing, asked for a fact about it
    "What is the difference?",
    "What is an individual living creature called?",
    "What is released during dehydration synthesis?",
    "What is another term for flagella?",
    "What are examples of economic actors?",
    "What is his name?",
    "What are the princes' names?",
    "What is inertia and how is it measured?",    # more than a term
    "What does Newton's first law say?",
    "How is the newton defined?",
    "What is 2+2?",
])
def test_other_questions_name_no_term(question):
    assert defined_term(question) is None


@pytest.mark.parametrize(("question", "term"), [
    ("What is the Larmor frequency?", "Larmor frequency"),
    ("What are the effective densities?", "effective densities"),
    ("What is the capital of France?", None),   # X of something: a fact
    ("What is the difference between them?", None),
    ("What is a tuple?", None),                  # no "the": defined_term's
])
def test_what_is_the_x_names_x_for_the_notes_to_confirm(question, term):
    assert named_term(question) == term


@pytest.mark.parametrize("text", [
    "A tuple is a sequence of values.",
    "In Python, a tuple is an immutable sequence.",
    "Iteration\ntuple: An immutable sequence of values.",
    "The association of a variable with an object is called a reference.",
    "Tuples are the immutable cousins of lists.",
    "Values are compared. A tuple (written with parentheses) is a sequence.",
])
def test_sentences_that_define_the_term(text):
    term = "reference" if "reference" in text else "tuple"
    assert defines(term, text)


@pytest.mark.parametrize("text", [
    "The result is a tuple.",                          # the term is what something else is
    "Analysis of tuples is a branch of study.",        # the subject is another noun
    "Learning to tuple is an art.",
    "The result of the tuple is a new list.",          # "the tuple is": said of one tuple
    "You can slice a tuple like a list.",
    "A tuplet is a musical figure.",                   # another word starting alike
])
def test_sentences_that_only_use_the_term(text):
    assert not defines("tuple", text)


def test_chunks_defining_the_term_lead_and_take_the_scores_of_their_places():
    texts = ["Tuples can be sliced.", "A list is mutable.", "A tuple is an immutable sequence.",
             "Use tuples as keys.", "tuple: a sequence of values."]
    ranking = [make_hit(text, score=0.9 - n / 10) for n, text in enumerate(texts)]
    first = definitions_first("tuple", ranking, 3)
    assert [hit.text for hit in first] == [ranking[2].text, ranking[4].text, ranking[0].text]
    assert [hit.score for hit in first] == [hit.score for hit in ranking[:3]]
    assert definitions_first("dictionary", ranking, 3) == ranking[:3]  # nothing defines it: as ranked


def test_hybrid_search_puts_the_chunk_defining_the_term_first(tmp_path):
    texts = ["Tuples can be sliced like tuples of tuples, and tuples compare element by element.",
             "Lists are mutable, unlike tuples.",
             "A tuple is an immutable sequence of values.",
             "Dictionaries map keys to values."]
    store = CourseStore(path=tmp_path / "chroma")
    chunks = [Chunk(text=text, source="python.pdf", page_start=n + 1, page_end=n + 1, index=n, file_hash="h1")
              for n, text in enumerate(texts)]
    store.replace_source("python", "python.pdf", chunks, HashingEmbedder().embed(texts), pages=len(texts))
    retriever = Retriever(store, HashingEmbedder())
    asked = retriever.search("python", "What is a tuple?", k=2, mode="hybrid")
    assert asked[0].text == texts[2] and asked[0].score >= asked[1].score
    # The same words asked for another thing are ranked by their match alone: the tuple-heavy chunk leads.
    assert retriever.search("python", "Which tuple is sliced?", k=2, mode="hybrid")[0].text == texts[0]


def test_the_key_sentence_of_a_definition_question_is_the_definition():
    text = ("Tuples are compared element by element, so a tuple of tuples sorts well. "
            "A tuple is an immutable sequence of values. Tuple assignment swaps values.")
    assert key_sentences("What is a tuple?", [text], 1) == "A tuple is an immutable sequence of values."
    assert key_sentences("How are tuples compared?", [text], 1).startswith("Tuples are compared")


def test_the_key_sentence_of_what_a_term_means_is_not_one_saying_means():
    text = "What do you think this slice means? Values of type int are integers."
    assert key_sentences("What does integer mean?", [text], 1) == "Values of type int are integers."
