"""Train the short-answer reader (``engine.reader``): a low-rank adapter and span head on the encoder.

Examples come from the grounded train split (``training.data.grounded``: the same SQuAD and CoQA
questions, chunks and article/story split as the SFT and DPO data, so its dev split stays unseen):
each question with its gold passage and the reference answer's span, and with one other passage of
its article or story whose target is "no answer" ([CLS]), so span scores compare across notes. The
adapter (rank ``rank`` on every encoder linear layer) and the head are what is saved: about 2 MB,
small enough to ship in the repository; the embeddings and the base weights stay as packaged.
"""

from __future__ import annotations

import json
import logging
import math
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from engine.evaluation.answer_metrics import token_f1
from engine.reader import (
    ADAPTER_FILE,
    CONFIG_FILE,
    YES_NO_FILE,
    ExtractiveReader,
    adapted_linears,
    check_reader_folder,
    load_span_model,
    reader_question,
)
from engine.runtime.models import default_embedder_path
from training.cleaning import CleaningReport, split_by_group
from training.data.grounded import BuildConfig, GroundedQuestion, Passage, load_questions
from training.errors import TrainingError

logger = logging.getLogger(__name__)


@dataclass
class ReaderConfig:
    """How the reader is trained (``tutor train reader`` options)."""

    epochs: float = 3.0  # passes over the train examples
    batch_size: int = 16
    learning_rate: float = 8e-4
    rank: int = 32
    alpha: float = 64.0
    max_length: int = 256  # question and passage tokens in training (serving reads up to 384)
    seed: int = 0  # the initialisation (span head, adapter)
    # The order of the examples and each question's "no answer" passage (None: ``seed``). Runs that differ
    # only here start from the same weights, so they can be averaged (``soup_readers``).
    order_seed: int | None = None
    max_steps: int | None = None  # a cap for smoke runs
    build: BuildConfig = field(default_factory=BuildConfig)  # chunks and the split, as the SFT data


class LowRank(nn.Module):
    """``linear(x) + B(A(x)) * scale``, ``linear`` frozen; B starts at zero: training starts at the base."""

    def __init__(self, linear: nn.Linear, rank: int, scale: float):
        super().__init__()
        self.linear, self.scale = linear, scale
        self.lora_A = nn.Parameter(torch.randn(rank, linear.in_features) / math.sqrt(linear.in_features))
        self.lora_B = nn.Parameter(torch.zeros(linear.out_features, rank))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x) + (x @ self.lora_A.T @ self.lora_B.T) * self.scale


def add_low_rank(model: nn.Module, rank: int, alpha: float,
                 head: nn.Module | None = None) -> dict[str, LowRank]:
    """Freeze the model, wrap each adapted linear layer, leave the head (default: the span head) trainable."""
    for parameter in model.parameters():
        parameter.requires_grad = False
    wrapped = {}
    for name, linear in adapted_linears(model).items():
        parent_name, _, child = name.rpartition(".")
        wrapped[name] = LowRank(linear, rank, alpha / rank)
        setattr(model.get_submodule(parent_name), child, wrapped[name])
    for parameter in (head if head is not None else model.qa_outputs).parameters():
        parameter.requires_grad = True
    return wrapped


