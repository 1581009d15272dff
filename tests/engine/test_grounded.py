"""The grounded-answer path ends an answer with the best note quoted the same way whole and streamed."""

from __future__ import annotations

from engine.grounded import AnswerOptions, generate_answer, prepare_answer, stream_answer
from engine.reader import KEY_SENTENCE_BONUS, RANK_PENALTY, ShortAnswer
from retrieval.history import FollowUpSettings
from tests.utils.deploy import StreamingFakeRuntime
from tests.utils.fakes import FakeReader, FakeRetriever, FakeStore, make_hit

HITS = [make_hit("Friction slows a sliding block."), make_hit("Inertia keeps a moving body moving.")]


def prepared(question: str = "What keeps a body moving?", **options):
    retriever = FakeRetriever(FakeStore({"physics": []}), HITS)
    return prepare_answer(retriever, "physics", question, options=AnswerOptions(**options))


def test_an_answer_not_saying_the_best_note_ends_with_it_quoted_whole_and_streamed():
    quote = ' The notes say: "Friction slows a sliding block." [1]'
    for answer in ["Inertia does.", "Inertia does [2]."]:
        runtime = StreamingFakeRuntime(answer=answer)
        whole = generate_answer(runtime, prepared())
        assert (whole.text, whole.added) == (answer + quote, quote)
        assert "".join(stream_answer(runtime, prepared())) == whole.text


def test_an_answer_saying_the_best_note_is_cited_unless_it_cites_and_the_setting_turns_it_off():
    runtime = StreamingFakeRuntime(answer="Friction slows a block.")
    assert generate_answer(runtime, prepared()).text == "Friction slows a block. [1]"
    assert "".join(stream_answer(runtime, prepared())) == "Friction slows a block. [1]"
    cited = generate_answer(StreamingFakeRuntime(answer="Friction slows a block [2]."), prepared())
    assert (cited.text, cited.added) == ("Friction slows a block [2].", "")
    assert generate_answer(runtime, prepared(quote_notes=False)).text == "Friction slows a block."
    assert "".join(stream_answer(runtime, prepared(quote_notes=False))) == "Friction slows a block."


def test_generation_stops_where_the_answer_would_read_the_prompt_back():
    runtime = StreamingFakeRuntime(answer="Inertia does [1].")
    generate_answer(runtime, prepared(stop=("</s>",)))
    assert runtime.requests[-1].stop == ["</s>", "\n[", "\nQuestion:", "\nShort answer:"]


def test_the_short_answer_opens_the_answer_on_its_own_line_whole_and_streamed_first():
    reader = FakeReader(ShortAnswer("inertia.", 1, 3.0))
    retriever = FakeRetriever(FakeStore({"physics": []}), HITS)
    earlier = [{"role": "user", "content": "What slows a block?"},
               {"role": "assistant", "content": "Friction."}]
    prepared_answer = prepare_answer(retriever, "physics", "And what keeps it moving?", conversation=earlier,
                                     options=AnswerOptions(reader=reader))
    runtime = StreamingFakeRuntime(answer="Inertia does [1].")
    whole = generate_answer(runtime, prepared_answer)
    assert whole.text.startswith("inertia [1].\n\nInertia does [1].") and whole.short == reader.short
    pieces = list(stream_answer(runtime, prepared_answer))
    assert pieces[0] == "inertia [1].\n\n" and "".join(pieces) == whole.text
    # It reads the two best-ranked chunks whole, with the exchange before this question, the second's
    # span needing a lead, and favours the sentence of each that shares most words with this question;
    # not the answer just given.
    assert reader.read_calls == [("What slows a block? Friction. And what keeps it moving?",
                                  [hit.text for hit in prepared_answer.sources[:2]], RANK_PENALTY,
                                  "And what keeps it moving?", KEY_SENTENCE_BONUS, "Friction.")]


def test_an_answer_opening_with_filler_loses_the_opening_whole_and_streamed():
    quote = 'The notes say: "Friction slows a sliding block." [1]'
    reader = FakeReader(ShortAnswer("inertia", 2, 3.0))
    for answer, served in [("The answer is [1].", f"inertia [2].\n\n{quote}"),
                           ("The answer to this question is: inertia does.",
                            f"inertia [2].\n\nInertia does. {quote}")]:
        whole = generate_answer(StreamingFakeRuntime(answer=answer), prepared(reader=reader))
        assert whole.text == served and whole.text.endswith(whole.added) and whole.added.strip() == quote
        assert "".join(stream_answer(StreamingFakeRuntime(answer=answer), prepared(reader=reader))) == served
    # Without the quote nothing would take its place: the model's answer stays as it wrote it.
    unquoted = generate_answer(StreamingFakeRuntime(answer="The answer is [1]."), prepared(quote_notes=False))
    assert unquoted.text == "The answer is [1]."


def test_without_a_short_answer_the_answer_is_the_models_own():
    runtime = StreamingFakeRuntime(answer="Friction slows a block [1].")
    whole = generate_answer(runtime, prepared(reader=FakeReader(None)))
    assert (whole.text, whole.short) == ("Friction slows a block [1].", None)


