"""Each reader: good rows parsed, bad rows reported with file and line, skip or fail by flag."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import shared_data
from training.data import detect_format, read_dataset
from training.data.readers import (
    pandalm_verdict,
    parse_other_criteria,
    read_course_annotations,
    read_hh_dialogues,
    read_pandalm,
    read_preference_pairs,
    read_sft,
    split_hh_dialogue,
)
from training.errors import DataFormatError


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text(
        "\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n", encoding="utf-8"
    )
    return path


def criteria(overall, correctness="A", relevance="A", clarity="A", completeness="A", other=""):
    return {
        "overall": overall,
        "correctness": correctness,
        "relevance": relevance,
        "clarity": clarity,
        "completeness": completeness,
        "other": other,
    }


def annotation(qid, overall, **kw):
    return {
        "course_id": "phys",
        "question_id": qid,
        "question": f"Question {qid}?",
        "A": "answer a",
        "B": "answer b",
        "ranking_criteria": criteria(overall, **kw),
    }


def test_course_annotations_orient_pairs_by_overall_and_count_agreeing_criteria(tmp_path):
    path = write_jsonl(
        tmp_path / "ann.jsonl",
        [
            annotation("q1", "A", clarity="B", other="Conciseness: A"),
            annotation("q2", "B", correctness="B", relevance="None", other="Conciseness: B; Style: A"),
            annotation("q3", "AB"),
            annotation("q4", "None"),
        ],
    )
    rows = read_course_annotations(path).rows
    assert [(r.chosen, r.rejected) for r in rows[:2]] == [("answer a", "answer b"), ("answer b", "answer a")]
    assert (rows[0].agreement, rows[0].judges) == (4, 5)  # clarity disagrees, "Conciseness: A" agrees
    assert (rows[1].agreement, rows[1].judges) == (
        2,
        5,
    )  # correctness and Conciseness agree; relevance unjudged
    assert [r.tie for r in rows] == [False, False, True, True]
    assert rows[0].group == "phys:q1"


def test_course_annotations_put_options_in_the_prompt(tmp_path):
    row = annotation("q1", "A") | {"question_options": ["joule", "newton"]}
    pair = read_course_annotations(write_jsonl(tmp_path / "a.jsonl", [row])).rows[0]
    assert pair.prompt.endswith("Options:\nA. joule\nB. newton")


def test_course_annotations_report_bad_rows_with_file_and_line(tmp_path):
    path = write_jsonl(
        tmp_path / "ann.jsonl",
        [
            annotation("q1", "A"),
            annotation("q2", "C"),
            "{not json",
            {k: v for k, v in annotation("q4", "A").items() if k != "B"},
        ],
    )
    result = read_course_annotations(path)
    assert len(result.rows) == 1
    assert [(b.line, b.reason.split(" ")[0]) for b in result.bad_rows] == [
        (2, "ranking_criteria.overall"),
        (3, "invalid"),
        (4, "missing"),
    ]
    assert all(b.file == str(path) for b in result.bad_rows)
    with pytest.raises(DataFormatError, match=r"ann\.jsonl:2: ranking_criteria\.overall is 'C'"):
        read_course_annotations(path, on_error="fail")


def test_other_criteria_are_parsed_from_free_text():
    assert parse_other_criteria("Conciseness: B") == ["B"]
    assert parse_other_criteria("Conciseness: AB, Tone: None; Style: A") == ["AB", "None", "A"]
    assert parse_other_criteria("") == []


def test_preference_pairs_accept_strings_and_chat_messages_with_system_and_earlier_turns(tmp_path):
    turns = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "what is 2+2?"},
    ]
    path = write_jsonl(
        tmp_path / "p.jsonl",
        [
            {"prompt": "Say hi", "chosen": "hi", "rejected": "no"},
            {
                "system": "Be brief.",
                "prompt_turns": turns,
                "prompt": "what is 2+2?",
                "chosen": "4",
                "rejected": "5",
            },
            {
                "prompt": turns,
                "chosen": [{"role": "assistant", "content": "4"}],
                "rejected": [{"role": "assistant", "content": "22"}],
                "votes": [1, 1, 0],
            },
        ],
    )
    rows = read_preference_pairs(path).rows
    assert rows[0].prompt == "Say hi"
    assert rows[1].prompt[0] == {"role": "system", "content": "Be brief."} and rows[1].prompt[1:] == turns
    assert rows[2].to_trl()["chosen"] == [{"role": "assistant", "content": "4"}]
    assert (rows[2].agreement, rows[2].judges) == (2, 3)
    assert rows[0].to_trl(chat=True)["prompt"] == [{"role": "user", "content": "Say hi"}]


def test_preference_pairs_report_bad_rows(tmp_path):
    path = write_jsonl(
        tmp_path / "p.jsonl",
        [
            {"prompt": "ok", "chosen": "a", "rejected": "b"},
            {"prompt": "same", "chosen": "a", "rejected": "a"},
            {"prompt": "bool", "chosen": True, "rejected": "b"},
            {"prompt": [{"role": "robot", "content": "x"}], "chosen": "a", "rejected": "b"},
            {"prompt": "empty", "chosen": "", "rejected": "b"},
        ],
    )
    result = read_preference_pairs(path)
    assert len(result.rows) == 1
    assert [b.line for b in result.bad_rows] == [2, 3, 4, 5]
    assert "identical" in result.bad_rows[0].reason and "role 'robot'" in result.bad_rows[2].reason


def test_hh_prompt_is_the_shared_prefix_up_to_the_last_assistant_turn(tmp_path):
    chosen = "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: help me\n\nAssistant: Sure, here is how."
    rejected = "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: help me\n\nAssistant: Sure, no."
    prompt, good, bad = split_hh_dialogue(chosen, rejected)
    assert prompt == "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: help me\n\nAssistant:"
    assert (good, bad) == ("Sure, here is how.", "Sure, no.")
    path = write_jsonl(
        tmp_path / "hh.jsonl",
        [
            {"chosen": chosen, "rejected": rejected},
            {"chosen": "\n\nHuman: a\n\nAssistant: x", "rejected": "\n\nHuman: b\n\nAssistant: x"},
            {"chosen": chosen},
        ],
    )
    result = read_hh_dialogues(path)
    assert [m["role"] for m in result.rows[0].prompt] == ["user", "assistant", "user"]
    assert [(b.line, b.reason) for b in result.bad_rows] == [
        (2, "chosen and rejected share no prefix ending with '\\n\\nAssistant:'"),
        (3, "missing field 'rejected'"),
    ]


def test_pandalm_majority_ties_nan_and_bad_rows(tmp_path):
    def row(idx, a1, a2, a3, r1="one", r2="two"):
        return (
            f'{{"idx": {idx}, "instruction": "Do it", "input": "", "response1": {json.dumps(r1)}, '
            f'"response2": {json.dumps(r2)}, "annotator1": {a1}, "annotator2": {a2}, "annotator3": {a3}}}'
        )

    text = (
        "[\n"
        + ",\n".join(
            [
                row(0, 2, 2, 1),
                row(1, 0, 0, 1),
                row(2, 1, "NaN", 2),
                row(3, 1, 1, 1, r1=True),
                row(4, 1, "NaN", "NaN"),
            ]
        )
        + "\n]\n"
    )
    path = tmp_path / "testset.json"
    path.write_text(text, encoding="utf-8")
    result = read_pandalm(path)
    first, tie_zero, split, single = result.rows
    assert (first.chosen, first.agreement, first.judges, first.tie) == ("two", 2, 3, False)
    assert tie_zero.tie and split.tie and split.judges == 2
    assert (single.chosen, single.agreement, single.judges) == ("one", 1, 1)
    assert [(b.line, b.reason) for b in result.bad_rows] == [
        (5, "field 'response1' must be a string, found bool")
    ]


def test_pandalm_verdict_counts():
    assert pandalm_verdict([1, 1, 2]) == (1, 2, 3)
    assert pandalm_verdict([0, 0, 2]) == (None, 0, 3)
    assert pandalm_verdict([float("nan")] * 3) == (None, 0, 0)


def test_sft_reader_accepts_prompt_completion_and_messages(tmp_path):
    path = write_jsonl(
        tmp_path / "sft.jsonl",
        [
            {"prompt": "2+2?", "completion": "4"},
            {
                "messages": [
                    {"role": "system", "content": "s"},
                    {"role": "user", "content": "u"},
                    {"role": "assistant", "content": "a"},
                ]
            },
            {"messages": [{"role": "user", "content": "u"}]},
            {"prompt": "x"},
        ],
    )
    result = read_sft(path)
    assert result.rows[0].to_trl() == {"prompt": "2+2?", "completion": "4"}
    assert result.rows[1].to_trl()["completion"] == [{"role": "assistant", "content": "a"}]
    assert [b.line for b in result.bad_rows] == [3, 4]


def test_format_detection_and_source_tags(tmp_path):
    pairs = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "a", "chosen": "b", "rejected": "c"}])
    hh = write_jsonl(tmp_path / "h.jsonl", [{"chosen": "x", "rejected": "y"}])
    sft = write_jsonl(tmp_path / "s.jsonl", [{"prompt": "a", "completion": "b"}])
    assert [detect_format(p) for p in (pairs, hh, sft)] == ["pairs", "hh", "sft"]
    assert read_dataset(pairs, source="mine").rows[0].source == "mine"
    with pytest.raises(DataFormatError, match="Unknown data format 'csv'"):
        read_dataset(pairs, "csv")


@pytest.mark.shared_data
def test_real_files_read_with_their_known_bad_rows():
    pandalm = read_dataset(shared_data("preferences/pandalm/testset-v1.json"))
    assert len(pandalm.rows) + len(pandalm.bad_rows) == 999
    assert any("found bool" in b.reason for b in pandalm.bad_rows)
    hh = read_dataset(shared_data("preferences/hh-rlhf-harmless-test.jsonl"))
    assert len(hh.rows) > 2000
    demo = read_dataset(shared_data("preferences/dpo_en_demo.jsonl"))
    assert len(demo.rows) == 300 and not demo.bad_rows
