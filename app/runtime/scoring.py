"""Score continuations exactly as lm-evaluation-harness does, computing each shared context once.

lm-eval (``HFLM._encode_pair`` / ``_loglikelihood_tokens``) defines a request's score as the sum
of the log-probabilities of the continuation's tokens after the context, plus whether each of those
tokens is the argmax (``is_greedy``). Trailing spaces of the context move to the continuation;
the continuation's tokens are the tail of the whole string's encoding past the context's tokens.

lm-eval runs every (context + continuation) through the model. Here the options of one question
share their context: one packed row holds the context once and then every option's tokens end to
end, with an attention mask that lets each option see the context and itself only, and positions
that restart after the context for each option. The context's keys and values are thus computed
once and reused by every option. The full-vocabulary head is applied only where a log-probability
is read. ``reference_scores`` keeps
lm-eval's plain full-sequence computation for comparison.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from app.runtime.base import LoglikelihoodRequest

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

# Padded tokens per forward pass. Measured on a 2-core CPU: about a thousand beats smaller and larger.
DEFAULT_PASS_TOKENS = 1024


class ScoringError(ValueError):
    """A log-likelihood request that cannot be scored (an empty continuation or context)."""


@dataclass(frozen=True)
class EncodedRequest:
    """A request as token ids: what lm-eval's ``_encode_pair`` returns."""

    context: tuple[int, ...]
    continuation: tuple[int, ...]


@dataclass
class ContextGroup:
    """One distinct context and the requests (by index) whose continuations follow it."""

    context: tuple[int, ...]
    members: list[tuple[int, tuple[int, ...]]] = field(default_factory=list)

    @property
    def packed_length(self) -> int:
        """Tokens of the context and of every option but its last token: the group's packed row."""
        return len(self.context) + sum(len(continuation) - 1 for _, continuation in self.members)


def _prefix_token_id(tokenizer: Any) -> int:
    # lm-eval's HFLM.prefix_token_id: BOS, else EOS, stands in for an empty context.
    return tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id


def _encode_many(tokenizer: Any, texts: list[str]) -> list[list[int]]:
    """lm-eval's ``tok_encode`` for many strings: default special tokens unless BOS is already there."""
    bos = tokenizer.bos_token
    if not texts:
        return []
    if bos and any(text.startswith(bos) for text in texts):
        return [tokenizer.encode(t, add_special_tokens=not t.startswith(bos)) for t in texts]
    return tokenizer(texts)["input_ids"]


def _split_spaces(context: str, continuation: str) -> tuple[str, str]:
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        return context[:-n_spaces], context[-n_spaces:] + continuation
    return context, continuation


def encode_requests(tokenizer: Any, requests: Sequence[LoglikelihoodRequest]) -> list[EncodedRequest]:
    """Token ids of each request, exactly as lm-eval's ``loglikelihood`` + ``_encode_pair`` make them."""
    if any(not request.continuation for request in requests):
        raise ScoringError("A log-likelihood request has an empty continuation: give each option some text.")
    empty = [i for i, r in enumerate(requests) if r.context == ""]
    split = [_split_spaces(r.context, r.continuation) for r in requests]
    if any(r.context != "" and not context for r, (context, _) in zip(requests, split, strict=True)):
        raise ScoringError("A log-likelihood request has a context made only of spaces: give a real context.")
    filled = [i for i, r in enumerate(requests) if r.context != ""]
    contexts = _encode_many(tokenizer, [split[i][0] for i in filled])
    wholes = _encode_many(tokenizer, [split[i][0] + split[i][1] for i in filled])
    encoded: list[EncodedRequest | None] = [None] * len(requests)
    for i, context, whole in zip(filled, contexts, wholes, strict=True):
        encoded[i] = EncodedRequest(tuple(context), tuple(whole[len(context) :]))
    prefix = _prefix_token_id(tokenizer)
    alone = _encode_without_specials(tokenizer, [requests[i].continuation for i in empty])
    for i, tokens in zip(empty, alone, strict=True):
        # An empty context is conditioned on BOS/EOS, unless the continuation already starts with it.
        encoded[i] = (EncodedRequest((prefix,), tuple(tokens)) if tokens[0] != prefix
                      else EncodedRequest(tuple(tokens[:1]), tuple(tokens[1:])))
    for request, item in zip(requests, encoded, strict=True):
        if not item.continuation:
            raise ScoringError(f"The continuation {request.continuation!r} encodes to no token after its "
                               "context; give it text that is not only what the context already ends with.")
    return encoded


