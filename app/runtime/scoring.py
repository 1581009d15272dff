"""Score continuations exactly as lm-evaluation-harness does, computing each shared context once.

lm-eval (``HFLM._encode_pair`` / ``_loglikelihood_tokens``) defines a request's score as the sum
of the log-probabilities of the continuation's tokens after the context, plus whether each of those
tokens is the argmax (``is_greedy``). Trailing spaces of the context move to the continuation;
the continuation's tokens are the tail of the whole string's encoding past the context's tokens.

lm-eval runs every (context + continuation) through the model. Here the options of one question
share their context: the context runs once, and the options' remaining tokens run after it on its
KV cache, packed end to end in one sequence whose attention mask keeps them apart. The
full-vocabulary head is applied only where a log-probability is read. ``reference_scores`` keeps
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

# Tokens of (padded) context per forward pass, and of (context + option) rows per option pass.
# Measured on a 2-core CPU: passes of about a thousand tokens beat smaller and larger ones.
DEFAULT_CONTEXT_TOKENS = 1024
DEFAULT_OPTION_TOKENS = 1024
# An options pass may hold this many padded tokens per real one (more passes, less padding).
PADDING_SLACK = 1.25


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


def plan_batches(groups: list[ContextGroup], context_tokens: int = DEFAULT_CONTEXT_TOKENS,
                 ) -> list[list[ContextGroup]]:
    """Batches of groups sorted by context length (little padding), each within ``context_tokens``."""
    batches: list[list[ContextGroup]] = []
    current: list[ContextGroup] = []
    for group in sorted(groups, key=lambda g: -len(g.context)):
        # Longest first, so the first group of a batch sets its padded width.
        if current and len(current[0].context) * (len(current) + 1) > context_tokens:
            batches.append(current)
            current = []
        current.append(group)
    if current:
        batches.append(current)
    return batches


def score_continuations(runtime: Any, requests: Sequence[LoglikelihoodRequest], *,
                        context_tokens: int = DEFAULT_CONTEXT_TOKENS,
                        option_tokens: int = DEFAULT_OPTION_TOKENS) -> list[tuple[float, bool]]:
    """(sum of continuation log-probs, is_greedy) per request, in order, as lm-eval computes them.

    Args:
        runtime: an ``HFRuntime`` (uses its ``model``, ``tokenizer``, ``device`` and ``max_length``).
        requests: (context, continuation) pairs; options of one question share the context.
        context_tokens: padded context tokens per forward pass.
        option_tokens: padded continuation tokens per options pass. A question's options run
            as one packed sequence (a mask keeps them apart); packs are sorted by length so that
            their padding stays small.
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
    for batch in plan_batches(groups, context_tokens):
        for local_index, score in _score_batch(runtime, batch, option_tokens):
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


def _head_log_probs(runtime: Any, hidden: torch.Tensor) -> torch.Tensor:
    """Full-vocabulary log-probabilities for the given hidden states only."""
    import torch

    logits = runtime.model.get_output_embeddings()(hidden).float()
    softcap = getattr(runtime.model.config, "final_logit_softcapping", None)
    if softcap:
        logits = torch.tanh(logits / softcap) * softcap
    return torch.log_softmax(logits, dim=-1)


