"""The runtime interface shared by every backend."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

# Maps a backend name to the module that registers it, so importing is lazy.
_BACKEND_MODULES = {
    "hf": "engine.runtime.hf",
    "openai": "engine.runtime.openai",
    "gptq": "engine.runtime.gptq",
}
BACKENDS: dict[str, Callable[..., Runtime]] = {}


def register_backend(name: str):
    """Class decorator: make a backend available to ``load_runtime`` under ``name``."""

    def wrap(cls):
        BACKENDS[name] = cls
        return cls

    return wrap


def import_backend(name: str) -> None:
    if name not in _BACKEND_MODULES:
        known = ", ".join(sorted(_BACKEND_MODULES))
        raise ValueError(f"Unknown runtime backend {name!r}; known backends: {known}.")
    importlib.import_module(_BACKEND_MODULES[name])


@dataclass
class GenerationRequest:
    """One chat completion to run: a list of {role, content} messages."""

    messages: list[dict[str, str]]
    max_new_tokens: int = 256
    temperature: float = 0.0
    stop: list[str] = field(default_factory=list)


@dataclass
class GenerationResult:
    """The generated text and how many tokens went in and came out."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str = "stop"  # "stop" or "length"


@dataclass
class LoglikelihoodRequest:
    """Score ``continuation`` as the text that follows ``context`` (lm-eval's request)."""

    context: str
    continuation: str


class Runtime(Protocol):
    """What the service and the evaluation code need from a loaded model."""

    model_name: str

    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]: ...

    def loglikelihood(self, requests: list[LoglikelihoodRequest]) -> list[tuple[float, bool]]:
        """Return (sum of continuation log-probs, whether it is the greedy continuation)."""
        ...

    def format_chat(self, messages: list[dict[str, str]]) -> str:
        """Render messages with the model's chat template, ready for generation."""
        ...
