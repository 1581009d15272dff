"""The grounded-answer path ends an answer with the best note quoted the same way whole and streamed."""

from __future__ import annotations

from engine.grounded import AnswerOptions, generate_answer, prepare_answer, stream_answer
from tests.utils.deploy import StreamingFakeRuntime
from tests.utils.fakes import FakeRetriever, FakeStore, make_hit

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
    runtime = StreamingFakeRuntime(answer="Inertia does [2].")
    generate_answer(runtime, prepared(stop=("</s>",)))
    assert runtime.requests[-1].stop == ["</s>", "\n[", "\nQuestion:"]