def _pad(rows: list[tuple[int, ...]], pad_id: int, device: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids and their attention mask: right padding keeps every real query unmasked."""
    import torch

    width = max(len(row) for row in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, : len(row)] = 1
    return ids.to(device), mask.to(device)


def _score_batch(runtime: Any, batch: list[ContextGroup],
                 option_tokens: int = DEFAULT_OPTION_TOKENS) -> list[tuple[int, tuple[float, bool]]]:
    """Run the contexts once, then every question's option tails on its context's KV cache."""
    import torch

    decoder = runtime.model.get_decoder()
    pad_id = runtime.tokenizer.pad_token_id or 0
    with torch.inference_mode():
        ids, mask = _pad([g.context for g in batch], pad_id, runtime.device)
        positions = torch.arange(ids.shape[1], device=runtime.device).expand_as(ids)
        out = decoder(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True)
        lengths = mask.sum(dim=1)
        last_hidden = out.last_hidden_state[torch.arange(len(batch)), lengths - 1]
        first_log_probs = _head_log_probs(runtime, last_hidden)  # [groups, vocab]
        rows = [OptionRow(g_index, index, cont)
                for g_index, g in enumerate(batch) for index, cont in g.members]
        context = ContextState(decoder, out.past_key_values, mask, lengths, pad_id)
        tails: dict[int, tuple[torch.Tensor, bool]] = {}
        for chunk in _pack_chunks(rows, len(batch), option_tokens):
            tails.update(_score_option_tails(runtime, context, rows, chunk))
    results = []
    for row_index, row in enumerate(rows):
        tail_sum, tail_greedy = tails.get(row_index, (0.0, True))
        first = first_log_probs[row.group]
        greedy = bool(first.argmax() == row.continuation[0]) and tail_greedy
        results.append((row.index, (float(first[row.continuation[0]] + tail_sum), greedy)))
    return results


@dataclass(frozen=True)
class OptionRow:
    """One continuation to score: its context group in the batch and its request index."""

    group: int
    index: int
    continuation: tuple[int, ...]


@dataclass(frozen=True)
class ContextState:
    """The batch's contexts after their forward pass: what the options continue from."""

    decoder: Any
    cache: Any
    mask: torch.Tensor
    lengths: torch.Tensor
    pad_id: int


def _pack_chunks(rows: list[OptionRow], groups: int, option_tokens: int) -> list[list[list[int]]]:
    """Each group's multi-token options packed end to end, packs sorted by length and chunked so that
    a pass holds at most ``option_tokens`` padded tokens, of which at most a fifth are padding."""
    packs: list[list[int]] = [[] for _ in range(groups)]
    for i, row in enumerate(rows):
        if len(row.continuation) > 1:  # a one-token option's log-prob comes from its context's pass
            packs[row.group].append(i)

    def width(pack: list[int]) -> int:
        return sum(len(rows[i].continuation) - 1 for i in pack)

    chunks: list[list[list[int]]] = []
    real = 0
    for pack in sorted((p for p in packs if p), key=width):
        padded = (len(chunks[-1]) + 1) * width(pack) if chunks else 0  # the widest so far: sorted
        if chunks and padded <= option_tokens and padded <= PADDING_SLACK * (real + width(pack)):
            chunks[-1].append(pack)
            real += width(pack)
        else:
            chunks.append([pack])
            real = width(pack)
    return chunks


def _packed_inputs(rows: list[OptionRow], chunk: list[list[int]], pad_id: int):
    """Token ids, option segment (-1 on padding) and offset within the option, per packed position."""
    import torch

    width = max(sum(len(rows[i].continuation) - 1 for i in pack) for pack in chunk)
    ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
    segment = torch.full((len(chunk), width), -1, dtype=torch.long)
    offset = torch.zeros((len(chunk), width), dtype=torch.long)
    for r, pack in enumerate(chunk):
        start = 0
        for s, i in enumerate(pack):
            tail = rows[i].continuation[:-1]
            end = start + len(tail)
            ids[r, start:end] = torch.tensor(tail, dtype=torch.long)
            segment[r, start:end] = s
            offset[r, start:end] = torch.arange(len(tail))
            start = end
    return ids, segment, offset


def _packed_mask(context_mask: torch.Tensor, segment: torch.Tensor) -> torch.Tensor:
    """[rows, 1, tail, context + tail] booleans: each option sees the real context tokens and its own
    earlier tokens, never another option's; padding sees only the context, so no row is empty."""
    import torch

    real = segment >= 0
    same = (segment[:, :, None] == segment[:, None, :]) & real[:, :, None] & real[:, None, :]
    causal = torch.ones(segment.shape[1], segment.shape[1], dtype=torch.bool, device=segment.device).tril()
    context_part = context_mask.bool()[:, None, :].expand(-1, segment.shape[1], -1)
    return torch.cat([context_part, same & causal], dim=2)[:, None]


def _score_option_tails(runtime: Any, context: ContextState, rows: list[OptionRow],
                        chunk: list[list[int]]) -> dict[int, tuple[torch.Tensor, bool]]:
    """Log-prob sums and greedy flags of the chunk's continuation tokens after their first."""
    import torch
    from transformers import DynamicCache

    device = runtime.device
    groups = torch.tensor([rows[pack[0]].group for pack in chunk], device=device)
    copies = [(keys[groups], values[groups]) for keys, values, *_ in context.cache]
    ids, segment, offset = (t.to(device) for t in _packed_inputs(rows, chunk, context.pad_id))
    out = context.decoder(input_ids=ids, attention_mask=_packed_mask(context.mask[groups], segment),
                          position_ids=context.lengths[groups][:, None] + offset,
                          past_key_values=DynamicCache(ddp_cache_data=copies), use_cache=True)
    # [tokens, vocab] row by row, option by option: the order of the targets below.
    log_probs = _head_log_probs(runtime, out.last_hidden_state[segment >= 0])
    order = [i for pack in chunk for i in pack]
    targets = torch.tensor([t for i in order for t in rows[i].continuation[1:]], device=device)
    chosen = log_probs.gather(1, targets[:, None]).squeeze(1)
    hits = log_probs.argmax(dim=-1) == targets
    tails, start = {}, 0
    for i in order:
        count = len(rows[i].continuation) - 1
        tails[i] = (chosen[start : start + count].sum(), bool(hits[start : start + count].all()))
        start += count
    return tails
