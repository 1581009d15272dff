"""DPO throughput: our DPO recipe against TRL's DPOTrainer with its default settings.

Every variant trains the same LoRA adapter on the same model, the same preference pairs, batch
size, learning rate, seed and maximum sequence length, each in its own process (so peak memory
is its own). What differs is what our recipe changes:

- the reference log-probabilities are computed once before training (``precompute_reference``)
  instead of a reference forward pass at every step;
- batches hold pairs of similar length (less padding);
- a pair is one row, its prompt once and both answers after it (``share_prompt``), where TRL runs
  two rows that repeat the prompt;
- no gradient checkpointing (TRL turns it on by default, paying a second forward per step).

Three variants: ``trl`` (TRL's defaults), ``ours`` (the recipe) and ``ours-same-order`` (the
recipe without length grouping). The last one draws its batches in the order TRL's seeded random
sampler does, so its per-step losses can be set against TRL's one by one: that is the evidence
that our optimisations leave the loss curve alone. ``ours`` sees other batches at each step, so
it is compared by its mean training loss and on the same held-out pairs (reward accuracy,
margin). Precision is TRL's default (bf16 autocast) unless told. Pairs/s counts the whole job,
reference pass included (and without it, for information). The CPU seconds of each process are
given too: on a CPU shared with other work, wall time swings with the load, CPU time much less.

Length grouping needs pairs: transformers' ``LengthGroupedSampler`` sorts groups of
``min(pairs // (4 * batch), 50)`` batches, so 64 pairs in batches of 4 are sorted 16 at a time,
and with fewer than 32 pairs in batches of 4 ``ours`` keeps TRL's batches (but for the longest
pair, moved first).

Under bf16 autocast the per-step losses of ``trl`` and ``ours-same-order`` differ slightly: the
rounding of a sequence's log-probability depends on the shape of the batch it is computed in, and
the reference is precomputed in other batches than the training step's (so even the first loss is
not exactly log 2). ``--precision float32`` removes that rounding and shows whether anything else
differs.

    .venv/bin/python bench/dpo_throughput.py                       # default model, PandaLM pairs
    .venv/bin/python bench/dpo_throughput.py --pairs 64 --max-length 256 --batch-size 4
    .venv/bin/python bench/dpo_throughput.py --pairs 16 --precision float32 --out runs/bench/fp32
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "preferences" / "pandalm" / "pairs_majority.jsonl"
logger = logging.getLogger("bench.dpo_throughput")


def load_rows(data: Path, pairs: int, held_out: int, max_tokens: int, tokenizer) -> tuple[list, list]:
    """The same cleaned pairs for both variants: train rows and held-out rows (chat format)."""
    from training.cleaning import CleaningConfig, TokenizerCounter, clean, split_by_group
    from training.data import read_dataset

    rows = read_dataset(data).rows
    rows, _ = clean(rows, CleaningConfig(max_tokens=max_tokens), TokenizerCounter(tokenizer))
    splits = split_by_group(rows, [0.8, 0.2, 0.0], seed=0)
    return [r.to_trl(True) for r in splits["train"][:pairs]], [
        r.to_trl(True) for r in splits["validation"][:held_out]
    ]


def peak_memory_mib() -> float:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


ADAPTER = {"r": 16, "alpha": 32, "dropout": 0.0, "target_modules": "all-linear"}


def trl_default_trainer(model, tokenizer, train, args: argparse.Namespace, out: Path):
    """TRL's DPOTrainer with its default settings; only the shared run settings are given."""
    import torch
    from trl import DPOConfig, DPOTrainer

    from training.modeling import lora_config
    from training.recipes import AdapterConfig

    config = DPOConfig(
        output_dir=str(out),
        use_cpu=not torch.cuda.is_available(),
        per_device_train_batch_size=args.batch_size,
        max_length=args.max_length,
        learning_rate=args.learning_rate,
        num_train_epochs=1,
        seed=0,
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        disable_tqdm=True,
        bf16=args.precision == "bf16",
    )
    return DPOTrainer(
        model=model,
        args=config,
        train_dataset=train,
        processing_class=tokenizer,
        peft_config=lora_config(AdapterConfig(**ADAPTER)),
    )


