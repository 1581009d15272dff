"""The MCQ engine with a fake runtime: prompts, picks, context and refusals, no model."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from engine.mcq.engine import CHUNK_SIZES, MCQEngine, MCQInputError, MCQItem, MCQOptions, loglik_prompt
from engine.runtime import GenerationResult, LoglikelihoodRequest
from retrieval import SourceInfo
from tests.utils.fakes import FakeRetriever, FakeRuntime, FakeStore, make_hit


@dataclass
class ScriptedRuntime(FakeRuntime):
    """Log-likelihoods from a table keyed by continuation; replies in turn for generation."""

    logliks: dict[str, float] = field(default_factory=dict)
    replies: list[str] = field(default_factory=list)
    scored: list[LoglikelihoodRequest] = field(default_factory=list)

    def loglikelihood(self, requests):
        self.scored.extend(requests)
        return [(self.logliks[r.continuation], False) for r in requests]

    def generate(self, requests):
        self.requests.extend(requests)
        return [GenerationResult(text=self.replies.pop(0), prompt_tokens=1, completion_tokens=1)
                for _ in requests]


PLANETS = MCQItem(question="Which planet is largest?", choices=["Mars", "Jupiter", "Ve"], id="q1", answer=1)


def test_loglik_uses_lm_eval_prompt_and_picks_acc_and_acc_norm():
    runtime = ScriptedRuntime(logliks={" Mars": -3.0, " Jupiter": -3.5, " Ve": -2.5})
    [prediction] = MCQEngine(runtime).answer([PLANETS], MCQOptions())
    assert [r.context for r in runtime.scored] == ["Question: Which planet is largest?\nAnswer:"] * 3
    assert prediction.letter == "C"  # -2.5 is the largest
    assert prediction.letter_norm == "B"  # -3.5/7 = -0.5 beats -3/4 and -2.5/2
    assert prediction.correct is False
    assert sum(prediction.probs) == pytest.approx(1.0)


def test_letters_format_scores_the_letters():
    context, continuations = loglik_prompt(PLANETS, "letters", [])
    assert context.endswith("A. Mars\nB. Jupiter\nC. Ve\nAnswer:")
    assert continuations == [" A", " B", " C"]


def test_loglik_context_can_be_the_key_sentences_of_the_hits_as_plain_text():
    hits = [make_hit(text="Mars is red. Jupiter is the largest planet. Venus is hot.")]
    question = MCQItem(question="Which planet is the largest?", choices=["Mars", "Jupiter"])
    whole, _ = loglik_prompt(question, "lm-eval", hits)
    assert whole.startswith("Course material:\n[1] Mars is red.") and "Venus is hot." in whole
    focused, continuations = loglik_prompt(question, "lm-eval", hits, sentences=1)
    assert focused == ("Course material:\nJupiter is the largest planet.\n\n"
                       "Question: Which planet is the largest?\nAnswer:")
    assert continuations == [" Mars", " Jupiter"]


def test_generate_extracts_the_letter_and_keeps_the_raw_text():
    runtime = ScriptedRuntime(replies=["The answer is B) Jupiter.", "I cannot tell."])
    other = MCQItem(question="Which is blue?", choices=["sky", "grass"], id="q2")
    first, second = MCQEngine(runtime).answer([PLANETS, other], MCQOptions(method="generate"))
    assert (first.letter, first.correct, first.raw_text) == ("B", True, "The answer is B) Jupiter.")
    assert second.letter is None and "no option" in second.reason
    assert "A. Mars\nB. Jupiter\nC. Ve" in runtime.requests[0].messages[-1]["content"]


def test_context_is_retrieved_and_put_before_the_question():
    store = FakeStore({"astro": [SourceInfo("planets.pdf", "h", chunks=1, pages=1)]})
    retriever = FakeRetriever(store, [make_hit("Jupiter is the largest planet.", source="planets.pdf")])
    runtime = ScriptedRuntime(logliks={" Mars": -3.0, " Jupiter": -1.0, " Ve": -2.5})
    [prediction] = MCQEngine(runtime, retriever).answer(
        [PLANETS], MCQOptions(course="astro", use_context=True, top_k=2, context_neighbours=1))
    assert runtime.scored[0].context.startswith("Course material:\n[1] Jupiter is the largest planet.\n")
    assert retriever.searches[0]["k"] == 2
    assert retriever.widened == [1]
    assert [hit.source for hit in prediction.hits] == ["planets.pdf"]


@pytest.mark.parametrize(("options", "message"), [
    (MCQOptions(prompt_format="lm-evl"), "Did you mean lm-eval"),
    (MCQOptions(method="generate", prompt_format="lm-eval"), "is for method 'loglik'"),
    (MCQOptions(use_context=True), "no course is given"),
])
def test_bad_options_are_refused_with_the_fix(options, message):
    with pytest.raises(MCQInputError, match=message):
        MCQEngine(ScriptedRuntime()).answer([PLANETS], options)


@pytest.mark.parametrize(("item", "message"), [
    (MCQItem(question="q", choices=["only one"]), "between 2 and 10"),
    (MCQItem(question="q", choices=["a", " "]), "empty choice"),
    (MCQItem(question="q", choices=["a", "b"], answer=2), "outside its 2 choices"),
])
def test_bad_items_are_refused(item, message):
    with pytest.raises(MCQInputError, match=message):
        MCQEngine(ScriptedRuntime()).answer([item], MCQOptions())


def test_progress_is_reported_per_chunk():
    chunk = CHUNK_SIZES["loglik"]
    items = [MCQItem(question=f"q{i}", choices=["a", "b"]) for i in range(chunk + 6)]
    seen = []
    MCQEngine(FakeRuntime()).answer(items, MCQOptions(), progress=seen.append)
    assert seen == [chunk, chunk + 6]
