"""Readers for the preference and SFT formats the tutor trains on.

Each reader validates every row and returns the good ones with a list of refused ones
(file and line each). With ``on_error="fail"`` the first bad row raises DataFormatError.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from training.data.schema import (
    OnError,
    PreferencePair,
    Prompt,
    ReadResult,
    RowCollector,
    RowProblem,
    SFTExample,
    check_messages,
    iter_json_array,
    iter_jsonl,
    require_text,
)
from training.errors import DataFormatError

CRITERIA = ("correctness", "relevance", "clarity", "completeness")
VERDICTS = ("A", "B", "AB", "None")
logger = logging.getLogger(__name__)
HH_HUMAN, HH_ASSISTANT = "\n\nHuman:", "\n\nAssistant:"
_OTHER_VERDICT = re.compile(r"([A-Za-z][\w \-/]*?)\s*:\s*(AB|A|B|None)\b")


def _read(
    path: str | Path, on_error: OnError, parse_row: Callable[[dict[str, Any], str], Any], array: bool = False
) -> ReadResult:
    """Run ``parse_row`` over each row, turning RowProblem into a refused row with its line."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"Data file {path} does not exist; check the path in the recipe.")
    collector = RowCollector(path, on_error)
    rows = iter_json_array(path, collector) if array else iter_jsonl(path, collector)
    for line, row in rows:
        try:
            collector.add(parse_row(row, f"{path.name}:{line}"))
        except RowProblem as problem:
            collector.refuse(line, str(problem))
    if collector.result.bad_rows:
        logger.warning(
            "%s: skipped %d bad rows, first: %s",
            path,
            len(collector.result.bad_rows),
            collector.result.bad_rows[0],
        )
    return collector.result


def _verdict(value: Any, key: str) -> str:
    if value is None:
        return "None"
    if value not in VERDICTS:
        raise RowProblem(f"{key} is {value!r}; use one of {', '.join(VERDICTS)}")
    return value


def parse_other_criteria(text: Any) -> list[str]:
    """Verdicts named in free text such as ``"Conciseness: B; Style: AB"``."""
    if text is None or text == "":
        return []
    if not isinstance(text, str):
        raise RowProblem("ranking_criteria.other must be free text such as 'Conciseness: B'")
    return [verdict for _, verdict in _OTHER_VERDICT.findall(text)]


def _annotation_prompt(row: dict[str, Any]) -> str:
    question = require_text(row, "question")
    options = row.get("question_options")
    if not options:
        return question
    if isinstance(options, dict):
        lines = [f"{key}. {value}" for key, value in options.items()]
    elif isinstance(options, list) and all(isinstance(o, str) for o in options):
        lines = [f"{chr(ord('A') + i)}. {option}" for i, option in enumerate(options)]
    else:
        raise RowProblem("question_options must be a list of strings or an object of letter: text")
    return question + "\n\nOptions:\n" + "\n".join(lines)


def _annotation_pair(row: dict[str, Any], origin: str) -> PreferencePair:
    for key in ("course_id", "question_id"):
        if key not in row or row[key] in (None, ""):
            raise RowProblem(f"missing field {key!r}")
    answer_a, answer_b = require_text(row, "A"), require_text(row, "B")
    criteria = row.get("ranking_criteria")
    if not isinstance(criteria, dict):
        raise RowProblem("missing field 'ranking_criteria' (an object with overall, correctness, ...)")
    overall = _verdict(criteria.get("overall"), "ranking_criteria.overall")
    verdicts = [_verdict(criteria.get(name), f"ranking_criteria.{name}") for name in CRITERIA]
    verdicts += parse_other_criteria(criteria.get("other"))
    given = [v for v in verdicts if v != "None"]
    tie = overall not in ("A", "B")
    chosen, rejected = (answer_b, answer_a) if overall == "B" else (answer_a, answer_b)
    return PreferencePair(
        prompt=_annotation_prompt(row),
        chosen=chosen,
        rejected=rejected,
        group=f"{row['course_id']}:{row['question_id']}",
        origin=origin,
        tie=tie,
        agreement=None if tie else sum(v == overall for v in given),
        judges=len(given),
    )


def read_course_annotations(path: str | Path, on_error: OnError = "skip") -> ReadResult:
    """Course annotations: two answers A and B judged on overall and specific criteria.

    The pair is oriented by ``overall``; a tie ("AB") or a missing verdict ("None") is kept with
    ``tie=True`` so that cleaning can drop and count it. ``agreement`` counts the specific criteria
    (and the verdicts named in ``other``) that agree with ``overall``.
    """
    return _read(path, on_error, _annotation_pair, array=Path(path).suffix == ".json")


def _answer(row: dict[str, Any], key: str) -> str:
    value = row.get(key)
    if isinstance(value, list):
        messages = check_messages(value, key)
        if messages[-1]["role"] != "assistant":
            raise RowProblem(f"the last message of {key!r} must be the assistant's answer")
        value = messages[-1]["content"]
        if not value.strip():
            raise RowProblem(f"the answer in {key!r} is empty")
        return value
    return require_text(row, key)


