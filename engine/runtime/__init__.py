"""Model runtime: load a causal LM once, generate text and score continuations.

The interface follows lm-evaluation-harness: batch methods that return one result
per request, in order. Backends register by name in ``BACKENDS``.
"""

from engine.runtime.base import (
    GenerationRequest,
    GenerationResult,
    LoglikelihoodRequest,
    PairRequest,
    RollingRequest,
    Runtime,
)
from engine.runtime.models import ModelNotFoundError, default_embedder_path, resolve_llm_folder

__all__ = [
    "GenerationRequest",
    "GenerationResult",
    "LoglikelihoodRequest",
    "ModelNotFoundError",
    "PairRequest",
    "RollingRequest",
    "Runtime",
    "default_embedder_path",
    "load_runtime",
    "resolve_llm_folder",
]


def load_runtime(model: str | None, *, data_dir, backend: str = "hf", **options) -> Runtime:
    """Build the runtime for ``model`` (a folder, a GGUF file, or None for the default).

    A folder that ``tutor quantize`` wrote (GPTQ) loads through the "gptq" backend even as "hf".
    """
    from engine.runtime.base import BACKENDS

    if backend == "hf" and model is not None:
        from engine.runtime.gptq import quantization_method

        if quantization_method(model) == "gptq":
            backend = "gptq"

    if backend not in BACKENDS:
        from engine.runtime.base import import_backend

        import_backend(backend)
    return BACKENDS[backend](model, data_dir=data_dir, **options)
