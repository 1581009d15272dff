"""Score continuations exactly as lm-evaluation-harness does, computing each shared context once.

lm-eval (``HFLM._encode_pair`` / ``_loglikelihood_tokens``) defines a request's score as the sum
of the log-probabilities of the continuation's tokens after the context, plus whether each of those
tokens is the argmax (``is_greedy``). Trailing spaces of the context move to the continuation;
the continuation's tokens are the tail of the whole string's encoding past the context's tokens.

lm-eval runs every (context + continuation) through the model. Here the options of one question
share their context: the question is packed as the context once and then every option's tokens end
to end, with an attention mask that lets each option see the context and itself only, and positions
that restart after the context for each option. The context's keys and values are thus computed
once and reused by every option. Several questions share a row, each seeing only itself, so that
unlike lengths are not padded to the longest. The full-vocabulary head is applied only where a
log-probability is read. ``reference_scores`` keeps lm-eval's plain full-sequence computation for
comparison.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.runtime.base import LoglikelihoodRequest

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

# Padded tokens per forward pass. Measured on a 2-core CPU: about a thousand beats smaller and larger.
DEFAULT_PASS_TOKENS = 1024
# Tokens per packed row, which holds several questions end to end. Attention over a row costs its
# width squared, a few percent of a pass at 256; padding every question to the longest one costs
# more (8 unlike short questions, as a server batches them: 42% of the pass was padding).
ROW_TOKENS = 256


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


def plan_rows(groups: list[ContextGroup], row_tokens: int = ROW_TOKENS) -> list[list[ContextGroup]]:
    """Groups packed end to end into rows, first fit decreasing: a row holds ``row_tokens``, or its
    first (longest) group when that is longer, so one long question does not widen every row."""
    rows: list[list[ContextGroup]] = []
    free: list[int] = []
    for group in sorted(groups, key=lambda g: -g.packed_length):
        row = next((i for i, room in enumerate(free) if group.packed_length <= room), None)
        if row is None:
            rows.append([])
            free.append(max(row_tokens, group.packed_length))
            row = len(rows) - 1
        rows[row].append(group)
        free[row] -= group.packed_length
    return rows


def row_length(row: list[ContextGroup]) -> int:
    return sum(group.packed_length for group in row)


def plan_batches(groups: list[ContextGroup], pass_tokens: int = DEFAULT_PASS_TOKENS,
                 row_tokens: int = ROW_TOKENS) -> list[list[list[ContextGroup]]]:
    """Passes of packed rows, each within ``pass_tokens`` once padded to its longest row."""
    rows = sorted(plan_rows(groups, min(row_tokens, pass_tokens)), key=lambda r: -row_length(r))
    batches: list[list[list[ContextGroup]]] = []
    for row in rows:  # longest first, so the first row of a pass sets its padded width
        if batches and row_length(batches[-1][0]) * (len(batches[-1]) + 1) <= pass_tokens:
            batches[-1].append(row)
        else:
            batches.append([row])
    return batches


def score_continuations(runtime: Any, requests: Sequence[LoglikelihoodRequest], *,
                        pass_tokens: int = DEFAULT_PASS_TOKENS,
                        row_tokens: int = ROW_TOKENS) -> list[tuple[float, bool]]:
    """(sum of continuation log-probs, is_greedy) per request, in order, as lm-eval computes them.

    Args:
        runtime: an ``HFRuntime`` (uses its ``model``, ``tokenizer``, ``device`` and ``max_length``).
        requests: (context, continuation) pairs; options of one question share the context.
        pass_tokens: padded tokens per forward pass. Questions (each its context, then its options
            end to end) are packed into rows of ``row_tokens``, so that padding stays small.
        row_tokens: tokens per packed row (a longer question gets a row of its own length).
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
    for batch in plan_batches(groups, pass_tokens, row_tokens):
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


def _row_layout(row: list[ContextGroup]) -> Iterator[tuple[int, ContextGroup]]:
    """Each group of a packed row with the offset where its context starts."""
    start = 0
    for group in row:
        yield start, group
        start += group.packed_length


