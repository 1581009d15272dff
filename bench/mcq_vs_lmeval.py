"""Parity and speed of the tutor's MCQ batch path against lm-evaluation-harness, in one run.

Both score ARC-Easy validation with the default model (SmolLM2-135M-Instruct as an HF folder),
prompt "Question: {question}\\nAnswer:" and continuations " {choice}". lm-eval runs its `hf`
backend on a local custom task (a YAML over the same JSONL, written to a temporary folder).

lm-eval's batch size is picked among 1, 8 and 32 by timing each on the first
``--select-limit`` questions (``--select-limit 0`` times each on the whole set instead); the
fastest then runs the whole set. Our path runs before and after lm-eval, and its mean time is
used, so drifting load on a shared CPU hits both peers alike.

    .venv/bin/python bench/mcq_vs_lmeval.py                 # the full run
    .venv/bin/python bench/mcq_vs_lmeval.py --limit 40      # a quick one

Prints: the share of questions where both pick the same option for ``acc`` (questions whose
top two log-likelihoods are within ``--tie-tolerance`` in either run count apart, as ties),
both accuracies (acc and acc_norm), the largest log-likelihood difference, and our
questions/s over lm-eval's.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

logger = logging.getLogger("bench.mcq_vs_lmeval")
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "mcq" / "ARC-Easy-validation.jsonl"
TASK_NAME = "tutor_arc_easy_local"
BATCH_SIZES = (1, 8, 32)

TASK_YAML = """task: {task}
dataset_path: json
dataset_kwargs:
  data_files:
    validation: {data_file}
validation_split: validation
output_type: multiple_choice
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_target: answer_index
doc_to_choice: choices
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
"""


@dataclass
class PeerRun:
    """One peer's per-question log-likelihoods, accuracies and time."""

    logliks: list[list[float]]
    acc: float
    acc_norm: float
    seconds: float


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="The MCQ JSONL file.")
    parser.add_argument("--limit", type=int, default=None, help="Use only the first N questions.")
    parser.add_argument("--select-limit", type=int, default=48, help="Questions used to time lm-eval's batch "
                        "sizes before its full run; 0 times every batch size on the whole set.")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads for both peers.")
    parser.add_argument("--tie-tolerance", type=float, default=1e-4, help="Top-two log-likelihood gap below "
                        "which a question counts as a tie.")
    parser.add_argument("--data-dir", type=Path, default=None, help="Where the converted model is cached.")
    parser.add_argument("--out", type=Path, default=None, help="Write the figures as JSON here too.")
    return parser.parse_args()


def write_task(folder: Path, data_file: Path) -> None:
    (folder / f"{TASK_NAME}.yaml").write_text(TASK_YAML.format(task=TASK_NAME, data_file=data_file.resolve()))


def run_lmeval(runtime, task_dir: Path, batch_size: int, limit: int | None) -> PeerRun:
    """lm-eval's `hf` backend on the local task; time covers evaluation, not model loading.

    HFLM gets the very model and tokenizer our runtime loaded: same weights, no second copy.
    (Given the folder, HFLM fails: the converted config keeps the GGUF ``quantization_config``
    and HFLM passes ``gguf_file=None``, which transformers refuses.)
    """
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    model = HFLM(pretrained=runtime.model, tokenizer=runtime.tokenizer, batch_size=batch_size)
    manager = TaskManager(include_path=str(task_dir))
    started = time.perf_counter()
    output = simple_evaluate(model=model, tasks=[TASK_NAME], task_manager=manager, limit=limit,
                             log_samples=True, bootstrap_iters=0)
    seconds = time.perf_counter() - started
    samples = sorted(output["samples"][TASK_NAME], key=lambda sample: sample["doc_id"])
    logliks = [[float(resp[0]) for resp in sample["filtered_resps"]] for sample in samples]
    metrics = output["results"][TASK_NAME]
    return PeerRun(logliks, float(metrics["acc,none"]), float(metrics["acc_norm,none"]), seconds)


def run_ours(engine, items) -> PeerRun:
    from engine.mcq.engine import MCQOptions
    from engine.mcq.metrics import aggregate

    started = time.perf_counter()
    predictions = engine.answer(items, MCQOptions(method="loglik", prompt_format="lm-eval"))
    seconds = time.perf_counter() - started
    metrics = aggregate([p.outcome() for p in predictions])
    return PeerRun([p.logliks for p in predictions], metrics["acc"], metrics["acc_norm"], seconds)


def top_gap(values: list[float]) -> float:
    first, second = sorted(values, reverse=True)[:2]
    return first - second