def fit(model: nn.Module, examples: list, batch_loss: Callable[[Sequence], torch.Tensor], config,
        rng: random.Random, progress: Callable[[int, int], None] | None = None) -> int:
    """Train ``model``'s trainable parameters on shuffled batches of ``examples`` (AdamW, 10% linear warm-up
    then linear decay, gradients clipped at 1); ``config`` gives epochs, batch size, learning rate and an
    optional step cap. Returns the number of steps."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate, weight_decay=0.01)
    steps = max(1, int(len(examples) / config.batch_size * config.epochs))
    steps = min(steps, config.max_steps) if config.max_steps else steps
    warmup = max(1, steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / warmup) * max(0.0, 1 - step / steps))
    model.train()
    step = 0
    while step < steps:
        rng.shuffle(examples)
        for first in range(0, len(examples) - config.batch_size + 1, config.batch_size):
            loss = batch_loss(examples[first:first + config.batch_size])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            step += 1
            if progress:
                progress(step, steps)
            if step >= steps:
                break
    model.eval()
    return steps


def adapter_tensors(low_rank: dict[str, LowRank], head: nn.Module, head_name: str) -> dict[str, torch.Tensor]:
    """What is saved of a trained adapter and its head, named as ``engine.reader`` loads them; float16
    halves the file (the merge at load computes in float32)."""
    tensors = {f"{name}.{part}": getattr(layer, part).detach().half().contiguous()
               for name, layer in low_rank.items() for part in ("lora_A", "lora_B")}
    return tensors | {f"{head_name}.{k}": v.detach().half().contiguous()
                      for k, v in head.state_dict().items()}


def write_record(folder: Path, record: dict) -> None:
    """``reader.json`` in ``folder``: what was trained, how, and its dev scores."""
    (folder / CONFIG_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def swap_in(out_dir: Path, write: Callable[[Path], dict], files: Sequence[str]) -> None:
    """Let ``write`` fill a staging folder beside ``out_dir`` with ``files`` and ``reader.json`` (it returns
    the record, kept there), then move them into ``out_dir`` whole: a failed run leaves the reader there as
    it was, and other files there (the model card) stay. ``reader.json`` is copied from ``out_dir`` first,
    so ``write`` can read and extend it."""
    staging = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    if (out_dir / CONFIG_FILE).is_file():
        shutil.copy2(out_dir / CONFIG_FILE, staging / CONFIG_FILE)
    write_record(staging, write(staging))
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in (*files, CONFIG_FILE):
        (staging / name).replace(out_dir / name)
    shutil.rmtree(staging)


def answer_span(question: GroundedQuestion) -> tuple[int, int] | None:
    """Character span in the gold passage of the reference answer the annotators agree on most (highest
    token F1 summed over all the references; ties to the shorter), among those found there (case-insensitive).

    The consensus, not the longest: trained on the longest, the reader's spans ran twice as long as the
    shortest reference and lost F1 to the extra words (the model card)."""
    text = question.gold.text.lower()
    found = [a for a in dict.fromkeys(a.strip() for a in question.answers) if a and a.lower() in text]
    if not found:
        return None
    agreed = max(found, key=lambda a: (sum(token_f1(a, [b]) for b in question.answers), -len(a)))
    start = text.find(agreed.lower())
    return start, start + len(agreed)


def question_text(question: GroundedQuestion) -> str:
    return reader_question(question.question, question.history)


def encode(tokenizer, question: str, passage: str, span: tuple[int, int] | None,
           max_length: int) -> tuple[list[int], list[int], int, int]:
    """Token ids, segment ids and the span's start/end tokens (0, 0: "no answer", also when truncated)."""
    encoded = tokenizer(question, passage, truncation="only_second", max_length=max_length,
                        return_offsets_mapping=True)
    start = end = 0
    if span is not None:
        for index, ((begin, finish), segment) in enumerate(zip(encoded["offset_mapping"],
                                                               encoded.sequence_ids(), strict=True)):
            if segment != 1 or finish <= begin:
                continue
            if not start and finish > span[0]:
                start = index
            if begin < span[1]:
                end = index
        if not start or end < start:
            start = end = 0
    return encoded["input_ids"], encoded["token_type_ids"], start, end


def passages_by_group(questions: Sequence[GroundedQuestion]) -> dict[str, list[Passage]]:
    """The questions' gold passages, each once, by article or story."""
    passages: dict[str, list[Passage]] = {}
    for question in questions:
        group = passages.setdefault(question.group, [])
        if all(p is not question.gold for p in group):
            group.append(question.gold)
    return passages


def reader_examples(questions: Sequence[GroundedQuestion], tokenizer, max_length: int,
                    rng: random.Random) -> list[tuple[list[int], list[int], int, int]]:
    """Each locatable question on its gold passage, and on one other passage of its group as "no answer"."""
    passages = passages_by_group(questions)
    examples = []
    for question in questions:
        span = answer_span(question)
        if span is None:
            continue
        text = question_text(question)
        examples.append(encode(tokenizer, text, question.gold.text, span, max_length))
        others = [p for p in passages[question.group] if p is not question.gold]
        if others:
            examples.append(encode(tokenizer, text, rng.choice(others).text, None, max_length))
    return examples


