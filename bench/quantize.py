"""GPTQ 4-bit on the default model against the issue's targets, in one run.

Quantises SmolLM2-135M-Instruct with the recipe defaults of ``tutor quantize`` (or ``--recipe``) on
prose from Think Python, then measures the quantised folder against the unquantised model:

- folder size against the same model saved in float16 with its tokenizer (target <= 30%),
- perplexity on held-out Think Python pages (target: at most 10% higher),
- ARC-Easy validation log-likelihood accuracy through the MCQ engine (target: at most 2 points lower),
- CPU (or GPU) greedy generation tokens/s against float32 (target: at least 1x), timed in
  alternation so that other work on a shared machine slows both models alike.

    .venv/bin/python bench/quantize.py                     # the full run (all 570 questions)
    .venv/bin/python bench/quantize.py --limit 200         # ARC-Easy's first 200 questions only

The gate is switched off here (every figure is reported, pass or fail); `tutor quantize` applies it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Spinning OpenMP threads starve each other when other work shares the cores (see README).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

logger = logging.getLogger("bench.quantize")
SHARED = REPO_ROOT.parent / "shared" / "data"
DEFAULT_QUESTIONS = SHARED / "mcq" / "ARC-Easy-validation.jsonl"
DEFAULT_BOOK = SHARED / "pdfs" / "thinkpython2.pdf"
RECIPE_KEYS = ("bits", "group_size", "sym", "desc_act", "damp_percent", "mse", "quantize_embeddings",
               "dynamic")


def book_texts(pdf: Path, first_page: int = 20, last_page: int = 120, min_chars: int = 200) -> list[str]:
    """Paragraph-sized pieces of a PDF's pages (whitespace collapsed), in page order."""
    from pypdf import PdfReader

    reader = PdfReader(pdf)
    texts = []
    for page in reader.pages[first_page:last_page]:
        text = " ".join((page.extract_text() or "").split())
        texts.extend(text[start : start + 1200] for start in range(0, len(text), 1200))
    return [text for text in texts if len(text) >= min_chars]


