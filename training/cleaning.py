"""Preference-data cleaning: each step optional, seeded, and counted in a report.

Steps run in a fixed order: ties -> agreement (Global Threshold or Local Tolerance) ->
exact duplicates -> at most N pairs per prompt -> token length (percentile drop or truncation).
Merging sources and the grouped train/validation/test split are separate functions, since
they work across datasets.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal, Protocol, TypeVar

from training.config import check_choice
from training.data.schema import PreferencePair, SFTExample
from training.errors import RecipeError

Row = TypeVar("Row", PreferencePair, SFTExample)
SPLITS = ("train", "validation", "test")


class TokenCounter(Protocol):
    """Counts and cuts text in tokens (a tokenizer, or words in tests).

    ``prompt_overhead`` is what framing adds to every row (a chat template's system prompt and
    role markers), so that length limits hold for the sequence the trainer really sees.
    """

    prompt_overhead: int

    def count(self, text: str) -> int: ...

    def truncate(self, text: str, tokens: int) -> str: ...


class WordCounter:
    """Whitespace words as tokens: for tests and tokenizer-free runs."""

    prompt_overhead = 0

    def count(self, text: str) -> int:
        return len(text.split())

    def truncate(self, text: str, tokens: int) -> str:
        return " ".join(text.split()[:tokens])


class TokenizerCounter:
    """Tokens of an HF tokenizer; with ``chat``, plus what its chat template adds around a turn."""

    def __init__(self, tokenizer: Any, chat: bool = False):
        self.tokenizer = tokenizer
        self.prompt_overhead = 0
        if chat and getattr(tokenizer, "chat_template", None):
            framed = tokenizer.apply_chat_template(
                [{"role": "user", "content": ""}, {"role": "assistant", "content": ""}], tokenize=False
            )
            self.prompt_overhead = self.count(framed)

    def count(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def truncate(self, text: str, tokens: int) -> str:
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"][: max(tokens, 0)]
        return self.tokenizer.decode(ids)


@dataclass
class CleaningConfig:
    """Which cleaning steps run, and their thresholds. Every step is optional."""

    drop_ties: bool = field(
        default=True, metadata={"help": "Drop pairs whose overall judgement is a tie or missing."}
    )
    agreement_rule: Literal["none", "global", "local"] = field(
        default="none",
        metadata={
            "help": "Agreement filter: 'global' drops pairs whose agreement score is below lambda (Global "
            "Threshold); 'local' drops pairs whose score is below the best score among pairs of the "
            "same question minus lambda (Local Tolerance); 'none' keeps all."
        },
    )
    agreement_lambda: float = field(
        default=0.0, metadata={"help": "Lambda of the agreement rule, in agreeing criteria or annotators."}
    )
    drop_duplicates: bool = field(
        default=True,
        metadata={"help": "Drop exact duplicates (same prompt, chosen and rejected), keeping the first."},
    )
    max_pairs_per_prompt: int | None = field(
        default=None,
        metadata={
            "help": "Keep at most this many pairs per prompt: the highest agreement first, ties broken "
            "by a seeded hash so the choice is deterministic."
        },
    )
    length_percentile: float | None = field(
        default=None,
        metadata={
            "help": "Drop pairs whose token length (prompt plus the longer answer) is above this percentile, "
            "e.g. 95."
        },
    )
    max_tokens: int | None = field(
        default=None,
        metadata={
            "help": "Truncate answers so that prompt plus answer fit in this many tokens; pairs whose prompt "
            "alone does not fit are dropped."
        },
    )
    seed: int = field(default=0, metadata={"help": "Seed of every random or hashed choice."})

    def __post_init__(self) -> None:
        check_choice("cleaning.agreement_rule", self.agreement_rule, ("none", "global", "local"))
        if self.agreement_lambda < 0:
            raise RecipeError("cleaning.agreement_lambda must be zero or positive.")
        if self.max_pairs_per_prompt is not None and self.max_pairs_per_prompt < 1:
            raise RecipeError("cleaning.max_pairs_per_prompt must be at least 1, or null to keep all.")
        if self.length_percentile is not None and not 0 < self.length_percentile <= 100:
            raise RecipeError("cleaning.length_percentile must be in (0, 100], e.g. 95.")
        if self.max_tokens is not None and self.max_tokens < 2:
            raise RecipeError("cleaning.max_tokens must be at least 2, or null for no truncation.")


@dataclass
class StepReport:
    """One cleaning step: rows before it, rows it removed, and what it did."""

    step: str
    before: int
    removed: int
    note: str = ""

    @property
    def after(self) -> int:
        return self.before - self.removed


@dataclass
class CleaningReport:
    """What cleaning removed, step by step, plus the split sizes."""

    steps: list[StepReport] = field(default_factory=list)
    splits: dict[str, int] = field(default_factory=dict)
    bad_rows: int = 0

    def record(self, step: str, before: int, after: int, note: str = "") -> None:
        self.steps.append(StepReport(step, before, before - after, note))

    def to_dict(self) -> dict[str, Any]:
        steps = [{**asdict(s), "after": s.after} for s in self.steps]
        return {"bad_rows": self.bad_rows, "steps": steps, "splits": self.splits}

    def to_markdown(self) -> str:
        lines = ["| step | before | removed | after | note |", "|---|---:|---:|---:|---|"]
        lines += [f"| {s.step} | {s.before} | {s.removed} | {s.after} | {s.note} |" for s in self.steps]
        if self.splits:
            lines.append("")
            lines.append("Splits: " + ", ".join(f"{k} {v}" for k, v in self.splits.items()))
        return "\n".join(lines)


def drop_ties(pairs: list[PreferencePair]) -> list[PreferencePair]:
    """Pairs with a clear overall judgement."""
    return [p for p in pairs if not p.tie]


def agreement_filter(pairs: list[PreferencePair], rule: str, lam: float) -> list[PreferencePair]:
    """Global Threshold (score >= lambda) or Local Tolerance (score >= best of its question - lambda).

    Pairs without an agreement score are kept: there is nothing to judge them by.
    """
    if rule == "none":
        return list(pairs)
    if rule == "global":
        return [p for p in pairs if p.agreement is None or p.agreement >= lam]
    best: dict[str, int] = {}
    for pair in pairs:
        if pair.agreement is not None:
            best[pair.group] = max(best.get(pair.group, pair.agreement), pair.agreement)
    return [p for p in pairs if p.agreement is None or p.agreement >= best[p.group] - lam]


def _answers(row: PreferencePair | SFTExample) -> list[str]:
    return [row.chosen, row.rejected] if isinstance(row, PreferencePair) else [row.completion]


def _prompt_text(row: PreferencePair | SFTExample) -> str:
    return row.prompt if isinstance(row.prompt, str) else json.dumps(row.prompt, ensure_ascii=False)


def drop_duplicates(rows: list[Row]) -> list[Row]:
    """Rows whose prompt and answers were not seen before, in order."""
    seen: set[tuple[str, ...]] = set()
    kept = []
    for row in rows:
        key = (_prompt_text(row), *_answers(row))
        if key not in seen:
            seen.add(key)
            kept.append(row)
    return kept


def _stable_hash(seed: int, *parts: str) -> str:
    return hashlib.sha256("\x1f".join([str(seed), *parts]).encode()).hexdigest()


def cap_per_prompt(pairs: list[PreferencePair], limit: int, seed: int) -> list[PreferencePair]:
    """At most ``limit`` pairs per prompt: highest agreement first, then a seeded hash order.

    Keyed by the prompt itself, not the split group: the grounded builder groups a whole article or
    story (many questions) so that splits keep it together.
    """
    by_prompt: dict[str, list[PreferencePair]] = defaultdict(list)
    for pair in pairs:
        by_prompt[pair.prompt_text()].append(pair)
    keep: set[int] = set()
    for members in by_prompt.values():
        ranked = sorted(
            members, key=lambda p: (-(p.agreement or 0), _stable_hash(seed, p.chosen, p.rejected))
        )
        keep.update(id(p) for p in ranked[:limit])
    return [p for p in pairs if id(p) in keep]


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank q-th percentile (0 < q <= 100) of non-empty ``values``."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def token_length(row: PreferencePair | SFTExample, counter: TokenCounter) -> int:
    """Prompt tokens plus the longer answer's tokens: the longest sequence the row makes."""
    prompt = counter.count(_prompt_text(row)) + counter.prompt_overhead
    return prompt + max(counter.count(a) for a in _answers(row))


