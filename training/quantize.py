"""GPTQ quantisation with GPTQModel, behind a quality gate.

``quantize_model`` writes the quantised folder next to ``out_dir`` first, measures perplexity on
held-out text (and MCQA accuracy when a questions file is given) for the source and the quantised
model through ``app.runtime``, and renames the folder into place only when the drop stays within
the recipe's thresholds. A failed gate or an error leaves nothing at ``out_dir``.

>>> recipe = QuantizeRecipe(bits=4, group_size=64)
>>> recipe.gate.max_perplexity_increase_pct
10.0
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from training.errors import TrainingError
from training.evaluate import mcqa_accuracy, perplexity

logger = logging.getLogger(__name__)

REPORT_FILE = "quantization_report.json"
# Linear layers only: embeddings and norms stay in the source precision.
SUPPORTED_BITS = (2, 3, 4, 8)


class QuantizationError(TrainingError):
    """A quantisation that cannot run as asked (bad settings, an already-quantised source)."""


class QualityGateError(QuantizationError):
    """The quantised model lost more quality than the recipe allows; nothing was published."""

    def __init__(self, report: QuantizeReport):
        self.report = report
        super().__init__(
            "The quantised model failed the quality gate: " + "; ".join(report.failures)
            + ". Nothing was written to the output folder; raise the thresholds in the recipe's 'gate' "
            "section, or quantise with more bits, a smaller group size or more calibration texts."
        )


@dataclass
class GateThresholds:
    """How much quality the quantised model may lose against its source."""

    max_perplexity_increase_pct: float = field(
        default=10.0, metadata={"help": "Largest allowed perplexity growth on held-out text, in percent."}
    )
    max_mcqa_drop_points: float = field(
        default=2.0, metadata={"help": "Largest allowed MCQA accuracy drop, in percentage points."}
    )


@dataclass
class QuantizeRecipe:
    """GPTQ settings, calibration and the quality gate of one quantisation."""

    bits: int = field(default=4, metadata={"help": "Bits per weight of the linear layers: 2, 3, 4 or 8."})
    group_size: int = field(
        default=64,
        metadata={"help": "Weights sharing one scale; must divide the hidden size (SmolLM2's 576: use 64)."},
    )
    sym: bool = field(default=True, metadata={"help": "Symmetric quantisation (no zero point per group)."})
    desc_act: bool = field(default=False, metadata={"help": "Quantise columns by decreasing activation."})
    damp_percent: float = field(default=0.05, metadata={"help": "Hessian dampening, as a share of its mean."})
    calibration_texts: int = field(default=128, metadata={"help": "Calibration texts fed to GPTQ."})
    heldout_texts: int = field(default=64, metadata={"help": "Held-out texts for the perplexity gate."})
    questions: str | None = field(
        default=None, metadata={"help": "An MCQ JSONL file for the MCQA accuracy gate; None skips it."}
    )
    question_limit: int | None = field(default=200, metadata={"help": "Use the first N questions."})
    gate: GateThresholds = field(default_factory=GateThresholds, metadata={"help": "The quality gate."})
    cpu_workers: int = field(
        default=2, metadata={"help": "GPTQModel's CPU worker threads; below 2 it fails on small machines."}
    )
    extensions_dir: str | None = field(
        default=None,
        metadata={"help": "Where GPTQModel caches its compiled C++ extension (~40 s to build once); "
                          "None: ~/.cache/gptqmodel/torch_extensions."},
    )

    def __post_init__(self) -> None:
        if self.bits not in SUPPORTED_BITS:
            raise QuantizationError(f"bits is {self.bits}; GPTQ here supports {SUPPORTED_BITS}.")
        if self.group_size != -1 and self.group_size < 8:
            raise QuantizationError(f"group_size is {self.group_size}; use -1 (per column) or 8 and up.")
        if self.calibration_texts < 1 or self.heldout_texts < 1:
            raise QuantizationError("calibration_texts and heldout_texts must be at least 1.")
        if isinstance(self.gate, dict):
            self.gate = GateThresholds(**self.gate)


@dataclass
class QuantizeReport:
    """Before/after figures of one quantisation and the gate's verdict (saved as quantization_report.json)."""

    source: str
    output: str
    bits: int
    group_size: int
    seconds: float
    source_perplexity: float
    quantized_perplexity: float
    perplexity_increase_pct: float
    source_mcqa: float | None = None
    quantized_mcqa: float | None = None
    mcqa_drop_points: float | None = None
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