def our_trainer(model, tokenizer, train, args: argparse.Namespace, out: Path, group_by_length: bool = True):
    """The trainer our DPO recipe builds, with the same shared settings (TRL's linear schedule).

    Without ``group_by_length`` it keeps the default random sampler, seeded as TRL's is.
    """
    from training.dpo import build_dpo_trainer
    from training.recipes import AdapterConfig, DatasetSpec, DPORecipe

    recipe = DPORecipe(
        datasets=[DatasetSpec(path="unused.jsonl")],
        adapter=AdapterConfig(**ADAPTER),
        batch_size=args.batch_size,
        max_length=args.max_length,
        learning_rate=args.learning_rate,
        lr_scheduler="linear",
        warmup_ratio=0.0,
        precision=args.precision,
        logging_steps=1,
        precompute_reference=True,
        group_by_length=group_by_length,
        gradient_checkpointing=False,
        output_dir=str(out),
    )
    trainer = build_dpo_trainer(recipe, model, tokenizer, train, None, out / "checkpoints")
    trainer.args.save_strategy = "no"
    return trainer


VARIANTS = {
    "trl": trl_default_trainer,
    "ours": our_trainer,
    "ours-same-order": partial(our_trainer, group_by_length=False),
}


def record_batches(trainer) -> list[str]:
    """Fingerprint each training batch as it is collated, to show which variants saw the same batches.

    Pairs are sorted within a batch: their order there changes neither padding nor the (mean) loss.
    """
    collate, seen = trainer.data_collator, []

    def recording(examples):
        ids = sorted([e["prompt_ids"], e["chosen_ids"], e["rejected_ids"]] for e in examples)
        seen.append(hashlib.sha1(json.dumps(ids).encode()).hexdigest()[:10])
        return collate(examples)

    trainer.data_collator = recording
    return seen


def run_variant(variant: str, args: argparse.Namespace) -> dict:
    """Build, train and score one variant in this process; returns its measurements."""
    from datasets import Dataset

    from engine.runtime.model_files import load_tokenizer
    from engine.runtime.pairs import score_pairs
    from training.metrics import preference_metrics
    from training.modeling import load_base_model, resolve_model_folder

    model_dir = resolve_model_folder(args.model)
    rows, held_out = load_rows(
        args.data, args.pairs, args.held_out, args.max_length, load_tokenizer(model_dir)
    )
    with tempfile.TemporaryDirectory() as tmp:
        model, tokenizer = load_base_model(model_dir), load_tokenizer(model_dir)
        started, cpu_started = time.perf_counter(), time.process_time()
        # from here: tokenizing, reference pass (ours), training
        trainer = VARIANTS[variant](model, tokenizer, Dataset.from_list(rows), args, Path(tmp))
        batches = record_batches(trainer)
        prepared, cpu_prepared = time.perf_counter(), time.process_time()
        trainer.train()
        finished, cpu_finished = time.perf_counter(), time.process_time()
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    model = trainer.model.eval()
    policy = score_pairs(model, trainer.processing_class, held_out, batch_size=8)
    with model.disable_adapter():
        reference = score_pairs(model, trainer.processing_class, held_out, batch_size=8)
    held = preference_metrics(policy, reference, beta=0.1)
    return {
        "variant": variant,
        "pairs": len(rows),
        "steps": trainer.state.global_step,
        "setup_s": round(prepared - started, 2),
        "train_s": round(finished - prepared, 2),
        "pairs_per_s": len(rows) / (finished - started),
        "train_only_pairs_per_s": len(rows) / (finished - prepared),
        "cpu_s": round(cpu_finished - cpu_started, 1),
        "train_cpu_s": round(cpu_finished - cpu_prepared, 1),
        "peak_memory_mib": round(peak_memory_mib(), 1),
        "losses": losses,
        "batches": batches,
        "mean_loss": sum(losses) / len(losses),
        "held_out": {
            "pairs": held.pairs,
            "reward_accuracy": held.reward_accuracy,
            "mean_margin": held.mean_margin,
        },
    }


