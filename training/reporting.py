"""What a run leaves behind besides the adapter: the log, PNG curves and a JSON + markdown summary."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

# (file name, title, [(log key, label), ...]); a curve is drawn when its key was logged.
PLOTS = [
    ("loss.png", "Loss", [("loss", "train"), ("eval_loss", "validation")]),
    (
        "reward_accuracy.png",
        "Reward accuracy",
        [("rewards/accuracies", "train"), ("eval_rewards/accuracies", "validation")],
    ),
]


def write_log(history: list[dict[str, Any]], path: Path) -> None:
    """The trainer's log history, one JSON object per line."""
    with path.open("w", encoding="utf-8") as handle:
        for entry in history:
            handle.write(json.dumps(entry) + "\n")


def series(history: list[dict[str, Any]], key: str) -> list[tuple[int, float]]:
    """(step, value) points of one logged metric, finite values only."""
    return [
        (int(e.get("step", 0)), float(e[key]))
        for e in history
        if key in e and isinstance(e[key], int | float) and math.isfinite(e[key])
    ]


def plot_curves(history: list[dict[str, Any]], folder: Path) -> list[Path]:
    """Draw the loss and reward-accuracy curves that have data; returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for name, title, curves in PLOTS:
        points = [(label, series(history, key)) for key, label in curves]
        points = [(label, p) for label, p in points if p]
        if not points:
            continue
        figure, axes = plt.subplots(figsize=(6, 4))
        for label, data in points:
            steps, values = zip(*data, strict=True)
            axes.plot(steps, values, marker="o" if len(data) < 30 else None, label=label)
        axes.set_xlabel("optimizer step")
        axes.set_title(title)
        axes.grid(alpha=0.3)
        axes.legend()
        figure.tight_layout()
        figure.savefig(folder / name, dpi=100)
        plt.close(figure)
        written.append(folder / name)
    return written


def first_and_last(history: list[dict[str, Any]], key: str) -> dict[str, float] | None:
    points = series(history, key)
    if not points:
        return None
    return {
        "first": points[0][1],
        "last": points[-1][1],
        "first_step": points[0][0],
        "last_step": points[-1][0],
    }


def write_summary(folder: Path, summary: dict[str, Any]) -> None:
    """summary.json and summary.md side by side."""
    (folder / "summary.json").write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")
    lines = [f"# {summary.get('task', 'training').upper()} run summary", ""]
    for key, value in summary.items():
        if isinstance(value, dict):
            lines.append(f"## {key}")
            lines += [f"- {k}: {_fmt(v)}" for k, v in value.items()]
            lines.append("")
        elif key != "cleaning_markdown":
            lines.append(f"- {key}: {_fmt(value)}")
    if summary.get("cleaning_markdown"):
        lines += ["", "## Cleaning", "", summary["cleaning_markdown"]]
    (folder / "summary.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_fmt(v)}" for k, v in value.items())
    return str(value)
