"""Decoding-step time on a CPU: the served attention against transformers' SDPA, by prompt length.

The model is loaded as the server loads it (``app.resources.open_runtime``: the packed generation copy,
``TUTOR_DECODE_THREADS``). For each prompt length, a prompt of that many tokens (the sample course's
questions file, repeated) is run once, then ``--steps`` single-token steps are timed; the served
attention (``engine.runtime.decoding.CPU_ATTENTION``) and transformers' "sdpa" alternate for
``--rounds`` rounds. Printed: the median step in ms of each, and their ratio::

    TUTOR_DATA_DIR=... python -m bench.decode_steps --lengths 200 400 600 900
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from contextlib import nullcontext
from pathlib import Path

import torch

from app.resources import open_runtime
from app.settings import get_settings
from engine.runtime.decoding import CPU_ATTENTION

logger = logging.getLogger(__name__)
PROMPT_TEXT = Path(__file__).resolve().parents[1] / "samples" / "course" / "QUESTIONS.md"


def step_ms(runtime, attention: str, length: int, steps: int) -> float:
    """The median time of ``steps`` decoding steps after a prompt of ``length`` tokens, with ``attention``."""
    model = runtime.generation_model
    model.set_attn_implementation(attention)
    text = PROMPT_TEXT.read_text(encoding="utf-8")
    ids = runtime.tokenizer(text, return_tensors="pt")["input_ids"]
    ids = ids.repeat(1, 1 + length // ids.shape[1])[:, :length]
    threads = runtime.decoding_threads.generating() if runtime.decoding_threads else nullcontext()
    times = []
    with torch.inference_mode(), threads:
        output = model(input_ids=ids, use_cache=True)
        for _ in range(steps):
            started = time.perf_counter()
            output = model(input_ids=output.logits[:, -1:].argmax(-1), cache=output.cache,
                           use_cache=True)
            times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[200, 400, 600, 900])
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    runtime = open_runtime(get_settings())
    if getattr(runtime, "generation_model", None) is None or runtime.device.type != "cpu":
        raise SystemExit("bench.decode_steps times the in-process model on a CPU; unset TUTOR_GENERATION_URL "
                         "and TUTOR_DEVICE=cuda.")
    if runtime.generation_model.config._attn_implementation != CPU_ATTENTION:
        raise SystemExit("The generation model does not use the CPU attention (it needs SDPA attention).")
    logger.info("%13s %10s %10s %7s", "prompt tokens", "sdpa ms", "served ms", "ratio")
    for length in args.lengths:
        timed: dict[str, list[float]] = {"sdpa": [], CPU_ATTENTION: []}
        for _ in range(args.rounds):
            for attention in timed:
                timed[attention].append(step_ms(runtime, attention, length, args.steps))
        before, now = statistics.median(timed["sdpa"]), statistics.median(timed[CPU_ATTENTION])
        logger.info("%13d %10.1f %10.1f %6.2fx", length, before, now, before / now)
    runtime.generation_model.set_attn_implementation(CPU_ATTENTION)


if __name__ == "__main__":
    main()