def test_a_yes_or_no_question_gets_the_classifiers_yes_never_a_span_nor_its_no():
    reader = FakeReader(ShortAnswer("Friction", 1, 3.0), yes_no=ShortAnswer("Yes", 1, 2.0))
    runtime = StreamingFakeRuntime(answer="Friction slows a block [1].")
    whole = generate_answer(runtime, prepared("Does friction slow a block?", reader=reader))
    assert whole.text.startswith("Yes [1].\n\nFriction") and whole.short == reader.yes_no
    assert reader.read_calls == [("Does friction slow a block?", [HITS[0].text])]  # the first chunk only
    either = generate_answer(runtime, prepared("Is it friction or inertia?", reader=reader))
    assert either.short == reader.short
    # Its "No" is not said: the answer is the model's own, and no span stands in.
    says_no = FakeReader(ShortAnswer("Friction", 1, 3.0), yes_no=ShortAnswer("No", 1, 2.0))
    denied = generate_answer(runtime, prepared("Does friction slow a block?", reader=says_no))
    assert (denied.text.startswith("Friction slows"), denied.short) == (True, None)
    # Without a classifier (yes_or_no gives None) the answer is the model's own: no span stands in.
    spans_only = FakeReader(ShortAnswer("Friction", 1, 3.0))
    alone = generate_answer(runtime, prepared("Does friction slow a block?", reader=spans_only))
    assert (alone.text.startswith("Friction slows"), alone.short) == (True, None)


def test_the_model_reads_the_exchanges_the_search_draws_on_not_the_whole_conversation():
    retriever = FakeRetriever(FakeStore({"physics": []}), HITS)
    conversation = [{"role": role, "content": f"{role} {n}"}
                    for n in range(4) for role in ("user", "assistant")]
    conversation.insert(3, {"role": "system", "content": "a client's own system prompt"})
    for turns, read in [(2, ["user 2", "assistant 2", "user 3", "assistant 3"]), (0, [])]:
        options = AnswerOptions(follow_up=FollowUpSettings(turns=turns))
        messages = prepare_answer(retriever, "physics", "And then?", conversation=conversation,
                                  options=options).generation.messages
        assert [m["content"] for m in messages[1:-1]] == read
        assert messages[0]["role"] == "system" and messages[-1]["content"].count("And then?") == 1
    # A window that would open with the tutor's answer (two questions in a row) opens after it.
    doubled = [*conversation, {"role": "user", "content": "user 4"}]
    messages = prepare_answer(retriever, "physics", "And then?", conversation=doubled).generation.messages
    assert [m["content"] for m in messages[1:-1]] == ["user 3", "assistant 3", "user 4"]


def test_the_model_reads_the_earlier_answers_as_their_short_answers_and_the_search_reads_them_whole():
    retriever = FakeRetriever(FakeStore({"physics": []}), HITS)
    earlier = 'Inertia [2].\n\nThe notes say: "Inertia keeps a moving body moving." [2]'
    conversation = [{"role": "user", "content": "What keeps a body moving?"},
                    {"role": "assistant", "content": earlier}]
    prepared = prepare_answer(retriever, "physics", "Who named it?", conversation=conversation)
    assert prepared.generation.messages[2] == {"role": "assistant", "content": "Inertia."}
    # The quoted note names the page the conversation is on: the search keeps it.
    assert any("keeps a moving body moving" in search["question"] for search in retriever.searches)


def test_a_sentence_the_notes_do_not_support_is_dropped_whole_and_streamed_unless_turned_off():
    answer = "Inertia keeps it moving [2]. Newton called it the Mars effect."
    quote = ' The notes say: "Friction slows a sliding block." [1]'
    runtime = StreamingFakeRuntime(answer=answer)
    whole = generate_answer(runtime, prepared())
    assert whole.text == "Inertia keeps it moving [2]." + quote
    assert "".join(stream_answer(runtime, prepared())) == whole.text
    assert generate_answer(runtime, prepared(only_supported=False)).text == answer + quote
    # A word of the conversation is supported: the student said it.
    earlier = [{"role": "user", "content": "Who was Newton?"},
               {"role": "assistant", "content": "A physicist."}]
    retriever = FakeRetriever(FakeStore({"physics": []}), HITS)
    followed = prepare_answer(retriever, "physics", "What keeps a body moving?", conversation=earlier)
    assert generate_answer(StreamingFakeRuntime(answer="Newton's inertia does."), followed).text.startswith(
        "Newton's inertia does.")


def test_a_question_asking_what_a_term_means_or_what_a_law_says_gets_no_span():
    reader = FakeReader(ShortAnswer("inertia", 1, 3.0))
    runtime = StreamingFakeRuntime(answer="Friction slows a block [1].")
    for question in ["What is friction?", "What does friction mean?", "What does Newton's first law say?",
                     "What is the difference between friction and drag?", "How does friction work?",
                     "Explain friction."]:
        whole = generate_answer(runtime, prepared(question, reader=reader))
        assert (whole.short, whole.text.startswith("Friction slows")) == (None, True)
    assert reader.read_calls == []
    assert generate_answer(runtime, prepared("What slows a block?", reader=reader)).short == reader.short


def test_what_is_the_x_gets_no_span_when_the_best_note_defines_x_and_one_otherwise():
    from engine.reader import span_answers

    assert not span_answers("What is the Hall coefficient?", "The ratio is called the Hall coefficient.")
    assert span_answers("What is the Hall coefficient?", "The Hall coefficient was measured at 300 K.")
    assert span_answers("What is the capital city?", "Canberra is the capital city.")
    assert span_answers("What is the capital of France?", "The capital of France is a city: Paris.")
