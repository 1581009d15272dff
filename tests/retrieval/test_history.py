"""Follow-up questions: the queries built from earlier turns, their fusion, and search on a tiny CoQA-like
course typeset by scripts/make_coqa_course.py (a real Chroma with the hashing embedder, no model)."""

from __future__ import annotations

from pathlib import Path

import pytest

from retrieval import NO_CONTEXT_ANSWER, CourseStore, Hit, Retriever
from retrieval.evaluate import evaluate_mode, first_relevant_rank, load_gold
from retrieval.history import (
    FollowUpSettings,
    UnknownFollowUpStrategyError,
    coverage_queries,
    covers,
    follow_up_queries,
    follows_an_answer,
    fuse_weighted,
    lead_with_chunk_of_first_page,
    leans_on_conversation,
    parse_history,
    search_conversation,
)
from tests.utils.embedding import HashingEmbedder

COQA_LIKE = Path(__file__).with_name("coqa_like.jsonl")
COURSE = "coqa-like"
HISTORY = [{"role": "system", "content": "Be brief."},
           {"role": "user", "content": "Who was the actor?"},
           {"role": "assistant", "content": "Dennis Farina [1]."},
           {"role": "user", "content": "Where was he a police officer?"},
           {"role": "assistant", "content": NO_CONTEXT_ANSWER}]


def hit(chunk: int, score: float, page: int | None = None) -> Hit:
    return Hit(text=f"chunk {chunk}", score=score, source="a.pdf", page=page or chunk, page_end=page or chunk,
               chunk_index=chunk)


def test_a_question_without_earlier_turns_is_searched_alone_whatever_the_strategy():
    for strategy in ("none", "gate", "concat", "decay"):
        queries = follow_up_queries("What is inertia?", [], FollowUpSettings(strategy))
        assert queries == [("What is inertia?", 1.0)]
    assert follow_up_queries("Who?", HISTORY, FollowUpSettings("none")) == [("Who?", 1.0)]


def test_concat_puts_the_question_first_then_the_latest_turns_without_citations_or_refusals():
    [(query, weight)] = follow_up_queries("Where did he die?", HISTORY, FollowUpSettings("concat", turns=2))
    assert query == "Where did he die? Where was he a police officer? Dennis Farina . Who was the actor?"
    assert weight == 1.0
    [(query, _)] = follow_up_queries("Where did Farina die?", HISTORY, FollowUpSettings("concat", turns=1))
    assert query == "Where did Farina die? Where was he a police officer?"


def test_a_question_that_names_nothing_draws_on_more_of_the_conversation():
    history = [{"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1"},
               {"role": "user", "content": "q2"}, {"role": "assistant", "content": "a2"},
               {"role": "user", "content": "q3"}, {"role": "assistant", "content": "a3"}]
    settings = FollowUpSettings("gate", turns=1, leaning_turns=3)
    assert leans_on_conversation("How many?") and not leans_on_conversation("How many moons has Mars?")
    assert follow_up_queries("How many?", history, settings) == [
        ("How many?", 0.2), ("How many? a3 q3", 1.0), ("How many? a3 q3 a2 q2", 1.0),
        ("How many? a3 q3 a2 q2 a1 q1", 1.0)]
    assert follow_up_queries("How many moons has Mars?", history, settings) == [
        ("How many moons has Mars?", 0.2), ("How many moons has Mars? a3 q3", 1.0)]


def test_gate_searches_a_question_that_finds_a_page_alone_by_itself_and_any_other_with_its_turns():
    settings = FollowUpSettings("gate", turns=2, standalone_score=0.45)
    alone = follow_up_queries("Who founded Rome?", HISTORY, settings, alone_score=0.45)
    assert alone == [("Who founded Rome?", 1.0)]
    decay = follow_up_queries("Where did he die?", HISTORY, FollowUpSettings("decay", turns=2))
    below = follow_up_queries("Where did he die?", HISTORY, settings, alone_score=0.44)
    assert below == [("Where did he die?", 0.2), *decay[1:]]
    assert follow_up_queries("Where did he die?", HISTORY, settings) == below  # no score: the turns join


