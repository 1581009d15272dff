"""Rolling log-likelihood: every token of a text scored under the model, for perplexity.

As lm-eval's ``loglikelihood_rolling``, a text longer than the model's context is scored in
windows; as in transformers' perplexity guide, windows overlap so that each token after the first
window still sees ``window - stride`` tokens or more before it. A text's first token has nothing
before it and is not scored. Each window is one forward pass of one sequence, without padding.
"""

from __future__ import annotations

from typing import Any

from engine.runtime.base import RollingRequest


class RollingWindowError(ValueError):
    """A rolling request whose window or stride cannot score every token."""


def token_windows(length: int, window: int, stride: int) -> list[tuple[int, int, int]]:
    """(first input token, end, first scored token) of each window over ``length`` tokens.

    The first window is the text's first ``window`` tokens; each later one ends ``stride`` tokens
    further and scores those. Every token but the first is scored exactly once.

    >>> token_windows(10, window=4, stride=2)
    [(0, 4, 1), (2, 6, 4), (4, 8, 6), (6, 10, 8)]
    """
    if window < 2 or not 1 <= stride < window:
        raise RollingWindowError(
            f"A rolling window of {window} tokens with stride {stride} cannot score every token: use a "
            "window of 2 tokens or more and a stride from 1 to the window minus 1."
        )
    spans, scored, end = [], 1, min(window, length)
    while scored < length:
        spans.append((max(0, end - window), end, scored))
        scored, end = end, min(end + stride, length)
    return spans


def rolling_loglikelihoods(model: Any, tokenizer: Any, device: Any, requests: list[RollingRequest],
                           context_length: int) -> list[tuple[float, int]]:
    """(summed log-probability, scored tokens) of each request's text under ``model``, in order."""
    results = []
    for request in requests:
        ids = tokenizer(request.text)["input_ids"][: request.max_tokens]
        window = request.window or context_length
        stride = request.stride or max(1, window // 2)
        total = 0.0
        for start, end, scored in token_windows(len(ids), window, stride):
            total += _window_logprob(model, device, ids[start:end], scored - start)
        results.append((total, max(0, len(ids) - 1)))
    return results


def _window_logprob(model: Any, device: Any, ids: list[int], first_scored: int) -> float:
    """Summed log-probability of ``ids[first_scored:]``, each given the tokens before it in ``ids``."""
    import torch

    inputs = torch.tensor([ids], dtype=torch.long, device=device)
    with torch.inference_mode():
        logits = model(input_ids=inputs).logits.float()
    log_probs = torch.log_softmax(logits[0, :-1], dim=-1)
    chosen = log_probs.gather(-1, inputs[0, 1:, None])
    return float(chosen[first_scored - 1 :].sum())