def _encode_without_specials(tokenizer: Any, texts: list[str]) -> list[list[int]]:
    return tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []


def group_by_context(encoded: Sequence[EncodedRequest]) -> list[ContextGroup]:
    """Requests that share a context's tokens, in first-seen order."""
    groups: dict[tuple[int, ...], ContextGroup] = {}
    for index, request in enumerate(encoded):
        group = groups.setdefault(request.context, ContextGroup(request.context))
        group.members.append((index, request.continuation))
    return list(groups.values())


def plan_batches(groups: list[ContextGroup], pass_tokens: int = DEFAULT_PASS_TOKENS,
                 ) -> list[list[ContextGroup]]:
    """Batches of groups sorted by packed length (little padding), each within ``pass_tokens``."""
    batches: list[list[ContextGroup]] = []
    current: list[ContextGroup] = []
    for group in sorted(groups, key=lambda g: -g.packed_length):
        # Longest first, so the first group of a batch sets its padded width.
        if current and current[0].packed_length * (len(current) + 1) > pass_tokens:
            batches.append(current)
            current = []
        current.append(group)
    if current:
        batches.append(current)
    return batches


def score_continuations(runtime: Any, requests: Sequence[LoglikelihoodRequest], *,
                        pass_tokens: int = DEFAULT_PASS_TOKENS) -> list[tuple[float, bool]]:
    """(sum of continuation log-probs, is_greedy) per request, in order, as lm-eval computes them.

    Args:
        runtime: an ``HFRuntime`` (uses its ``model``, ``tokenizer``, ``device`` and ``max_length``).
        requests: (context, continuation) pairs; options of one question share the context.
        pass_tokens: padded tokens per forward pass. Each question is one packed row (its context,
            then its options end to end); rows are sorted by length so that padding stays small.
    """
    encoded = encode_requests(runtime.tokenizer, requests)
    results: list[tuple[float, bool] | None] = [None] * len(requests)
    fitting, too_long = [], []
    for index, item in enumerate(encoded):
        # lm-eval truncates over-long inputs from the left; the reference path does exactly that.
        fits = len(item.context) + len(item.continuation) <= runtime.max_length
        (fitting if fits else too_long).append(index)
    long_scores = _reference_encoded(runtime, [encoded[i] for i in too_long])
    for index, score in zip(too_long, long_scores, strict=True):
        results[index] = score
    groups = group_by_context([encoded[i] for i in fitting])
    for batch in plan_batches(groups, pass_tokens):
        for local_index, score in _score_batch(runtime, batch):
            results[fitting[local_index]] = score
    return results


def reference_scores(runtime: Any, requests: Sequence[LoglikelihoodRequest]) -> list[tuple[float, bool]]:
    """lm-eval's computation, one full sequence per request: the slow path tests compare against."""
    return _reference_encoded(runtime, encode_requests(runtime.tokenizer, requests))


def _reference_encoded(runtime: Any, encoded: Sequence[EncodedRequest]) -> list[tuple[float, bool]]:
    import torch

    results = []
    with torch.inference_mode():
        for item in encoded:
            tokens = (item.context + item.continuation)[-(runtime.max_length + 1) :][:-1]
            inputs = torch.tensor([tokens], dtype=torch.long, device=runtime.device)
            logits = runtime.model(input_ids=inputs).logits[0, -len(item.continuation) :]
            log_probs = torch.log_softmax(logits.float(), dim=-1)
            target = torch.tensor(item.continuation, dtype=torch.long, device=runtime.device)
            chosen = log_probs.gather(1, target[:, None]).squeeze(1)
            results.append((float(chosen.sum()), bool((log_probs.argmax(dim=-1) == target).all())))
    return results


