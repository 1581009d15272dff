"""Read a questions file (JSONL, one question a line) for the evaluations, with errors that name the line."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

Item = TypeVar("Item")


def read_questions(path: Path, parse: Callable[[dict, str], Item], *, error: type[Exception],
                   limit: int | None = None) -> list[Item]:
    """The first ``limit`` rows of ``path`` (all when None), each parsed with ``parse(row, "file:line")``.

    A missing file or a line that is not JSON raises ``error`` naming the file and the line.
    """
    if not path.is_file():
        raise error(f"Questions file {path} does not exist; check the path.")
    items: list[Item] = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if limit is not None and len(items) >= limit:
                break
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as decode_error:
                raise error(f"{path}:{number}: not valid JSON ({decode_error.msg}).") from decode_error
            items.append(parse(row, f"{path}:{number}"))
    return items