def grounded_split(squad: Path | None, coqa: Path | None,
                   build: BuildConfig) -> dict[str, list[GroundedQuestion]]:
    """The grounded questions split by article and story as `tutor data grounded` splits them (both sets
    decide which story goes where), so the dev split that `tutor eval answers` asks about stays unseen."""
    questions = load_questions(squad, coqa, build, CleaningReport())
    return split_by_group(questions, (1 - build.dev_fraction, build.dev_fraction, 0.0), build.seed)


def _batch(rows: Sequence[tuple[list[int], list[int], int, int]]) -> dict[str, torch.Tensor]:
    width = max(len(r[0]) for r in rows)
    pad = [width - len(r[0]) for r in rows]
    return {"input_ids": torch.tensor([r[0] + [0] * p for r, p in zip(rows, pad, strict=True)]),
            "token_type_ids": torch.tensor([r[1] + [0] * p for r, p in zip(rows, pad, strict=True)]),
            "attention_mask": torch.tensor([[1] * len(r[0]) + [0] * p
                                            for r, p in zip(rows, pad, strict=True)]),
            "start_positions": torch.tensor([r[2] for r in rows]),
            "end_positions": torch.tensor([r[3] for r in rows])}


def train_reader(out_dir: Path, base: Path, *, squad: Path | None, coqa: Path | None,
                 config: ReaderConfig | None = None,
                 progress: Callable[[int, int], None] | None = None) -> dict[str, float]:
    """Train, write ``reader.safetensors`` and ``reader.json`` in ``out_dir``, and return the dev scores."""
    from transformers import AutoTokenizer

    config = config or ReaderConfig()
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed if config.order_seed is None else config.order_seed)
    splits = grounded_split(squad, coqa, config.build)
    tokenizer = AutoTokenizer.from_pretrained(base)
    examples = reader_examples(splits["train"], tokenizer, config.max_length, rng)
    model = load_span_model(base)
    low_rank = add_low_rank(model, config.rank, config.alpha)
    logger.info("Reader: %d train examples from %d questions.", len(examples), len(splits["train"]))
    started = time.monotonic()
    steps = fit(model, examples, lambda rows: model(**_batch(rows)).loss, config, rng, progress)
    tensors = adapter_tensors(low_rank, model.qa_outputs, "qa_outputs")
    record = {"base": None if base.resolve() == default_embedder_path().resolve() else str(base),
              "rank": config.rank, "alpha": config.alpha, "max_length": 384, "max_answer_tokens": 16,
              "train_examples": len(examples), "steps": steps,
              "train_seconds": round(time.monotonic() - started),
              "config": {k: v for k, v in asdict(config).items() if k != "build"}}
    return write_scored_reader(out_dir, tensors, record, splits["validation"], rng)


def write_scored_reader(out_dir: Path, tensors: dict[str, torch.Tensor], record: dict,
                        dev: Sequence[GroundedQuestion], rng: random.Random) -> dict[str, float]:
    """Write the adapter ``tensors`` and ``record`` into ``out_dir`` whole (``swap_in``), the record with
    the reader's scores on ``dev``, and return them. A yes/no classifier there is removed: it was trained
    on the encoder just replaced."""
    from safetensors.torch import save_file

    def scored(staging: Path) -> dict:
        save_file(tensors, str(staging / ADAPTER_FILE))
        write_record(staging, record)
        record["dev"] = evaluate_reader(ExtractiveReader.load(staging), dev, rng)
        return record

    swap_in(out_dir, scored, (ADAPTER_FILE,))
    if (out_dir / YES_NO_FILE).is_file():
        (out_dir / YES_NO_FILE).unlink()
        logger.warning("Removed %s: it fitted the previous reader; retrain it with `tutor train yes-no`.",
                       out_dir / YES_NO_FILE)
    return record["dev"]


