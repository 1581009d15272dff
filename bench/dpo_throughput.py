"""DPO throughput: our DPO recipe against TRL's DPOTrainer with its default settings.

Both variants train the same LoRA adapter on the same model, the same preference pairs, batch
size, learning rate, seed and maximum sequence length, each in its own process (so peak memory
is its own). What differs is what our recipe changes:

- the reference log-probabilities are computed once before training (``precompute_reference``)
  instead of a reference forward pass at every step;
- batches hold pairs of similar length (less padding);
- no gradient checkpointing (TRL turns it on by default, paying a second forward per step).

Precision is TRL's default (bf16 autocast) for both. Pairs/s counts the whole job, reference
pass included (and without it, for information). The loss curves are compared on the same
held-out pairs after training (reward accuracy, margin) and by their mean training loss.

    .venv/bin/python bench/dpo_throughput.py                       # default model, PandaLM pairs
    .venv/bin/python bench/dpo_throughput.py --pairs 64 --max-length 256 --batch-size 4
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
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
    )
    return DPOTrainer(
        model=model,
        args=config,
        train_dataset=train,
        processing_class=tokenizer,
        peft_config=lora_config(AdapterConfig(**ADAPTER)),
    )


def our_trainer(model, tokenizer, train, args: argparse.Namespace, out: Path):
    """The trainer our DPO recipe builds, with the same shared settings (TRL's linear schedule, bf16)."""
    from training.dpo import build_dpo_trainer
    from training.recipes import AdapterConfig, DatasetSpec, Recipe

    recipe = Recipe(
        task="dpo",
        datasets=[DatasetSpec(path="unused.jsonl")],
        adapter=AdapterConfig(**ADAPTER),
        batch_size=args.batch_size,
        max_length=args.max_length,
        learning_rate=args.learning_rate,
        lr_scheduler="linear",
        warmup_ratio=0.0,
        precision="bf16",
        logging_steps=1,
        precompute_reference=True,
        group_by_length=True,
        gradient_checkpointing=False,
        output_dir=str(out),
    )
    trainer = build_dpo_trainer(recipe, model, tokenizer, train, None, out / "checkpoints")
    trainer.args.save_strategy = "no"
    return trainer


def run_variant(variant: str, args: argparse.Namespace) -> dict:
    """Build, train and score one variant in this process; returns its measurements."""
    from datasets import Dataset

    from training.metrics import preference_metrics, score_pairs
    from training.modeling import load_base_model, load_tokenizer, resolve_model_folder

    model_dir = resolve_model_folder(args.model)
    rows, held_out = load_rows(
        args.data, args.pairs, args.held_out, args.max_length, load_tokenizer(model_dir)
    )
    with tempfile.TemporaryDirectory() as tmp:
        model, tokenizer = load_base_model(model_dir), load_tokenizer(model_dir)
        started = time.perf_counter()  # from here: tokenizing, reference pass (ours), training
        build = trl_default_trainer if variant == "trl" else our_trainer
        trainer = build(model, tokenizer, Dataset.from_list(rows), args, Path(tmp))
        prepared = time.perf_counter()
        trainer.train()
        finished = time.perf_counter()
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
        "peak_memory_mib": round(peak_memory_mib(), 1),
        "losses": losses,
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
    for result in results:
        axes.plot(range(1, len(result["losses"]) + 1), result["losses"], label=result["variant"])
    axes.set_xlabel("step")
    axes.set_ylabel("DPO loss")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def report(results: list[dict], out: Path) -> None:
    trl, ours = results
    lines = [
        "| variant | pairs/s | pairs/s (train only) | setup s | train s | peak MiB | mean loss | "
        "held-out reward acc | held-out margin |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['variant']} | {r['pairs_per_s']:.3f} | {r['train_only_pairs_per_s']:.3f} | "
            f"{r['setup_s']} | {r['train_s']} | {r['peak_memory_mib']} | {r['mean_loss']:.4f} | "
            f"{r['held_out']['reward_accuracy']:.3f} | {r['held_out']['mean_margin']:.4f} |"
        )
    lines.append("")
    lines.append(
        f"Speed-up (ours / TRL defaults): {ours['pairs_per_s'] / trl['pairs_per_s']:.2f}x end to end, "
        f"{ours['train_only_pairs_per_s'] / trl['train_only_pairs_per_s']:.2f}x train loop only; "
        f"peak memory ratio {ours['peak_memory_mib'] / trl['peak_memory_mib']:.2f}."
    )
    text = "\n".join(lines)
    (out / "dpo_throughput.md").write_text(text + "\n", encoding="utf-8")
    (out / "dpo_throughput.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
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
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "runs" / "bench")
    parser.add_argument("--variant", choices=["trl", "ours"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.variant:
        print(json.dumps(run_variant(args.variant, args)))  # noqa: T201 - read by the parent process
        return
    argv = list(sys.argv[1:])
    results = [spawn(variant, argv) for variant in ("trl", "ours")]
    args.out.mkdir(parents=True, exist_ok=True)
    plot(results, args.out / "dpo_throughput_loss.png")
    report(results, args.out)


if __name__ == "__main__":
    main()