def float16_sizes_mb(source: Path) -> tuple[float, float]:
    """(the folder ``source`` makes saved in float16 with its tokenizer, its tied embedding alone), in MB.

    The folder is the baseline of the 30% target: like the quantised folder, it holds a tokenizer.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from engine.runtime.model_files import load_plain_config
    from training.evaluate import folder_size_mb

    # load_plain_config drops the converted GGUF folder's quantization note: its weights are plain.
    config = load_plain_config(source)
    model = AutoModelForCausalLM.from_pretrained(source, config=config, dtype=torch.float16)
    embedding_mb = model.get_input_embeddings().weight.numel() * 2 / 1e6
    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder)
        AutoTokenizer.from_pretrained(source).save_pretrained(folder)
        return folder_size_mb(folder), embedding_mb


def interleaved_speed(folders: dict[str, Path], data_dir: Path, device: str, tokens: int,
                      rounds: int) -> dict[str, float]:
    """Best greedy tokens/s of each folder over ``rounds`` rounds that time every model in turn."""
    from engine.runtime import load_runtime
    from training.evaluate import tokens_per_second

    runtimes = {name: load_runtime(str(folder), data_dir=data_dir, device=device)
                for name, folder in folders.items()}
    best = dict.fromkeys(runtimes, 0.0)
    for number in range(rounds):
        for name, runtime in runtimes.items():
            best[name] = max(best[name], tokens_per_second(runtime, tokens, repeats=1))
        logger.info("Speed round %d/%d: %s", number + 1, rounds, best)
    return best


def run(args: argparse.Namespace) -> dict:
    from app.settings import default_data_dir
    from engine.runtime.models import resolve_llm_folder
    from training.evaluate import folder_size_mb, split_texts
    from training.quantize import load_quantize_recipe, quantize_model

    data_dir = Path(os.environ.get("TUTOR_DATA_DIR", default_data_dir()))
    source = resolve_llm_folder(None, data_dir)
    off = {"max_perplexity_increase_pct": float("inf"), "max_mcqa_drop_points": float("inf")}
    recipe = load_quantize_recipe(args.recipe, {"questions": str(args.questions), "gate": off})
    recipe = replace(recipe, question_limit=args.limit)  # None means all questions here
    calibration, heldout = split_texts(book_texts(args.book), args.calibration_texts, args.heldout_texts)
    with tempfile.TemporaryDirectory() as work:
        out = Path(work) / "smollm2-gptq"
        report = quantize_model(source, out, calibration, heldout, recipe, data_dir=data_dir,
                                device=args.device)
        quantized_mb = folder_size_mb(out)
        fp16_mb, embedding_mb = float16_sizes_mb(source)
        speed = interleaved_speed({"float32": source, "gptq": out}, data_dir, args.device, args.speed_tokens,
                                  args.speed_rounds)
    return {
        "recipe": {key: getattr(recipe, key) for key in RECIPE_KEYS},
        "calibration_texts": len(calibration), "heldout_texts": len(heldout),
        "questions": args.limit or "all",
        "quantize_seconds": report.seconds,
        "size_mb": {"gptq": round(quantized_mb, 1), "float16": round(fp16_mb, 1),
                    "float16_embedding": round(embedding_mb, 1)},
        "size_ratio_pct": round(100 * quantized_mb / fp16_mb, 1),
        "embedding_share_of_float16_pct": round(100 * embedding_mb / fp16_mb, 1),
        "perplexity": {"source": round(report.source_perplexity, 3),
                       "gptq": round(report.quantized_perplexity, 3)},
        "perplexity_increase_pct": round(report.perplexity_increase_pct, 2),
        "arc_easy_acc_pct": {"source": round(report.source_mcqa, 2), "gptq": round(report.quantized_mcqa, 2)},
        "arc_easy_drop_points": round(report.mcqa_drop_points, 2),
        "tokens_per_second": {name: round(value, 2) for name, value in speed.items()},
        "speed_ratio": round(speed["gptq"] / speed["float32"], 2),
    }


def verdicts(result: dict) -> list[tuple[str, str, bool]]:
    return [
        ("size <= 30% of float16", f"{result['size_ratio_pct']}%", result["size_ratio_pct"] <= 30),
        ("perplexity increase <= 10%", f"{result['perplexity_increase_pct']}%",
         result["perplexity_increase_pct"] <= 10),
        ("ARC-Easy drop <= 2 points", f"{result['arc_easy_drop_points']}",
         result["arc_easy_drop_points"] <= 2),
        ("tokens/s >= 1x float32", f"{result['speed_ratio']}x", result["speed_ratio"] >= 1),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", type=Path, default=None, help="A quantisation recipe YAML (default: "
                        "the defaults of `tutor quantize`).")
    parser.add_argument("--questions", type=Path, default=DEFAULT_QUESTIONS)
    parser.add_argument("--limit", type=int, default=None, help="ARC-Easy questions (default: all 570).")
    parser.add_argument("--book", type=Path, default=DEFAULT_BOOK, help="PDF of calibration/held-out text.")
    parser.add_argument("--calibration-texts", type=int, default=64)
    parser.add_argument("--heldout-texts", type=int, default=32)
    parser.add_argument("--speed-tokens", type=int, default=64)
    parser.add_argument("--speed-rounds", type=int, default=5, help="Alternating timing rounds per model.")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=None, help="Also write the figures to this JSON file.")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    result = run(args)
    result["targets"] = {name: {"measured": value, "met": met} for name, value, met in verdicts(result)}
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    sys.stdout.write(text + "\n")
    for name, value, met in verdicts(result):
        sys.stdout.write(f"{'MET ' if met else 'MISSED'}  {name}: {value}\n")


if __name__ == "__main__":
    main()