def gate_failures(report: QuantizeReport, gate: GateThresholds) -> list[str]:
    """The gate's complaints about ``report``; empty when it passes."""
    failures = []
    if report.perplexity_increase_pct > gate.max_perplexity_increase_pct:
        failures.append(f"perplexity grew {report.perplexity_increase_pct:.2f}% "
                        f"(allowed {gate.max_perplexity_increase_pct:g}%)")
    if report.mcqa_drop_points is not None and report.mcqa_drop_points > gate.max_mcqa_drop_points:
        failures.append(f"MCQA accuracy dropped {report.mcqa_drop_points:.2f} points "
                        f"(allowed {gate.max_mcqa_drop_points:g})")
    return failures


# -- GPTQModel -----------------------------------------------------------------------------------
def configure_gptqmodel(recipe: QuantizeRecipe, log_dir: Path) -> Any:
    """Import GPTQModel with the recipe's workers and extension cache, logging under ``log_dir``."""
    from app.runtime.gptq import import_gptqmodel

    os.environ["GPTQMODEL_CPU_WORKERS"] = str(recipe.cpu_workers)  # read when its thread pool starts
    if recipe.extensions_dir:
        os.environ["GPTQMODEL_TORCH_EXTENSIONS_DIR"] = str(Path(recipe.extensions_dir).expanduser())
    gptqmodel = import_gptqmodel()
    from gptqmodel.looper import loop_processor

    # GPTQModel 7.6 writes a log per run under ./logs; keep it inside the work folder instead.
    loop_processor._PROJECT_LOG_DIR = log_dir
    return gptqmodel