def _pair_prompt(row: dict[str, Any]) -> Prompt:
    turns = row.get("prompt_turns")
    prompt: Prompt = check_messages(turns, "prompt_turns") if turns else row.get("prompt")
    if isinstance(prompt, list):
        prompt = check_messages(prompt, "prompt")
    elif not isinstance(prompt, str) or not prompt.strip():
        raise RowProblem("field 'prompt' must be a non-empty string or a list of messages")
    system = row.get("system")
    if system:
        if not isinstance(system, str):
            raise RowProblem("field 'system' must be a string")
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
        if messages[0]["role"] != "system":
            prompt = [{"role": "system", "content": system}, *messages]
    return prompt


def _votes(row: dict[str, Any]) -> tuple[int | None, int | None]:
    votes = row.get("votes")
    if votes is None:
        return None, None
    if not isinstance(votes, list):
        raise RowProblem("field 'votes' must be a list of annotator labels")
    valid = [v for v in votes if isinstance(v, int | float) and not math.isnan(v) and v != 0]
    if not valid:
        return 0, len(votes)
    return Counter(valid).most_common(1)[0][1], len([v for v in votes if not _missing(v)])


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _preference_pair(row: dict[str, Any], origin: str) -> PreferencePair:
    prompt = _pair_prompt(row)
    chosen, rejected = _answer(row, "chosen"), _answer(row, "rejected")
    if chosen == rejected:
        raise RowProblem("chosen and rejected are identical")
    agreement, judges = _votes(row)
    pair = PreferencePair(
        prompt=prompt,
        chosen=chosen,
        rejected=rejected,
        group="",
        origin=origin,
        agreement=agreement,
        judges=judges,
    )
    pair.group = str(row.get("question_id") or row.get("group") or pair.prompt_text())
    return pair


def read_preference_pairs(path: str | Path, on_error: OnError = "skip") -> ReadResult:
    """prompt/chosen/rejected JSONL: strings, or chat messages with system prompt and earlier turns.

    Accepted shapes: ``prompt`` as text or messages; ``chosen``/``rejected`` as text or messages
    ending with the assistant answer; optional ``system`` and ``prompt_turns`` (LLaMA-Factory);
    optional ``votes`` (annotator labels, 0 = tie) giving the agreement score.
    """
    return _read(path, on_error, _preference_pair)


def split_hh_dialogue(chosen: str, rejected: str) -> tuple[str, str, str]:
    """Split two whole HH-RLHF dialogues into (shared prompt, chosen answer, rejected answer).

    The prompt is the shared prefix up to and including the last ``"\\n\\nAssistant:"`` in it.
    """
    shared = 0
    limit = min(len(chosen), len(rejected))
    while shared < limit and chosen[shared] == rejected[shared]:
        shared += 1
    cut = chosen.rfind(HH_ASSISTANT, 0, shared)
    if cut < 0:
        raise RowProblem("chosen and rejected share no prefix ending with '\\n\\nAssistant:'")
    end = cut + len(HH_ASSISTANT)
    return chosen[:end], chosen[end:].strip(), rejected[end:].strip()


def hh_prompt_messages(prompt: str) -> list[dict[str, str]]:
    """Turn ``"\\n\\nHuman: ...\\n\\nAssistant: ...\\n\\nAssistant:"`` into chat messages."""
    pieces = re.split(r"\n\n(Human|Assistant):", prompt)
    messages = []
    for speaker, text in zip(pieces[1::2], pieces[2::2], strict=True):
        if text.strip():
            messages.append({"role": "user" if speaker == "Human" else "assistant", "content": text.strip()})
    if not messages or messages[-1]["role"] != "user":
        raise RowProblem("the dialogue before the last assistant turn must end with a human turn")
    return messages


def _hh_pair(row: dict[str, Any], origin: str) -> PreferencePair:
    prompt, chosen, rejected = split_hh_dialogue(require_text(row, "chosen"), require_text(row, "rejected"))
    if not chosen or not rejected:
        raise RowProblem("the last assistant turn is empty in chosen or rejected")
    if chosen == rejected:
        raise RowProblem("chosen and rejected end with the same answer")
    if HH_HUMAN in chosen or HH_HUMAN in rejected:
        raise RowProblem("chosen and rejected differ before their last assistant turn")
    messages = hh_prompt_messages(prompt)
    return PreferencePair(prompt=messages, chosen=chosen, rejected=rejected, group=prompt, origin=origin)


def read_hh_dialogues(path: str | Path, on_error: OnError = "skip") -> ReadResult:
    """Whole-dialogue pairs as in Anthropic HH-RLHF; the prompt becomes chat messages."""
    return _read(path, on_error, _hh_pair)