def drop_long(rows: list[Row], q: float, counter: TokenCounter) -> tuple[list[Row], int]:
    """Rows at or below the q-th percentile of token length, and that threshold."""
    if not rows:
        return [], 0
    lengths = [token_length(row, counter) for row in rows]
    limit = percentile(lengths, q)
    return [row for row, n in zip(rows, lengths, strict=True) if n <= limit], int(limit)


def truncate(rows: list[Row], max_tokens: int, counter: TokenCounter) -> tuple[list[Row], int]:
    """Answers cut so prompt plus answer fit ``max_tokens``; rows whose prompt alone does not fit dropped.

    Returns the kept rows and how many of them were cut.
    """
    kept, cut = [], 0
    for row in rows:
        room = max_tokens - counter.count(_prompt_text(row)) - counter.prompt_overhead
        if room < 1:
            continue
        answers = _answers(row)
        if all(counter.count(a) <= room for a in answers):
            kept.append(row)
            continue
        cut += 1
        shortened = [counter.truncate(a, room) for a in answers]
        if isinstance(row, PreferencePair):
            if shortened[0] == shortened[1]:
                continue  # the difference was beyond the cut: no preference left to learn
            kept.append(replace(row, chosen=shortened[0], rejected=shortened[1]))
        else:
            kept.append(replace(row, completion=shortened[0]))
    return kept, cut