def compare(ours: PeerRun, theirs: PeerRun, tolerance: float) -> dict:
    """Agreement on the acc pick; disagreements on near-ties are counted apart."""
    from engine.mcq.metrics import argmax

    agree = ties = 0
    for mine, lm in zip(ours.logliks, theirs.logliks, strict=True):
        if argmax(mine) == argmax(lm):
            agree += 1
        elif min(top_gap(mine), top_gap(lm)) < tolerance:
            ties += 1
    total = len(ours.logliks)
    decided = total - ties
    largest = max(abs(a - b) for mine, lm in zip(ours.logliks, theirs.logliks, strict=True)
                  for a, b in zip(mine, lm, strict=True))
    return {"questions": total, "agree": agree, "ties_excepted": ties,
            "agreement": agree / decided if decided else 1.0, "max_abs_loglik_diff": largest}


def time_batch_sizes(runtime, task_dir: Path, limit: int | None) -> dict[int, float]:
    timings = {}
    for batch_size in BATCH_SIZES:
        run = run_lmeval(runtime, task_dir, batch_size, limit)
        timings[batch_size] = run.seconds
        logger.info("lm-eval batch size %d: %.1f s on %s questions.", batch_size, run.seconds, limit or "all")
    return timings


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    import torch

    from app.settings import default_data_dir
    from engine.mcq.engine import MCQEngine, MCQOptions
    from engine.mcq.evaluate import read_mcq_jsonl
    from engine.runtime import load_runtime
    from engine.runtime.models import resolve_llm_folder

    if args.threads:
        torch.set_num_threads(args.threads)
    data_dir = args.data_dir or default_data_dir()
    model_folder = resolve_llm_folder(None, data_dir)
    items = read_mcq_jsonl(args.data, args.limit)
    engine = MCQEngine(load_runtime(str(model_folder), data_dir=data_dir, device="cpu"))
    engine.answer(items[:4], MCQOptions())  # warm-up: first calls pay one-off costs
    with tempfile.TemporaryDirectory() as task_dir:
        write_task(Path(task_dir), args.data)
        ours_before = run_ours(engine, items)
        logger.info("ours: %.1f s", ours_before.seconds)
        select_limit = None if args.select_limit == 0 else min(args.select_limit, len(items))
        timings = time_batch_sizes(engine.runtime, Path(task_dir), select_limit or args.limit)
        best = min(timings, key=timings.get)
        theirs = run_lmeval(engine.runtime, Path(task_dir), best, args.limit)
        logger.info("lm-eval (batch size %d): %.1f s", best, theirs.seconds)
        ours_after = run_ours(engine, items)
        logger.info("ours again: %.1f s", ours_after.seconds)
    report(args, ours_before, ours_after, theirs, best, timings, torch.get_num_threads())


def report(args, ours_before: PeerRun, ours_after: PeerRun, theirs: PeerRun, best: int,
           timings: dict[int, float], threads: int) -> None:
    ours_seconds = (ours_before.seconds + ours_after.seconds) / 2
    parity = compare(ours_before, theirs, args.tie_tolerance)
    n = parity["questions"]
    figures = {
        **parity,
        "ours_acc": ours_before.acc, "ours_acc_norm": ours_before.acc_norm,
        "lmeval_acc": theirs.acc, "lmeval_acc_norm": theirs.acc_norm,
        "ours_seconds": [round(ours_before.seconds, 2), round(ours_after.seconds, 2)],
        "lmeval_seconds": round(theirs.seconds, 2), "lmeval_batch_size": best,
        "lmeval_batch_size_timings": {str(k): round(v, 2) for k, v in timings.items()},
        "ours_questions_per_s": n / ours_seconds, "lmeval_questions_per_s": n / theirs.seconds,
        "speedup": theirs.seconds / ours_seconds, "torch_threads": threads,
    }
    lines = [
        f"questions: {n}  (torch threads: {threads})",
        f"acc agreement: {parity['agree']}/{n - parity['ties_excepted']} = {100 * parity['agreement']:.2f}% "
        f"({parity['ties_excepted']} near-ties within {args.tie_tolerance:g} excepted)",
        f"max |loglik ours - lm-eval|: {parity['max_abs_loglik_diff']:.2e}",
        f"acc:      ours {ours_before.acc:.4f}   lm-eval {theirs.acc:.4f}",
        f"acc_norm: ours {ours_before.acc_norm:.4f}   lm-eval {theirs.acc_norm:.4f}",
        f"lm-eval batch sizes timed: {figures['lmeval_batch_size_timings']} s -> {best}",
        f"questions/s: ours {figures['ours_questions_per_s']:.3f}"
        f"   lm-eval {figures['lmeval_questions_per_s']:.3f}"
        f"   speed-up {figures['speedup']:.2f}x",
    ]
    for line in lines:
        logger.info(line)
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
