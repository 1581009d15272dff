"""Chat completions over the courses: retrieval on the last user message, then generation.

``tutor/<course>`` answers from that course's material with numbered citations, as
``/v1/ask`` does; the bare model's name generates from the messages alone, so another
tutor (or any OpenAI client) can use this server as its generation backend.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

from app.errors import InvalidRequestError, UnknownModelError
from app.openai_compat.schemas import (
    MODEL_PREFIX,
    AssistantMessage,
    ChatCompletion,
    ChatCompletionRequest,
    Choice,
    ModelCard,
    ModelList,
    Usage,
)
from app.settings import Settings
from app.tutoring.schemas import Citation
from app.tutoring.service import citations_for
from engine.runtime import GenerationRequest, Runtime
from engine.runtime.streaming import stream_text
from retrieval import NO_CONTEXT_ANSWER, CourseStore, Retriever, build_grounded_prompt

# A conversation may hold this many questions' worth of text (about 5,000 tokens at the default
# TUTOR_MAX_QUESTION_CHARS), which leaves room for the sources in the model's context.
CONVERSATION_QUESTIONS = 10

@dataclass
class PreparedChat:
    """What to generate, or the fixed answer when the course has nothing relevant."""

    generation: GenerationRequest | None
    citations: list[Citation] = field(default_factory=list)
    fixed_answer: str = ""


def list_models(store: CourseStore, runtime: Runtime) -> ModelList:
    """The bare model first (what a client that takes the first model, like another tutor's
    openai backend, should generate with), then one model per course."""
    created = int(time.time())
    cards = [ModelCard(id=runtime.model_name, created=created)]
    cards += [ModelCard(id=MODEL_PREFIX + course, created=created) for course in store.courses()]
    return ModelList(data=cards)


def course_of(model: str, runtime: Runtime) -> str | None:
    """The course a model name asks for; None for the bare model."""
    if model.startswith(MODEL_PREFIX):
        return model[len(MODEL_PREFIX) :]
    if model == runtime.model_name:
        return None
    raise UnknownModelError(
        f"Unknown model {model!r}: use tutor/<course> (GET /v1/models lists them) or {runtime.model_name!r}."
    )


def last_user_text(request: ChatCompletionRequest, settings: Settings) -> str:
    """The question retrieval runs on: the last user message, within the server's limit."""
    texts = [m.text().strip() for m in request.messages if m.role == "user"]
    if not texts or not texts[-1]:
        raise InvalidRequestError("The conversation has no user message to answer; end it with one.")
    if len(texts[-1]) > settings.max_question_chars:
        raise InvalidRequestError(
            f"The last user message is {len(texts[-1])} characters long; the limit is "
            f"{settings.max_question_chars} (TUTOR_MAX_QUESTION_CHARS)."
        )
    return texts[-1]


def generation_options(request: ChatCompletionRequest, settings: Settings) -> dict:
    """Token budget (capped by TUTOR_MAX_NEW_TOKENS), temperature and stop strings."""
    wanted = request.max_completion_tokens or request.max_tokens or settings.max_new_tokens
    stop = [request.stop] if isinstance(request.stop, str) else list(request.stop or [])
    return {"max_new_tokens": min(wanted, settings.max_new_tokens), "temperature": request.temperature or 0.0,
            "stop": stop}


def check_conversation_length(request: ChatCompletionRequest, settings: Settings) -> None:
    """Refuse a conversation longer than the model can read: its earlier turns go into the prompt too."""
    limit = CONVERSATION_QUESTIONS * settings.max_question_chars
    total = sum(len(m.text()) for m in request.messages)
    if total > limit:
        raise InvalidRequestError(
            f"The conversation is {total} characters long; the limit is {limit} ({CONVERSATION_QUESTIONS} "
            "times TUTOR_MAX_QUESTION_CHARS). Drop its oldest messages."
        )


def prepare_chat(request: ChatCompletionRequest, *, retriever: Retriever, runtime: Runtime,
                 settings: Settings) -> PreparedChat:
    """Retrieve on the last user message and build the grounded conversation."""
    check_conversation_length(request, settings)
    question = last_user_text(request, settings)
    options = generation_options(request, settings)
    course = course_of(request.model, runtime)
    if course is None:
        messages = [{"role": m.role, "content": m.text()} for m in request.messages]
        return PreparedChat(GenerationRequest(messages=messages, **options))
    hits = retriever.search(course, question, k=settings.top_k, min_score=settings.min_score)
    if not hits:
        return PreparedChat(None, fixed_answer=NO_CONTEXT_ANSWER)
    prompt = build_grounded_prompt(question, hits)
    # Earlier turns stay in the conversation, between the tutor's system prompt and the grounded question.
    last_user = max(i for i, m in enumerate(request.messages) if m.role == "user")
    history = [{"role": m.role, "content": m.text()} for m in request.messages[:last_user]
               if m.role in {"user", "assistant"}]
    messages = [prompt.messages[0], *history, prompt.messages[1]]
    return PreparedChat(GenerationRequest(messages=messages, **options),
                        citations=citations_for(prompt.sources))


def complete(request: ChatCompletionRequest, prepared: PreparedChat, runtime: Runtime) -> ChatCompletion:
    """Generate the whole answer (stream: false)."""
    if prepared.generation is None:
        text, finish, usage = prepared.fixed_answer, "stop", Usage(prompt_tokens=0, completion_tokens=0,
                                                                   total_tokens=0)
    else:
        [result] = runtime.generate([prepared.generation])
        text, finish = result.text, result.finish_reason
        usage = Usage(prompt_tokens=result.prompt_tokens, completion_tokens=result.completion_tokens,
                      total_tokens=result.prompt_tokens + result.completion_tokens)
    return ChatCompletion(id=f"chatcmpl-{uuid.uuid4().hex}", created=int(time.time()), model=request.model,
                          choices=[Choice(message=AssistantMessage(content=text), finish_reason=finish)],
                          usage=usage, citations=prepared.citations)


def sse(data: dict | str) -> str:
    """One server-sent event carrying JSON (or the literal ``[DONE]``)."""
    return f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n"


def stream_events(request: ChatCompletionRequest, prepared: PreparedChat, runtime: Runtime) -> Iterator[str]:
    """The completion as OpenAI's chunk events: role and citations, content deltas, finish, [DONE]."""
    head = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion.chunk",
            "created": int(time.time()), "model": request.model}

    def chunk(delta: dict, finish: str | None = None, **extra) -> str:
        return sse({**head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra})

    yield chunk({"role": "assistant", "content": ""},
                citations=[c.model_dump() for c in prepared.citations])
    if prepared.generation is None:
        yield chunk({"content": prepared.fixed_answer})
    else:
        for piece in stream_text(runtime, prepared.generation):
            yield chunk({"content": piece})
    yield chunk({}, "stop")
    yield sse("[DONE]")