def pandalm_verdict(labels: list[Any]) -> tuple[int | None, int, int]:
    """(winning label 1 or 2, or None for a tie; votes for it; valid votes) from annotator labels."""
    valid = [int(v) for v in labels if not _missing(v)]
    for value in valid:
        if value not in (0, 1, 2):
            raise RowProblem(f"annotator label {value!r} is not 0 (tie), 1 or 2")
    counts = Counter(valid).most_common()
    if not counts or (len(counts) > 1 and counts[0][1] == counts[1][1]) or counts[0][0] == 0:
        return None, 0, len(valid)
    return counts[0][0], counts[0][1], len(valid)


def _pandalm_pair(row: dict[str, Any], origin: str) -> PreferencePair:
    instruction = require_text(row, "instruction")
    extra = row.get("input") or ""
    if not isinstance(extra, str):
        raise RowProblem("field 'input' must be a string")
    prompt = instruction + ("\n\n" + extra if extra.strip() else "")
    responses = {1: require_text(row, "response1"), 2: require_text(row, "response2")}
    labels = [row[key] for key in sorted(row) if re.fullmatch(r"annotator\d+", key)]
    if not labels:
        raise RowProblem("no annotator labels (annotator1, annotator2, ...)")
    winner, votes, valid = pandalm_verdict(labels)
    chosen, rejected = (responses[2], responses[1]) if winner == 2 else (responses[1], responses[2])
    return PreferencePair(
        prompt=prompt,
        chosen=chosen,
        rejected=rejected,
        group=prompt,
        origin=origin,
        tie=winner is None,
        agreement=None if winner is None else votes,
        judges=valid,
    )


def read_pandalm(path: str | Path, on_error: OnError = "skip") -> ReadResult:
    """PandaLM's raw test set: a JSON array with labels per annotator (1, 2, 0 = tie, NaN = missing).

    The overall judgement is the majority label; a split vote or a majority of ties is kept with
    ``tie=True``. ``agreement`` is the number of annotators voting with the majority.
    """
    return _read(path, on_error, _pandalm_pair, array=True)


def _sft_example(row: dict[str, Any], origin: str) -> SFTExample:
    if "messages" in row:
        messages = check_messages(row["messages"], "messages")
        if messages[-1]["role"] != "assistant" or len(messages) < 2:
            raise RowProblem("'messages' must end with an assistant answer after at least one other turn")
        if not messages[-1]["content"].strip():
            raise RowProblem("the final assistant answer is empty")
        prompt: Prompt = messages[:-1]
        completion = messages[-1]["content"]
    else:
        prompt = _pair_prompt(row)
        completion = _answer(row, "completion")
    example = SFTExample(prompt=prompt, completion=completion, group="", origin=origin)
    text = prompt if isinstance(prompt, str) else json.dumps(prompt, ensure_ascii=False)
    example.group = str(row.get("question_id") or row.get("group") or text)
    return example


def read_sft(path: str | Path, on_error: OnError = "skip") -> ReadResult:
    """SFT JSONL: ``{prompt, completion}`` (text or messages), or ``{messages}`` ending with the answer."""
    return _read(path, on_error, _sft_example)


READERS: dict[str, Callable[[str | Path, OnError], ReadResult]] = {
    "annotations": read_course_annotations,
    "pairs": read_preference_pairs,
    "hh": read_hh_dialogues,
    "pandalm": read_pandalm,
    "sft": read_sft,
}


def detect_format(path: str | Path) -> str:
    """Guess a file's format from its first row's fields."""
    path = Path(path)
    if path.suffix == ".json":
        return "pandalm" if "annotator1" in path.read_text(encoding="utf-8")[:5000] else "annotations"
    with path.open(encoding="utf-8") as handle:
        first = next((line for line in handle if line.strip()), "{}")
    try:
        keys = set(json.loads(first))
    except (json.JSONDecodeError, TypeError) as error:
        raise DataFormatError(
            f"{path}:1: cannot detect the format from the first row; set 'format' "
            f"to one of {', '.join(READERS)}."
        ) from error
    if "ranking_criteria" in keys:
        return "annotations"
    if "messages" in keys or "completion" in keys:
        return "sft"
    if {"chosen", "rejected"} <= keys:
        return "pairs" if "prompt" in keys or "prompt_turns" in keys else "hh"
    raise DataFormatError(
        f"{path}: no known format has the fields {sorted(keys)}; set 'format' to one of {', '.join(READERS)}."
    )


def read_dataset(
    path: str | Path, fmt: str = "auto", on_error: OnError = "skip", source: str = ""
) -> ReadResult:
    """Read a file with the named reader (or the detected one) and tag its rows with ``source``."""
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt not in READERS:
        raise DataFormatError(f"Unknown data format {fmt!r}; use one of auto, {', '.join(READERS)}.")
    result = READERS[fmt](path, on_error)
    for row in result.rows:
        row.source = source or Path(path).stem
    return result
