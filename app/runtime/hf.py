"""The in-process transformers backend: an HF folder or a GGUF file, on CPU or GPU."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from app.runtime.base import (
    GenerationRequest,
    GenerationResult,
    LoglikelihoodRequest,
    register_backend,
)
from app.runtime.models import resolve_llm_folder

logger = logging.getLogger(__name__)


@register_backend("hf")
class HFRuntime:
    """A causal LM loaded once with transformers.

    Args:
        model: an HF model folder, a ``.gguf`` file, or None for the packaged SmolLM2.
        data_dir: where a GGUF file's converted folder is cached.
        device: "cpu", "cuda", or "auto" (GPU when there is one).
        dtype: "float32", "bfloat16" or "float16"; float32 is the safe CPU default.
        batch_size: the most sequences run through the model at once.
    """

    def __init__(
        self,
        model: str | Path | None,
        *,
        data_dir: str | Path,
        device: str = "auto",
        dtype: str = "float32",
        batch_size: int = 16,
    ):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        started = time.perf_counter()
        self.folder = resolve_llm_folder(model, data_dir)
        self.model_name = self.folder.name
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(self.folder)
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(self.folder, dtype=getattr(torch, dtype))
        self.model.to(self.device).eval()
        self.batch_size = batch_size
        # One forward pass at a time: the model is shared by the server's worker threads.
        self.lock = threading.Lock()
        self.load_seconds = time.perf_counter() - started
        logger.info("Loaded %s on %s in %.1f s.", self.folder, self.device, self.load_seconds)

    @property
    def max_length(self) -> int:
        return int(getattr(self.model.config, "max_position_embeddings", 2048))

    def format_chat(self, messages: list[dict[str, str]]) -> str:
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        # Requests that share a temperature can share a batch; results keep request order.
        results: list[GenerationResult | None] = [None] * len(requests)
        for temperature in {r.temperature for r in requests}:
            indices = [i for i, r in enumerate(requests) if r.temperature == temperature]
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start : start + self.batch_size]
                for i, result in zip(chunk, self._generate_batch([requests[i] for i in chunk]), strict=True):
                    results[i] = result
        return results

    def _generate_batch(self, batch: list[GenerationRequest]) -> list[GenerationResult]:
        import torch

        prompts = [self.format_chat(r.messages) for r in batch]
        self.tokenizer.padding_side = "left"
        encoded = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        encoded = encoded.to(self.device)
        temperature = batch[0].temperature  # generate() groups requests by temperature
        options = {"do_sample": temperature > 0, "max_new_tokens": max(r.max_new_tokens for r in batch)}
        if temperature > 0:
            options["temperature"] = temperature
        stops = sorted({s for r in batch for s in r.stop})
        if stops:
            options.update(stop_strings=stops, tokenizer=self.tokenizer)
        with self.lock, torch.inference_mode():
            output = self.model.generate(**encoded, pad_token_id=self.tokenizer.pad_token_id, **options)
        new_tokens = output[:, encoded["input_ids"].shape[1] :]
        return [
            self._result(request, row, int(mask.sum()))
            for request, row, mask in zip(batch, new_tokens, encoded["attention_mask"], strict=True)
        ]

    def _result(self, request: GenerationRequest, row, prompt_tokens: int) -> GenerationResult:
        ids = row.tolist()
        special = set(self.tokenizer.all_special_ids)
        ended = any(i in special for i in ids)
        while ids and ids[-1] in special:  # drop eos/padding after the answer
            ids.pop()
        ids = ids[: request.max_new_tokens]
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        for stop in request.stop:
            if stop in text:
                text, ended = text[: text.index(stop)], True
        finish = "stop" if ended or len(ids) < request.max_new_tokens else "length"
        return GenerationResult(text=text.strip(), prompt_tokens=prompt_tokens, completion_tokens=len(ids),
                                finish_reason=finish)

    def loglikelihood(self, requests: list[LoglikelihoodRequest]) -> list[tuple[float, bool]]:
        from app.runtime.scoring import score_continuations

        with self.lock:
            return score_continuations(self, requests)
