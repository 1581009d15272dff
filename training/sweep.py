"""A grid sweep over recipe settings on a data subset, ranked by validation reward accuracy.

A sweep file names a base recipe, a grid (dotted recipe keys -> lists of values), optional
overrides for every run, and a subset size (rows kept per dataset). Every combination runs in its
own folder; finished runs are skipped when the sweep is started again.

```yaml
base: configs/dpo.yaml
subset: 200
grid:
  learning_rate: [5.0e-5, 2.0e-4]
  adapter.r: [8, 16]
  loss: [sigmoid, ipo]
overrides: [max_steps=30]
output_dir: runs/sweep
```
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.config import Origin, check_keys, load_config, parse_overrides, read_yaml
from training.errors import RecipeError, TrainingError
from training.recipes import Recipe, foreign_keys, load_recipe

logger = logging.getLogger(__name__)


@dataclass
class SweepSpec:
    """A parsed sweep file."""

    base: str = field(metadata={"help": "The recipe every run starts from, e.g. configs/dpo.yaml."})
    grid: dict[str, list[Any]] = field(
        metadata={"help": "Recipe keys (dotted for sections, e.g. adapter.r) mapped to the values to try."}
    )
    subset: int | None = field(
        default=None, metadata={"help": "Rows kept per dataset in every run; null keeps them all."}
    )
    overrides: list[str] = field(
        default_factory=list, metadata={"help": "Settings for every run, as key=value, e.g. max_steps=30."}
    )
    output_dir: str = field(
        default="runs/sweep", metadata={"help": "Where each run gets its folder and the ranked table goes."}
    )

    def __post_init__(self) -> None:
        if not self.grid or any(not isinstance(v, list) or not v for v in self.grid.values()):
            raise RecipeError("A sweep's grid must map recipe keys to non-empty lists of values.")
        if self.subset is not None and self.subset < 1:
            raise RecipeError("A sweep's subset must be at least 1 row per dataset, or null for all.")


def load_sweep(path: str | Path) -> SweepSpec:
    """Read a sweep file and check its base recipe, overrides and grid keys before any run starts."""
    source = f"Sweep file {path}"
    spec = load_config(SweepSpec, read_yaml(path, "Sweep file", example="configs/sweep.yaml"), {},
                       Origin(source))
    recipe = load_recipe(spec.base, spec.overrides)
    grid_keys = parse_overrides([f"{key}=" for key in spec.grid])
    check_keys(type(recipe), grid_keys, Origin(f"{source}, grid", foreign=foreign_keys(type(recipe))))
    return spec


def combinations(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, in a stable order."""
    keys = list(grid)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*(grid[k] for k in keys))]


def run_name(index: int, combo: dict[str, Any]) -> str:
    parts = [f"{key.split('.')[-1]}={value}" for key, value in combo.items()]
    return f"run{index:02d}-" + "-".join(parts).replace("/", "_")


def build_recipe(spec: SweepSpec, combo: dict[str, Any], folder: Path) -> Recipe:
    """The base recipe with the sweep's overrides, this combination and its own output folder."""
    overrides = [*spec.overrides, *(f"{k}={json.dumps(v)}" for k, v in combo.items()), f"output_dir={folder}"]
    recipe = load_recipe(spec.base, overrides)
    if spec.subset:
        for dataset in recipe.datasets:
            dataset.cap = min(dataset.cap or spec.subset, spec.subset)
            dataset.fraction = None
    return recipe


def score_of(summary: dict[str, Any], task: str) -> float | None:
    """A finished run's rank: validation reward accuracy (DPO) or minus validation loss (SFT)."""
    key = "eval_rewards/accuracies" if task == "dpo" else "eval_loss"
    value = (summary.get(key) or {}).get("last")
    if value is None:
        return None
    return value if task == "dpo" else -value


def run_sweep(spec: SweepSpec, train: Callable[[Recipe], Path] | None = None) -> list[dict[str, Any]]:
    """Run every combination (skipping finished ones); write and return the ranked table."""
    out = Path(spec.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for index, combo in enumerate(combinations(spec.grid)):
        folder = out / run_name(index, combo)
        try:
            recipe = build_recipe(spec, combo, folder)
        except RecipeError as error:
            logger.warning("Skipping %s: %s", folder.name, error)
            results.append({"run": folder.name, **combo, "score": None, "note": str(error)})
            continue
        if not (folder / "summary.json").exists():
            (train or _trainer_for(recipe.task))(recipe)
        summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
        results.append(
            {
                "run": folder.name,
                **combo,
                "score": score_of(summary, recipe.task),
                "eval_rewards/margins": (summary.get("eval_rewards/margins") or {}).get("last"),
                "eval_loss": (summary.get("eval_loss") or {}).get("last"),
                "note": "",
            }
        )
    ranked = sorted(results, key=lambda r: (r["score"] is None, -(r["score"] or 0.0)))
    write_table(ranked, out)
    return ranked


def _trainer_for(task: str) -> Callable[[Recipe], Path]:
    if task == "dpo":
        from training.dpo import run_dpo

        return run_dpo
    if task == "sft":
        from training.sft import run_sft

        return run_sft
    raise TrainingError(f"Unknown task {task!r}.")


def write_table(rows: list[dict[str, Any]], folder: Path) -> None:
    """results.json and a markdown table, best first."""
    (folder / "results.json").write_text(json.dumps(rows, indent=2), encoding="utf-8")
    if not rows:
        return
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(c)) for c in columns) + " |")
    (folder / "results.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)
