"""The conversation-latency bench: which turns it asks, and the prompt it compares against (no model)."""

from __future__ import annotations

from bench.conversation_latency import conversations, reading_everything
from engine.evaluation.answers import AnswerItem
from engine.grounded import PreparedAnswer
from engine.runtime.base import GenerationRequest


def item(question: str, turn: int) -> AnswerItem:
    earlier = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}] * (turn - 1)
    return AnswerItem(id=question, question=question, references=["x"], conversation=earlier, turn=turn)


def test_the_first_stories_are_asked_in_order_up_to_the_turn_limit():
    items = [item(f"s{story}t{turn}", turn) for story in range(3) for turn in (1, 2, 3)]
    assert conversations(items, stories=2, turns=2) == [["s0t1", "s0t2"], ["s1t1", "s1t2"]]


def test_the_whole_conversation_goes_between_the_system_prompt_and_the_question():
    system, last, question = ({"role": "system", "content": "tutor"}, {"role": "user", "content": "q2"},
                              {"role": "user", "content": "notes and question"})
    served = PreparedAnswer(GenerationRequest(messages=[system, last, question], max_new_tokens=9))
    whole = [{"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1"}, last]
    everything = reading_everything(served, whole).generation
    assert everything.messages == [system, *whole, question] and everything.max_new_tokens == 9
    assert served.generation.messages == [system, last, question]  # the served request is left as it was
