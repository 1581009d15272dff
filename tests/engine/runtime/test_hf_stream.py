"""Integration: HFRuntime.stream on the real default model, against its own generate()."""

from __future__ import annotations

import time

import pytest

from engine.runtime import GenerationRequest
from engine.runtime.streaming import ends_in_loop

pytestmark = pytest.mark.integration

MESSAGES = [{"role": "user", "content": "Explain in two sentences why the sky is blue."}]


def test_stream_yields_pieces_that_add_up_to_the_generated_text(runtime):
    request = GenerationRequest(messages=MESSAGES, max_new_tokens=20)
    pieces = list(runtime.stream(request))
    assert len(pieces) > 1
    assert "".join(pieces).strip() == runtime.generate([request])[0].text


def test_stream_ends_before_a_stop_string(runtime):
    full = runtime.generate([GenerationRequest(messages=MESSAGES, max_new_tokens=20)])[0].text
    stop = full.split()[3]  # a word in the middle of the greedy answer
    streamed = "".join(runtime.stream(GenerationRequest(messages=MESSAGES, max_new_tokens=20, stop=[stop])))
    assert stop not in streamed
    assert streamed.strip() == full[: full.index(stop)].strip()


def test_closing_a_stream_early_stops_generation_and_frees_the_model(runtime):
    stream = runtime.stream(GenerationRequest(messages=MESSAGES, max_new_tokens=400))
    assert next(stream)
    closing = time.perf_counter()
    stream.close()  # what a client that disconnects causes
    assert time.perf_counter() - closing < 2.0, "generation went on after the stream was closed"
    assert not runtime.lock.locked()


def test_a_stop_string_is_matched_in_the_answer_only_not_across_the_end_of_the_prompt(runtime):
    full = runtime.generate([GenerationRequest(messages=MESSAGES, max_new_tokens=20)])[0].text
    assert runtime.format_chat(MESSAGES).endswith("\n")  # the chat template's last line break
    stop = "\n" + full[:3]  # the prompt's end and the answer's start would form it
    assert stop not in full
    request = GenerationRequest(messages=MESSAGES, max_new_tokens=20, stop=[stop])
    assert runtime.generate([request])[0].text == full
    assert "".join(runtime.stream(request)).strip() == full


def test_an_answer_that_loops_ends_at_its_third_repeat_whole_and_streamed(runtime):
    messages = [{"role": "user", "content": "Write the words 'banana split' fifty times, with spaces."}]
    looping = runtime.generate([GenerationRequest(messages=messages, max_new_tokens=60)])[0]
    assert looping.finish_reason == "length"  # the stock model's greedy answer repeats itself to the cap
    request = GenerationRequest(messages=messages, max_new_tokens=60, stop_loops=True)
    [ended] = runtime.generate([request])
    assert ended.finish_reason == "stop" and ended.completion_tokens < 40
    assert looping.text.startswith(ended.text) and ends_in_loop(ended.text)
    assert "".join(runtime.stream(request)).strip() == ended.text
