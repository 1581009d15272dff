"""Chat completions over the courses: retrieval on the last user message, then generation.

``tutor/<course>`` answers from that course's material with numbered citations, as
``/v1/ask`` does; the bare model's name generates from the messages alone, so another
tutor (or any OpenAI client) can use this server as its generation backend.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

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
from app.request_limits import check_conversation, check_question
from app.settings import Settings
from app.sse import sse_event
from app.tutoring.service import answer_options, citations_for
from engine.grounded import AnswerOptions, PreparedAnswer, generate_answer, prepare_answer, stream_answer
from engine.runtime import GenerationRequest, Runtime
from insights import QuestionLog, record_answer
from retrieval import CourseStore, Retriever


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


def user_texts(request: ChatCompletionRequest) -> list[str]:
    return [m.text().strip() for m in request.messages if m.role == "user"]


def last_user_text(request: ChatCompletionRequest) -> str:
    """The last user message: the question retrieval runs on, or the bare model's prompt."""
    texts = user_texts(request)
    if not texts or not texts[-1]:
        raise InvalidRequestError("The conversation has no user message to answer; end it with one.")
    return texts[-1]


def chat_options(request: ChatCompletionRequest, settings: Settings, *, grounded: bool) -> AnswerOptions:
    """Token budget (capped by TUTOR_MAX_NEW_TOKENS, not refused: OpenAI clients send large ones; by default
    TUTOR_ANSWER_TOKENS for a course's answer), temperature and stop strings, over the server's retrieval
    defaults."""
    # None leaves answer_options' default: TUTOR_ANSWER_TOKENS within TUTOR_MAX_NEW_TOKENS
    default = None if grounded else settings.max_new_tokens
    wanted = request.max_completion_tokens or request.max_tokens or default
    budget = min(wanted, settings.max_new_tokens) if wanted else None
    stop = [request.stop] if isinstance(request.stop, str) else list(request.stop or [])
    return answer_options(settings, {"max_new_tokens": budget, "temperature": request.temperature or 0.0,
                                     "stop": tuple(stop)})


def prepare_chat(request: ChatCompletionRequest, *, retriever: Retriever, runtime: Runtime,
                 settings: Settings) -> PreparedAnswer:
    """The grounded answer to the last user message (earlier turns kept), or the bare model's plain chat."""
    check_conversation([m.text() for m in request.messages], settings)
    question = last_user_text(request)
    course = course_of(request.model, runtime)
    options = chat_options(request, settings, grounded=course is not None)
    if course is None:
        # A plain chat's last message is a whole prompt (another tutor sends its sources in it), not
        # a student's question: only the conversation limit applies.
        messages = [{"role": m.role, "content": m.text()} for m in request.messages]
        return PreparedAnswer(GenerationRequest(messages=messages, max_new_tokens=options.max_new_tokens,
                                                temperature=options.temperature, stop=list(options.stop)))
    check_question(question, settings, what="The last user message")
    last_user = max(i for i, m in enumerate(request.messages) if m.role == "user")
    earlier = [{"role": m.role, "content": m.text()} for m in request.messages[:last_user]]
    return prepare_answer(retriever, course, question, conversation=earlier, options=options)


def record_chat(question_log: QuestionLog | None, request: ChatCompletionRequest, prepared: PreparedAnswer,
                runtime: Runtime, *, route: str, generation_s: float) -> None:
    """Log a course model's answer; the bare model's plain chat is no course question and is not logged."""
    course = course_of(request.model, runtime)
    if course is not None:
        record_answer(question_log, course=course, question=user_texts(request)[-1], route=route,
                      model=runtime.model_name, sources=prepared.sources,
                      not_covered=prepared.generation is None, latency_s=prepared.retrieval_s + generation_s)


def complete(request: ChatCompletionRequest, prepared: PreparedAnswer, runtime: Runtime,
             question_log: QuestionLog | None = None) -> ChatCompletion:
    """Generate the whole answer (stream: false)."""
    answer = generate_answer(runtime, prepared)
    record_chat(question_log, request, prepared, runtime, route="chat", generation_s=answer.generation_s)
    usage = Usage(prompt_tokens=answer.prompt_tokens, completion_tokens=answer.completion_tokens,
                  total_tokens=answer.prompt_tokens + answer.completion_tokens)
    return ChatCompletion(id=f"chatcmpl-{uuid.uuid4().hex}", created=int(time.time()), model=request.model,
                          choices=[Choice(message=AssistantMessage(content=answer.text),
                                          finish_reason=answer.finish_reason)],
                          usage=usage,
                          citations=citations_for(course_of(request.model, runtime), answer.sources))


def stream_events(request: ChatCompletionRequest, prepared: PreparedAnswer, runtime: Runtime,
                  question_log: QuestionLog | None = None) -> Iterator[str]:
    """The completion as OpenAI's chunk events: role and citations, content deltas, finish, [DONE]."""
    head = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion.chunk",
            "created": int(time.time()), "model": request.model}

    def chunk(delta: dict, finish: str | None = None, **extra) -> str:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return sse_event({**head, "choices": [choice], **extra})

    yield chunk({"role": "assistant", "content": ""},
                citations=[c.model_dump() for c in citations_for(course_of(request.model, runtime),
                                                                    prepared.sources)])
    started = time.perf_counter()
    for piece in stream_answer(runtime, prepared):
        yield chunk({"content": piece})
    record_chat(question_log, request, prepared, runtime, route="chat/stream",
                generation_s=time.perf_counter() - started)
    yield chunk({}, "stop")
    yield sse_event("[DONE]")
