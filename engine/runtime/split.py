"""Generation on one runtime, log-likelihood scoring on another.

A chat server (``TUTOR_GENERATION_URL``: llama.cpp's server, vLLM) generates faster than the
in-process model on a small CPU, but returns no log-probabilities of given text; MCQ scoring by
option likelihood and perplexity then run on the in-process model beside it.
"""

from __future__ import annotations

from collections.abc import Iterator

from engine.runtime.base import (
    GenerationRequest,
    GenerationResult,
    LoglikelihoodRequest,
    PairRequest,
    RollingRequest,
    Runtime,
)


class SplitRuntime:
    """``generator`` answers generation requests, ``scorer`` every scoring request.

    Args:
        generator: the runtime that writes answers (its name is the runtime's name).
        scorer: the runtime that scores given text.
    """

    def __init__(self, generator: Runtime, scorer: Runtime):
        self.generator = generator
        self.scorer = scorer
        self.model_name = generator.model_name

    def format_chat(self, messages: list[dict[str, str]]) -> str:
        return self.generator.format_chat(messages)

    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        return self.generator.generate(requests)

    def stream(self, request: GenerationRequest) -> Iterator[str]:
        return self.generator.stream(request)

    def loglikelihood(self, requests: list[LoglikelihoodRequest]) -> list[tuple[float, bool]]:
        return self.scorer.loglikelihood(requests)

    def loglikelihood_rolling(self, requests: list[RollingRequest]) -> list[tuple[float, int]]:
        return self.scorer.loglikelihood_rolling(requests)

    def pair_logprobs(self, requests: list[PairRequest]) -> list[tuple[float, float]]:
        return self.scorer.pair_logprobs(requests)

    def close(self) -> None:
        for runtime in (self.generator, self.scorer):
            if close := getattr(runtime, "close", None):
                close()
