"""The grounded data builder on a few hand-made SQuAD and CoQA rows."""

from __future__ import annotations

import json
import re

import pytest

from engine.grounded import AnswerOptions, prepare_answer
from engine.reader import ShortAnswer
from retrieval import NO_CONTEXT_ANSWER
from tests.utils.fakes import FakeReader, FakeRetriever, FakeRuntime, FakeStore, make_hit
from tests.utils.grounded_rows import QUESTIONS, write_grounded_rows
from training.cleaning import CleaningConfig
from training.data.grounded import BuildConfig, build_grounded_data, chunk_story, cited_answer, stated_answer
from training.data.readers import read_preference_pairs, read_sft
from training.errors import RecipeError

NOTE = r"^\[(\d+)\] (.*)$"  # one source of a prompt: its number and text (re.M)
SHORT_LINE = r"^Short answer: (.*) \[(\d+)\]$"  # the reader's short answer in a prompt (re.M)


@pytest.fixture
def data_files(tmp_path):
    return write_grounded_rows(tmp_path)


def build(tmp_path, data_files, **changes):
    squad, coqa = data_files
    config = BuildConfig(passages=3, dev_fraction=0.3, abstention_share=1.0, chunk_words=12, seed=1)
    for name, value in changes.items():
        setattr(config, name, value)
    return build_grounded_data(tmp_path / "out", squad=squad, coqa=coqa, config=config,
                               cleaning=CleaningConfig())


def test_outputs_are_read_by_the_sft_and_preference_readers(tmp_path, data_files):
    report = build(tmp_path, data_files)
    for name in ("sft_train", "sft_dev"):
        result = read_sft(report.files[name], on_error="fail")
        assert result.rows and not result.bad_rows
    for name in ("dpo_train", "dpo_dev"):
        result = read_preference_pairs(report.files[name], on_error="fail")
        assert result.rows and not result.bad_rows


def test_splits_keep_each_article_and_story_whole(tmp_path, data_files):
    report = build(tmp_path, data_files)
    groups = {name: {json.loads(line)["group"] for line in open(path)} for name, path in report.files.items()
              if name != "calibration"}
    assert groups["sft_train"] and groups["sft_dev"]
    assert not groups["sft_train"] & groups["sft_dev"]
    assert not groups["dpo_train"] & groups["dpo_dev"]


def rows_of(report, name):
    return [json.loads(line) for line in open(report.files[name])]


def cited_note(row):
    """An answered row's target: its stated text, the note number it cites, and the prompt's notes by
    number."""
    stated, n = re.fullmatch(r"(.*) \[(\d+)\]\.", row["completion"], re.S).groups()
    return stated, n, dict(re.findall(NOTE, row["prompt"][-1]["content"], re.M))


def test_the_target_cites_the_source_that_holds_the_answer(tmp_path, data_files):
    report = build(tmp_path, data_files)
    rows = rows_of(report, "sft_train") + rows_of(report, "sft_dev")
    answered = [row for row in rows if row["kind"] == "answer"]
    assert len(answered) == 11  # 9 SQuAD questions and the 2 CoQA turns whose answer names a passage
    for row in answered:
        reference, n, notes = cited_note(row)
        assert len(notes) == 3
        assert reference.lower() in notes[n].lower()
        assert all(reference.lower() not in text.lower() for m, text in notes.items() if m != n)


def test_rejected_kinds_and_abstention_examples_are_present(tmp_path, data_files):
    report = build(tmp_path, data_files)
    pairs = rows_of(report, "dpo_train") + rows_of(report, "dpo_dev")
    assert {"distractor", "wrong_source", "uncited", "abstention"} <= {p["kind"] for p in pairs}
    abstentions = [r for name in ("sft_train", "sft_dev") for r in rows_of(report, name)
                   if r["kind"] == "abstention"]
    assert abstentions and all(r["completion"] == NO_CONTEXT_ANSWER for r in abstentions)
    for row in abstentions:  # none of the shown passages comes from the question's own article
        title = row["group"].split(":", 1)[1]
        assert f'file="{title}.pdf"' not in row["prompt"][-1]["content"]
    by_kind = {p["kind"]: p for p in pairs}
    assert re.fullmatch(r".+ \[\d\]\.", by_kind["wrong_source"]["rejected"])
    assert "[" not in by_kind["uncited"]["rejected"]
    # notes of several sentences: the right note cited, but another of its sentences
    longer = build(tmp_path / "longer", data_files, chunk_words=40)
    wrong_sentences = [p for p in rows_of(longer, "dpo_train") + rows_of(longer, "dpo_dev")
                       if p["kind"] == "wrong_sentence"]
    assert wrong_sentences
    for pair in wrong_sentences:
        _, n, notes = cited_note({"completion": pair["chosen"], "prompt": pair["prompt"]})
        rejected, cited = re.fullmatch(r"(.*) \[(\d+)\]\.", pair["rejected"], re.S).groups()
        assert cited == n and rejected.rstrip(".").lower() in notes[n].lower() and rejected != pair["chosen"]


