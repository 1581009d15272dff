"""Reading questions files and scoring answers over the grounded path, with a fake runtime."""

from __future__ import annotations

import json

import pytest

from engine.evaluation.answers import (
    AnswerFileError,
    GivenPassages,
    asked_so_far,
    evaluate_answers,
    read_answer_items,
    with_own_answers,
)
from engine.grounded import AnswerOptions
from engine.reader import ShortAnswer
from retrieval import NO_CONTEXT_ANSWER
from tests.utils.fakes import FakeReader, FakeRetriever, FakeRuntime, FakeStore, make_hit

MCQ_ROW = {"id": "sciq-val-3", "question": "What is an area of land called that is wet for all or part of "
           "the year?", "choices": ["grassland", "wetland", "plains", "tundra"], "answer_index": 1,
           "source": "sciq-dev-course.pdf", "page": 27, "page_end": 27}
OPEN_ROW = {"id": "q2", "question": "Where might a teacher teach?", "answers": ["outdoors", "outside"],
            "source": "teaching.pdf", "page": 2}


def write_rows(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_reader_takes_mcq_rows_as_open_questions_and_open_rows(tmp_path):
    items = read_answer_items(write_rows(tmp_path / "q.jsonl", [MCQ_ROW, OPEN_ROW]))
    assert items[0].references == ["wetland"] and items[0].distractors == ["grassland", "plains", "tundra"]
    assert (items[0].gold.page, items[0].gold.page_end) == (27, 27)
    assert items[1].references == ["outdoors", "outside"] and items[1].gold.page_end == 2
    assert all(item.answerable for item in items)
    assert [i.answerable for i in read_answer_items(tmp_path / "q.jsonl", off_topic=True)] == [False, False]
    assert len(read_answer_items(tmp_path / "q.jsonl", limit=1)) == 1


def test_reader_names_the_bad_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    no_gold = {"question": "Q?", "choices": ["a", "b"]}
    path.write_text(json.dumps(OPEN_ROW) + "\n" + json.dumps(no_gold) + "\n")
    with pytest.raises(AnswerFileError, match=r"bad.jsonl:2: an MCQ row needs"):
        read_answer_items(path)


def evaluate(tmp_path, answer: str, rows, *, off_topic=False, quote_notes=True, reader=None):
    hits = [make_hit("Grassland is dry.", source="sciq-dev-course.pdf", page=3),
            make_hit("A wetland is wet.", source="sciq-dev-course.pdf", page=27)]
    items = read_answer_items(write_rows(tmp_path / "q.jsonl", rows), off_topic=off_topic)
    out = tmp_path / "results.jsonl"
    summary = evaluate_answers(items, GivenPassages({r["question"]: hits for r in rows}),
                               FakeRuntime(answer=answer), "sciq-dev", out=out,
                               options=AnswerOptions(quote_notes=quote_notes, reader=reader))
    return summary, [json.loads(line) for line in out.read_text().splitlines()]


def test_a_right_cited_answer_scores_full_marks(tmp_path):
    summary, [row] = evaluate(tmp_path, "A wetland [2].", [MCQ_ROW], quote_notes=False)
    assert (summary.correct, summary.citation_precision, summary.citation_recall) == (1.0, 1.0, 1.0)
    assert (summary.uncited, summary.malformed, summary.false_refusals) == (0.0, 0.0, 0.0)
    assert summary.abstained is None and summary.answer_tokens == 5
    assert row["answer"] == "A wetland [2]." and row["cited"] == [2] and row["sources"][1]["page"] == 27


def test_the_short_answer_is_scored_alone_beside_the_whole_answer(tmp_path):
    reader = FakeReader(ShortAnswer("a wetland", 2, 1.0))
    summary, [row] = evaluate(tmp_path, "It is an area of wet land [2].", [MCQ_ROW], reader=reader)
    assert row["answer"].startswith("a wetland [2].\n\n") and row["short_answer"] == "a wetland"
    assert (row["short_exact_match"], row["short_f1"]) == (1.0, 1.0) and row["f1"] < 0.5
    assert (summary.short_exact_match, summary.short_f1) == (1.0, 1.0)
    _, [row] = evaluate(tmp_path, "It is an area of wet land [2].", [MCQ_ROW], reader=FakeReader(None))
    assert (row["short_answer"], row["short_f1"]) == (None, 0.0)


def test_citations_are_not_words_of_the_answer(tmp_path):
    summary, [row] = evaluate(tmp_path, "Wetland [2].", [MCQ_ROW], quote_notes=False)
    assert (row["exact_match"], row["f1"]) == (1.0, 1.0)
    numbers = {**OPEN_ROW, "answers": ["2"]}
    _, [row] = evaluate(tmp_path, "Outdoors [2].", [numbers], quote_notes=False)
    assert (row["correct"], row["f1"]) == (False, 0.0)


def test_markup_talk_scores_as_wrong_and_uncited(tmp_path):
    summary, [row] = evaluate(tmp_path, 'The source n="1" is cited as [n] in the answer.', [MCQ_ROW],
                              quote_notes=False)
    assert (summary.correct, summary.uncited, summary.citation_recall) == (0.0, 1.0, 0.0)
    assert summary.citation_precision is None and row["f1"] == 0.0


def test_a_citation_beyond_the_sources_is_dropped_before_the_answer_is_scored(tmp_path):
    # The model's [5] of two sources points nowhere: the served (and scored) answer is without it.
    summary, [row] = evaluate(tmp_path, "Grassland and wetland [5].", [MCQ_ROW], quote_notes=False)
    assert row["answer"] == "Grassland and wetland." and row["malformed"] == [] and summary.uncited == 1.0
    # The answer says what the best note's key sentence adds ("dry", "grassland"): nothing is added.
    summary, [row] = evaluate(tmp_path, "Dry grassland and wetland [5] [2].", [MCQ_ROW])
    assert row["answer"] == "Dry grassland and wetland [2]."
    assert row["cited"] == [2] and summary.malformed == 0.0


def test_an_answer_not_saying_the_best_notes_key_sentence_gets_it_quoted_and_counted(tmp_path):
    for answer in ["It is called a wetland.", "It is called a wetland [2]."]:
        summary, [row] = evaluate(tmp_path, answer, [MCQ_ROW])
        # The best-ranked note is here a page without the answer: its option ("grassland") now makes
        # the whole answer name a distractor.
        assert row["answer"] == f'{answer} The notes say: "Grassland is dry." [1]'
        assert row["note_quoted"] is True and row["correct"] is False
        assert (summary.uncited, summary.server_added, summary.notes_quoted) == (0.0, 1.0, 1.0)
    summary, [row] = evaluate(tmp_path, "It is called a wetland.", [MCQ_ROW], quote_notes=False)
    assert row["answer"] == "It is called a wetland." and row["server_added"] == ""
    assert (summary.uncited, summary.server_added, summary.notes_quoted) == (1.0, 0.0, 0.0)


def test_off_topic_questions_measure_abstention_not_correctness(tmp_path):
    summary, [row] = evaluate(tmp_path, NO_CONTEXT_ANSWER, [OPEN_ROW], off_topic=True)
    assert summary.abstained == 1.0 and summary.correct is None and "correct" not in row
    summary, _ = evaluate(tmp_path, NO_CONTEXT_ANSWER, [OPEN_ROW])
    assert summary.false_refusals == 1.0 and summary.uncited == 0.0


FIRST_TURN = {"id": "s-1", "question": "Who was the actor?", "answers": ["Dennis Farina"],
              "source": "coqa.pdf", "page": 1, "turn": 1, "history": []}
LATER_TURN = {"id": "s-2", "question": "Where did he die?", "answers": ["Scottsdale"], "source": "coqa.pdf",
              "page": 1, "turn": 2, "history": [{"role": "user", "content": "Who was the actor?"},
                                                {"role": "assistant", "content": "Dennis Farina"}]}


def test_reader_takes_conversation_lines_and_names_a_bad_history(tmp_path):
    first, later = read_answer_items(write_rows(tmp_path / "c.jsonl", [FIRST_TURN, LATER_TURN]))
    assert (first.turn, first.group, first.conversation) == (1, "first", [])
    assert (later.turn, later.group, later.conversation) == (2, "later", LATER_TURN["history"])
    bad = {**LATER_TURN, "history": [{"role": "tutor", "content": "Hi"}]}
    with pytest.raises(AnswerFileError, match=r"bad.jsonl:2: history turn 1 is .*user or assistant"):
        read_answer_items(write_rows(tmp_path / "bad.jsonl", [FIRST_TURN, bad]))


def test_a_later_turn_is_asked_after_its_history_and_summarised_apart(tmp_path):
    store = FakeStore({"coqa": []})
    retriever = FakeRetriever(store, [make_hit("Dennis Farina died in Scottsdale.", source="coqa.pdf")])
    runtime = FakeRuntime(answer="In Scottsdale [1].")
    items = read_answer_items(write_rows(tmp_path / "c.jsonl", [FIRST_TURN, LATER_TURN]))
    summary = evaluate_answers(items, retriever, runtime, "coqa", options=AnswerOptions(quote_notes=False))
    assert [s.model for s in summary.by_turn] == ["fake-model, first turns", "fake-model, later turns"]
    assert [s.questions for s in summary.by_turn] == [1, 1]
    assert (summary.by_turn[0].correct, summary.by_turn[1].correct) == (0.0, 1.0)
    assert [m["role"] for m in runtime.requests[1].messages] == ["system", "user", "assistant", "user"]
    assert any("Who was the actor?" in s["question"] for s in retriever.searches[1:])
    plain = evaluate_answers(items[:1], retriever, runtime, "coqa")
    assert plain.by_turn == []


def test_with_own_history_a_later_turn_is_asked_after_the_tutors_own_earlier_answer(tmp_path):
    store = FakeStore({"coqa": []})
    retriever = FakeRetriever(store, [make_hit("Dennis Farina died in Scottsdale.", source="coqa.pdf")])
    runtime = FakeRuntime(answer="In Scottsdale [1].")
    items = read_answer_items(write_rows(tmp_path / "c.jsonl", [FIRST_TURN, LATER_TURN]))
    evaluate_answers(items, retriever, runtime, "coqa", options=AnswerOptions(quote_notes=False),
                     own_history=True)
    assert runtime.requests[1].messages[2] == {"role": "assistant", "content": "In Scottsdale."}
    given = FakeRuntime(answer="In Scottsdale [1].")
    evaluate_answers(items, retriever, given, "coqa", options=AnswerOptions(quote_notes=False))
    assert given.requests[1].messages[2] == {"role": "assistant", "content": "Dennis Farina"}


def test_own_answers_replace_only_the_turns_the_run_asked():
    conversation = [{"role": "user", "content": "Who?"}, {"role": "assistant", "content": "Ann"},
                    {"role": "user", "content": "Where?"}, {"role": "assistant", "content": "Rome"}]
    answered = {("Who?",): "Ann Lee [1]."}
    assert [turn["content"] for turn in with_own_answers(conversation, answered)] == [
        "Who?", "Ann Lee [1].", "Where?", "Rome"]
    assert with_own_answers(conversation, {}) == conversation
    assert asked_so_far(conversation, "When?") == ("Who?", "Where?", "When?")