def _packed_rows(batch: list[list[ContextGroup]], pad_id: int):
    """Token ids, positions, question numbers and parts of the batch's packed rows, right-padded.

    A row holds questions end to end; each is its context (part 0) then each option's tokens but
    its last (parts 1, 2, ...), numbered in the row from 0. Padding is question -1, part -1.
    Every option's positions restart right after its context; every context's restart at 0.
    """
    import torch

    width = max(row_length(row) for row in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    positions = torch.zeros((len(batch), width), dtype=torch.long)
    questions = torch.full((len(batch), width), -1, dtype=torch.long)
    parts = torch.full((len(batch), width), -1, dtype=torch.long)
    for row, groups in enumerate(batch):
        for question, (start, group) in enumerate(_row_layout(groups)):
            context = len(group.context)
            questions[row, start : start + group.packed_length] = question
            ids[row, start : start + context] = torch.tensor(group.context, dtype=torch.long)
            positions[row, start : start + context] = torch.arange(context)
            parts[row, start : start + context] = 0
            start += context
            for part, (_, continuation) in enumerate(group.members, start=1):
                tail = continuation[:-1]
                end = start + len(tail)
                ids[row, start:end] = torch.tensor(tail, dtype=torch.long)
                positions[row, start:end] = torch.arange(context, context + len(tail))
                parts[row, start:end] = part
                start = end
    return ids, positions, questions, parts


def attention_mask_for(model: Any, visible: torch.Tensor) -> torch.Tensor:
    """A boolean [rows, 1, queries, keys] mask as ``model``'s attention takes a 4D mask.

    SDPA (and the tutor's CPU variant of it, ``decoding.CPU_ATTENTION``) reads booleans as "may attend".
    Eager attention adds the mask to the scores, so a boolean mask would mask nothing: it gets 0 where a
    token may attend and the dtype's minimum elsewhere. Other kernels (flash attention) take no 4D mask,
    so packed rows cannot run on them.
    """
    import torch

    from engine.runtime.decoding import CPU_ATTENTION

    implementation = getattr(model.config, "_attn_implementation", None) or "eager"
    if implementation in ("sdpa", CPU_ATTENTION):
        return visible
    if implementation == "eager":
        scores = torch.zeros(visible.shape, dtype=model.dtype, device=visible.device)
        return scores.masked_fill(~visible, torch.finfo(model.dtype).min)
    raise ValueError(f"The model's attention implementation {implementation!r} takes no 4D attention mask, "
                     "which packed rows need; load it with attn_implementation 'sdpa' or 'eager'.")


def packed_mask(questions: torch.Tensor, parts: torch.Tensor) -> torch.Tensor:
    """[rows, 1, width, width] booleans for rows that pack several sequences sharing a prefix.

    Causal, within one question only (-1: padding), and a part sees part 0 (the shared context) and
    itself, never another part: an option its question's context, a preference pair's answer its
    prompt (training.shared_prompt). Padding sees padding, so no query row is empty.
    """
    import torch

    width = parts.shape[1]
    causal = torch.ones(width, width, dtype=torch.bool, device=parts.device).tril()
    same_question = questions[:, :, None] == questions[:, None, :]
    query, key = parts[:, :, None], parts[:, None, :]
    visible = same_question & ((key == 0) | (key == query))
    return (visible & causal)[:, None]


def _score_batch(runtime: Any, batch: list[list[ContextGroup]]) -> list[tuple[int, tuple[float, bool]]]:
    """One forward pass over the batch's packed rows; the head runs only where a token is scored.

    The context's keys and values are computed once and every option of its question attends to
    them: the reuse of a KV cache, without copying one.
    """
    import torch

    device = runtime.device
    pad_id = runtime.tokenizer.pad_token_id or 0
    ids, positions, questions, parts = (t.to(device) for t in _packed_rows(batch, pad_id))
    # Hidden state rows that predict each option's tokens: the context's last, then the option's own.
    reads, targets, spans = [], [], []
    for row, groups in enumerate(batch):
        for offset, group in _row_layout(groups):
            last_context = row * ids.shape[1] + offset + len(group.context) - 1
            start = last_context + 1
            for index, continuation in group.members:
                spans.append((index, len(reads), len(continuation)))
                reads.extend([last_context, *range(start, start + len(continuation) - 1)])
                targets.extend(continuation)
                start += len(continuation) - 1
    with torch.inference_mode():
        mask = attention_mask_for(runtime.model, packed_mask(questions, parts))
        out = runtime.model.get_decoder()(input_ids=ids, attention_mask=mask,
                                          position_ids=positions, use_cache=False)
        hidden = out.last_hidden_state.reshape(-1, out.last_hidden_state.shape[-1])
        chosen, hits = _head_scores(runtime, hidden, torch.tensor(reads, device=device),
                                    torch.tensor(targets, device=device))
    return [(index, (float(chosen[start : start + count].sum()), bool(hits[start : start + count].all())))
            for index, start, count in spans]
