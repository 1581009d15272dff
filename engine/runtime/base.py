"""The runtime interface shared by every backend."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

# Maps a backend name to the module that registers it, so importing is lazy.
_BACKEND_MODULES = {"hf": "engine.runtime.hf", "openai": "engine.runtime.openai",
                    "gptq": "engine.runtime.gptq"}
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
    stop_loops: bool = False  # end the answer once it loops (``streaming.ends_in_loop``)


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


@dataclass
class RollingRequest:
    """Score every token of ``text`` after its first (lm-eval's ``loglikelihood_rolling``, for perplexity).

    Args:
        text: the text, encoded as the tokenizer does (with its special tokens, if it adds any).
        max_tokens: keep only the text's first tokens; None scores it whole.
        window: the most tokens one forward pass sees; None is the model's context length.
        stride: new tokens scored per window after the first, so each token after the first window
            sees ``window - stride`` tokens or more before it; None is half the window.
    """

    text: str
    max_tokens: int | None = None
    window: int | None = None
    stride: int | None = None


@dataclass
class PairRequest:
    """A preference pair: the chosen and the rejected completion of one prompt, as DPO scores them.

    Each field is a string, or chat messages ({role, content}) rendered with the chat template;
    chat rows and plain rows are split into prompt and completion tokens as TRL's DPOTrainer does.
    ``max_tokens`` cuts prompt + completion to that many tokens (None: the model's context).
    """

    prompt: str | list[dict[str, str]]
    chosen: str | list[dict[str, str]]
    rejected: str | list[dict[str, str]]
    max_tokens: int | None = None


class Runtime(Protocol):
    """What the service and the evaluation code need from a loaded model.

    Each batch method returns one result per request, in order. A backend that cannot compute
    a result (a remote chat server scores no given text) raises an error that says so.
    """

    model_name: str

    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]: ...

    def stream(self, request: GenerationRequest) -> Iterator[str]:
        """Yield one request's answer piece by piece while it generates."""
        ...

    def loglikelihood(self, requests: list[LoglikelihoodRequest]) -> list[tuple[float, bool]]:
        """Return (sum of continuation log-probs, whether it is the greedy continuation)."""
        ...

    def loglikelihood_rolling(self, requests: list[RollingRequest]) -> list[tuple[float, int]]:
        """Return (sum of the text's token log-probs, how many tokens were scored) per text."""
        ...

    def pair_logprobs(self, requests: list[PairRequest]) -> list[tuple[float, float]]:
        """Return (chosen, rejected) summed completion log-probs given the prompt, per pair."""
        ...

    def format_chat(self, messages: list[dict[str, str]]) -> str:
        """Render messages with the model's chat template, ready for generation."""
        ...
