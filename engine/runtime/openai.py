"""A remote backend: any OpenAI-compatible server (vLLM, llama.cpp's server, another tutor).

Generation goes through ``POST /v1/chat/completions``; the server does the batching, so a
batch of requests is sent as concurrent calls. A request that asks to stop loops is streamed and
the connection closed once the answer loops: vLLM and llama.cpp's server stop generating when
their client goes. Scoring needs the model's log-probabilities over a given text, which chat
servers do not offer: ``loglikelihood``, ``loglikelihood_rolling`` and ``pair_logprobs`` raise
``RemoteScoringUnsupportedError`` (``split.SplitRuntime`` scores on an in-process model instead).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path
from urllib.parse import urlparse

from engine.runtime.base import (
    GenerationRequest,
    GenerationResult,
    LoglikelihoodRequest,
    PairRequest,
    RollingRequest,
    register_backend,
)
from engine.runtime.streaming import cut_at_stop, ends_in_loop

logger = logging.getLogger(__name__)


class GenerationServerError(RuntimeError):
    """The OpenAI-compatible generation server could not be reached or refused a request."""


class RemoteScoringUnsupportedError(NotImplementedError):
    """Log-likelihood scoring was asked of a backend that can only generate."""


def normalise_base_url(url: str) -> str:
    """The server's OpenAI base URL, ending in ``/v1`` as the OpenAI SDK expects.

    >>> normalise_base_url("http://vllm:8000")
    'http://vllm:8000/v1'
    >>> normalise_base_url("http://vllm:8000/v1/")
    'http://vllm:8000/v1'
    """
    parsed = urlparse(url)
    if parsed.scheme not in {"http", "https"} or not parsed.netloc:
        raise GenerationServerError(
            f"Generation server URL {url!r} is not an http(s) URL: set TUTOR_GENERATION_URL to e.g. "
            "http://vllm:8000/v1."
        )
    base = url.rstrip("/")
    return base if base.endswith("/v1") else base + "/v1"


@register_backend("openai")
class OpenAIRuntime:
    """Generate with a model served by an OpenAI-compatible server.

    Args:
        model: the model name at the server; None takes the first one its ``/v1/models`` lists.
        data_dir: unused (no local weights); accepted so every backend loads alike.
        base_url: the server, e.g. ``http://vllm:8000/v1``.
        api_key: sent as a bearer token when the server wants one.
        timeout: seconds to wait for one completion.
        concurrency: how many requests of a batch are in flight at once.

    >>> runtime = OpenAIRuntime(None, data_dir=None, base_url="http://127.0.0.1:8000/v1")  # doctest: +SKIP
    """

    def __init__(
        self,
        model: str | None,
        *,
        data_dir: str | Path | None = None,
        base_url: str,
        api_key: str | None = None,
        timeout: float = 300.0,
        concurrency: int = 8,
        **ignored: object,
    ):
        import httpx

        if ignored:
            logger.debug("The openai backend ignores options %s.", sorted(ignored))
        self.base_url = normalise_base_url(base_url)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)
        self.concurrency = concurrency
        self.model_name = model or self._first_model()
        logger.info("Generating with %s at %s.", self.model_name, self.base_url)

    def _request(self, method: str, path: str, **kwargs):
        import httpx

        try:
            response = self.client.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            raise GenerationServerError(
                f"The generation server at {self.base_url} did not answer ({error}). Check that it runs "
                "and that TUTOR_GENERATION_URL points at it."
            ) from error
        if response.status_code >= 400:
            raise GenerationServerError(
                f"The generation server at {self.base_url} answered {response.status_code} to {path}: "
                f"{response.text[:300]}"
            )
        return response

    def _first_model(self) -> str:
        models = self._request("GET", "/models").json().get("data", [])
        if not models:
            raise GenerationServerError(f"The generation server at {self.base_url} lists no model.")
        return models[0]["id"]

    def _body(self, request: GenerationRequest, *, stream: bool) -> dict:
        body = {"model": self.model_name, "messages": request.messages, "max_tokens": request.max_new_tokens,
                "temperature": request.temperature, "stream": stream}
        if request.stop:
            body["stop"] = request.stop
        if stream:
            body["stream_options"] = {"include_usage": True}
        return body

    def format_chat(self, messages: list[dict[str, str]]) -> str:
        """A plain rendering for logs: the chat template is applied by the server."""
        return "\n".join(f"{m['role']}: {m['content']}" for m in messages)

    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        if len(requests) <= 1:
            return [self._generate_one(r) for r in requests]
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(self._generate_one, requests))

    def _generate_one(self, request: GenerationRequest) -> GenerationResult:
        if request.stop_loops:
            return self._generate_streamed(request)
        data = self._request("POST", "/chat/completions", json=self._body(request, stream=False)).json()
        choice = data["choices"][0]
        usage = data.get("usage") or {}
        return GenerationResult(
            text=(choice["message"].get("content") or "").strip(),
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            finish_reason="length" if choice.get("finish_reason") == "length" else "stop",
        )

    def _generate_streamed(self, request: GenerationRequest) -> GenerationResult:
        """One answer read from the stream and cut off where it loops.

        Where the stream carries no usage (cut short, or a server that sends none, such as the tutor's
        own API), the answer's tokens are counted as the pieces received (one token each from vLLM
        and llama.cpp) and its prompt tokens are unknown (0).
        """
        text, pieces, finish, usage = "", 0, "stop", {}
        with closing(self._stream_chunks(request)) as chunks:
            for chunk in chunks:
                usage = chunk.get("usage") or usage
                for choice in chunk.get("choices", []):
                    if content := (choice.get("delta") or {}).get("content"):
                        text, pieces = text + content, pieces + 1
                    if choice.get("finish_reason") == "length":
                        finish = "length"
                if ends_in_loop(text):
                    break
        for stop in request.stop:  # the server cuts at them too; this is for one that does not
            text = text.split(stop, 1)[0]
        if pieces >= request.max_new_tokens:  # for a server that reports no finish reason
            finish = "length"
        return GenerationResult(text=text.strip(), prompt_tokens=int(usage.get("prompt_tokens", 0)),
                                completion_tokens=int(usage.get("completion_tokens", pieces)),
                                finish_reason=finish)

    def stream(self, request: GenerationRequest) -> Iterator[str]:
        """Yield the answer's text as the server streams it (server-sent events), to its end or its loop."""
        text = ""
        with closing(self._stream_chunks(request)) as chunks:
            for piece in cut_at_stop(self._contents(chunks), request.stop):
                yield piece
                text += piece
                if request.stop_loops and ends_in_loop(text):
                    return

    @staticmethod
    def _contents(chunks: Iterator[dict]) -> Iterator[str]:
        for chunk in chunks:
            for choice in chunk.get("choices", []):
                if content := (choice.get("delta") or {}).get("content"):
                    yield content

    def _stream_chunks(self, request: GenerationRequest) -> Iterator[dict]:
        """The server's stream as parsed chunks; closing this generator hangs up."""
        import httpx

        body = self._body(request, stream=True)
        try:
            with self.client.stream("POST", "/chat/completions", json=body) as response:
                if response.status_code >= 400:
                    response.read()
                    raise GenerationServerError(
                        f"The generation server at {self.base_url} answered {response.status_code}: "
                        f"{response.text[:300]}"
                    )
                for line in response.iter_lines():
                    if line.startswith("error:"):  # llama.cpp's server reports a failure so
                        raise self._stream_failure(line[len("error:") :])
                    if line.startswith("data:") and line.strip() != "data: [DONE]":
                        chunk = json.loads(line[len("data:") :])
                        if "error" in chunk:  # vLLM's and OpenAI's way
                            raise self._stream_failure(json.dumps(chunk["error"]))
                        yield chunk
        except httpx.HTTPError as error:
            raise GenerationServerError(
                f"The stream from the generation server at {self.base_url} failed ({error})."
            ) from error

    def _stream_failure(self, detail: str) -> GenerationServerError:
        return GenerationServerError(f"The generation server at {self.base_url} failed mid-answer: "
                                     f"{detail.strip()[:300]}")

    def loglikelihood(self, requests: list[LoglikelihoodRequest]) -> list[tuple[float, bool]]:
        raise self._cannot_score("score continuations",
                                 "Use MCQ generation mode, or the in-process hf backend.")

    def loglikelihood_rolling(self, requests: list[RollingRequest]) -> list[tuple[float, int]]:
        raise self._cannot_score("measure perplexity", "Measure it with the in-process hf backend.")

    def pair_logprobs(self, requests: list[PairRequest]) -> list[tuple[float, float]]:
        raise self._cannot_score("score preference pairs", "Score them with the in-process hf backend.")

    def _cannot_score(self, task: str, fix: str) -> RemoteScoringUnsupportedError:
        return RemoteScoringUnsupportedError(
            f"The openai backend ({self.base_url}) cannot {task}: chat servers do not return "
            f"log-probabilities of given text. {fix} (TUTOR_SCORE_LOCALLY=true scores on TUTOR_MODEL "
            "in-process.)"
        )

    def close(self) -> None:
        self.client.close()