def test_gate_never_lets_a_question_that_names_nothing_decide_the_search_alone():
    settings = FollowUpSettings("gate", turns=2, standalone_score=0.45)
    for question in ["Who was behind her?", "To whom?", "Where was he?", "Which are they?"]:
        assert leans_on_conversation(question)
        queries = follow_up_queries(question, HISTORY, settings, alone_score=0.9)  # however well it matched
        assert queries[0] == (question, 0.2) and len(queries) == 3  # searched with its turns
    named = ["What is entropy?", "Who founded Rome?", "Who walked in first?", "Did he study law in Paris?",
             "Is there friction?", "How many electrons are there?"]
    for question in named:
        assert not leans_on_conversation(question)
        assert follow_up_queries(question, HISTORY, settings, alone_score=0.9) == [(question, 1.0)]


def test_decay_searches_the_question_and_growing_windows_with_decaying_weights():
    history = [{"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1"},
               {"role": "user", "content": "q2"}, {"role": "assistant", "content": "a2"}]
    queries = follow_up_queries("q3", history, FollowUpSettings("decay", turns=3, decay=0.5))
    assert queries == [("q3", 1.0), ("q3 a2 q2", 0.5), ("q3 a2 q2 a1 q1", 0.25)]


def test_weighted_fusion_divides_each_ranking_by_its_best_and_weights_it():
    fused = fuse_weighted([(1.0, [hit(1, 0.8), hit(2, 0.4)]), (0.5, [hit(2, 10.0), hit(3, 5.0)])])
    assert [(h.chunk_index, round(h.score, 3)) for h in fused] == [(1, 0.667), (2, 0.667), (3, 0.167)]
    assert fuse_weighted([(1.0, [])]) == []


def test_settings_and_history_are_checked_with_readable_errors():
    with pytest.raises(UnknownFollowUpStrategyError, match="Did you mean concat"):
        FollowUpSettings("concate")
    with pytest.raises(ValueError, match="out of range"):
        FollowUpSettings(decay=0)
    turns = parse_history([{"role": "user", "content": "Hi", "extra": 1}])
    assert turns == [{"role": "user", "content": "Hi"}]
    with pytest.raises(ValueError, match="must be a list"):
        parse_history("Hi")
    with pytest.raises(ValueError, match="history turn 2 is .*user or assistant"):
        parse_history([{"role": "user", "content": "Hi"}, {"role": "system", "content": "x"}])


@pytest.fixture(scope="module")
def coqa_like(tmp_path_factory):
    """The fixture stories typeset as a course (a page each) and ingested; its conversation lines."""
    from ingest.run import ingest_paths
    from scripts.make_coqa_course import CONVERSATIONS_NAME, PDF_NAME, read_stories, typeset, write_outputs
    from scripts.typeset import find_font

    folder = tmp_path_factory.mktemp("coqa-like")
    pdf, lines = typeset(read_stories(COQA_LIKE), find_font(None))
    write_outputs(pdf, lines, folder)
    store = CourseStore(path=folder / "chroma")
    # chunks short enough that no chunk runs from one story's page onto the next
    report = ingest_paths([folder / PDF_NAME], COURSE, store, HashingEmbedder(), chunk_tokens=24,
                          chunk_overlap=0)
    assert report.failed == []
    assert {(c.page_start, c.page_end) for c in store.chunks(COURSE)} == {(1, 1), (2, 2), (3, 3)}
    return Retriever(store, HashingEmbedder()), load_gold(folder / CONVERSATIONS_NAME)


def test_the_conversation_file_has_one_line_per_turn_with_the_true_earlier_answers(coqa_like):
    _, items = coqa_like
    assert [(i.turn, i.page) for i in items] == [(t, p) for p in (1, 2, 3) for t in (1, 2, 3)]
    third = items[2]
    assert third.history == [{"role": "user", "content": "Who was the actor?"},
                             {"role": "assistant", "content": "Dennis Farina"},
                             {"role": "user", "content": "What did he do before?"},
                             {"role": "assistant", "content": "police officer"}]


@pytest.mark.parametrize("strategy", ["gate", "concat", "decay"])
def test_a_follow_up_with_a_pronoun_finds_the_page_of_the_earlier_turn(coqa_like, strategy):
    retriever, items = coqa_like
    [follow_up] = [i for i in items if i.question == "For how long?"]
    alone = retriever.search(COURSE, follow_up.question, k=1, mode="hybrid")
    assert first_relevant_rank(alone, follow_up) is None  # the question alone misses the volcano's page
    hits = search_conversation(retriever, COURSE, follow_up.question, follow_up.history, k=1, mode="hybrid",
                               settings=FollowUpSettings(strategy))
    assert first_relevant_rank(hits, follow_up) == 1


