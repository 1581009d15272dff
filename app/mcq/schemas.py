"""Request and response models of the MCQ routes."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from app.tutoring.schemas import Citation
from engine.mcq.engine import MAX_CHOICES, MIN_CHOICES

# Most questions one batch job may hold.
MAX_BATCH_ITEMS = 20000


def _strip_question(question: str) -> str:
    question = question.strip()
    if not question:
        raise ValueError("The question is empty; write the question to answer.")
    return question


# How to answer: shared by the single and the batch request.
class MCQSettings(BaseModel):
    method: Literal["loglik", "generate"] = Field("loglik", description="loglik scores each option's text; "
                                                 "generate lets the model answer and extracts the letter.")
    course: str | None = Field(None, description="The course to retrieve context from (with use_context).")
    use_context: bool = Field(False, description="Put the course's top passages before the question.")
    prompt_format: str | None = Field(None, description="loglik: lm-eval (default) or letters; "
                                      "generate: chat-letter (default) or chat-reason.")


# One multiple-choice question to answer.
class MCQRequest(MCQSettings):
    question: str
    choices: list[str] = Field(..., min_length=MIN_CHOICES, max_length=MAX_CHOICES)

    model_config = {"json_schema_extra": {"examples": [
        {"question": "Which planet is largest?", "choices": ["Mars", "Jupiter", "Venus"], "method": "loglik"}
    ]}}

    _question = field_validator("question")(_strip_question)


# One option's score under log-likelihood scoring.
class OptionScore(BaseModel):
    letter: str
    loglik: float = Field(..., description="Sum of the option text's token log-probabilities.")
    prob: float = Field(..., description="Softmax of the log-likelihoods over the options.")


# The answer to one question.
class MCQResponse(BaseModel):
    answer: str | None = Field(..., description="The option letter; null when generation named none.")
    answer_norm: str | None = Field(None, description="loglik: the pick after dividing each log-likelihood "
                                    "by its option's length (lm-eval's acc_norm).")
    scores: list[OptionScore] | None = Field(None, description="loglik: per-option scores, in option order.")
    citations: list[Citation] = Field(default_factory=list)
    raw_text: str | None = Field(None, description="generate: what the model wrote.")
    reason: str | None = Field(None, description="generate: why no letter could be extracted.")


# One question of a batch; answer is the gold letter or index, when known.
class MCQBatchItem(BaseModel):
    id: str
    question: str
    choices: list[str] = Field(..., min_length=MIN_CHOICES, max_length=MAX_CHOICES)
    answer: str | int | None = Field(None, description='Gold answer: a letter ("B") or a 0-based index.')

    _question = field_validator("question")(_strip_question)

    @model_validator(mode="after")
    def _check_answer(self) -> MCQBatchItem:
        if self.answer is not None and self.gold_index() is None:
            raise ValueError(f"answer {self.answer!r} of item {self.id!r} is not one of its "
                             f"{len(self.choices)} options (a letter or a 0-based index).")
        return self

    def gold_index(self) -> int | None:
        if self.answer is None:
            return None
        if isinstance(self.answer, int):
            index = self.answer
        else:
            letter = self.answer.strip().upper()
            index = ord(letter) - ord("A") if len(letter) == 1 else -1
        return index if 0 <= index < len(self.choices) else None


# Many questions answered by one background job.
class MCQBatchRequest(MCQSettings):
    items: list[MCQBatchItem] = Field(..., min_length=1, max_length=MAX_BATCH_ITEMS)


# One answered question of a batch.
class MCQBatchResult(BaseModel):
    id: str
    answer: str | None
    answer_norm: str | None = None
    correct: bool | None = Field(None, description="Whether answer equals the gold answer, when given.")
    scores: list[OptionScore] | None = None
    raw_text: str | None = None
    reason: str | None = None


# Where a batch job is, and its results once done.
class MCQJobStatus(BaseModel):
    job_id: str
    status: Literal["queued", "running", "done", "failed"]
    done: int = Field(..., description="Questions answered so far.")
    total: int
    accuracy: float | None = Field(None, description="Share of gold-labelled items answered correctly.")
    accuracy_norm: float | None = Field(None, description="loglik: the same for the acc_norm picks.")
    no_letter_rate: float | None = Field(None, description="Share of items with no extracted letter.")
    questions_per_second: float | None = None
    error: str | None = Field(None, description="Why the job failed, when it did.")
    results: list[MCQBatchResult] | None = Field(None, description="Per-item answers once the job is done.")