def clean(
    rows: list[Row],
    config: CleaningConfig,
    counter: TokenCounter | None = None,
    report: CleaningReport | None = None,
    prefix: str = "",
) -> tuple[list[Row], CleaningReport]:
    """Run the configured steps on preference pairs (or SFT examples, for the steps that apply)."""
    report = report or CleaningReport()
    counter = counter or WordCounter()
    pairs = bool(rows) and isinstance(rows[0], PreferencePair)
    steps: list[tuple[str, bool, Callable[[list[Row]], tuple[list[Row], str]]]] = [
        ("drop ties or missing overall", pairs and config.drop_ties, lambda r: (drop_ties(r), "")),
        (
            f"agreement {config.agreement_rule} (lambda {config.agreement_lambda:g})",
            pairs and config.agreement_rule != "none",
            lambda r: (
                agreement_filter(r, config.agreement_rule, config.agreement_lambda),
                f"{sum(p.agreement is None for p in r)} rows had no score and were kept",
            ),
        ),
        ("drop exact duplicates", config.drop_duplicates, lambda r: (drop_duplicates(r), "")),
        (
            f"at most {config.max_pairs_per_prompt} pairs per prompt",
            pairs and bool(config.max_pairs_per_prompt),
            lambda r: (cap_per_prompt(r, config.max_pairs_per_prompt or 0, config.seed), ""),
        ),
        (
            f"drop above p{config.length_percentile} token length",
            config.length_percentile is not None,
            lambda r: _with_note(
                drop_long(r, config.length_percentile or 100, counter), "threshold {} tokens"
            ),
        ),
        (
            f"truncate to {config.max_tokens} tokens",
            config.max_tokens is not None,
            lambda r: _with_note(truncate(r, config.max_tokens or 0, counter), "{} rows truncated"),
        ),
    ]
    for name, enabled, step in steps:
        if enabled:
            before = len(rows)
            rows, note = step(rows)
            report.record(prefix + name, before, len(rows), note)
    return rows, report


def _with_note(result: tuple[list[Row], int], template: str) -> tuple[list[Row], str]:
    return result[0], template.format(result[1])


@dataclass
class SourceShare:
    """How much of one source a merge keeps: a cap (N_i = min(cap, S_i)) or a fraction of it."""

    cap: int | None = None
    fraction: float | None = None

    def size(self, available: int) -> int:
        if self.cap is not None:
            return min(self.cap, available)
        if self.fraction is not None:
            return min(available, round(self.fraction * available))
        return available


def merge_sources(
    sources: dict[str, list[Row]],
    shares: dict[str, SourceShare],
    seed: int,
    report: CleaningReport | None = None,
) -> list[Row]:
    """Concatenate sources, each sampled down to its share (seeded; original order kept)."""
    merged: list[Row] = []
    for name, rows in sources.items():
        share = shares.get(name, SourceShare())
        wanted = share.size(len(rows))
        chosen = sorted(random.Random(f"{seed}:{name}").sample(range(len(rows)), wanted))
        merged.extend(rows[i] for i in chosen)
        if report is not None:
            report.record(
                f"merge: take {name}",
                len(rows),
                wanted,
                f"cap {share.cap}"
                if share.cap is not None
                else f"fraction {share.fraction}"
                if share.fraction is not None
                else "all",
            )
    return merged


def split_by_group(rows: list[Row], fractions: Sequence[float], seed: int) -> dict[str, list[Row]]:
    """Train/validation/test by fractions of rows, whole questions at a time (no question in two splits).

    Questions are shuffled with ``seed``, then filled into train, validation and test in turn until
    each split's share of rows is reached.
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or not math.isclose(sum(fractions), 1.0):
        raise RecipeError(
            f"Split fractions {list(fractions)} must be three non-negative numbers summing to 1."
        )
    by_group: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        by_group[row.group].append(row)
    groups = sorted(by_group)
    random.Random(seed).shuffle(groups)
    bounds = [fractions[0] * len(rows), (fractions[0] + fractions[1]) * len(rows)]
    splits: dict[str, list[Row]] = {name: [] for name in SPLITS}
    placed = 0
    for group in groups:
        # An empty share has an empty interval, so it never receives a question.
        index = 0 if placed < bounds[0] else 1 if placed < bounds[1] else 2
        splits[SPLITS[index]].extend(by_group[group])
        placed += len(by_group[group])
    return splits
