"""The limits of one request, in one place: body size and Unicode (middleware), then question length,
token budget and conversation length (checks every answering route calls).

Bodies that are too large (413) or hold text no model can read (422) are refused by the middleware.

Checked as the body streams in, before any route parses it: a declared ``Content-Length`` over
the limit is refused at once, and a chunked body is cut off when it passes the limit. Uploads
(multipart) have their own, larger limit. JSON may spell lone UTF-16 surrogates (``"\\ud800"``)
that Python accepts but no tokenizer can encode; they are refused here with a readable message
instead of failing deep inside the model with a 500.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import InvalidRequestError

if TYPE_CHECKING:
    from app.settings import Settings

# A JSON escape of a surrogate code point (paired or not); only then is the body decoded to check.
SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
MIB = 1 << 20
MULTIPART_FRAMING_BYTES = MIB
# A conversation may hold this many questions' worth of text (about 5,000 tokens at the default
# TUTOR_MAX_QUESTION_CHARS), which leaves room for the sources in the model's context.
CONVERSATION_QUESTIONS = 10


def check_question(text: str, settings: Settings, *, what: str = "The question") -> None:
    """Refuse a question (or an MCQ option) longer than TUTOR_MAX_QUESTION_CHARS: the context is finite."""
    if len(text) > settings.max_question_chars:
        raise InvalidRequestError(
            f"{what} is {len(text)} characters long; the limit is {settings.max_question_chars} "
            "(TUTOR_MAX_QUESTION_CHARS). Shorten it."
        )


def check_new_tokens(requested: int | None, settings: Settings) -> None:
    """Refuse a token budget above TUTOR_MAX_NEW_TOKENS (None: the server's default)."""
    if requested is not None and requested > settings.max_new_tokens:
        raise InvalidRequestError(
            f"max_new_tokens is {requested}; this server allows at most {settings.max_new_tokens} "
            "(TUTOR_MAX_NEW_TOKENS)."
        )


def check_conversation(texts: Sequence[str], settings: Settings) -> None:
    """Refuse a conversation longer than the model can read: its earlier turns go into the prompt too."""
    limit = CONVERSATION_QUESTIONS * settings.max_question_chars
    total = sum(len(text) for text in texts)
    if total > limit:
        raise InvalidRequestError(
            f"The conversation is {total} characters long; the limit is {limit} ({CONVERSATION_QUESTIONS} "
            "times TUTOR_MAX_QUESTION_CHARS). Drop its oldest messages."
        )


def too_large_detail(limit: int, setting: str) -> str:
    return (f"The request body is larger than this server accepts ({limit / MIB:.1f} MB, {setting}); "
            "send less at once, e.g. split a batch into several requests.")


def has_lone_surrogate(body: bytes) -> bool:
    """Whether the JSON ``body`` decodes to text with an unpaired surrogate (invalid JSON: False)."""
    if not SURROGATE_ESCAPE.search(body):
        return False
    try:
        decoded = json.loads(body)
    except (ValueError, RecursionError):
        return False  # the route reports the JSON error itself
    try:
        json.dumps(decoded, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


class RequestLimitMiddleware:
    """Pure ASGI middleware enforcing body size limits and valid Unicode in JSON bodies.

    Args:
        app: the wrapped ASGI app.
        max_body_bytes: limit for every body except multipart uploads (TUTOR_MAX_REQUEST_MB).
        max_upload_bytes: limit for multipart uploads (TUTOR_MAX_UPLOAD_MB, plus framing).
    """

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, max_upload_bytes: int):
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_upload_bytes = max_upload_bytes + MULTIPART_FRAMING_BYTES

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        content_type = headers.get("content-type", "")
        multipart = content_type.startswith("multipart/")
        limit, setting = ((self.max_upload_bytes, "TUTOR_MAX_UPLOAD_MB") if multipart
                          else (self.max_body_bytes, "TUTOR_MAX_REQUEST_MB"))
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            refusal = JSONResponse({"detail": too_large_detail(limit, setting)}, status_code=413)
            await refusal(scope, receive, send)
            return
        checked = self._checked_receive(receive, limit, setting, json_body="json" in content_type)
        await self.app(scope, checked, send)

    @staticmethod
    def _checked_receive(receive: Receive, limit: int, setting: str, *, json_body: bool) -> Receive:
        """``receive`` that counts body bytes and, for JSON, checks the complete body's text."""
        received, parts = 0, []

        async def checked() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] != "http.request":
                return message
            body = message.get("body", b"")
            received += len(body)
            if received > limit:
                raise HTTPException(413, too_large_detail(limit, setting))
            if json_body:
                parts.append(body)
                if not message.get("more_body", False) and has_lone_surrogate(b"".join(parts)):
                    raise HTTPException(422, "The request is invalid: its text holds an unpaired UTF-16 "
                                             "surrogate (an escape such as \\ud800 without its pair), "
                                             "which is not valid Unicode. Send the text as UTF-8.")
            return message

        return checked