def _head_scores(runtime: Any, hidden: torch.Tensor, rows: torch.Tensor,
                 targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probability of ``targets[i]`` after hidden state ``rows[i]``, and whether it is the argmax.

    The full-vocabulary head runs once per distinct row (a question's last context token predicts
    the first token of every option) and no full log-softmax is materialised.
    """
    import torch

    distinct, inverse = torch.unique(rows, return_inverse=True)
    logits = runtime.model.get_output_embeddings()(hidden[distinct]).float()
    softcap = getattr(runtime.model.config, "final_logit_softcapping", None)
    if softcap:
        logits = torch.tanh(logits / softcap) * softcap
    best = logits.max(dim=-1)
    log_norm = best.values + (logits - best.values[:, None]).exp_().sum(dim=-1).log()
    target_logits = logits[inverse, targets]
    return target_logits - log_norm[inverse], best.indices[inverse] == targets


def _packed_rows(batch: list[ContextGroup], pad_id: int):
    """Token ids, positions and segments of the batch's packed rows, right-padded.

    A row is the context (segment 0) then each option's tokens but its last (segments 1, 2, ...);
    padding is segment -1. Every option's positions restart right after the context.
    """
    import torch

    width = batch[0].packed_length
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    positions = torch.zeros((len(batch), width), dtype=torch.long)
    segments = torch.full((len(batch), width), -1, dtype=torch.long)
    for row, group in enumerate(batch):
        context = len(group.context)
        ids[row, :context] = torch.tensor(group.context, dtype=torch.long)
        positions[row, :context] = torch.arange(context)
        segments[row, :context] = 0
        start = context
        for segment, (_, continuation) in enumerate(group.members, start=1):
            tail = continuation[:-1]
            end = start + len(tail)
            ids[row, start:end] = torch.tensor(tail, dtype=torch.long)
            positions[row, start:end] = torch.arange(context, context + len(tail))
            segments[row, start:end] = segment
            start = end
    return ids, positions, segments


def _packed_mask(segments: torch.Tensor) -> torch.Tensor:
    """[rows, 1, width, width] booleans: causal, and an option sees the context and its own tokens,
    never another option's. Padding sees the context, so no query row is empty."""
    import torch

    width = segments.shape[1]
    causal = torch.ones(width, width, dtype=torch.bool, device=segments.device).tril()
    query, key = segments[:, :, None], segments[:, None, :]
    visible = (key == 0) | ((key == query) & (key > 0))
    return (visible & causal)[:, None]


def _score_batch(runtime: Any, batch: list[ContextGroup]) -> list[tuple[int, tuple[float, bool]]]:
    """One forward pass over the batch's packed rows; the head runs only where a token is scored.

    The context's keys and values are computed once and every option of its question attends to
    them: the reuse of a KV cache, without copying one.
    """
    import torch

    device = runtime.device
    pad_id = runtime.tokenizer.pad_token_id or 0
    ids, positions, segments = (t.to(device) for t in _packed_rows(batch, pad_id))
    # Hidden state rows that predict each option's tokens: the context's last, then the option's own.
    reads, targets, spans = [], [], []
    for row, group in enumerate(batch):
        last_context = row * ids.shape[1] + len(group.context) - 1
        start = last_context + 1
        for index, continuation in group.members:
            spans.append((index, len(reads), len(continuation)))
            reads.extend([last_context, *range(start, start + len(continuation) - 1)])
            targets.extend(continuation)
            start += len(continuation) - 1
    with torch.inference_mode():
        out = runtime.model.get_decoder()(input_ids=ids, attention_mask=_packed_mask(segments),
                                          position_ids=positions, use_cache=False)
        hidden = out.last_hidden_state.reshape(-1, out.last_hidden_state.shape[-1])
        chosen, hits = _head_scores(runtime, hidden, torch.tensor(reads, device=device),
                                    torch.tensor(targets, device=device))
    return [(index, (float(chosen[start : start + count].sum()), bool(hits[start : start + count].all())))
            for index, start, count in spans]
