"""The rows every reader produces, and the bookkeeping of rows a reader had to refuse."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from training.errors import DataFormatError

logger = logging.getLogger(__name__)

Message = dict[str, str]
Prompt = str | list[Message]
OnError = Literal["skip", "fail"]
ROLES = ("system", "user", "assistant")


def as_messages(prompt: Prompt) -> list[Message]:
    """A chat prompt as is (copied), or a plain-text prompt as one user message."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return [dict(m) for m in prompt]


@dataclass
class PreferencePair:
    """One prompt with a preferred and a dispreferred answer.

    Args:
        prompt: plain text, or chat messages (system prompt and earlier turns included).
        chosen: the preferred assistant answer.
        rejected: the dispreferred assistant answer.
        group: the question the pair answers; splits and per-question rules group by it.
        source: the dataset name, for merging caps and reports.
        origin: ``file:line`` of the row, for messages.
        tie: the overall judgement was a tie or missing (chosen/rejected are then arbitrary).
        agreement: how many criteria or annotators agree with the overall judgement, when known.
        judges: how many criteria or annotators gave a judgement, when known.
    """

    prompt: Prompt
    chosen: str
    rejected: str
    group: str
    source: str = ""
    origin: str = ""
    tie: bool = False
    agreement: int | None = None
    judges: int | None = None

    def prompt_text(self) -> str:
        """The prompt flattened to text, for lengths, duplicates and grouping."""
        if isinstance(self.prompt, str):
            return self.prompt
        return "\n".join(f"{m['role']}: {m['content']}" for m in self.prompt)

    def to_trl(self, chat: bool = False) -> dict[str, Any]:
        """The row in TRL's preference format: conversational when the prompt is a chat (or ``chat``)."""
        if isinstance(self.prompt, str) and not chat:
            return {"prompt": self.prompt, "chosen": self.chosen, "rejected": self.rejected}
        return {
            "prompt": as_messages(self.prompt),
            "chosen": [{"role": "assistant", "content": self.chosen}],
            "rejected": [{"role": "assistant", "content": self.rejected}],
        }


@dataclass
class SFTExample:
    """A prompt and the answer to imitate; ``prompt`` may be chat messages."""

    prompt: Prompt
    completion: str
    group: str
    source: str = ""
    origin: str = ""

    def to_trl(self, chat: bool = False) -> dict[str, Any]:
        """The row in TRL's prompt-completion format: conversational for a chat prompt (or ``chat``)."""
        if isinstance(self.prompt, str) and not chat:
            return {"prompt": self.prompt, "completion": self.completion}
        return {
            "prompt": as_messages(self.prompt),
            "completion": [{"role": "assistant", "content": self.completion}],
        }


@dataclass
class BadRow:
    """A refused row: where it is and why."""

    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


@dataclass
class ReadResult:
    """What a reader returns: the good rows and the refused ones."""

    rows: list[Any] = field(default_factory=list)
    bad_rows: list[BadRow] = field(default_factory=list)


class RowProblem(ValueError):
    """Raised inside a row parser; the reader turns it into a BadRow with file and line."""


class RowCollector:
    """Collects parsed rows and refused ones, failing at the first bad row when asked to."""

    def __init__(self, path: Path, on_error: OnError):
        if on_error not in ("skip", "fail"):
            raise DataFormatError(f"on_error must be 'skip' or 'fail', not {on_error!r}.")
        self.path = path
        self.on_error = on_error
        self.result = ReadResult()

    def refuse(self, line: int, reason: str) -> None:
        bad = BadRow(str(self.path), line, reason)
        if self.on_error == "fail":
            raise DataFormatError(
                f"{bad}. Fix the row, or read with on_error='skip' to leave bad rows out and list them."
            )
        logger.debug("Skipping bad row %s", bad)
        self.result.bad_rows.append(bad)

    def add(self, row: Any) -> None:
        self.result.rows.append(row)


def iter_jsonl(path: Path, collector: RowCollector) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for each non-blank line; bad JSON becomes a refused row."""
    with path.open(encoding="utf-8") as handle:
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                value = json.loads(text)
            except json.JSONDecodeError as error:
                collector.refuse(number, f"invalid JSON ({error.msg} at column {error.colno})")
                continue
            if not isinstance(value, dict):
                collector.refuse(number, f"expected a JSON object, found {type(value).__name__}")
                continue
            yield number, value


def iter_json_array(path: Path, collector: RowCollector) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line where the element starts, object) for each element of a top-level JSON array.

    Bare ``NaN`` is accepted (Python's json reads it as float nan), as some public files contain it.
    """
    text = path.read_text(encoding="utf-8")
    decoder = json.JSONDecoder()
    position = _skip_space(text, 0)
    if position >= len(text) or text[position] != "[":
        raise DataFormatError(f"{path}:1: expected a JSON array of objects; give a .json file holding [...].")
    position += 1
    line, counted_to = 1, 0
    while True:
        position = _skip_space(text, position)
        if position < len(text) and text[position] == "]":
            return
        line += text.count("\n", counted_to, position)
        counted_to = position
        try:
            value, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError as error:
            raise DataFormatError(
                f"{path}:{error.lineno}: invalid JSON ({error.msg}); the array cannot be read "
                "past this point, fix the file."
            ) from error
        if isinstance(value, dict):
            yield line, value
        else:
            collector.refuse(line, f"expected a JSON object, found {type(value).__name__}")
        position = _skip_space(text, position)
        if position < len(text) and text[position] == ",":
            position += 1


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position] in " \t\r\n":
        position += 1
    return position


def require_text(row: dict[str, Any], key: str) -> str:
    """The non-empty string at ``key``, or a RowProblem naming the key."""
    if key not in row:
        raise RowProblem(f"missing field {key!r}")
    value = row[key]
    if not isinstance(value, str):
        raise RowProblem(f"field {key!r} must be a string, found {type(value).__name__}")
    if not value.strip():
        raise RowProblem(f"field {key!r} is empty")
    return value


def check_messages(value: Any, key: str) -> list[Message]:
    """Validate chat messages: a non-empty list of {role, content} with known roles."""
    if not isinstance(value, list) or not value:
        raise RowProblem(f"field {key!r} must be a non-empty list of messages")
    messages = []
    for index, message in enumerate(value):
        if not isinstance(message, dict) or "role" not in message or "content" not in message:
            raise RowProblem(f"{key}[{index}] must be an object with 'role' and 'content'")
        if message["role"] not in ROLES:
            raise RowProblem(f"{key}[{index}] has role {message['role']!r}; use one of {', '.join(ROLES)}")
        if not isinstance(message["content"], str):
            raise RowProblem(f"{key}[{index}].content must be a string")
        messages.append({"role": message["role"], "content": message["content"]})
    return messages