def test_history_lifts_later_turns_and_leaves_first_turns_unchanged(coqa_like):
    retriever, items = coqa_like
    alone = evaluate_mode(retriever, COURSE, items, "hybrid", follow_up=FollowUpSettings("none"))
    with_history = evaluate_mode(retriever, COURSE, items, "hybrid", follow_up=FollowUpSettings())
    assert alone.groups["first"] == with_history.groups["first"]
    assert alone.groups["later"]["questions"] == 6
    assert with_history.groups["later"]["recall@1"] == 1.0 > alone.groups["later"]["recall@1"]
    assert [r["group"] for r in with_history.items[:3]] == ["first", "later", "later"]


def test_gate_searches_a_change_of_subject_alone_once_the_question_finds_its_page(coqa_like):
    retriever, items = coqa_like
    first_of_story_2 = next(i for i in items if i.page == 2 and i.turn == 1)
    story_1 = next(i for i in items if i.page == 1 and i.turn == 3)
    conversation = [*story_1.history, {"role": "user", "content": story_1.question},
                    {"role": "assistant", "content": "ten years"}]
    alone = retriever.search(COURSE, first_of_story_2.question, k=1, mode="dense")[0].score
    gate = FollowUpSettings("gate", standalone_score=alone)
    hits = search_conversation(retriever, COURSE, first_of_story_2.question, conversation, k=1, settings=gate)
    assert hits == retriever.search(COURSE, first_of_story_2.question, k=1, mode="hybrid")
    assert first_relevant_rank(hits, first_of_story_2) == 1
    never_alone = FollowUpSettings("gate", standalone_score=alone + 0.01)
    pulled = search_conversation(retriever, COURSE, first_of_story_2.question, conversation, k=1,
                                 settings=never_alone)
    assert first_relevant_rank(pulled, first_of_story_2) is None  # just below the gate: the old story's page


def test_the_not_covered_cut_takes_the_question_with_its_last_exchange(coqa_like):
    retriever, items = coqa_like
    [follow_up] = [i for i in items if i.question == "For how long?"]
    question_alone = retriever.search(COURSE, follow_up.question, k=1, mode="dense")[0].score
    with_history = search_conversation(retriever, COURSE, follow_up.question, follow_up.history, k=2,
                                       min_score=question_alone + 0.01, mode="hybrid")
    assert first_relevant_rank(with_history, follow_up) == 1  # covered through its conversation
    assert search_conversation(retriever, COURSE, follow_up.question, follow_up.history, k=2, min_score=0.99,
                               mode="hybrid") == []
    first = retriever.search(COURSE, items[0].question, k=3, min_score=0.1, mode="hybrid")
    assert search_conversation(retriever, COURSE, items[0].question, [], k=3, min_score=0.1,
                               mode="hybrid") == first


def test_coverage_asks_the_question_alone_with_its_last_exchanges_and_those_exchanges_alone():
    assert coverage_queries("Whom?", []) == ["Whom?"]
    conversation = [*HISTORY[:3], {"role": "user", "content": "Where?"},
                    {"role": "assistant", "content": "Ohio [2]."}]
    assert coverage_queries("Whom?", conversation) == [
        "Whom?", "Whom? Ohio . Where?", "Whom? Ohio . Where? Dennis Farina . Who was the actor?",
        "Ohio . Where? Dennis Farina . Who was the actor?"]  # most recent first, citation marks left out


def test_a_question_is_covered_alone_or_as_a_continuation_of_its_conversation():
    assert covers([0.5], 0.3, 0.1)  # first turn: the question alone decides
    assert not covers([0.2], 0.3, 0.1)
    assert covers([0.5, 0.0, 0.0, 0.9], 0.3, 0.1)  # it finds its own page, whatever came before
    assert covers([0.2, 0.28, 0.45, 0.5], 0.3, 0.1)  # "When was the census?" keeps the Bronx exchanges' match
    assert not covers([0.2, 0.28, 0.38, 0.5], 0.3, 0.1)  # another subject dilutes them by 0.12
    assert covers([0.2, 0.28, 0.38, 0.5], 0.3, 0.15)
    assert not covers([0.2, 0.25, 0.29, 0.3], 0.3, 0.1)  # nothing reaches the threshold


