"""Request and response models of the tutoring routes."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator

# Bounds that do not depend on settings; the settings-dependent ones (question length,
# max_new_tokens) are checked by the service against the server's Settings.
MAX_TOP_K = 20
MAX_TEMPERATURE = 2.0


# One earlier turn of the conversation a question follows: the student's message or the tutor's answer.
class ConversationTurn(BaseModel):
    role: Literal["user", "assistant"] = Field(..., description="user (the student) or assistant "
                                               "(the tutor).")
    content: str = Field(..., description="The message's text.")


# A student's question about one course.
class AskRequest(BaseModel):
    course: str = Field(..., min_length=1, description="The course to answer from (see GET /v1/courses).")
    question: str = Field(..., description="The student's question, in plain text.")
    top_k: int | None = Field(None, ge=1, le=MAX_TOP_K,
                              description="Chunks to retrieve (default TUTOR_TOP_K).")
    retrieval: Literal["dense", "lexical", "hybrid"] | None = Field(
        None, description="How to search the course (default TUTOR_RETRIEVAL).")
    max_new_tokens: int | None = Field(None, ge=1, description="Most tokens to generate "
                                       "(default and upper bound TUTOR_MAX_NEW_TOKENS).")
    temperature: float = Field(0.0, ge=0.0, le=MAX_TEMPERATURE, description="0 answers greedily; "
                               "higher values sample more freely.")
    history: list[ConversationTurn] = Field(
        default_factory=list, description="The conversation so far, oldest first: the search draws on it "
        "(so 'What did he do?' finds the person asked about before) and the model reads it. Its length "
        "counts towards the conversation limit (10 times TUTOR_MAX_QUESTION_CHARS).")

    model_config = {"json_schema_extra": {"examples": [
        {"course": "sample-course", "question": "What does Newton's first law say?", "top_k": 4},
        {"course": "sample-course", "question": "Who stated it?", "history": [
            {"role": "user", "content": "What does Newton's first law say?"},
            {"role": "assistant", "content": "A body keeps moving unless a force acts on it [1]."}]},
    ]}}

    @field_validator("question")
    @classmethod
    def _not_blank(cls, question: str) -> str:
        question = question.strip()
        if not question:
            raise ValueError("The question is empty; write the question you want answered.")
        return question


# One numbered source the answer may cite as [n], with where to find it.
class Citation(BaseModel):
    n: int = Field(..., description="The number the answer uses to cite this source, as [n].")
    source: str = Field(..., description="The course file the excerpt comes from.")
    page: int = Field(..., description="The (1-based) page where the excerpt starts.")
    page_end: int = Field(..., description="The page where the retrieved text ends (page, or a later one).")
    file_url: str = Field(..., description="Where this server serves the cited PDF (GET, with the student "
                          "key when one is set); a browser's viewer opens it at the page with #page=N.")
    score: float = Field(..., description="How well the excerpt matches the question: the cosine "
                         "similarity in dense mode; in lexical and hybrid mode the (fused) score scaled so "
                         "that the best candidate is 1; for a follow-up (with history) the 0-1 fusion of "
                         "its searches with and without the earlier turns.")
    excerpt: str = Field(..., description="The start of the retrieved text.")


# How long each stage of answering took, in seconds.
class Timings(BaseModel):
    retrieval_s: float
    generation_s: float
    total_s: float


# The tutor's answer with the sources it was given.
class ShortAnswerOut(BaseModel):
    text: str = Field(..., description="The words of a retrieved chunk that answer the question.")
    citation: int = Field(..., description="The [n] of the chunk they are in.")


class AskResponse(BaseModel):
    answer: str
    citations: list[Citation]
    short_answer: ShortAnswerOut | None = Field(None, description="The reader's short answer, which also "
                                                "opens `answer`; null when it found none or is off.")
    model: str = Field(..., description="The model that generated the answer.")
    timings: Timings


# A stored course and its size.
class CourseInfo(BaseModel):
    name: str
    sources: int = Field(..., description="Files ingested into the course.")
    chunks: int = Field(..., description="Live chunks across those files.")


# Every course the tutor can answer from.
class CoursesResponse(BaseModel):
    courses: list[CourseInfo]


# Readiness: the model and the index are loaded.
class HealthResponse(BaseModel):
    status: str = Field(..., description='"ok" when the model and the index are loaded.')
    model: str
    courses: int = Field(..., description="How many courses the index holds.")