def spawn(variant: str, argv: list[str]) -> dict:
    """Run one variant in a fresh process and read back its JSON line."""
    env = {**os.environ, "TQDM_DISABLE": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(
        [sys.executable, __file__, *argv, "--variant", variant],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
    )
    if done.returncode != 0:
        raise RuntimeError(f"variant {variant} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4))
    # Curves that should coincide get different dashes, so both stay visible.
    for result, style in zip(results, ["-", "--", ":"], strict=False):
        steps = range(1, len(result["losses"]) + 1)
        axes.plot(steps, result["losses"], style, marker=".", label=result["variant"])
    axes.set_xlabel("step")
    axes.set_ylabel("DPO loss")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def loss_difference(reference: list[float], other: list[float]) -> dict[str, float]:
    """Max and mean absolute per-step difference of two loss curves logged at the same steps."""
    if len(reference) != len(other) or not reference:
        raise ValueError(
            f"Loss curves of {len(reference)} and {len(other)} steps cannot be compared step by step; "
            "run both variants on the same pairs with the same batch size."
        )
    gaps = [abs(a - b) for a, b in zip(reference, other, strict=True)]
    return {"max_abs": max(gaps), "mean_abs": sum(gaps) / len(gaps)}


def comparison(results: list[dict]) -> dict:
    """Speed-ups and peak-memory ratios against TRL, and how far each curve is from TRL's."""
    by_name = {r["variant"]: r for r in results}
    trl = by_name["trl"]
    summary = {}
    for name in ("ours", "ours-same-order"):
        ours = by_name[name]
        summary[name] = {
            "speed_up": ours["pairs_per_s"] / trl["pairs_per_s"],
            "train_only_speed_up": ours["train_only_pairs_per_s"] / trl["train_only_pairs_per_s"],
            "cpu_speed_up": trl["cpu_s"] / ours["cpu_s"],
            "train_only_cpu_speed_up": trl["train_cpu_s"] / ours["train_cpu_s"],
            "peak_memory_ratio": ours["peak_memory_mib"] / trl["peak_memory_mib"],
            "same_batches_as_trl": ours["batches"] == trl["batches"],
            "mean_loss_difference": ours["mean_loss"] - trl["mean_loss"],
        }
    summary["ours-same-order"]["per_step_loss"] = loss_difference(
        trl["losses"], by_name["ours-same-order"]["losses"]
    )
    return summary


def report(results: list[dict], args: argparse.Namespace) -> None:
    lines = [
        f"{results[0]['pairs']} training pairs, batch {args.batch_size}, max length {args.max_length}, "
        f"{args.precision}, {results[0]['held_out']['pairs']} held-out pairs.",
        "",
        "| variant | pairs/s | pairs/s (train only) | setup s | train s | CPU s | train CPU s | peak MiB | "
        "mean loss | held-out reward acc | held-out margin |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['variant']} | {r['pairs_per_s']:.3f} | {r['train_only_pairs_per_s']:.3f} | "
            f"{r['setup_s']} | {r['train_s']} | {r['cpu_s']} | {r['train_cpu_s']} | "
            f"{r['peak_memory_mib']} | {r['mean_loss']:.4f} | "
            f"{r['held_out']['reward_accuracy']:.3f} | {r['held_out']['mean_margin']:.4f} |"
        )
    summary = comparison(results)
    lines.append("")
    for name, s in summary.items():
        lines.append(
            f"Speed-up of {name} over TRL defaults: {s['speed_up']:.2f}x end to end, "
            f"{s['train_only_speed_up']:.2f}x train loop only (by CPU time: {s['cpu_speed_up']:.2f}x, "
            f"{s['train_only_cpu_speed_up']:.2f}x); peak memory ratio "
            f"{s['peak_memory_ratio']:.2f}; same batches as TRL: {s['same_batches_as_trl']}; "
            f"mean loss {s['mean_loss_difference']:+.4f} from TRL's."
        )
    gap = summary["ours-same-order"]["per_step_loss"]
    lines.append(
        f"Per-step loss, ours-same-order against TRL: max |difference| {gap['max_abs']:.2e}, "
        f"mean {gap['mean_abs']:.2e}."
    )
    text = "\n".join(lines)
    (args.out / "dpo_throughput.md").write_text(text + "\n", encoding="utf-8")
    (args.out / "dpo_throughput.json").write_text(
        json.dumps({"results": results, "comparison": summary}, indent=2), encoding="utf-8"
    )
    logger.info("\n%s", text)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=None, help="HF folder or .gguf; default: the packaged SmolLM2.")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--pairs", type=int, default=64, help="Training pairs (one epoch).")
    parser.add_argument("--held-out", type=int, default=32, help="Held-out pairs scored after training.")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--learning-rate", type=float, default=5e-5)
    parser.add_argument(
        "--precision",
        choices=["bf16", "float32"],
        default="bf16",
        help="bf16 autocast (TRL's default) or float32 for every variant.",
    )
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "runs" / "bench")
    parser.add_argument("--variant", choices=list(VARIANTS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.variant:
        print(json.dumps(run_variant(args.variant, args)))  # noqa: T201 - read by the parent process
        return
    argv = list(sys.argv[1:])
    results = []
    for variant in VARIANTS:
        results.append(spawn(variant, argv))
        logger.info("%s: %.3f pairs/s", variant, results[-1]["pairs_per_s"])
    args.out.mkdir(parents=True, exist_ok=True)
    plot(results, args.out / "dpo_throughput_loss.png")
    report(results, args)


if __name__ == "__main__":
    main()
