"""API keys: one for administration (always needed), one for students (optional).

A key travels as ``X-API-Key: KEY`` or ``Authorization: Bearer KEY``, the header every
OpenAI client sends, so the OpenAI SDK works with ``api_key=KEY``.
"""

from __future__ import annotations

import hmac

from fastapi import Depends, Request

from app.deps import SettingsDep
from app.errors import MissingAPIKeyError, WrongAPIKeyError

# Paths that stay open when a student key is set: health checks come from load balancers
# and compose, which carry no key.
OPEN_PATHS = frozenset({"/health"})


def presented_key(request: Request) -> str | None:
    """The key in ``X-API-Key`` or in a bearer ``Authorization`` header, if any."""
    if key := request.headers.get("x-api-key"):
        return key
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def check_key(given: str | None, expected: str, *, who: str) -> None:
    if given is None:
        raise MissingAPIKeyError(
            f"This endpoint needs the {who} API key: send it as X-API-Key or Authorization: Bearer."
        )
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise WrongAPIKeyError(f"The API key is not the {who} key; check it and retry.")


def require_admin_key(request: Request, settings: SettingsDep) -> None:
    """Administration needs TUTOR_ADMIN_API_KEY; with none configured it is switched off."""
    if not settings.admin_api_key:
        raise WrongAPIKeyError(
            "Administration is switched off on this server: set TUTOR_ADMIN_API_KEY to enable "
            "document upload and removal."
        )
    check_key(presented_key(request), settings.admin_api_key, who="admin")


def require_student_key(request: Request, settings: SettingsDep) -> None:
    """With TUTOR_STUDENT_API_KEY set, student endpoints need that key (or the admin key)."""
    if not settings.student_api_key or request.url.path in OPEN_PATHS:
        return
    given = presented_key(request)
    if given is not None and settings.admin_api_key and hmac.compare_digest(
        given.encode(), settings.admin_api_key.encode()
    ):
        return
    check_key(given, settings.student_api_key, who="student")


StudentKey = Depends(require_student_key)
