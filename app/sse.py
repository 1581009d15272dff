"""Server-sent events: the one framing both streaming routes (/v1/ask/stream, chat completions) use."""

from __future__ import annotations

import json
from collections.abc import Iterator

from fastapi.responses import StreamingResponse


def sse_event(data: dict | str) -> str:
    """One event carrying JSON, or a literal string such as OpenAI's ``[DONE]``."""
    return f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n"


def event_stream(events: Iterator[str]) -> StreamingResponse:
    """Stream framed events uncached; a sync iterator runs each step in a worker thread, off the loop."""
    return StreamingResponse(events, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