def test_the_prompt_is_the_one_serving_builds_with_coqa_turns_as_the_conversation(tmp_path, data_files):
    report = build(tmp_path, data_files, dev_fraction=0.0)
    [row] = [r for r in rows_of(report, "sft_train") if r["id"] == "story1:2" and r["kind"] == "answer"]
    history = [{"role": "user", "content": "Where does Anna keep bees?"},
               {"role": "assistant", "content": "In her garden."},
               {"role": "user", "content": "Does she sell honey?"},
               {"role": "assistant", "content": "Yes."}]
    assert row["prompt"][1:5] == history
    hits = [make_hit(text, page=int(n)) for n, text in re.findall(NOTE, row["prompt"][-1]["content"], re.M)]
    # Serving's own path, its retriever returning the same sources, builds the very same messages.
    served = prepare_answer(FakeRetriever(FakeStore({"bees": []}), hits), "bees", "Who builds the hives?",
                            conversation=history)
    assert served.generation.messages == row["prompt"]


def test_the_cleaning_report_counts_each_step(tmp_path, data_files):
    build(tmp_path, data_files)
    report = json.loads((tmp_path / "out" / "cleaning_report.json").read_text())
    steps = {step["step"]: step for step in report["steps"]}
    assert steps["coqa: turns whose answer locates a passage"]["removed"] == 1  # the yes/no turn
    assert "sft train: drop exact duplicates" in steps and "dpo dev: drop exact duplicates" in steps
    assert report["splits"]["sft train"] + report["splits"]["sft dev"] == 11 + sum(
        n["sft abstention"] for n in report["kinds"].values())
    markdown = (tmp_path / "out" / "cleaning_report.md").read_text()
    assert "| step | before | removed | after | note |" in markdown


def test_model_answers_become_rejected_when_wrong_and_cited_targets_when_right(tmp_path, data_files):
    squad, _ = data_files
    config = BuildConfig(passages=3, dev_fraction=0.0, abstention_share=0.0)
    wrong_runtime = FakeRuntime(answer="Paris.")
    wrong = build_grounded_data(tmp_path / "a", squad=squad, config=config, runtime=wrong_runtime,
                                on_policy=2)
    assert (wrong.kinds["train"]["on_policy"], wrong.kinds["train"]["self"]) == (2, 0)
    assert [p["rejected"] for p in rows_of(wrong, "dpo_on_policy_train")] == ["Paris.", "Paris."]
    assert not {p["kind"] for p in rows_of(wrong, "dpo_train")} & {"on_policy"}
    # The same seed draws the same prompt; its reference answer in the model's words, cited wrongly or
    # not at all, becomes an SFT target citing the gold note; cited rightly, it teaches nothing.
    prompt = wrong_runtime.requests[0].messages
    [target] = [row["completion"] for row in rows_of(wrong, "sft_train") if row["prompt"] == prompt]
    gold = target.rsplit(" [", 1)[1].rstrip("].")
    reference = next(q[2][0] for items in QUESTIONS.values() for q in items
                     if q[1] in prompt[-1]["content"])
    for answer, kept in ((f"It is {reference} [9].", f"It is {reference} [{gold}]."),
                         (f"It is {reference} [{gold}].", None)):
        runtime = FakeRuntime(answer=answer)
        built = build_grounded_data(tmp_path / answer, squad=squad, config=config, runtime=runtime,
                                    on_policy=1)
        assert built.kinds["train"]["on_policy"] == 0 and len(runtime.requests) == 1
        assert [row["completion"] for row in rows_of(built, "sft_self_train")] == ([kept] if kept else [])


def test_chunk_story_merges_short_paragraphs_and_cuts_long_ones():
    assert chunk_story("a b\n\nc d\n\nw w w w w", 4) == ["a b\nc d", "w w w w", "w"]
    assert cited_answer("the North Sea.", 2) == "The North Sea [2]."


def test_the_stated_answer_is_its_sentence_cut_to_the_clauses_around_it():
    note = ("Tides rise twice a day. The pull of the moon's gravity on Earth causes tides, which sailors, "
            "fishers and surfers follow closely, since boats, nets and waves all depend on them every day.")
    assert stated_answer(note, "twice a day") == "Tides rise twice a day."
    assert stated_answer(note, "gravity", max_words=40).startswith("The pull of the moon's gravity")
    cut = stated_answer(note, "surfers", max_words=12)
    assert "surfers" in cut and len(cut.split()) <= 12 and not cut.endswith(",")
    assert stated_answer(note, "the sun") is None


def test_sentence_targets_copy_the_note_and_span_targets_only_the_answer(tmp_path, data_files):
    for style, report in (("sentence", build(tmp_path / "s", data_files)),
                          ("span", build(tmp_path / "p", data_files, answer_style="span"))):
        for row in rows_of(report, "sft_train"):
            if row["kind"] != "answer":
                continue
            stated, n, notes = cited_note(row)
            note = notes[n]
            assert stated.lower() in note.lower()
            assert (len(stated.split()) > 3) == (style == "sentence") or len(note.split()) <= 3


