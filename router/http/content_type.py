"""What to tell a caller whose JSON body was not sent as JSON.

Without a JSON content-type FastAPI does not parse the body (curl -d sends
application/x-www-form-urlencoded), and pydantic would answer "body: Input should be a valid
dictionary or object to extract fields from". The app's validation handler asks
content_type_hint instead, so the message says what to send.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

JSON_CONTENT_TYPE = "application/json"


def is_json(content_type: str | None) -> bool:
    media = (content_type or "").split(";")[0].strip().lower()
    return media == JSON_CONTENT_TYPE or media.endswith("+json")


def content_type_hint(content_type: str | None, errors: Sequence[dict[str, Any]]) -> str | None:
    """The message for a body refused as a whole (loc ("body",)) because it came with another
    content-type, or None when the content-type is not the problem."""
    if is_json(content_type) or not any(tuple(e.get("loc", ())) == ("body",) for e in errors):
        return None
    sent = f"content-type: {content_type}" if content_type else "no content-type header"
    return f"body: send it as JSON with the header content-type: {JSON_CONTENT_TYPE} (got {sent})"