def test_a_change_of_subject_is_not_covered_by_the_conversation_before_it(coqa_like):
    retriever, items = coqa_like
    [follow_up] = [i for i in items if i.question == "For how long?"]
    off_topic = "Which sonnet form rhymes abab cdcd efef gg?"
    threshold = 0.01 + max(retriever.search(COURSE, question, k=1, mode="dense")[0].score
                           for question in (follow_up.question, off_topic))  # neither is covered alone
    # The hashing embedder dilutes less than MiniLM: the off-topic question lowers the exchanges' best match
    # by about 0.05, the follow-up raises it, so a margin of 0.03 tells them apart here.
    strict, lenient = FollowUpSettings(continues_margin=0.03), FollowUpSettings(continues_margin=1.0)
    for question, answered in ((follow_up.question, True), (off_topic, False)):
        hits = search_conversation(retriever, COURSE, question, follow_up.history, k=1, min_score=threshold,
                                   mode="hybrid", settings=strict)
        assert bool(hits) is answered, question
        # without the continuation test, the conversation carries either question
        assert search_conversation(retriever, COURSE, question, follow_up.history, k=1, min_score=threshold,
                                   mode="hybrid", settings=lenient)


def test_gate_leads_with_the_chunk_of_its_first_page_that_the_question_ranks_highest():
    ranking = [hit(1, 0.9, page=5), hit(7, 0.8, page=2), hit(2, 0.7, page=5)]
    assert lead_with_chunk_of_first_page(ranking, [hit(2, 1.0, page=5), hit(7, 0.9, page=2)]) == [
        hit(2, 0.9, page=5), hit(1, 0.9, page=5), hit(7, 0.8, page=2)]
    assert lead_with_chunk_of_first_page(ranking, [hit(7, 1.0, page=2), hit(1, 0.9, page=5)]) == ranking
    assert lead_with_chunk_of_first_page([], ranking) == []


def test_a_question_that_names_nothing_is_covered_after_an_answered_turn_whatever_its_match(coqa_like):
    retriever, items = coqa_like
    [follow_up] = [i for i in items if i.question == "Where did he die?"]
    assert follows_an_answer(follow_up.question, follow_up.history)
    hits = search_conversation(retriever, COURSE, follow_up.question, follow_up.history, k=1, min_score=0.99,
                               mode="hybrid")
    assert first_relevant_rank(hits, follow_up) == 1  # "Where did he die?" cannot change the subject
    refused = [*follow_up.history[:-1], {"role": "assistant", "content": NO_CONTEXT_ANSWER}]
    assert not follows_an_answer(follow_up.question, refused)
    assert search_conversation(retriever, COURSE, follow_up.question, refused, k=1, min_score=0.99,
                               mode="hybrid") == []  # after "not covered", its match decides as before
    assert not follows_an_answer("Where did Farina die?", follow_up.history)  # it names its subject
    assert not follows_an_answer("Where did he die?", follow_up.history[:1])  # no answer yet


class RankingsBySearch:
    """A searcher returning a fixed ranking for each query, by how many exchanges the query holds."""

    def __init__(self, rankings: list[list[Hit]]):
        self.rankings = rankings

    def search_many(self, course, questions, *, k=4, min_score=None, mode="dense"):
        last = len(self.rankings) - 1
        return [self.rankings[min(question.count(" a"), last)][:k] for question in questions]

    def search(self, course, question, *, k=4, min_score=None, mode="dense"):
        return self.search_many(course, [question], k=k, mode=mode)[0]


def test_a_long_window_picks_the_page_and_the_nearest_windows_its_chunk():
    history = [message for n in (1, 2, 3) for message in ({"role": "user", "content": f"q{n}"},
                                                            {"role": "assistant", "content": f"a{n}"})]
    near = [hit(2, 0.9, page=5), hit(7, 0.85, page=2), hit(1, 0.5, page=5)]  # the question, the last exchange
    far = [hit(1, 0.9, page=5), hit(2, 0.3, page=5)]  # the windows reaching further back
    searcher = RankingsBySearch([near, near, far, far])
    settings = FollowUpSettings("gate", turns=1, leaning_turns=3)
    hits = search_conversation(searcher, COURSE, "How many?", history, k=2, settings=settings)
    assert [(h.page, h.chunk_index) for h in hits] == [(5, 2), (5, 1)]  # page 5 by all, chunk 2 by the near
