"""The in-process transformers backend: an HF folder or a GGUF file, on CPU or GPU."""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

from engine.runtime.base import (
    GenerationRequest,
    GenerationResult,
    LoglikelihoodRequest,
    PairRequest,
    RollingRequest,
    register_backend,
)
from engine.runtime.model_files import bitsandbytes_config, load_plain_config, load_tokenizer, resolve_device
from engine.runtime.models import resolve_llm
from engine.runtime.streaming import cut_at_stop, ends_in_loop

if TYPE_CHECKING:
    from engine.runtime.decoding import DecodingThreads

logger = logging.getLogger(__name__)


@register_backend("hf")
class HFRuntime:
    """A causal LM loaded once with transformers.

    Args:
        model: an HF model folder, a ``.gguf`` file, a LoRA adapter folder (loaded on its base model),
            or None for the packaged SmolLM2.
        data_dir: where a GGUF file's converted folder is cached.
        device: "cpu", "cuda", or "auto" (GPU when there is one).
        dtype: "float32", "bfloat16" or "float16"; float32 is the safe CPU default.
        batch_size: the most sequences run through the model at once.
        load_in_bits: 4 or 8 to quantise the weights with bitsandbytes while loading; None keeps them.
        generation_dtype: "bfloat16" to generate with a second copy of the weights in that precision
            (scoring keeps ``dtype``: log-likelihoods stay comparable with lm-eval's float32 ones);
            None generates with the loaded weights.
        packed_decoding: on a CPU, the bfloat16 copy's decoding steps (a few tokens per pass) read packed
            4-bit or int8 weights (``engine.runtime.decoding``); the prompt's pass keeps the bfloat16 ones.
        decode_threads: threads for a decoding step on a CPU (None: as many as for the prompt).
    """

    def __init__(
        self,
        model: str | Path | None,
        *,
        data_dir: str | Path,
        device: str = "auto",
        dtype: str = "float32",
        batch_size: int = 16,
        load_in_bits: int | None = None,
        generation_dtype: str | None = None,
        packed_decoding: bool = False,
        decode_threads: int | None = None,
    ):
        import torch

        started = time.perf_counter()
        self.folder, self.adapter = resolve_llm(model, data_dir)
        self.model_name = (self.adapter or self.folder).name
        self.device = torch.device(resolve_device(device))
        self.tokenizer = load_tokenizer(self._tokenizer_folder())
        self.model = self._load_model(getattr(torch, dtype), load_in_bits)
        if self.adapter is not None:
            self.model = self._with_adapter(self.model)
        self.generation_model = self.model
        if generation_dtype is not None and self.model.dtype != getattr(torch, generation_dtype):
            if load_in_bits is not None:
                raise ValueError("generation_dtype needs plain weights; it cannot copy bitsandbytes ones.")
            # On a CPU with AMX a bf16 copy prefills about 3x and decodes a batch of 8 about 3.5x
            # faster than float32; it costs the weights' memory once more (half of float32's).
            self.generation_model = copy.deepcopy(self.model).to(getattr(torch, generation_dtype))
        self.decoding_threads = self._set_up_decoding(packed_decoding, decode_threads)
        self.batch_size = batch_size
        # One forward pass at a time: the model is shared by the server's worker threads.
        self.lock = threading.Lock()
        self.load_seconds = time.perf_counter() - started
        logger.info("Loaded %s on %s in %.1f s.", self.folder, self.device, self.load_seconds)

    def _set_up_decoding(self, packed_decoding: bool, threads: int | None) -> DecodingThreads | None:
        """On a CPU: attention that groups query heads without torch's slow ``enable_gqa``, packed weights for
        the generation copy's decoding steps, and their own thread count (returned, to restore the prompt's
        after each generation; None when unchanged)."""
        if self.device.type != "cpu":
            return None
        from engine.runtime.decoding import DecodingThreads, pack_for_decoding, use_cpu_attention

        use_cpu_attention(self.generation_model)

        if packed_decoding and self.generation_model is self.model:  # scoring must keep the loaded weights
            logger.info("Decoding on the loaded weights: packing takes a bf16 copy of float32 ones.")
        elif packed_decoding:
            packed = pack_for_decoding(self.generation_model, self.model)
            logger.info("Decoding on packed weights: %d linear layers in 4 bits, %d in 8.",
                        packed[4], packed[8])
        return None if threads is None else DecodingThreads(self.generation_model, threads)

    @contextmanager
    def _generating(self) -> Iterator[None]:
        """The model lock and inference mode around one ``generate`` call, and the prompt's thread count
        back afterwards when decoding steps run on fewer."""
        import torch

        threads = nullcontext() if self.decoding_threads is None else self.decoding_threads.generating()
        with self.lock, torch.inference_mode(), threads:
            yield

    def _tokenizer_folder(self) -> Path:
        """An adapter's own tokenizer when it saved one (training may add tokens), else the base's."""
        if self.adapter is not None and (self.adapter / "tokenizer_config.json").exists():
            return self.adapter
        return self.folder

    def _with_adapter(self, model):
        from peft import PeftModel

        return PeftModel.from_pretrained(model, self.adapter).eval()

    @contextmanager
    def adapter_disabled(self) -> Iterator[None]:
        """Inside the block the runtime answers with the adapter's base model: DPO's reference model,
        without a second copy of the weights. Meant for evaluation, not for a serving runtime."""
        if self.adapter is None:
            raise ValueError(f"{self.model_name} was loaded without an adapter, so there is none to disable; "
                             "load an adapter folder, or score the reference model as a runtime of its own.")
        with self.model.disable_adapter():
            yield

    def _load_model(self, dtype, load_in_bits: int | None):
        """The model in eval mode on ``self.device``; the GPTQ backend loads its own way."""
        from transformers import AutoModelForCausalLM

        if load_in_bits is None:
            return AutoModelForCausalLM.from_pretrained(self.folder, dtype=dtype).to(self.device).eval()
        quantization = bitsandbytes_config(load_in_bits, dtype)
        config = load_plain_config(self.folder)  # a converted GGUF folder's note would refuse bitsandbytes
        return AutoModelForCausalLM.from_pretrained(self.folder, config=config, dtype=dtype,
                                                    device_map=str(self.device),
                                                    quantization_config=quantization).eval()

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
        prompts = [self.format_chat(r.messages) for r in batch]
        self.tokenizer.padding_side = "left"
        encoded = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        encoded = encoded.to(self.device)
        temperature = batch[0].temperature  # generate() groups requests by temperature
        options = {"do_sample": temperature > 0, "max_new_tokens": max(r.max_new_tokens for r in batch)}
        if temperature > 0:
            options["temperature"] = temperature
        if any(r.stop or r.stop_loops for r in batch):
            prompt_length = encoded["input_ids"].shape[1]
            options["stopping_criteria"] = [_StopInAnswer(batch, prompt_length, self.tokenizer)]
        with self._generating():
            output = self.generation_model.generate(**encoded, pad_token_id=self.tokenizer.pad_token_id,
                                                    **options)
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
        ended = ended or (request.stop_loops and ends_in_loop(text))
        finish = "stop" if ended or len(ids) < request.max_new_tokens else "length"
        return GenerationResult(text=text.strip(), prompt_tokens=prompt_tokens, completion_tokens=len(ids),
                                finish_reason=finish)

    def stream(self, request: GenerationRequest) -> Iterator[str]:
        """Yield the answer's text piece by piece while one request generates.

        Generation runs in a thread holding the model lock; closing the iterator early
        (a client that disconnects) stops it at the next token.
        """
        from transformers import TextIteratorStreamer

        prompt = self.format_chat(request.messages)
        encoded = self.tokenizer([prompt], return_tensors="pt", add_special_tokens=False).to(self.device)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        cancelled = threading.Event()
        failures: list[BaseException] = []
        options = {"do_sample": request.temperature > 0, "max_new_tokens": request.max_new_tokens}
        if request.temperature > 0:
            options["temperature"] = request.temperature
        criteria = [_StopWhenSet(cancelled)]
        if request.stop or request.stop_loops:
            criteria.append(_StopInAnswer([request], encoded["input_ids"].shape[1], self.tokenizer))

        def run() -> None:
            try:
                with self._generating():
                    self.generation_model.generate(
                        **encoded, pad_token_id=self.tokenizer.pad_token_id, streamer=streamer,
                        stopping_criteria=criteria, **options,
                    )
            except BaseException as error:  # re-raised in the consuming thread below
                failures.append(error)
                streamer.end()

        worker = threading.Thread(target=run, name="hf-stream", daemon=True)
        worker.start()
        try:
            yield from cut_at_stop(streamer, request.stop)
        finally:
            cancelled.set()
            worker.join()
        if failures:
            raise failures[0]

    def loglikelihood(self, requests: list[LoglikelihoodRequest]) -> list[tuple[float, bool]]:
        from engine.runtime.scoring import score_continuations

        with self.lock:
            return score_continuations(self, requests)

    def loglikelihood_rolling(self, requests: list[RollingRequest]) -> list[tuple[float, int]]:
        from engine.runtime.rolling import rolling_loglikelihoods

        with self.lock:
            return rolling_loglikelihoods(self.model, self.tokenizer, self.device, requests, self.max_length)

    def pair_logprobs(self, requests: list[PairRequest]) -> list[tuple[float, float]]:
        from engine.runtime.pairs import score_pairs

        rows = [{"prompt": r.prompt, "chosen": r.chosen, "rejected": r.rejected} for r in requests]
        limits = [r.max_tokens or self.max_length for r in requests]
        with self.lock:
            return score_pairs(self.model, self.tokenizer, rows, self.batch_size, limits)


class _StopWhenSet:
    """A generation stopping criterion that fires once ``event`` is set."""

    def __init__(self, event: threading.Event):
        self.event = event

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        done = self.event.is_set()
        return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)


class _StopInAnswer:
    """A generation stopping criterion that fires for a row once its answer holds one of its request's
    stop strings, or ends in a loop where the request asks to stop loops.

    Only the generated tokens are read: transformers' own ``stop_strings`` also match across the end
    of the prompt, so a stop "\\n[" fired at once for an answer opening with "[1]" after the chat
    template's last line break.
    """

    def __init__(self, requests: list[GenerationRequest], prompt_length: int, tokenizer):
        self.requests, self.prompt_length, self.tokenizer = requests, prompt_length, tokenizer

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        answers = self.tokenizer.batch_decode(input_ids[:, self.prompt_length :], skip_special_tokens=True)
        done = [any(stop in answer for stop in request.stop) or (request.stop_loops and ends_in_loop(answer))
                for request, answer in zip(self.requests, answers, strict=True)]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)
