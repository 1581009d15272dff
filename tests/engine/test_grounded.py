"""The grounded-answer path cites an uncited answer the same way whole and streamed."""

from __future__ import annotations

from engine.grounded import AnswerOptions, generate_answer, prepare_answer, stream_answer
from tests.utils.deploy import StreamingFakeRuntime
from tests.utils.fakes import FakeRetriever, FakeStore, make_hit

HITS = [make_hit("Friction slows a sliding block."), make_hit("Inertia keeps a moving body moving.")]


def prepared(question: str = "What keeps a body moving?", **options):
    retriever = FakeRetriever(FakeStore({"physics": []}), HITS)
    return prepare_answer(retriever, "physics", question, options=AnswerOptions(**options))


def test_an_uncited_answer_ends_with_its_notes_citation_whole_and_streamed():
    runtime = StreamingFakeRuntime(answer="Inertia does.")
    whole = generate_answer(runtime, prepared())
    quote = ' The notes say: "Friction slows a sliding block." [1]'
    assert (whole.text, whole.added) == ("Inertia does. [2]" + quote, " [2]" + quote)
    assert "".join(stream_answer(runtime, prepared())) == whole.text


def test_the_models_own_citation_stands_and_the_setting_turns_citing_off():
    cited = generate_answer(StreamingFakeRuntime(answer="Inertia does [1]."), prepared())
    assert (cited.text, cited.added) == ("Inertia does [1].", "")
    runtime = StreamingFakeRuntime(answer="Inertia does.")
    assert generate_answer(runtime, prepared(cite_uncited=False)).text == "Inertia does."
    assert "".join(stream_answer(runtime, prepared(cite_uncited=False))) == "Inertia does."


def test_generation_stops_where_the_answer_would_read_the_prompt_back():
    runtime = StreamingFakeRuntime(answer="Inertia does [2].")
    generate_answer(runtime, prepared(stop=("</s>",)))
    assert runtime.requests[-1].stop == ["</s>", "\n[", "\nQuestion:"]