def staged_source(folder: Path, work: Path) -> Path:
    """``folder`` as GPTQModel can read it: without the GGUF note a converted default model carries."""
    from app.runtime.gptq import quantization_method

    method = quantization_method(folder)
    if method is None:
        return folder
    if method != "gguf":
        raise QuantizationError(
            f"{folder} is already quantised ({method}); quantise its full-precision source folder instead."
        )
    staged = work / "source"
    staged.mkdir()
    for item in folder.iterdir():
        if item.name != "config.json":
            (staged / item.name).symlink_to(item.resolve())
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    config.pop("quantization_config")  # the weights were de-quantised when the GGUF file was converted
    (staged / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    return staged


def run_gptq(source: Path, target: Path, texts: list[str], recipe: QuantizeRecipe, log_dir: Path) -> None:
    """Quantise ``source`` with GPTQ on ``texts`` and save the packed model and tokenizer to ``target``."""
    import gc

    gptqmodel = configure_gptqmodel(recipe, log_dir)
    config = gptqmodel.QuantizeConfig(bits=recipe.bits, group_size=recipe.group_size, sym=recipe.sym,
                                      desc_act=recipe.desc_act, damp_percent=recipe.damp_percent,
                                      offload_to_disk=False)
    model = gptqmodel.GPTQModel.load(str(source), config)
    logger.info("GPTQ %d-bit, group size %d, on %d calibration texts.", recipe.bits, recipe.group_size,
                len(texts))
    model.quantize(texts, batch_size=1)
    model.save(str(target))
    del model
    gc.collect()


def round_to_nearest_(model: Any, bits: int, group_size: int) -> int:
    """Fake-quantise the decoder's linear weights in place by plain round-to-nearest (symmetric, per group).

    The baseline GPTQ must beat: the same grid as GPTQModel's symmetric quantiser, without GPTQ's
    error compensation. Returns how many linear layers were changed.
    """
    import torch

    levels = 2**bits - 1
    changed = 0
    for module in model.model.layers.modules():
        if not isinstance(module, torch.nn.Linear):
            continue
        weight = module.weight.data
        size = weight.shape[1] if group_size == -1 else group_size
        groups = weight.float().reshape(weight.shape[0], -1, size)
        scale = (2 * groups.abs().amax(-1, keepdim=True) / levels).clamp(min=1e-8)
        zero = (levels + 1) / 2
        codes = torch.clamp(torch.round(groups / scale) + zero, 0, levels)
        module.weight.data = (scale * (codes - zero)).reshape_as(weight).to(weight.dtype)
        changed += 1
    return changed


# -- the gate ------------------------------------------------------------------------------------
def measure(folder: Path, heldout: list[str], recipe: QuantizeRecipe, *, data_dir: str | Path,
            device: str) -> tuple[float, float | None]:
    """(perplexity on ``heldout``, MCQA accuracy in percent or None) of the model in ``folder``."""
    from app.runtime import load_runtime

    runtime = load_runtime(str(folder), data_dir=data_dir, device=device)
    value = perplexity(runtime, heldout).perplexity
    accuracy = None
    if recipe.questions:
        accuracy = 100 * mcqa_accuracy(runtime, recipe.questions, recipe.question_limit)
    return value, accuracy


def judge(source: Path, target: Path, heldout: list[str], recipe: QuantizeRecipe, *, data_dir: str | Path,
          device: str, seconds: float, out_dir: Path) -> QuantizeReport:
    """Measure the source and the quantised model and apply the gate."""
    source_ppl, source_acc = measure(source, heldout, recipe, data_dir=data_dir, device=device)
    quant_ppl, quant_acc = measure(target, heldout, recipe, data_dir=data_dir, device=device)
    report = QuantizeReport(
        source=str(source), output=str(out_dir), bits=recipe.bits, group_size=recipe.group_size,
        seconds=round(seconds, 1), source_perplexity=source_ppl, quantized_perplexity=quant_ppl,
        perplexity_increase_pct=100 * (quant_ppl / source_ppl - 1), source_mcqa=source_acc,
        quantized_mcqa=quant_acc,
        mcqa_drop_points=None if source_acc is None or quant_acc is None else source_acc - quant_acc,
    )
    report.failures = gate_failures(report, recipe.gate)
    logger.info("Quality gate %s: %s", "passed" if report.passed else "FAILED", report.to_dict())
    return report


def check_output(out_dir: Path) -> None:
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise QuantizationError(f"{out_dir} exists and is not empty; choose another --out or remove it.")


def quantize_model(model: str | Path | None, out_dir: str | Path, calibration: list[str], heldout: list[str],
                   recipe: QuantizeRecipe, *, data_dir: str | Path, device: str = "cpu") -> QuantizeReport:
    """GPTQ-quantise ``model`` into ``out_dir`` when the quality gate passes; raise QualityGateError if not.

    Args:
        model: an HF folder, a .gguf file, or None for the packaged default model.
        out_dir: the folder to publish; it is written as ``.<name>.partial`` beside it and renamed.
        calibration: texts GPTQ calibrates on; ``heldout``: disjoint texts for the perplexity gate.
        data_dir: where converted GGUF models are cached.
        device: where the before/after evaluation runs.
    """
    from app.runtime.models import resolve_llm_folder

    out_dir = Path(out_dir)
    check_output(out_dir)
    if not calibration or not heldout:
        raise QuantizationError("Quantisation needs calibration texts and held-out texts; both were empty.")
    source = resolve_llm_folder(model, data_dir)
    work = out_dir.with_name(f".{out_dir.name}.partial")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        started = time.perf_counter()
        target = work / "model"
        run_gptq(staged_source(source, work), target, calibration, recipe, work / "logs")
        report = judge(source, target, heldout, recipe, data_dir=data_dir, device=device,
                       seconds=time.perf_counter() - started, out_dir=out_dir)
        (target / REPORT_FILE).write_text(json.dumps(report.to_dict(), indent=2), encoding="utf-8")
        if not report.passed:
            raise QualityGateError(report)
        if out_dir.exists():
            out_dir.rmdir()
        target.rename(out_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    logger.info("Published %s (%d-bit GPTQ).", out_dir, recipe.bits)
    return report


def load_quantize_recipe(path: str | Path | None, overrides: dict[str, Any] | None = None) -> QuantizeRecipe:
    """Defaults < the YAML recipe at ``path`` (its keys or a ``quantize:`` section) < ``overrides``.

    Overrides whose value is None are ignored; ``gate`` values merge key by key.
    """
    from dataclasses import fields

    import yaml

    data: dict[str, Any] = {}
    if path is not None:
        if not Path(path).is_file():
            raise QuantizationError(f"Quantisation recipe {path} does not exist.")
        loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        data = dict(loaded.get("quantize", loaded)) if isinstance(loaded, dict) else {}
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if key == "gate":
            data["gate"] = {**(data.get("gate") or {}), **{k: v for k, v in value.items() if v is not None}}
        else:
            data[key] = value
    known = {f.name for f in fields(QuantizeRecipe)}
    for key in data:
        if key not in known:
            near = difflib.get_close_matches(key, known, n=1)
            hint = f" Did you mean {near[0]!r}?" if near else ""
            raise QuantizationError(f"Unknown quantisation recipe key {key!r}.{hint}")
    try:
        return QuantizeRecipe(**data)
    except TypeError as error:
        raise QuantizationError(f"The quantisation recipe's gate section is invalid: {error}.") from error