def test_config_refuses_a_single_passage():
    with pytest.raises(RecipeError, match="passages must be at least 2"):
        BuildConfig(passages=1)


def test_tutor_data_grounded_builds_from_the_given_set_only(tmp_path, data_files):
    from typer.testing import CliRunner

    from cli.main import app

    squad, _ = data_files
    result = CliRunner().invoke(app, ["data", "grounded", "--squad", str(squad), "--out", str(tmp_path / "g"),
                                      "--passages", "3", "--dev-fraction", "0.3"])
    assert result.exit_code == 0, result.output
    assert "squad: questions whose answer is whole in one chunk" in result.output
    assert "coqa" not in result.output
    assert sorted(p.name for p in (tmp_path / "g").iterdir()) == [
        "calibration.jsonl", "cleaning_report.json", "cleaning_report.md", "dpo_dev.jsonl", "dpo_train.jsonl",
        "sft_dev.jsonl", "sft_train.jsonl"]


def test_a_question_whose_answer_the_key_sentences_hide_gives_no_example_and_is_counted(tmp_path, data_files):
    whole = build(tmp_path / "whole", data_files, chunk_words=40, source_sentences=0)
    one = build(tmp_path / "one", data_files, chunk_words=40, source_sentences=1)
    hidden = {s.step: s.removed for s in one.cleaning.steps if "key sentences" in s.step}
    assert set(hidden) == {"train: answers still in the gold source's key sentences",
                           "dev: answers still in the gold source's key sentences"}
    assert all(s.removed == 0 for s in whole.cleaning.steps if "key sentences" in s.step)
    answered = [row for row in rows_of(one, "sft_train") + rows_of(one, "sft_dev") if row["kind"] == "answer"]
    whole_answered = [row for row in rows_of(whole, "sft_train") + rows_of(whole, "sft_dev")
                      if row["kind"] == "answer"]
    assert sum(hidden.values()) > 0 and len(answered) + sum(hidden.values()) == len(whole_answered)
    for row in answered:  # every kept target's note still states it
        stated, n, notes = cited_note(row)
        assert stated.lower() in notes[n].lower()


def test_squad_contexts_are_cut_like_course_chunks_and_the_gold_chunk_holds_the_answer(tmp_path, data_files):
    report = build(tmp_path, data_files)
    for row in rows_of(report, "sft_train") + rows_of(report, "sft_dev"):
        user = row["prompt"][-1]["content"]
        sources = re.findall(NOTE, user, re.M)
        assert all(len(text.split()) <= 12 for _, text in sources)  # chunk_words=12
        if row["kind"] == "answer":
            answer, cited, notes = cited_note(row)
            assert answer.lower() in notes[cited].lower()


def test_the_calibration_texts_are_the_dev_passages_quoted_as_sources(tmp_path, data_files):
    report = build(tmp_path, data_files)
    texts = [json.loads(line)["text"] for line in open(report.files["calibration"])]
    dev_sources = {text for row in rows_of(report, "sft_dev")
                   for _, text in re.findall(NOTE, row["prompt"][-1]["content"], re.M)}
    assert texts and len(set(texts)) == len(texts)
    # each is one source (numbered 1) of a dev passage, as a dev prompt shows it under some number
    assert all(t.startswith("[1] ") and t.removeprefix("[1] ") in dev_sources for t in texts)


def test_short_in_prompt_shows_the_reference_as_the_short_answer_of_the_cited_note(tmp_path, data_files):
    report = build(tmp_path, data_files, short_in_prompt=True, abstention_share=0.0)
    answered = [row for row in rows_of(report, "sft_train") + rows_of(report, "sft_dev")
                if row["kind"] == "answer"]
    assert answered
    for row in answered:
        _, n, notes = cited_note(row)
        short, shown_n = re.search(SHORT_LINE, row["prompt"][-1]["content"], re.M).groups()
        assert shown_n == n and short.lower() in notes[n].lower()
    # serving, its reader finding that span, builds the very same messages
    [row] = [r for r in answered if r["id"] == "story1:2"]
    short, shown_n = re.search(SHORT_LINE, row["prompt"][-1]["content"], re.M).groups()
    hits = [make_hit(text, page=int(n)) for n, text in re.findall(NOTE, row["prompt"][-1]["content"], re.M)]
    reader = FakeReader(ShortAnswer(short, int(shown_n), 1.0))
    served = prepare_answer(FakeRetriever(FakeStore({"bees": []}), hits), "bees", "Who builds the hives?",
                            conversation=row["prompt"][1:5], options=AnswerOptions(reader=reader,
                                                                                  short_in_prompt=True))
    assert served.generation.messages == row["prompt"]
    plain = build(tmp_path / "plain", data_files, abstention_share=0.0)
    assert "Short answer:" not in json.dumps(rows_of(plain, "sft_train"))