def soup_readers(out_dir: Path, members: Sequence[Path], *, squad: Path | None, coqa: Path | None,
                 build: BuildConfig | None = None) -> dict[str, float]:
    """Average readers trained from one start into one reader in ``out_dir``; return its dev scores.

    The mean of the members' weight changes is saved exactly, as one adapter whose rank is the sum of
    theirs (their ``A`` stacked, their ``B`` side by side, each scaled by ``alpha / rank / len(members)``),
    and the mean of their span heads: serving costs what one reader does. Weights averaged from runs
    that share their initialisation score above each run ("model soups", Wortsman et al., 2022; the
    model card); runs from different starts do not average, so members must share their base and
    ``seed``, differing in ``order_seed`` (or in their data).
    """
    from safetensors.torch import load_file

    if len(members) < 2:
        raise TrainingError("A soup needs at least two readers.")
    folders = [check_reader_folder(folder) for folder in members]
    records = [json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8")) for folder in folders]
    seeds = [r.get("config", {}).get("seed") for r in records]
    starts = {(r["base"], seed, r["max_length"], r["max_answer_tokens"])
              for r, seed in zip(records, seeds, strict=True)}
    if len(starts) > 1 or None in seeds:
        raise TrainingError("These readers do not share a start (base encoder, init seed, lengths): "
                            + "; ".join(f"{f}: base {r['base']}, seed {seed}"
                                        for f, r, seed in zip(folders, records, seeds, strict=True))
                            + ". Train the members with one --seed and different --order-seed.")
    tensors = [load_file(str(folder / ADAPTER_FILE)) for folder in folders]
    share = [r["alpha"] / r["rank"] / len(records) for r in records]
    layers = sorted(name.removesuffix(".lora_A") for name in tensors[0] if name.endswith(".lora_A"))
    soup: dict[str, torch.Tensor] = {}
    for layer in layers:
        soup[f"{layer}.lora_A"] = torch.cat([t[f"{layer}.lora_A"] for t in tensors]).contiguous()
        soup[f"{layer}.lora_B"] = torch.cat([t[f"{layer}.lora_B"].float() * k for t, k in
                                             zip(tensors, share, strict=True)], dim=1).half().contiguous()
    for key in ("qa_outputs.weight", "qa_outputs.bias"):
        soup[key] = (sum(t[key].float() for t in tensors) / len(tensors)).half().contiguous()
    rank = sum(r["rank"] for r in records)
    record = {"base": records[0]["base"], "rank": rank, "alpha": float(rank),
              "max_length": records[0]["max_length"], "max_answer_tokens": records[0]["max_answer_tokens"],
              "config": {"seed": seeds[0]},
              "soup": [{"folder": str(folder), "config": r.get("config"), "dev": r.get("dev")}
                       for folder, r in zip(folders, records, strict=True)]}
    build = build or BuildConfig()
    dev = grounded_split(squad, coqa, build)["validation"]
    return write_scored_reader(out_dir, soup, record, dev, random.Random(build.seed))


def evaluate_reader(reader: ExtractiveReader, questions: Sequence[GroundedQuestion],
                    rng: random.Random, notes: int = 4) -> dict[str, float]:
    """Token F1 of the reader's span per set: on the gold passage alone, and among ``notes`` passages
    of the same article or story (the gold one at a random place), as retrieval shows them."""
    passages = passages_by_group(questions)
    totals: dict[str, list[float]] = {}
    for question in questions:
        name = question.group.split(":")[0]
        text = question_text(question)
        alone = reader.read(text, [question.gold.text])
        shown = [p.text for p in passages[question.group] if p is not question.gold][:notes - 1]
        shown.insert(rng.randrange(len(shown) + 1), question.gold.text)
        among = reader.read(text, shown)
        for key, answer in ((f"{name} F1 gold passage", alone), (f"{name} F1 among {notes}", among)):
            totals.setdefault(key, []).append(token_f1(answer.text if answer else "", question.answers))
    return {key: round(sum(values) / len(values), 3) for key, values in totals.items()} | {
        f"{name} questions": sum(q.group.startswith(name + ":") for q in questions)
        for name in sorted({q.group.split(":")[0] for q in questions})}
