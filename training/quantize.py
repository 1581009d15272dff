"""GPTQ quantisation with GPTQModel, behind a quality gate.

``quantize_model`` writes the quantised folder next to ``out_dir`` first, measures perplexity on
held-out text (and MCQA accuracy when a questions file is given) for the source and the quantised
model through ``engine.runtime``, and renames the folder into place only when the drop stays within
the recipe's thresholds. A failed gate or an error leaves nothing at ``out_dir``.

>>> recipe = QuantizeRecipe(bits=4, group_size=64)
>>> recipe.gate.max_perplexity_increase_pct
10.0
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from training.config import Origin, given, load_config, read_yaml
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
        default=32,
        metadata={"help": "Weights sharing one scale; must divide the hidden size (SmolLM2's 576: 32 or 64). "
                          "The CPU int4 kernel takes 32, 64 or 128."},
    )
    sym: bool = field(
        default=False,
        metadata={"help": "Symmetric quantisation (no zero point per group). Asymmetric fits the default "
                          "model far better: it was de-quantised from asymmetric GGUF Q4_1 blocks."},
    )
    desc_act: bool = field(default=False, metadata={"help": "Quantise columns by decreasing activation."})
    damp_percent: float = field(default=0.01, metadata={"help": "Hessian dampening, as a share of its mean."})
    mse: float = field(
        default=2.4,
        metadata={"help": "GPTQModel's scale search: shrink each group's range while that lowers the squared "
                          "error (its norm exponent); 0 keeps the plain min/max range."},
    )
    quantize_embeddings: bool = field(
        default=True,
        metadata={"help": "Also GPTQ the output head with the same bits and groups. A tied model then "
                          "stores its embedding table once, quantised (the float table is a fifth of "
                          "SmolLM2's float16 size); an untied one keeps its input embedding in float."},
    )
    dynamic: dict[str, dict[str, Any]] | None = field(
        default=None,
        metadata={"help": "Per-module overrides for GPTQModel: a module-name regex (prefix '+:' to include, "
                          "'-:' to skip) mapped to settings such as {'bits': 8}."},
    )
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
    from engine.runtime.gptq import import_gptqmodel

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
    from engine.runtime.gptq import quantization_method

    method = quantization_method(folder)
    if method is None:
        return folder
    if method != "gguf":
        raise QuantizationError(
            f"{folder} is already quantised ({method}); quantise its full-precision source folder instead."
        )
    from engine.runtime.model_files import drop_gguf_note

    staged = work / "source"
    staged.mkdir()
    for item in folder.iterdir():
        if item.name != "config.json":
            (staged / item.name).symlink_to(item.resolve())
    config = drop_gguf_note(json.loads((folder / "config.json").read_text(encoding="utf-8")))
    (staged / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    return staged


def run_gptq(source: Path, target: Path, texts: list[str], recipe: QuantizeRecipe, log_dir: Path) -> None:
    """Quantise ``source`` with GPTQ on ``texts`` and save the packed model and tokenizer to ``target``."""
    import gc

    gptqmodel = configure_gptqmodel(recipe, log_dir)
    grid = {"bits": recipe.bits, "group_size": recipe.group_size, "sym": recipe.sym, "mse": recipe.mse}
    config = gptqmodel.QuantizeConfig(**grid, desc_act=recipe.desc_act, damp_percent=recipe.damp_percent,
                                      dynamic=recipe.dynamic or None, offload_to_disk=False)
    model = gptqmodel.GPTQModel.load(str(source), config)
    tied = bool(getattr(model.model.config, "tie_word_embeddings", False))
    embedding_name = model.get_input_embeddings_name()
    options = {}
    if recipe.quantize_embeddings:
        # GPTQ the output head on the calibration activations like any linear layer (without this
        # override GPTQModel gives it 8 bits). A tied model's input embedding is then restored from
        # the quantised head at load (engine.runtime.gptq) instead of being stored a second time.
        dynamic = dict(recipe.dynamic or {})
        dynamic.setdefault(f"+:{re.escape(model.get_output_embeddings_name())}", dict(grid))
        model.quantize_config.dynamic = dynamic
        options["embed_quant_config"] = gptqmodel.QuantizeEmbedConfig(
            embed_quant_mode=gptqmodel.QuantizeEmbed.OUTPUT, embed_only=False)
    logger.info("GPTQ %d-bit, group size %d, on %d calibration texts.", recipe.bits, recipe.group_size,
                len(texts))
    model.quantize(texts, batch_size=1, **options)
    model.save(str(target))
    compact_folder(target, recipe.group_size, embedding_name if recipe.quantize_embeddings and tied else None)
    del model
    gc.collect()


def compact_folder(folder: Path, group_size: int, tied_embedding: str | None) -> None:
    """Drop from a saved GPTQ folder what loading rebuilds exactly; the outputs stay bit for bit the same.

    - ``tied_embedding``: the float input embedding GPTQModel saved beside the quantised head of a
      tied model (it unties the table to quantise the head). The float copy is a fifth of SmolLM2's
      float16 size; the folder is marked so that the runtime fills the embedding from the head.
    - Every ``g_idx`` that is the plain column-to-group map (``column // group_size``, all of them
      without ``desc_act``): GPTQModel's layers start with that map when the tensor is absent.
    """
    import torch
    from safetensors.torch import load_file, save_file

    from engine.runtime.gptq import TIED_EMBEDDING_KEY

    def rebuilt_at_load(name: str, tensor: Any) -> bool:
        if tied_embedding and name.startswith(f"{tied_embedding}."):
            return True
        if not name.endswith(".g_idx"):
            return False
        columns = tensor.numel()
        plain = torch.arange(columns, dtype=tensor.dtype) // (columns if group_size == -1 else group_size)
        return torch.equal(tensor, plain)

    dropped: set[str] = set()
    for shard in folder.glob("*.safetensors"):
        tensors = load_file(shard)
        kept = {name: tensor for name, tensor in tensors.items() if not rebuilt_at_load(name, tensor)}
        if len(kept) < len(tensors):
            dropped |= tensors.keys() - kept.keys()
            save_file(kept, shard, metadata={"format": "pt"})
    index_file = folder / "model.safetensors.index.json"
    if index_file.is_file():
        index = json.loads(index_file.read_text(encoding="utf-8"))
        index["weight_map"] = {k: v for k, v in index["weight_map"].items() if k not in dropped}
        index_file.write_text(json.dumps(index, indent=2), encoding="utf-8")
    if tied_embedding:
        config_file = folder / "config.json"
        config = json.loads(config_file.read_text(encoding="utf-8"))
        config[TIED_EMBEDDING_KEY] = tied_embedding
        config_file.write_text(json.dumps(config, indent=2), encoding="utf-8")
    logger.info("Dropped %d tensors that loading rebuilds exactly.", len(dropped))


def round_to_nearest_(model: Any, recipe: QuantizeRecipe) -> int:
    """Fake-quantise in place, by plain round-to-nearest per group, what ``recipe`` has GPTQ quantise.

    The baseline GPTQ must beat: the decoder's linear weights (and, with ``quantize_embeddings``, the
    embedding table) on the same grid as GPTQModel's quantiser, without GPTQ's error compensation or
    its scale search. Returns how many weight matrices were changed.
    """
    import torch

    layers = model.model.layers.modules()
    weights = [module.weight for module in layers if isinstance(module, torch.nn.Linear)]
    if recipe.quantize_embeddings:
        weights.append(model.get_input_embeddings().weight)  # tied: the output head shares it
    for weight in weights:
        weight.data = _round_groups(weight.data, recipe.bits, recipe.group_size, recipe.sym)
    return len(weights)


def _round_groups(weight: Any, bits: int, group_size: int, sym: bool) -> Any:
    import torch

    levels = 2**bits - 1
    size = weight.shape[1] if group_size == -1 else group_size
    groups = weight.float().reshape(weight.shape[0], -1, size)
    if sym:
        scale = (2 * groups.abs().amax(-1, keepdim=True) / levels).clamp(min=1e-8)
        zero = torch.full_like(scale, (levels + 1) / 2)
    else:
        # GPTQ's asymmetric grid always spans zero
        low = groups.amin(-1, keepdim=True).clamp(max=0)
        high = groups.amax(-1, keepdim=True).clamp(min=0)
        scale = ((high - low) / levels).clamp(min=1e-8)
        zero = torch.round(-low / scale)
    codes = torch.clamp(torch.round(groups / scale) + zero, 0, levels)
    return (scale * (codes - zero)).reshape_as(weight).to(weight.dtype)


# -- the gate ------------------------------------------------------------------------------------
def measure(folder: Path, heldout: list[str], recipe: QuantizeRecipe, *, data_dir: str | Path,
            device: str) -> tuple[float, float | None]:
    """(perplexity on ``heldout``, MCQA accuracy in percent or None) of the model in ``folder``."""
    from engine.runtime import load_runtime

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
        out_dir: the folder to publish; it is written as ``<name>.partial`` beside it and renamed.
        calibration: texts GPTQ calibrates on; ``heldout``: disjoint texts for the perplexity gate.
        data_dir: where converted GGUF models are cached.
        device: where the before/after evaluation runs.
    """
    from engine.runtime.model_files import publishing
    from engine.runtime.models import resolve_llm_folder

    out_dir = Path(out_dir)
    check_output(out_dir)
    if not calibration or not heldout:
        raise QuantizationError("Quantisation needs calibration texts and held-out texts; both were empty.")
    source = resolve_llm_folder(model, data_dir)
    work = out_dir.with_name(f".{out_dir.name}.work")  # the staged source and GPTQModel's logs
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        with publishing(out_dir) as target:  # a failed gate raises inside: nothing is published
            started = time.perf_counter()
            run_gptq(staged_source(source, work), target, calibration, recipe, work / "logs")
            report = judge(source, target, heldout, recipe, data_dir=data_dir, device=device,
                           seconds=time.perf_counter() - started, out_dir=out_dir)
            (target / REPORT_FILE).write_text(json.dumps(report.to_dict(), indent=2), encoding="utf-8")
            if not report.passed:
                raise QualityGateError(report)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    logger.info("Published %s (%d-bit GPTQ).", out_dir, recipe.bits)
    return report


def load_quantize_recipe(path: str | Path | None, overrides: dict[str, Any] | None = None) -> QuantizeRecipe:
    """Defaults < the YAML recipe at ``path`` (its keys or a ``quantize:`` section) < ``overrides``.

    Overrides whose value is None are ignored (flags not given); ``gate`` values merge key by key.
    """
    data: dict[str, Any] = {}
    source = "The quantisation recipe"
    if path is not None:
        loaded = read_yaml(path, "Quantisation recipe", QuantizationError, "the README's quantisation part")
        data, source = loaded.get("quantize", loaded), f"Quantisation recipe {path}"
    flags = given(overrides or {})
    if flags:
        source += f" (with command-line values for {', '.join(flags)})"
    return load_config(QuantizeRecipe, data, flags, Origin(source, QuantizationError))
