"""Map domain exceptions to HTTP status codes, in one place; every error body is JSON
``{"detail": "<readable sentence>"}``."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from engine.mcq.engine import MCQInputError
from engine.runtime.batching import GenerationTimeoutError, RuntimeBusyError
from engine.runtime.openai import GenerationServerError, RemoteScoringUnsupportedError
from insights import QuestionLogOffError
from retrieval import CourseNotFoundError, InvalidCourseNameError
from retrieval.store import SourceFileMissingError, SourceNotFoundError

logger = logging.getLogger(__name__)


class InvalidRequestError(ValueError):
    """A request that is well-formed JSON but breaks a limit of this server's settings (422)."""


class ServiceNotReadyError(RuntimeError):
    """The model or the index is not loaded (yet, or any more) (503)."""


class MissingAPIKeyError(PermissionError):
    """An endpoint that needs an API key was called without one (401)."""


class WrongAPIKeyError(PermissionError):
    """The API key given is not the one configured, or the endpoint is switched off (403)."""


class UnknownModelError(LookupError):
    """An OpenAI-compatible request named a model this server does not serve (404)."""


class PayloadTooLargeError(ValueError):
    """An upload is larger than the server accepts (413)."""


class JobNotFoundError(LookupError):
    """A background job id this server does not know, or no longer keeps (404)."""


class UnsafeFilePathError(LookupError):
    """A requested course file path that tries to leave the course's files (404, as for any unknown file)."""


# Ordered from specific to general: the first matching class decides the status code.
STATUS_BY_EXCEPTION: dict[type[Exception], int] = {
    CourseNotFoundError: 404,
    InvalidCourseNameError: 422,
    InvalidRequestError: 422,
    MCQInputError: 422,
    ServiceNotReadyError: 503,
    MissingAPIKeyError: 401,
    WrongAPIKeyError: 403,
    UnknownModelError: 404,
    SourceNotFoundError: 404,
    SourceFileMissingError: 404,
    UnsafeFilePathError: 404,
    PayloadTooLargeError: 413,
    JobNotFoundError: 404,
    GenerationServerError: 502,
    RemoteScoringUnsupportedError: 422,
    RuntimeBusyError: 503,
    GenerationTimeoutError: 504,
    QuestionLogOffError: 404,
}


def error_response(status_code: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(status_code=status_code, content={"detail": detail}, headers=headers)


def _field_name(location: tuple) -> str:
    # ("body", "question") -> "question"; ("body",) -> "body"; ("query", "k") -> "k"
    parts = [str(part) for part in location]
    if len(parts) > 1 and parts[0] in {"body", "query", "path", "header", "cookie"}:
        parts = parts[1:]
    return ".".join(parts)


def describe_validation_error(error: RequestValidationError) -> str:
    """One readable sentence naming each invalid field and what is wrong with it."""
    problems = []
    for item in error.errors():
        message = str(item.get("msg", "is invalid")).removeprefix("Value error, ")
        problems.append(f"{_field_name(tuple(item.get('loc', ())))}: {message}")
    return "The request is invalid. " + "; ".join(problems) + ("" if problems[-1].endswith(".") else ".")


async def _validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
    return error_response(422, describe_validation_error(error))


async def _domain_error(request: Request, error: Exception) -> JSONResponse:
    status_code = next(code for cls, code in STATUS_BY_EXCEPTION.items() if isinstance(error, cls))
    retry_after = getattr(error, "retry_after_s", None)  # a busy server says when to come back
    return error_response(status_code, str(error),
                          headers={"Retry-After": str(retry_after)} if retry_after is not None else None)


async def _unexpected_error(request: Request, error: Exception) -> JSONResponse:
    logger.exception("Unhandled error on %s %s", request.method, request.url.path, exc_info=error)
    return error_response(500, "The server failed to handle this request; the server log has the details.")


# Every error response's body, as the OpenAPI schema documents it.
class ErrorBody(BaseModel):
    detail: str


# Errors any operation with a request body can answer, whatever its route declares.
BODY_ERRORS = {
    "400": "The body cannot be parsed (not UTF-8 JSON, or nested too deep).",
    "413": "The body is larger than TUTOR_MAX_REQUEST_MB (uploads: TUTOR_MAX_UPLOAD_MB).",
    "422": "Invalid request; the detail names the field and the limit.",
}


def document_error_bodies(schema: dict) -> None:
    """Make the OpenAPI schema say what the handlers send: ``{"detail": "<sentence>"}`` for every
    error (FastAPI documents a list of objects for 422), and the body errors on every operation."""
    schema.setdefault("components", {}).setdefault("schemas", {})["ErrorBody"] = ErrorBody.model_json_schema()
    error_content = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            if "requestBody" in operation:
                for code, description in BODY_ERRORS.items():
                    responses.setdefault(code, {"description": description})
            for code, response in responses.items():
                if int(code) >= 400:
                    response["content"] = error_content
    for unused in ("HTTPValidationError", "ValidationError"):
        schema["components"]["schemas"].pop(unused, None)


def register_error_handlers(app: FastAPI) -> None:
    """Attach the JSON error handlers; other status codes keep FastAPI's ``{"detail": ...}`` body."""
    app.add_exception_handler(RequestValidationError, _validation_error)
    for exception_class in STATUS_BY_EXCEPTION:
        app.add_exception_handler(exception_class, _domain_error)
    app.add_exception_handler(Exception, _unexpected_error)
    build_schema = app.openapi

    def openapi_with_error_bodies() -> dict:
        if app.openapi_schema is None:
            document_error_bodies(build_schema())
        return app.openapi_schema

    app.openapi = openapi_with_error_bodies
