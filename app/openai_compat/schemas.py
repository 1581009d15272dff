"""Request and response models of the OpenAI-compatible routes (the subset the SDK uses).

Citations ride in an extra top-level field, ``citations``, on a completion and on the first
chunk of a stream; OpenAI clients keep unknown fields (``completion.model_extra["citations"]``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.tutoring.schemas import Citation

MODEL_PREFIX = "tutor/"


# One message of a conversation, as OpenAI clients send it (text or a list of content parts).
class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        """The message's text, joining the text parts of a multi-part message."""
        if isinstance(self.content, list):
            return "".join(str(part.get("text", "")) for part in self.content if part.get("type") == "text")
        return self.content or ""


# A chat completion request; fields the tutor does not use are accepted and ignored.
class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field(..., description="tutor/<course> to answer from a course, or the bare model's name.")
    messages: list[ChatMessage] = Field(..., min_length=1)
    stream: bool = False
    max_tokens: int | None = Field(None, ge=1, description="Capped at TUTOR_MAX_NEW_TOKENS.")
    max_completion_tokens: int | None = Field(None, ge=1, description="Newer name of max_tokens.")
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    stop: str | list[str] | None = None


# The assistant's message in a completion.
class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


# One choice of a (non-streamed) completion.
class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: str


# Token counts, as OpenAI reports them.
class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


# A whole chat completion, plus the sources it was given (the extra ``citations`` field).
class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    citations: list[Citation] = Field(default_factory=list,
                                      description="The numbered course sources the answer cites as [n].")


# One model the server serves.
class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "tutor"


# The list answered by GET /v1/models.
class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]
